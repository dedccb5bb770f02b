/* store_url.c - the redis_url option parsed into its parts (store_url.h).
 *
 * A pure function of the string: no I/O, no Redis. The store parses its
 * URL once, at cg_store_create(); the config layer will take this over
 * (store_url.h says why it sits on its own). */
#include "fmacros.h"

#include <stdio.h>
#include <string.h>

#include "core/common.h"
#include "store/store_url.h"

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

/* redis://[[user]:password@]host[:port][/db]   (host may be [v6])
 * unix://[[user]:password@]/path[?db=N][&password=P] */
int
cg_redis_url_parse(const char *s, struct cg_redis_url *u)
{
    int rc = CG_E_INVAL;   /* CG_E_NOMEM once an allocation failed */

    memset(u, 0, sizeof *u);
    u->port = 6379;

    if (s == NULL)
        return CG_E_INVAL;
    if (strncmp(s, "unix://", 7) == 0) {
        const char *p = s + 7, *q, *at = strchr(p, '@'), *slash = strchr(p, '/');

        if (at && slash && at < slash) {
            if (url_userinfo(u, p, (size_t)(at - p), &rc) < 0)
                goto fail;
            p = at + 1;
        }
        if (*p != '/')
            goto fail;
        q = strchr(p, '?');
        if ((u->path = dup_decoded(p, q ? (size_t)(q - p) : strlen(p), &rc)) == NULL)
            goto fail;
        while (q && *q) {
            const char *k = q + 1, *amp = strchr(k, '&'), *eq;
            size_t kn = amp ? (size_t)(amp - k) : strlen(k);

            eq = memchr(k, '=', kn);
            if (eq == NULL)
                goto fail;
            if ((size_t)(eq - k) == 2 && memcmp(k, "db", 2) == 0) {
                long db = parse_num(eq + 1, kn - 3, 0, 100000);
                if (db < 0)
                    goto fail;
                u->db = (int)db;
            } else if ((size_t)(eq - k) == 8 && memcmp(k, "password", 8) == 0) {
                cg_free(u->pass);
                if ((u->pass = dup_decoded(eq + 1, kn - 9, &rc)) == NULL)
                    goto fail;
            } else {
                goto fail;
            }
            q = amp;
        }
        snprintf(u->shown, sizeof u->shown, "unix://%s", u->path);
        if (u->db)
            snprintf(u->shown, sizeof u->shown, "unix://%s?db=%d", u->path, u->db);
        return 0;
    }
    if (strncmp(s, "redis://", 8) == 0) {
        const char *p = s + 8, *end = p + strcspn(p, "/"), *at = NULL, *hp, *he, *colon;

        for (const char *x = p; x < end; x++)
            if (*x == '@')
                at = x;
        if (at) {
            if (url_userinfo(u, p, (size_t)(at - p), &rc) < 0)
                goto fail;
            p = at + 1;
        }
        if (*p == '[') {
            hp = p + 1;
            he = memchr(hp, ']', (size_t)(end - hp));
            if (he == NULL)
                goto fail;
            colon = he + 1 < end ? he + 1 : NULL;
            if (colon && *colon != ':')
                goto fail;
        } else {
            hp = p;
            colon = memchr(p, ':', (size_t)(end - p));
            he = colon ? colon : end;
        }
        if (he == hp)
            goto fail;
        if ((u->host = cg_strndup(hp, (size_t)(he - hp))) == NULL) {
            rc = CG_E_NOMEM;
            goto fail;
        }
        if (colon) {
            long port = parse_num(colon + 1, (size_t)(end - colon - 1), 1, 65535);
            if (port < 0)
                goto fail;
            u->port = (int)port;
        }
        if (*end == '/' && end[1] != '\0') {
            long db = parse_num(end + 1, strlen(end + 1), 0, 100000);
            if (db < 0)
                goto fail;
            u->db = (int)db;
        }
        snprintf(u->shown, sizeof u->shown, "redis://%s%s%s:%d/%d",
                 strchr(u->host, ':') ? "[" : "", u->host,
                 strchr(u->host, ':') ? "]" : "", u->port, u->db);
        return 0;
    }
fail:
    cg_redis_url_cleanup(u);
    return rc;
}

