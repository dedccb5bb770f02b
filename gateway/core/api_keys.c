/* api_keys.c - the backend API's keys (api_keys.h): the option's one
 * parser, and the constant-time lookup of a presented secret. */
#include "fmacros.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "core/api_keys.h"
#include "core/common.h"

/* A key file is a handful of lines. */
#define KEY_FILE_MAX 65536

static const struct {
    const char *name;
    unsigned    bit;
} scopes[] = {
    { "users:write",   CG_SCOPE_USERS_WRITE },
    { "tokens:mint",   CG_SCOPE_TOKENS_MINT },
    { "pending:read",  CG_SCOPE_PENDING_READ },
    { "pending:write", CG_SCOPE_PENDING_WRITE },
    { "tokens:revoke", CG_SCOPE_TOKENS_REVOKE },
};

const char *
cg_api_scope_name(unsigned scope)
{
    for (size_t i = 0; i < sizeof scopes / sizeof *scopes; i++)
        if (scopes[i].bit == scope)
            return scopes[i].name;
    return NULL;
}

static int
name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '-';
}

static int
secret_char(char c)
{
    return name_char(c) || c == '~' || c == '+' || c == '/' || c == '=';
}

/* One entry p[0..len), already trimmed, into key. entry_no counts from 1
 * for the reason. */
static int
parse_entry(const char *p, size_t len, struct cg_api_key *key, size_t entry_no,
            char *why, size_t cap)
{
    const char *c1 = memchr(p, ':', len), *c2, *s, *end = p + len;
    size_t nlen, slen;

    /* Scopes hold ':' themselves: the name ends at the first ':', the
     * secret (which has none) starts after the last. */
    c2 = c1 ? memrchr(c1 + 1, ':', (size_t)(end - c1 - 1)) : NULL;
    if (c1 == NULL || c2 == NULL)
        return snprintf(why, cap, "entry %zu: expected name:scope[,scope]:secret", entry_no),
               CG_E_INVAL;
    nlen = (size_t)(c1 - p);
    if (nlen < 1 || nlen > CG_API_NAME_MAX)
        return snprintf(why, cap, "entry %zu: a key name is 1-%d characters", entry_no,
                        CG_API_NAME_MAX), CG_E_INVAL;
    for (size_t i = 0; i < nlen; i++)
        if (!name_char(p[i]))
            return snprintf(why, cap, "entry %zu: a key name is of A-Z a-z 0-9 _ . -",
                            entry_no), CG_E_INVAL;
    memcpy(key->name, p, nlen);
    key->name[nlen] = '\0';
    key->scopes = 0;
    for (s = c1 + 1; c2 > c1 + 1;) {        /* every piece, empty ones too */
        const char *e = memchr(s, ',', (size_t)(c2 - s));
        size_t i, n;

        if (e == NULL)
            e = c2;
        n = (size_t)(e - s);
        for (i = 0; i < sizeof scopes / sizeof *scopes; i++)
            if (strlen(scopes[i].name) == n && memcmp(scopes[i].name, s, n) == 0)
                break;
        if (i == sizeof scopes / sizeof *scopes)
            return snprintf(why, cap, "key %s: unknown scope \"%.*s\" (known: users:write, "
                            "tokens:mint, tokens:revoke, pending:read, pending:write)",
                            key->name, (int)(n > 32 ? 32 : n), s), CG_E_INVAL;
        key->scopes |= scopes[i].bit;
        if (e == c2)
            break;
        s = e + 1;
    }
    if (key->scopes == 0)
        return snprintf(why, cap, "key %s: no scope", key->name), CG_E_INVAL;
    slen = (size_t)(end - c2 - 1);
    if (slen < CG_API_SECRET_MIN || slen > CG_API_SECRET_MAX)
        return snprintf(why, cap, "key %s: a secret is %d-%d characters", key->name,
                        CG_API_SECRET_MIN, CG_API_SECRET_MAX), CG_E_INVAL;
    for (size_t i = 0; i < slen; i++)
        if (!secret_char(c2[1 + i]))
            return snprintf(why, cap, "key %s: a secret is of A-Z a-z 0-9 . _ ~ + / = -",
                            key->name), CG_E_INVAL;
    SHA256((const unsigned char *)c2 + 1, slen, key->hash);
    return 0;
}

