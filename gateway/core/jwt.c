/* jwt.c - the app's JSON Web Tokens, verified (jwt.h).
 *
 * A token is header.payload.signature, each base64url without padding.
 * The order of the checks, each failing with its own reason for the log:
 *
 *   shape (length, three parts) -> base64url of each part -> the header
 *   is a JSON object whose alg is one we know and whose key is configured
 *   (with a JWKS and a kid: the key of that kid, whose own alg it must
 *   be; else alg must equal the configured key's algorithm: an HS256
 *   token is only ever checked with the HS256 secret, never with a public
 *   key's bytes) -> the signature over "header.payload" -> the payload is
 *   a JSON object -> exp, nbf, iat, iss, aud, sub, jti.
 *
 * The signature is checked before any claim is read, so nothing an
 * unsigned payload says reaches a decision. Nothing here allocates
 * beyond OpenSSL's and jansson's own objects, freed before returning. */
#include "fmacros.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include "core/common.h"
#include "core/jwt.h"

/* A secret file is a line or two; a PEM public key a few kB. */
#define SECRET_FILE_MAX 4096
/* Decoded header and payload of a CG_JWT_MAX token fit in this. */
#define PART_MAX (CG_JWT_MAX / 4 * 3 + 3)

static int
b64url_val(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

long
cg_jwt_b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
    size_t o = 0, need = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
    uint32_t acc = 0;
    int bits = 0;

    if (len % 4 == 1 || need > cap)
        return -1;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_val(in[i]);

        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* The bits left over must be zero: else two spellings decode alike. */
    if (acc != 0)
        return -1;
    return (long)o;
}

int
cg_jwt_shaped(const char *tok, size_t len)
{
    int dots = 0;

    if (len == 0 || len > CG_JWT_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (tok[i] == '.')
            dots++;
        else if (b64url_val(tok[i]) < 0)
            return 0;
    }
    return dots == 2;
}

enum cg_jwt_alg
cg_jwt_alg_parse(const char *s, size_t len)
{
    if (len == 5 && memcmp(s, "HS256", 5) == 0) return CG_JWT_HS256;
    if (len == 5 && memcmp(s, "RS256", 5) == 0) return CG_JWT_RS256;
    if (len == 5 && memcmp(s, "ES256", 5) == 0) return CG_JWT_ES256;
    return CG_JWT_NONE;
}

const char *
cg_jwt_alg_name(enum cg_jwt_alg alg)
{
    switch (alg) {
    case CG_JWT_HS256: return "HS256";
    case CG_JWT_RS256: return "RS256";
    case CG_JWT_ES256: return "ES256";
    default:           return "none";
    }
}

static int refuse(char *why, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
refuse(char *why, size_t cap, const char *fmt, ...)
{
    va_list ap;

    if (cap > 0) {
        va_start(ap, fmt);
        vsnprintf(why, cap, fmt, ap);
        va_end(ap);
    }
    return CG_E_AUTH;
}

/* ---- signatures ------------------------------------------------------------ */

static int
verify_hs256(const struct cg_jwt_secret *s, const char *msg, size_t mlen,
             const unsigned char *sig, size_t slen)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    int ok;

    if (slen != 32 ||
        HMAC(EVP_sha256(), s->bytes, (int)s->len, (const unsigned char *)msg, mlen, mac,
             &n) == NULL || n != 32)
        return 0;
    ok = CRYPTO_memcmp(mac, sig, 32) == 0;
    OPENSSL_cleanse(mac, sizeof mac);
    return ok;
}

/* RS256: PKCS #1 v1.5 with SHA-256. ES256: the JWS signature is R || S,
 * 32 bytes each, which OpenSSL wants as DER. */
