/* auth_password.c - the primitives of auth (auth.c): username rules,
 * token shape and hash, base64url, and PBKDF2-HMAC-SHA256 password
 * records ("pbkdf2-sha256$<rounds>$<salt>$<hash>"), whose hashing and
 * checking run on libuv's thread pool (work_hash, work_verify). */
#include "fmacros.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <uv.h>

#include "chat/auth.h"
#include "chat/auth_internal.h"
#include "core/common.h"
#include "core/config.h"
#include "core/jwt.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/proxies.h"
#include "store/store.h"

/* ---- small pure helpers ------------------------------------------------- */

int
cg_auth_valid_name(const char *s, size_t len)
{
    if (len < 1 || len > CG_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

const char *
cg_auth_name_refused(const char *s, size_t len)
{
    size_t digits = 0, dots = 0;

    if (!cg_auth_valid_name(s, len))
        return "a username is 1-32 characters of A-Z a-z 0-9 _ . -";
    for (size_t i = 0; i < len; i++) {
        digits += s[i] >= '0' && s[i] <= '9';
        dots += s[i] == '.';
    }
    if (digits == len)
        return "a username must not be all digits (those name a uid)";
    if (dots == len)
        return "a username must not be only dots";
    return NULL;
}

static int
is_b64url(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_';
}

int
cg_auth_token_wellformed(const char *tok, size_t len)
{
    if (len != CG_TOKEN_LEN)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!is_b64url(tok[i]))
            return 0;
    return 1;
}

int
cg_auth_token_shaped(const char *tok, size_t len)
{
    return cg_auth_token_wellformed(tok, len) || (len <= CG_TOKEN_MAX && cg_jwt_shaped(tok, len));
}

static void
hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

void
cg_auth_token_hash(const char *tok, size_t len, char out[CG_TOKEN_HASH_LEN + 1])
{
    unsigned char md[32];
    unsigned int mdlen = 0;

    EVP_Digest(tok, len, md, &mdlen, EVP_sha256(), NULL);
    hex(md, sizeof md, out);
}

void
b64url(const unsigned char *in, size_t n, char *out)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0, i = 0;

    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = tab[(v >> 6) & 63];
        out[o++] = tab[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = tab[(v >> 6) & 63];
    }
    out[o] = '\0';
}

uint64_t
fnv1a(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h ? h : 1;
}

void
lower_name(const char *name, size_t len, char *out)
{
    for (size_t i = 0; i < len; i++)
        out[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] | 0x20 : name[i]);
    out[len] = '\0';
}

/* ---- password hashing (runs on the thread pool) --------------------------- */

int
pbkdf2(const char *pw, size_t pw_len, const unsigned char *salt, size_t salt_len,
       int iterations, unsigned char *out)
{
    return PKCS5_PBKDF2_HMAC(pw, (int)pw_len, salt, (int)salt_len, iterations,
                             EVP_sha256(), HASH_BYTES, out) == 1 ? 0 : -1;
}

static int
b64url_decode(const char *in, size_t n, unsigned char *out, size_t cap)
{
    uint32_t v = 0;
    int bits = 0;
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        int d = c >= 'A' && c <= 'Z' ? c - 'A' : c >= 'a' && c <= 'z' ? c - 'a' + 26 :
                c >= '0' && c <= '9' ? c - '0' + 52 : c == '-' ? 62 : c == '_' ? 63 : -1;
        if (d < 0)
            return -1;
        v = v << 6 | (uint32_t)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o == cap)
                return -1;
            out[o++] = (unsigned char)(v >> bits);
        }
    }
    return (int)o;
}

void
work_hash(uv_work_t *w)
{
    struct auth_op *op = w->data;
    unsigned char salt[SALT_BYTES], hash[HASH_BYTES];
    char s64[32], h64[48];
    int it = (int)op->a->cfg->password_iterations;

    op->err = CG_E_STORE;
    if (RAND_bytes(salt, sizeof salt) != 1 ||
        pbkdf2(op->pw, op->pw_len, salt, sizeof salt, it, hash) < 0)
        return;
    b64url(salt, sizeof salt, s64);
    b64url(hash, sizeof hash, h64);
    snprintf(op->record, sizeof op->record, "pbkdf2-sha256$%d$%s$%s", it, s64, h64);
    op->err = 0;
}

void
work_verify(uv_work_t *w)
{
    struct auth_op *op = w->data;
    unsigned char salt[64], want[HASH_BYTES], got[HASH_BYTES];
    char *it_s, *salt_s, *hash_s, *end;
    long it;
    int sl;

    op->err = CG_E_AUTH;
    /* pbkdf2-sha256$<it>$<salt>$<hash> */
    if (strncmp(op->record, "pbkdf2-sha256$", 14) != 0)
        return;
    it_s = op->record + 14;
    salt_s = strchr(it_s, '$');
    hash_s = salt_s ? strchr(salt_s + 1, '$') : NULL;
    if (hash_s == NULL)
        return;
    it = strtol(it_s, &end, 10);
    if (end != salt_s || it < 1 || it > 100000000)
        return;
    sl = b64url_decode(salt_s + 1, (size_t)(hash_s - salt_s - 1), salt, sizeof salt);
    if (sl <= 0 ||
        b64url_decode(hash_s + 1, strlen(hash_s + 1), want, sizeof want) != HASH_BYTES ||
        pbkdf2(op->pw, op->pw_len, salt, (size_t)sl, (int)it, got) < 0)
        return;
    if (CRYPTO_memcmp(want, got, HASH_BYTES) == 0)
        op->err = 0;
}