static int
is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Entries of text, separated by ';' or '\n'; file: '#' starts a comment
 * line. */
static int
parse_entries(const char *text, int file, struct cg_api_keys *k, char *why, size_t cap)
{
    const char *p = text;
    size_t no = 0;
    int rc;

    while (*p) {
        const char *e = p + strcspn(p, file ? "\n" : ";\n"), *b = p, *t = e;

        while (b < t && is_space(*b))
            b++;
        while (t > b && is_space(t[-1]))
            t--;
        p = *e ? e + 1 : e;
        if (b == t || (file && *b == '#'))
            continue;
        no++;
        if (k->n == CG_API_KEYS_MAX)
            return snprintf(why, cap, "more than %d keys", CG_API_KEYS_MAX), CG_E_INVAL;
        if ((rc = parse_entry(b, (size_t)(t - b), &k->key[k->n], no, why, cap)) < 0)
            return rc;
        for (size_t i = 0; i < k->n; i++)
            if (strcmp(k->key[i].name, k->key[k->n].name) == 0)
                return snprintf(why, cap, "key %s: named twice", k->key[i].name),
                       CG_E_INVAL;
        k->n++;
    }
    return 0;
}

static char *
read_file(const char *path, char *why, size_t cap)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;

    if (f == NULL) {
        snprintf(why, cap, "cannot read the key file %s", path);
        return NULL;
    }
    if ((buf = cg_malloc(KEY_FILE_MAX + 1)) == NULL) {
        fclose(f);
        snprintf(why, cap, "out of memory");
        return NULL;
    }
    n = fread(buf, 1, KEY_FILE_MAX + 1, f);
    fclose(f);
    if (n > KEY_FILE_MAX || memchr(buf, '\0', n) != NULL) {
        explicit_bzero(buf, KEY_FILE_MAX + 1);
        cg_free(buf);
        snprintf(why, cap, "the key file %s is over %d bytes or holds a NUL byte", path,
                 KEY_FILE_MAX);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

int
cg_api_keys_parse(const char *v, struct cg_api_keys **out, char *why, size_t cap)
{
    struct cg_api_keys *k;
    char *text = NULL;
    int rc;

    *out = NULL;
    if (v == NULL || v[0] == '\0')
        return 0;
    if (v[0] == '@' && (text = read_file(v + 1, why, cap)) == NULL)
        return CG_E_INVAL;
    if ((k = cg_calloc(1, sizeof *k)) == NULL) {
        rc = CG_E_NOMEM;
        goto out;
    }
    rc = parse_entries(text ? text : v, text != NULL, k, why, cap);
    if (rc == 0 && k->n == 0) {
        snprintf(why, cap, "no key");
        rc = CG_E_INVAL;
    }
    if (rc < 0)
        cg_api_keys_destroy(k);
    else
        *out = k;
out:
    if (text != NULL) {
        explicit_bzero(text, strlen(text));
        cg_free(text);
    }
    return rc;
}

void
cg_api_keys_destroy(struct cg_api_keys *k)
{
    if (k == NULL)
        return;
    explicit_bzero(k, sizeof *k);
    cg_free(k);
}

const struct cg_api_key *
cg_api_keys_find(const struct cg_api_keys *k, const char *secret, size_t len)
{
    unsigned char h[32];
    const struct cg_api_key *hit = NULL;

    if (k == NULL || secret == NULL || len == 0 || len > CG_API_SECRET_MAX)
        return NULL;
    SHA256((const unsigned char *)secret, len, h);
    /* Every key is compared, hit or not: no early exit. */
    for (size_t i = 0; i < k->n; i++)
        if (CRYPTO_memcmp(h, k->key[i].hash, sizeof h) == 0)
            hit = &k->key[i];
    explicit_bzero(h, sizeof h);
    return hit;
}

size_t
cg_api_keys_index(const struct cg_api_keys *k, const struct cg_api_key *key)
{
    return (size_t)(key - k->key);
}