static int
verify_pkey(const struct cg_jwt_pkey *k, enum cg_jwt_alg alg, const char *msg,
            size_t mlen, const unsigned char *sig, size_t slen)
{
    EVP_MD_CTX *md = NULL;
    ECDSA_SIG *es = NULL;
    BIGNUM *r = NULL, *s = NULL;
    unsigned char *der = NULL;
    const unsigned char *vsig = sig;
    size_t vlen = slen;
    int ok = 0, n;

    if (alg == CG_JWT_ES256) {
        if (slen != 64)
            return 0;
        if ((es = ECDSA_SIG_new()) == NULL ||
            (r = BN_bin2bn(sig, 32, NULL)) == NULL || (s = BN_bin2bn(sig + 32, 32, NULL)) == NULL)
            goto out;
        if (ECDSA_SIG_set0(es, r, s) != 1)
            goto out;
        r = s = NULL;                        /* es owns them now */
        if ((n = i2d_ECDSA_SIG(es, &der)) <= 0)
            goto out;
        vsig = der;
        vlen = (size_t)n;
    }
    if ((md = EVP_MD_CTX_new()) == NULL ||
        EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, (EVP_PKEY *)k->key) != 1)
        goto out;
    ok = EVP_DigestVerify(md, vsig, vlen, (const unsigned char *)msg, mlen) == 1;
out:
    EVP_MD_CTX_free(md);
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
    BN_free(r);
    BN_free(s);
    return ok;
}

/* ---- claims ------------------------------------------------------------------ */

/* A NumericDate member: absent (0, *has 0), or a number (seconds; a
 * fraction is cut off). Returns -1 for another type or an absurd value. */
static int
numeric_date(json_t *o, const char *name, int64_t *out, int *has)
{
    json_t *v = json_object_get(o, name);
    double d;

    *has = 0;
    *out = 0;
    if (v == NULL)
        return 0;
    if (!json_is_number(v))
        return -1;
    d = json_number_value(v);
    if (!isfinite(d) || d < 0 || d > 1e13)
        return -1;
    *out = (int64_t)floor(d);
    *has = 1;
    return 0;
}

static int
string_claim(json_t *o, const char *name, char *out, int required, char *why, size_t cap)
{
    json_t *v = json_object_get(o, name);
    size_t n;

    out[0] = '\0';
    if (v == NULL)
        return required ? refuse(why, cap, "no %s claim", name) : 0;
    if (!json_is_string(v))
        return refuse(why, cap, "%s is not a string", name);
    n = json_string_length(v);
    if (n == 0 || n > CG_JWT_CLAIM_MAX || memchr(json_string_value(v), '\0', n) != NULL)
        return refuse(why, cap, "%s is empty, over %d bytes or holds a NUL", name,
                      CG_JWT_CLAIM_MAX);
    memcpy(out, json_string_value(v), n + 1);
    return 0;
}

static int
check_audience(json_t *o, const char *want, char *why, size_t cap)
{
    json_t *v = json_object_get(o, "aud"), *e;
    size_t i;

    if (json_is_string(v) && strcmp(json_string_value(v), want) == 0)
        return 0;
    if (json_is_array(v))
        json_array_foreach(v, i, e)
            if (json_is_string(e) && strcmp(json_string_value(e), want) == 0)
                return 0;
    return refuse(why, cap, v == NULL ? "no aud claim (jwt_audience is set)"
                                      : "aud does not name jwt_audience");
}

static int
check_claims(const struct cg_jwt_rules *rules, json_t *p, int64_t now_s,
             struct cg_jwt_claims *out, char *why, size_t cap)
{
    int64_t nbf;
    int has_exp, has_nbf, has_iat;
    json_t *iss;

    if (numeric_date(p, "exp", &out->exp, &has_exp) < 0 ||
        numeric_date(p, "nbf", &nbf, &has_nbf) < 0 ||
        numeric_date(p, "iat", &out->iat, &has_iat) < 0)
        return refuse(why, cap, "exp, nbf or iat is not a NumericDate");
    if (!has_exp)
        return refuse(why, cap, "no exp claim");
    if (now_s >= out->exp + rules->leeway_s)
        return refuse(why, cap, "expired (exp %lld, now %lld, leeway %lld s)",
                      (long long)out->exp, (long long)now_s, (long long)rules->leeway_s);
    if (has_nbf && now_s + rules->leeway_s < nbf)
        return refuse(why, cap, "not valid yet (nbf %lld, now %lld)", (long long)nbf,
                      (long long)now_s);
    if (has_iat && now_s + rules->leeway_s < out->iat)
        return refuse(why, cap, "issued in the future (iat %lld, now %lld)",
                      (long long)out->iat, (long long)now_s);
    if (rules->issuer != NULL && rules->issuer[0] != '\0') {
        iss = json_object_get(p, "iss");
        if (!json_is_string(iss) || strcmp(json_string_value(iss), rules->issuer) != 0)
            return refuse(why, cap, "iss is not jwt_issuer");
    }
    if (rules->audience != NULL && rules->audience[0] != '\0' &&
        check_audience(p, rules->audience, why, cap) < 0)
        return CG_E_AUTH;
    if (string_claim(p, "sub", out->sub, 1, why, cap) < 0 ||
        string_claim(p, "jti", out->jti, 0, why, cap) < 0)
        return CG_E_AUTH;
    return 0;
}

