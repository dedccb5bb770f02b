/* origins.c - the Origin allow-list (PROTOCOL.md section 2), parsed once
 * from allowed_origins by config.c and matched by the transports.
 *
 * allowed_origins is a comma-separated list of exact origins
 * ("https://chat.example.com", "http://10.0.0.5:8080"), or "*" for any.
 * Empty (the default) admits the server's own origin - the scheme-less
 * host:port the request was addressed to (its Host header) - and loopback
 * origins (localhost, 127.0.0.0/8, [::1]) on any port.
 *
 * An origin is parsed strictly as scheme "://" host [":" port] with nothing
 * after it, so look-alikes ("http://localhost:8080.evil.com",
 * "http://localhost@evil.com") and "null" never match. A missing Origin
 * header is admitted by the caller (native clients send none). */
#include "fmacros.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/common.h"
#include "core/origins.h"
#include "stomp/str.h"

struct cg_origins {
    int     any;        /* "*" */
    int     dflt;       /* empty list: same-origin + loopback */
    size_t  n;
    char  **list;       /* exact origins, lower-cased */
};

/* A parsed origin: views into the header value. */
struct origin {
    struct stomp_str scheme, host, port;
};

static int
parse_origin(const char *s, size_t len, struct origin *o)
{
    const char *p = memchr(s, ':', len), *end = s + len, *h, *c;

    if (p == NULL || (size_t)(end - p) < 3 || p[1] != '/' || p[2] != '/')
        return -1;
    o->scheme = (struct stomp_str){ s, (size_t)(p - s) };
    if (!((o->scheme.len == 4 && strncasecmp(s, "http", 4) == 0) ||
          (o->scheme.len == 5 && strncasecmp(s, "https", 5) == 0)))
        return -1;
    h = p + 3;
    if (h < end && *h == '[') {                 /* [v6] */
        c = memchr(h, ']', (size_t)(end - h));
        if (c == NULL)
            return -1;
        o->host = (struct stomp_str){ h, (size_t)(c - h + 1) };
        c++;
    } else {
        for (c = h; c < end && *c != ':'; c++)
            if (!(((*c | 0x20) >= 'a' && (*c | 0x20) <= 'z') ||
                  (*c >= '0' && *c <= '9') || *c == '-' || *c == '.'))
                return -1;                      /* '@', '/', '?', ... */
        o->host = (struct stomp_str){ h, (size_t)(c - h) };
    }
    if (o->host.len == 0)
        return -1;
    o->port = (struct stomp_str){ NULL, 0 };
    if (c < end) {
        if (*c != ':' || c + 1 == end || end - (c + 1) > 5)
            return -1;
        for (const char *d = c + 1; d < end; d++)
            if (*d < '0' || *d > '9')
                return -1;
        o->port = (struct stomp_str){ c + 1, (size_t)(end - c - 1) };
    }
    return 0;
}

static int
is_loopback(struct stomp_str host)
{
    if (host.len == 9 && strncasecmp(host.ptr, "localhost", 9) == 0)
        return 1;
    if (host.len == 5 && memcmp(host.ptr, "[::1]", 5) == 0)
        return 1;
    if (host.len >= 7 && memcmp(host.ptr, "127.", 4) == 0) {
        int dots = 0;
        for (size_t i = 0; i < host.len; i++) {
            if (host.ptr[i] == '.')
                dots++;
            else if (host.ptr[i] < '0' || host.ptr[i] > '9')
                return 0;
        }
        return dots == 3;
    }
    return 0;
}

int
cg_origins_parse(const char *list, struct cg_origins **out, char *why, size_t cap)
{
    struct cg_origins *o = cg_calloc(1, sizeof *o);
    const char *p = list ? list : "";
    int rc = CG_E_INVAL;

    *out = NULL;
    if (o == NULL)
        return CG_E_NOMEM;
    while (*p == ' ')
        p++;
    if (*p == '\0') {
        o->dflt = 1;
        *out = o;
        return 0;
    }
    for (;;) {
        size_t len = strcspn(p, ","), n = len;
        const char *e = p;
        struct origin parsed;
        char **grown;

        while (n && e[0] == ' ')
            e++, n--;
        while (n && e[n - 1] == ' ')
            n--;
        if (n == 0) {
            snprintf(why, cap, "has an empty entry");
            goto fail;
        }
        if (o->n + (size_t)o->any >= CG_ORIGINS_MAX) {
            snprintf(why, cap, "more than %d origins", CG_ORIGINS_MAX);
            goto fail;
        }
        if (n == 1 && e[0] == '*') {
            o->any = 1;
        } else {
            if (parse_origin(e, n, &parsed) < 0) {
                snprintf(why, cap, "'%.*s' is not an origin: expected "
                         "http(s)://host[:port] or *", (int)(n > 200 ? 200 : n), e);
                goto fail;
            }
            rc = CG_E_NOMEM;
            grown = cg_realloc(o->list, (o->n + 1) * sizeof *o->list);
            if (grown == NULL)
                goto fail;
            o->list = grown;
            if ((o->list[o->n] = cg_strndup(e, n)) == NULL)
                goto fail;
            rc = CG_E_INVAL;
            for (char *c = o->list[o->n]; *c; c++)
                if (*c >= 'A' && *c <= 'Z')
                    *c = (char)(*c | 0x20);
            o->n++;
        }
        if (p[len] == '\0')
            break;
        p += len + 1;
    }
    *out = o;
    return 0;
fail:
    if (rc == CG_E_NOMEM)
        snprintf(why, cap, "out of memory");
    cg_origins_destroy(o);
    return rc;
}

void
cg_origins_destroy(struct cg_origins *o)
{
    if (o == NULL)
        return;
    for (size_t i = 0; i < o->n; i++)
        cg_free(o->list[i]);
    cg_free(o->list);
    cg_free(o);
}

int
cg_origins_allowed(const struct cg_origins *o, const char *origin, size_t len,
                   const char *host, size_t host_len)
{
    struct origin parsed;

    if (o->any)
        return 1;
    if (parse_origin(origin, len, &parsed) < 0)
        return 0;
    if (o->dflt) {
        size_t hp = (size_t)(parsed.host.ptr - origin);
        if (is_loopback(parsed.host))
            return 1;
        /* Same origin: the origin's host[:port] equals the Host header. */
        return host != NULL && host_len == len - hp &&
               strncasecmp(origin + hp, host, host_len) == 0;
    }
    for (size_t i = 0; i < o->n; i++)
        if (strlen(o->list[i]) == len && strncasecmp(o->list[i], origin, len) == 0)
            return 1;
    return 0;
}
