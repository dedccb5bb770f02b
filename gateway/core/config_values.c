/* config_values.c - the rules of the options that have one beyond their
 * type and bounds, and the parsers of the options with a typed value (see
 * config.c "Typed values"): the one place each syntax is read. Also the
 * redaction of secrets in error lines and dumps. */
#include "fmacros.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "core/config.h"
#include "core/config_internal.h"
#include "core/log.h"
#include "core/origins.h"
#include "core/proxies.h"
#include "core/api_keys.h"
#include "core/jwt.h"
#include "core/redis_url.h"

/* ------------------------------------------------------------------------ */
/* Per-option checks                                                         */
/* ------------------------------------------------------------------------ */

/* A decimal port 1..65535 in s[0..len). */
static int
valid_port(const char *s, size_t len)
{
    unsigned long v = 0;

    if (len == 0 || len > 5 || s[0] == '0')
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    return v <= 65535;
}

/* A host name or IPv4 literal, or an IPv6 literal in brackets. '_' is
 * allowed because container runtimes resolve names such as "redis_1". */
static int
valid_host(const char *s, size_t len)
{
    const char *ok = s[0] == '[' ? "0123456789abcdefABCDEF:." :
                     "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";

    if (s[0] == '[') {
        if (len < 3 || s[len - 1] != ']')
            return 0;
        s++;
        len -= 2;
    }
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (strchr(ok, s[i]) == NULL)
            return 0;
    return 1;
}

int
cfg_parse_listen(const char *v, void *typed, char *why, size_t cap)
{
    struct cg_listen_addr *out = typed;
    const char *colon = strrchr(v, ':');
    size_t hlen;

    if (colon == NULL || !valid_host(v, (size_t)(colon - v)) ||
        (v[0] != '[' && memchr(v, ':', (size_t)(colon - v)) != NULL)) {
        snprintf(why, cap, "expected host:port or [ipv6]:port");
        return -1;
    }
    if (!valid_port(colon + 1, strlen(colon + 1))) {
        snprintf(why, cap, "port must be 1..65535");
        return -1;
    }
    hlen = (size_t)(colon - v);
    if (v[0] == '[') {                /* valid_host() saw the brackets */
        v++;
        hlen -= 2;
    }
    if (hlen >= sizeof out->host) {
        snprintf(why, cap, "host longer than %zu bytes", sizeof out->host - 1);
        return -1;
    }
    memcpy(out->host, v, hlen);
    out->host[hlen] = '\0';
    if (strcmp(out->host, "0.0.0.0") == 0)
        out->host[0] = '\0';
    snprintf(out->port, sizeof out->port, "%s", colon + 1);
    return 0;
}

/* metrics_listen and longlink_listen: as listen, or empty (port "" then:
 * no such listener). */
int
cfg_parse_metrics_listen(const char *v, void *typed, char *why, size_t cap)
{
    struct cg_listen_addr *out = typed;

    if (v[0] == '\0') {
        out->host[0] = '\0';
        out->port[0] = '\0';
        return 0;
    }
    return cfg_parse_listen(v, typed, why, cap);
}

int
cfg_check_base_path(const char *v, char *why, size_t cap)
{
    const char *seg;
    size_t n;

    if (v[0] == '\0')
        return 0;
    if (v[0] != '/')
        return snprintf(why, cap, "must start with '/'"), -1;
    if (v[strlen(v) - 1] == '/')
        return snprintf(why, cap, "must not end with '/' (use \"\" for the root)"), -1;
    n = strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./-");
    if (v[n] != '\0')
        return snprintf(why, cap, "contains '%c'; allowed: A-Z a-z 0-9 _ . / -", v[n]), -1;
    for (seg = v + 1;; seg += n + 1) {
        n = strcspn(seg, "/");
        if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return snprintf(why, cap, "has an empty, '.' or '..' segment"), -1;
        if (seg[n] == '\0')
            return 0;
    }
}

int
cfg_parse_origins(const char *v, void *typed, char *why, size_t cap)
{
    struct cg_origins **slot = typed, *o;
    int rc;

    if ((rc = cg_origins_parse(v, &o, why, cap)) < 0)
        return rc;
    cg_origins_destroy(*slot);
    *slot = o;
    return 0;
}

void
cfg_free_origins(void *typed)
{
    struct cg_origins **slot = typed;

    cg_origins_destroy(*slot);
    *slot = NULL;
}

int
cfg_check_node_id(const char *v, char *why, size_t cap)
{
    size_t n = strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-");

    if (v[n] != '\0')
        return snprintf(why, cap, "contains '%c'; allowed: A-Z a-z 0-9 _ . -", v[n]), -1;
    return 0;
}

/* redis_url into its parts (redis_url.h), which the store connects with. */
int
cfg_parse_redis_url(const char *v, void *typed, char *why, size_t cap)
{
    struct cg_redis_url *slot = typed, u;
    int rc = cg_redis_url_parse(v, &u, why, cap);

    if (rc < 0)
        return rc;
    cg_redis_url_cleanup(slot);
    *slot = u;
    return 0;
}

void
cfg_free_redis_url(void *typed)
{
    cg_redis_url_cleanup(typed);
}

int
cfg_parse_log_level(const char *v, void *typed, char *why, size_t cap)
{
    if (cg_log_level_parse(v, typed) < 0)
        return snprintf(why, cap, "expected error, warn, notice, info or debug"), -1;
    return 0;
}

int
cfg_parse_proxies(const char *v, void *typed, char *why, size_t cap)
{
    struct cg_proxies **slot = typed, *p;
    int rc;

    if ((rc = cg_proxies_parse(v, &p, why, cap)) < 0)
        return rc;
    cg_proxies_destroy(*slot);
    *slot = p;
    return 0;
}