/* ---- the verifier --------------------------------------------------------------- */

int
cg_jwt_verify(const struct cg_jwt_rules *rules, const char *tok, size_t len,
              int64_t now_s, struct cg_jwt_claims *out, char *why, size_t cap)
{
    unsigned char buf[PART_MAX], sig[1024];     /* an 8192-bit RSA signature */
    const char *d1, *d2;
    json_t *h = NULL, *p = NULL, *a, *kid;
    const struct cg_jwt_jwk *key = NULL;
    enum cg_jwt_alg alg;
    long n, slen;
    int rc = CG_E_AUTH, ok;

    memset(out, 0, sizeof *out);
    if (len > CG_JWT_MAX)
        return refuse(why, cap, "longer than %d bytes", CG_JWT_MAX);
    if (!cg_jwt_shaped(tok, len))
        return refuse(why, cap, "not three base64url parts");
    d1 = memchr(tok, '.', len);
    d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok));

    /* The header: which algorithm, and is its key configured? */
    if ((n = cg_jwt_b64url_decode(tok, (size_t)(d1 - tok), buf, sizeof buf)) < 0)
        return refuse(why, cap, "header is not strict base64url");
    if ((h = json_loadb((const char *)buf, (size_t)n, JSON_REJECT_DUPLICATES, NULL)) == NULL ||
        !json_is_object(h)) {
        rc = refuse(why, cap, "header is not a JSON object");
        goto out;
    }
    a = json_object_get(h, "alg");
    if (!json_is_string(a)) {
        rc = refuse(why, cap, "header has no alg");
        goto out;
    }
    alg = cg_jwt_alg_parse(json_string_value(a), json_string_length(a));
    if (alg == CG_JWT_NONE) {
        rc = refuse(why, cap, "alg is not HS256, RS256 or ES256");
        goto out;
    }
    if (json_object_get(h, "crit") != NULL) {
        rc = refuse(why, cap, "header has crit");
        goto out;
    }
    kid = json_object_get(h, "kid");
    if (rules->jwks != NULL && kid != NULL) {
        /* The key of that kid, and only with its own alg. */
        if (!json_is_string(kid)) {
            rc = refuse(why, cap, "kid is not a string");
            goto out;
        }
        for (size_t i = 0; i < rules->jwks->n && key == NULL; i++)
            if (strlen(rules->jwks->k[i].kid) == json_string_length(kid) &&
                strcmp(rules->jwks->k[i].kid, json_string_value(kid)) == 0)
                key = &rules->jwks->k[i];
        if (key == NULL) {
            rc = refuse(why, cap, "no key in jwt_jwks has its kid");
            goto out;
        }
        if (key->key.fits != alg) {
            rc = refuse(why, cap, "alg %s is not the alg of key %s (%s)", cg_jwt_alg_name(alg),
                        key->kid, cg_jwt_alg_name(key->key.fits));
            goto out;
        }
    } else if (alg == CG_JWT_HS256 ? rules->secret == NULL
                                   : rules->pkey == NULL || rules->pkey_alg != alg) {
        rc = refuse(why, cap, "no key configured for alg %s", cg_jwt_alg_name(alg));
        goto out;
    }

    /* The signature over "header.payload". */
    if ((slen = cg_jwt_b64url_decode(d2 + 1, len - (size_t)(d2 + 1 - tok), sig,
                                     sizeof sig)) < 0) {
        rc = refuse(why, cap, "signature is not strict base64url");
        goto out;
    }
    if (key != NULL)
        ok = verify_pkey(&key->key, alg, tok, (size_t)(d2 - tok), sig, (size_t)slen);
    else if (alg == CG_JWT_HS256)
        ok = verify_hs256(rules->secret, tok, (size_t)(d2 - tok), sig, (size_t)slen);
    else
        ok = verify_pkey(rules->pkey, alg, tok, (size_t)(d2 - tok), sig, (size_t)slen);
    if (!ok) {
        rc = refuse(why, cap, "bad %s signature", cg_jwt_alg_name(alg));
        goto out;
    }

    /* The claims. */
    if ((n = cg_jwt_b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), buf, sizeof buf)) < 0) {
        rc = refuse(why, cap, "payload is not strict base64url");
        goto out;
    }
    if ((p = json_loadb((const char *)buf, (size_t)n, JSON_REJECT_DUPLICATES, NULL)) == NULL ||
        !json_is_object(p)) {
        rc = refuse(why, cap, "payload is not a JSON object");
        goto out;
    }
    rc = check_claims(rules, p, now_s, out, why, cap);
