/* redis_url.c - the redis_url option parsed into its parts (redis_url.h).
 *
 * A pure function of the string: no I/O, no Redis. config_values.c calls
 * it to check the option, the store at cg_store_create(). */
#include "fmacros.h"

#include <stdio.h>
#include <string.h>

#include "core/common.h"
#include "core/redis_url.h"

static int
hexval(int ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Copy s[0..n) with %XX decoded. NULL on failure, with *rc set to
 * CG_E_NOMEM or CG_E_INVAL (bad escape). */
static char *
dup_decoded(const char *s, size_t n, int *rc)
{
    char *out = cg_malloc(n + 1), *o = out;

    if (out == NULL) {
        *rc = CG_E_NOMEM;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            *o++ = s[i];
            continue;
        }
        int a = n - i >= 3 ? hexval((unsigned char)s[i + 1]) : -1;
        int b = n - i >= 3 ? hexval((unsigned char)s[i + 2]) : -1;
        if (a < 0 || b < 0) {
            cg_free(out);
            *rc = CG_E_INVAL;
            return NULL;
        }
        *o++ = (char)(a * 16 + b);
        i += 2;
    }
    *o = '\0';
    return out;
}

/* Strict decimal in [lo, hi]; -1 if not. */
static long
parse_num(const char *s, size_t n, long lo, long hi)
{
    long v = 0;

    if (n == 0 || n > 9)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return (v < lo || v > hi) ? -1 : v;
}

void
cg_redis_url_cleanup(struct cg_redis_url *u)
{
    cg_free(u->host);
    cg_free(u->path);
    cg_free(u->user);
    cg_free(u->pass);
    memset(u, 0, sizeof *u);
}

/* userinfo "user:pass", ":pass" or "pass" (a bare word is a password, as
 * with Redis before ACLs). */
static int
url_userinfo(struct cg_redis_url *u, const char *s, size_t n, int *rc)
{
    const char *colon = memchr(s, ':', n);

    if (colon == NULL)
        return (u->pass = dup_decoded(s, n, rc)) ? 0 : -1;
    if (colon > s && (u->user = dup_decoded(s, (size_t)(colon - s), rc)) == NULL)
        return -1;
    if ((u->pass = dup_decoded(colon + 1, n - (size_t)(colon - s) - 1, rc)) == NULL)
        return -1;
    return 0;
}

/* A host name or IPv4 literal (brackets == 0), or the inside of an IPv6
 * literal. '_' is allowed because container runtimes resolve names such
 * as "redis_1". */
static int
valid_host(const char *s, size_t n, int brackets)
{
    const char *ok = brackets ? "0123456789abcdefABCDEF:." :
                     "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";

    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\0' || strchr(ok, s[i]) == NULL)
            return 0;
    return 1;
}

/* unix://[[user]:password@]/path[?db=N][&password=P], after "unix://". */
static const char *
parse_unix(struct cg_redis_url *u, const char *p, int *rc)
{
    const char *q, *at = strchr(p, '@'), *slash = strchr(p, '/');

    if (at && slash && at < slash) {
        if (url_userinfo(u, p, (size_t)(at - p), rc) < 0)
            return "bad %XX escape in the user or password";
        p = at + 1;
    }
    if (p[0] != '/' || p[1] == '\0' || p[1] == '?')
        return "expected unix:///absolute/path";
    q = strchr(p, '?');
    if ((u->path = dup_decoded(p, q ? (size_t)(q - p) : strlen(p), rc)) == NULL)
        return "bad %XX escape in the path";
    while (q && *q) {
        const char *k = q + 1, *amp = strchr(k, '&'), *eq;
        size_t kn = amp ? (size_t)(amp - k) : strlen(k);

        eq = memchr(k, '=', kn);
        if (eq == NULL)
            return "expected ?db=N or &password=P after the path";
        if ((size_t)(eq - k) == 2 && memcmp(k, "db", 2) == 0) {
            long db = parse_num(eq + 1, kn - 3, 0, 100000);
            if (db < 0)
                return "database must be a number 0..100000";
            u->db = (int)db;
        } else if ((size_t)(eq - k) == 8 && memcmp(k, "password", 8) == 0) {
            cg_free(u->pass);
            if ((u->pass = dup_decoded(eq + 1, kn - 9, rc)) == NULL)
                return "bad %XX escape in the password";
        } else {
            return "expected ?db=N or &password=P after the path";
        }
        q = amp;
    }
    snprintf(u->shown, sizeof u->shown, "unix://%s", u->path);
    if (u->db)
        snprintf(u->shown, sizeof u->shown, "unix://%s?db=%d", u->path, u->db);
    return NULL;
}

/* redis://[[user]:password@]host[:port][/db], after "redis://". */
static const char *
parse_tcp(struct cg_redis_url *u, const char *p, int *rc)
{
    const char *end = p + strcspn(p, "/"), *at = NULL, *hp, *he, *colon;

    for (const char *x = p; x < end; x++)
        if (*x == '@')
            at = x;
    if (at) {
        if (url_userinfo(u, p, (size_t)(at - p), rc) < 0)
            return "bad %XX escape in the user or password";
        p = at + 1;
    }
    if (*p == '[') {
        hp = p + 1;
        he = memchr(hp, ']', (size_t)(end - hp));
        if (he == NULL || !valid_host(hp, (size_t)(he - hp), 1))
            return "expected an IPv6 address in brackets after redis://";
        colon = he + 1 < end ? he + 1 : NULL;
        if (colon && *colon != ':')
            return "expected :port after the IPv6 address";
    } else {
        hp = p;
        colon = memchr(p, ':', (size_t)(end - p));
        he = colon ? colon : end;
        if (!valid_host(hp, (size_t)(he - hp), 0))
            return "expected a host after redis://";
    }
    if ((u->host = cg_strndup(hp, (size_t)(he - hp))) == NULL) {
        *rc = CG_E_NOMEM;
        return "out of memory";
    }
    if (colon) {
        long port = parse_num(colon + 1, (size_t)(end - colon - 1), 1, 65535);
        if (port < 0 || colon[1] == '0')
            return "port must be 1..65535";
        u->port = (int)port;
    }
    if (*end == '/' && end[1] != '\0') {
        long db = parse_num(end + 1, strlen(end + 1), 0, 100000);
        if (db < 0)
            return "database must be a number 0..100000";
        u->db = (int)db;
    }
    snprintf(u->shown, sizeof u->shown, "redis://%s%s%s:%d/%d",
             strchr(u->host, ':') ? "[" : "", u->host,
             strchr(u->host, ':') ? "]" : "", u->port, u->db);
    return NULL;
}

int
cg_redis_url_parse(const char *s, struct cg_redis_url *u, char *why, size_t cap)
{
    int rc = CG_E_INVAL;   /* CG_E_NOMEM once an allocation failed */
    const char *bad;

    memset(u, 0, sizeof *u);
    u->port = 6379;
    if (s == NULL)
        bad = "no URL";
    else if (strncmp(s, "unix://", 7) == 0)
        bad = parse_unix(u, s + 7, &rc);
    else if (strncmp(s, "redis://", 8) == 0)
        bad = parse_tcp(u, s + 8, &rc);
    else
        bad = "scheme must be redis:// or unix://";
    if (bad == NULL)
        return 0;
    if (why != NULL && cap > 0)
        snprintf(why, cap, "%s", bad);
    cg_redis_url_cleanup(u);
    return rc;
}