void
cfg_free_proxies(void *typed)
{
    struct cg_proxies **slot = typed;

    cg_proxies_destroy(*slot);
    *slot = NULL;
}

int
cfg_parse_api_keys(const char *v, void *typed, char *why, size_t cap)
{
    struct cg_api_keys **slot = typed, *k;
    int rc;

    if ((rc = cg_api_keys_parse(v, &k, why, cap)) < 0)
        return rc;
    cg_api_keys_destroy(*slot);
    *slot = k;
    return 0;
}

void
cfg_free_api_keys(void *typed)
{
    struct cg_api_keys **slot = typed;

    cg_api_keys_destroy(*slot);
    *slot = NULL;
}

int
cfg_parse_jwt_secret(const char *v, void *typed, char *why, size_t cap)
{
    struct cg_jwt_secret **slot = typed, *s;
    int rc;

    if ((rc = cg_jwt_secret_parse(v, &s, why, cap)) < 0)
        return rc;
    cg_jwt_secret_destroy(*slot);
    *slot = s;
    return 0;
}

void
cfg_free_jwt_secret(void *typed)
{
    struct cg_jwt_secret **slot = typed;

    cg_jwt_secret_destroy(*slot);
    *slot = NULL;
}

int
cfg_parse_jwt_pkey(const char *v, void *typed, char *why, size_t cap)
{
    struct cg_jwt_pkey **slot = typed, *k;
    int rc;

    if ((rc = cg_jwt_pkey_load(v, &k, why, cap)) < 0)
        return rc;
    cg_jwt_pkey_destroy(*slot);
    *slot = k;
    return 0;
}

void
cfg_free_jwt_pkey(void *typed)
{
    struct cg_jwt_pkey **slot = typed;

    cg_jwt_pkey_destroy(*slot);
    *slot = NULL;
}

int
cfg_parse_jwt_jwks(const char *v, void *typed, char *why, size_t cap)
{
    struct cg_jwt_jwks **slot = typed, *j;
    int rc;

    if ((rc = cg_jwt_jwks_load(v, &j, why, cap)) < 0)
        return rc;
    cg_jwt_jwks_destroy(*slot);
    *slot = j;
    return 0;
}

void
cfg_free_jwt_jwks(void *typed)
{
    struct cg_jwt_jwks **slot = typed;

    cg_jwt_jwks_destroy(*slot);
    *slot = NULL;
}

/* jwt_alg names the public key's algorithm: HS256 has its own secret. */
int
cfg_parse_jwt_alg(const char *v, void *typed, char *why, size_t cap)
{
    enum cg_jwt_alg a = cg_jwt_alg_parse(v, strlen(v));

    if (v[0] != '\0' && a != CG_JWT_RS256 && a != CG_JWT_ES256)
        return snprintf(why, cap, "expected RS256 or ES256 (HS256 is jwt_hs256_secret's)"),
               CG_E_INVAL;
    *(enum cg_jwt_alg *)typed = a;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Redaction                                                                 */
/* ------------------------------------------------------------------------ */

/* Append src[0..n) to out[0..cap) at *o, keeping it NUL-terminated and
 * cutting what does not fit. */
static void
append(char *out, size_t cap, size_t *o, const char *src, size_t n)
{
    if (*o + 1 >= cap)
        return;
    if (n > cap - 1 - *o)
        n = cap - 1 - *o;
    memcpy(out + *o, src, n);
    *o += n;
    out[*o] = '\0';
}

/* The userinfo of a redis:// or unix:// URL: what lies between "://" and
 * the last '@' before the next '/'. Returns 0 when there is none. Read
 * from the raw string: a refused URL is redacted too. */
static int
url_userinfo(const char *v, const char **start, size_t *len)
{
    const char *auth = strstr(v, "://"), *end, *at = NULL;

    if (auth == NULL)
        return 0;
    auth += 3;
    end = auth + strcspn(auth, "/");
    for (const char *p = auth; p < end; p++)
        if (*p == '@')
            at = p;
    if (at == NULL)
        return 0;
    *start = auth;
    *len = (size_t)(at - auth);
    return 1;
}

/* Copy the URL v to out with every password replaced by "***": the one in
 * the userinfo (a userinfo of one word is a password, as store.c reads it)
 * and password= query parameters (unix:// URLs). */
static const char *
redact_url(const char *v, char *out, size_t cap)
{
    const char *p = v, *ui, *s;
    size_t len, o = 0;

    if (cap > 0)
        out[0] = '\0';
    if (url_userinfo(v, &ui, &len)) {
        s = memchr(ui, ':', len);
        s = s != NULL ? s + 1 : ui;
        append(out, cap, &o, p, (size_t)(s - p));
        append(out, cap, &o, "***", 3);
        p = ui + len;
    }
    for (s = strchr(p, '?'); s != NULL; s = strchr(s + 1, '&')) {
        if (strncmp(s + 1, "password=", 9) == 0) {
            s += 10;
            append(out, cap, &o, p, (size_t)(s - p));
            append(out, cap, &o, "***", 3);
            p = s + strcspn(s, "&");
            s = p - 1;                        /* go on from the next '&' */
        }
    }
    append(out, cap, &o, p, strlen(p));
    return out;
}

/* The value to show for a string option in errors and dumps. */
const char *
cfg_shown(const struct opt *o, const char *v, int redact, char *tmp, size_t cap)
{
    if (redact && (o->flags & OPT_SECRET) && v[0] != '\0' && v[0] != '@')
        return "***";
    return redact && (o->flags & OPT_SECRET_URL) ? redact_url(v, tmp, cap) : v;
}