out:
    json_decref(h);
    json_decref(p);
    if (rc < 0)
        memset(out, 0, sizeof *out);
    return rc;
}

/* ---- keys (config) ------------------------------------------------------------- */

int
cg_jwt_secret_parse(const char *v, struct cg_jwt_secret **out, char *why, size_t cap)
{
    char buf[SECRET_FILE_MAX + 1];
    const char *src = v;
    size_t n;
    struct cg_jwt_secret *s;

    *out = NULL;
    if (v[0] == '\0')
        return 0;
    if (v[0] == '@') {
        FILE *f = fopen(v + 1, "rb");

        if (f == NULL)
            return snprintf(why, cap, "cannot read %s: %s", v + 1, strerror(errno)), CG_E_INVAL;
        n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        if (n > SECRET_FILE_MAX) {
            OPENSSL_cleanse(buf, sizeof buf);
            return snprintf(why, cap, "%s is over %d bytes", v + 1, SECRET_FILE_MAX),
                   CG_E_INVAL;
        }
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
            n--;
        src = buf;
    } else {
        n = strlen(v);
    }
    if (n < CG_JWT_SECRET_MIN) {
        OPENSSL_cleanse(buf, sizeof buf);
        return snprintf(why, cap, "an HS256 secret needs at least %d bytes",
                        CG_JWT_SECRET_MIN), CG_E_INVAL;
    }
    if ((s = cg_malloc(sizeof *s + n)) == NULL) {
        OPENSSL_cleanse(buf, sizeof buf);
        return CG_E_NOMEM;
    }
    s->len = n;
    memcpy(s->bytes, src, n);
    OPENSSL_cleanse(buf, sizeof buf);
    *out = s;
    return 0;
}

void
cg_jwt_secret_destroy(struct cg_jwt_secret *s)
{
    if (s == NULL)
        return;
    OPENSSL_cleanse(s->bytes, s->len);
    cg_free(s);
}

int
cg_jwt_pkey_load(const char *path, struct cg_jwt_pkey **out, char *why, size_t cap)
{
    FILE *f;
    EVP_PKEY *pk;
    struct cg_jwt_pkey *k;
    enum cg_jwt_alg fits = CG_JWT_NONE;

    *out = NULL;
    if (path[0] == '\0')
        return 0;
    if ((f = fopen(path, "rb")) == NULL)
        return snprintf(why, cap, "cannot read %s: %s", path, strerror(errno)), CG_E_INVAL;
    pk = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    if (pk == NULL)
        return snprintf(why, cap, "%s holds no PEM public key", path), CG_E_INVAL;
    if (EVP_PKEY_is_a(pk, "RSA")) {
        if (EVP_PKEY_get_bits(pk) >= 2048 && EVP_PKEY_get_bits(pk) <= 8192)
            fits = CG_JWT_RS256;
    } else if (EVP_PKEY_is_a(pk, "EC")) {
        char group[64];
        size_t glen = 0;

        if (EVP_PKEY_get_utf8_string_param(pk, "group", group, sizeof group, &glen) == 1 &&
            strcmp(group, "prime256v1") == 0)
            fits = CG_JWT_ES256;
    }
    if (fits == CG_JWT_NONE) {
        EVP_PKEY_free(pk);
        return snprintf(why, cap, "%s is neither an RSA key of 2048-8192 bits (RS256) "
                        "nor an EC P-256 key (ES256)", path), CG_E_INVAL;
    }
    if ((k = cg_calloc(1, sizeof *k)) == NULL) {
        EVP_PKEY_free(pk);
        return CG_E_NOMEM;
    }
    k->key = pk;
    k->fits = fits;
    *out = k;
    return 0;
}

