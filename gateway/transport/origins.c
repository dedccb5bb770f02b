/* origins.c - the Origin allow-list (PROTOCOL.md section 2).
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

#include <string.h>
#include <strings.h>

#include "core/common.h"
#include "http/request.h"
#include "stomp/str.h"
#include "transport/transport.h"

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
cg_origins_create(const char *list, const char *listen, struct cg_origins **out)
{
    struct cg_origins *o = cg_calloc(1, sizeof *o);
    const char *p = list ? list : "";

    (void)listen;
    if (o == NULL)
        return CG_E_NOMEM;
    while (*p == ' ')
        p++;
    if (*p == '\0') {
        o->dflt = 1;
        *out = o;
        return 0;
    }
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        struct origin parsed;
        char **grown;

        while (len && p[0] == ' ')
            p++, len--;
        while (len && p[len - 1] == ' ')
            len--;
        if (len == 1 && p[0] == '*') {
            o->any = 1;
        } else if (len) {
            if (parse_origin(p, len, &parsed) < 0)
                goto fail;
            grown = cg_realloc(o->list, (o->n + 1) * sizeof *o->list);
            if (grown == NULL)
                goto fail;
            o->list = grown;
            if ((o->list[o->n] = cg_strndup(p, len)) == NULL)
                goto fail;
            for (char *c = o->list[o->n]; *c; c++)
                if (*c >= 'A' && *c <= 'Z')
                    *c = (char)(*c | 0x20);
            o->n++;
        }
        p += len;
        while (*p == ' ')
            p++;
        if (*p == ',')
            p++;
    }
    *out = o;
    return 0;
fail:
    cg_origins_destroy(o);
    return CG_E_INVAL;
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