void
cg_jwt_pkey_destroy(struct cg_jwt_pkey *k)
{
    if (k == NULL)
        return;
    EVP_PKEY_free(k->key);
    cg_free(k);
}

/* ---- a JWKS (config) ------------------------------------------------------------ */

/* A base64url member of k decoded into a new BIGNUM; NULL when absent or
 * not strict. */
static BIGNUM *
jwk_bn(json_t *k, const char *name, unsigned char *buf, size_t cap, size_t want)
{
    json_t *v = json_object_get(k, name);
    long n;

    if (!json_is_string(v) ||
        (n = cg_jwt_b64url_decode(json_string_value(v), json_string_length(v), buf, cap)) <= 0 ||
        (want != 0 && (size_t)n != want))
        return NULL;
    return BN_bin2bn(buf, (int)n, NULL);
}

/* The EVP_PKEY of JWK k (RSA or EC P-256), or NULL with the reason. */
static EVP_PKEY *
jwk_pkey(json_t *k, const char *kty, char *why, size_t cap)
{
    unsigned char buf[1024], pub[65];
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pk = NULL;
    BIGNUM *n = NULL, *e = NULL, *x = NULL, *y = NULL;
    int rsa = strcmp(kty, "RSA") == 0;

    if (bld == NULL)
        goto out;
    if (rsa) {
        if ((n = jwk_bn(k, "n", buf, sizeof buf, 0)) == NULL ||
            (e = jwk_bn(k, "e", buf, sizeof buf, 0)) == NULL) {
            snprintf(why, cap, "n or e is not base64url");
            goto out;
        }
        if (OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) != 1 ||
            OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) != 1)
            goto out;
    } else {
        json_t *crv = json_object_get(k, "crv");

        if (!json_is_string(crv) || strcmp(json_string_value(crv), "P-256") != 0) {
            snprintf(why, cap, "crv is not P-256");
            goto out;
        }
        if ((x = jwk_bn(k, "x", buf, sizeof buf, 32)) == NULL ||
            (y = jwk_bn(k, "y", buf, sizeof buf, 32)) == NULL) {
            snprintf(why, cap, "x or y is not 32 bytes of base64url");
            goto out;
        }
        pub[0] = 0x04;                          /* uncompressed point */
        BN_bn2binpad(x, pub + 1, 32);
        BN_bn2binpad(y, pub + 33, 32);
        if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1",
                                            0) != 1 ||
            OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub,
                                             sizeof pub) != 1)
            goto out;
    }
    if ((params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
        (ctx = EVP_PKEY_CTX_new_from_name(NULL, rsa ? "RSA" : "EC", NULL)) == NULL ||
        EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        snprintf(why, cap, "not a valid %s public key", kty);
        pk = NULL;
        goto out;
    }
    if (rsa && (EVP_PKEY_get_bits(pk) < 2048 || EVP_PKEY_get_bits(pk) > 8192)) {
        snprintf(why, cap, "an RSA key needs 2048-8192 bits");
        EVP_PKEY_free(pk);
        pk = NULL;
    }
out:
    if (pk == NULL && why[0] == '\0')
        snprintf(why, cap, "out of memory");
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    BN_free(x);
    BN_free(y);
    return pk;
}

/* One key of the set into *slot; 0, or CG_E_INVAL with the reason. */
static int
jwk_parse(const struct cg_jwt_jwks *set, json_t *k, struct cg_jwt_jwk *slot, char *why,
          size_t cap)
{
    json_t *kty = json_object_get(k, "kty"), *kid = json_object_get(k, "kid"),
           *alg = json_object_get(k, "alg"), *use = json_object_get(k, "use");
    char reason[160] = "";
    enum cg_jwt_alg a;
    int rsa;

    if (!json_is_object(k))
        return snprintf(why, cap, "a key is not a JSON object"), CG_E_INVAL;
    if (!json_is_string(kid) || json_string_length(kid) == 0 ||
        json_string_length(kid) > CG_JWT_KID_MAX)
        return snprintf(why, cap, "key %zu: kid must be a string of 1-%d bytes", set->n + 1,
                        CG_JWT_KID_MAX), CG_E_INVAL;
    for (size_t i = 0; i < set->n; i++)
        if (strcmp(set->k[i].kid, json_string_value(kid)) == 0)
            return snprintf(why, cap, "kid %s twice", set->k[i].kid), CG_E_INVAL;
    if (!json_is_string(kty) || (strcmp(json_string_value(kty), "RSA") != 0 &&
                                 strcmp(json_string_value(kty), "EC") != 0))
        return snprintf(why, cap, "key %s: kty must be RSA or EC", json_string_value(kid)),
               CG_E_INVAL;
    rsa = strcmp(json_string_value(kty), "RSA") == 0;
    a = json_is_string(alg) ? cg_jwt_alg_parse(json_string_value(alg), json_string_length(alg))
                            : CG_JWT_NONE;
    if (a != (rsa ? CG_JWT_RS256 : CG_JWT_ES256))
        return snprintf(why, cap, "key %s: alg must be %s for kty %s", json_string_value(kid),
                        rsa ? "RS256" : "ES256", json_string_value(kty)), CG_E_INVAL;
    if (use != NULL && (!json_is_string(use) || strcmp(json_string_value(use), "sig") != 0))
        return snprintf(why, cap, "key %s: use must be sig", json_string_value(kid)),
               CG_E_INVAL;
    if (json_object_get(k, "d") != NULL)
        return snprintf(why, cap, "key %s holds a private key (d): give only public keys",
                        json_string_value(kid)), CG_E_INVAL;
    if ((slot->key.key = jwk_pkey(k, json_string_value(kty), reason, sizeof reason)) == NULL)
        return snprintf(why, cap, "key %s: %s", json_string_value(kid), reason), CG_E_INVAL;
    slot->key.fits = a;
    memcpy(slot->kid, json_string_value(kid), json_string_length(kid) + 1);
    return 0;
}

int
cg_jwt_jwks_load(const char *path, struct cg_jwt_jwks **out, char *why, size_t cap)
{
    struct cg_jwt_jwks *set;
    json_error_t je;
    json_t *root, *keys, *k;
    size_t i;
    int rc = CG_E_INVAL;

    *out = NULL;
    if (path[0] == '\0')
        return 0;
    if ((root = json_load_file(path, JSON_REJECT_DUPLICATES, &je)) == NULL)
        return snprintf(why, cap, "cannot read %s: %s (line %d)", path, je.text, je.line),
               CG_E_INVAL;
    keys = json_object_get(root, "keys");
    if (!json_is_array(keys) || json_array_size(keys) == 0 ||
        json_array_size(keys) > CG_JWT_JWKS_MAX) {
        json_decref(root);
        return snprintf(why, cap, "%s: expected {\"keys\":[...]} with 1-%d keys", path,
                        CG_JWT_JWKS_MAX), CG_E_INVAL;
    }
    if ((set = cg_calloc(1, sizeof *set)) == NULL) {
        json_decref(root);
        return CG_E_NOMEM;
    }
    json_array_foreach(keys, i, k) {
        if ((rc = jwk_parse(set, k, &set->k[set->n], why, cap)) < 0)
            break;
        set->n++;
    }
    json_decref(root);
    if (rc < 0) {
        cg_jwt_jwks_destroy(set);
        return rc;
    }
    *out = set;
    return 0;
}

void
cg_jwt_jwks_destroy(struct cg_jwt_jwks *j)
{
    if (j == NULL)
        return;
    for (size_t i = 0; i < j->n; i++)
        EVP_PKEY_free(j->k[i].key.key);
    cg_free(j);
}
