/* test_jwt.c - jwt.c: the app's tokens verified as a pure function.
 *
 * Keys are made in the test (RSA 2048, EC P-256; the HS256 secret is a
 * fixed string), their public halves written to PEM files and loaded as
 * config loads them; tokens are signed here with OpenSSL, independently of
 * jwt.c. Each refusal is checked with its reason (what the log says at
 * debug), at the boundary where one exists (exp, nbf with the leeway; the
 * length at CG_JWT_MAX and one past). */
#include "fmacros.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "core/common.h"
#include "core/config.h"
#include "core/jwt.h"

#define SECRET "0123456789abcdef0123456789abcdef-test-secret"
#define NOW    1800000000LL

static EVP_PKEY *rsa, *ec;
static struct cg_jwt_pkey *rsa_pub, *ec_pub;
static struct cg_jwt_secret *secret;
static char rsa_pem_path[64], ec_pem_path[64];
static char why[256];
static struct cg_jwt_claims claims;

/* ---- signing, independent of jwt.c ------------------------------------------ */

static void
b64url(const unsigned char *in, size_t n, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0, i;

    for (i = 0; i + 2 < n; i += 3) {
        out[o++] = a[in[i] >> 2];
        out[o++] = a[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
        out[o++] = a[((in[i + 1] & 15) << 2) | (in[i + 2] >> 6)];
        out[o++] = a[in[i + 2] & 63];
    }
    if (n - i == 1) {
        out[o++] = a[in[i] >> 2];
        out[o++] = a[(in[i] & 3) << 4];
    } else if (n - i == 2) {
        out[o++] = a[in[i] >> 2];
        out[o++] = a[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
        out[o++] = a[(in[i + 1] & 15) << 2];
    }
    out[o] = '\0';
}

static void
sign(const char *alg, EVP_PKEY *key, const void *hkey, size_t hlen, const unsigned char *m,
     size_t mlen, unsigned char *sig, size_t *slen)
{
    if (strcmp(alg, "HS256") == 0) {
        unsigned int n = 0;

        HMAC(EVP_sha256(), hkey, (int)hlen, m, mlen, sig, &n);
        *slen = n;
        return;
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char der[600];
    size_t dlen = sizeof der;

    cr_assert(eq(int, EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key), 1));
    cr_assert(eq(int, EVP_DigestSign(md, der, &dlen, m, mlen), 1));
    EVP_MD_CTX_free(md);
    if (strcmp(alg, "ES256") != 0) {
        memcpy(sig, der, dlen);
        *slen = dlen;
        return;
    }
    const unsigned char *p = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)dlen);
    const BIGNUM *r, *s;

    ECDSA_SIG_get0(es, &r, &s);
    BN_bn2binpad(r, sig, 32);
    BN_bn2binpad(s, sig + 32, 32);
    ECDSA_SIG_free(es);
    *slen = 64;
}

/* A token of header JSON h and payload JSON p, signed with alg by key
 * (HS256: with hkey of hlen bytes). Caller frees. */
static char *
make_with(const char *h, const char *p, const char *alg, EVP_PKEY *key, const void *hkey,
          size_t hlen)
{
    size_t hl = strlen(h), pl = strlen(p), slen = 0;
    char *t = malloc(hl * 2 + pl * 2 + 1200);
    unsigned char sig[600];

    b64url((const unsigned char *)h, hl, t);
    strcat(t, ".");
    b64url((const unsigned char *)p, pl, t + strlen(t));
    sign(alg, key, hkey, hlen, (const unsigned char *)t, strlen(t), sig, &slen);
    strcat(t, ".");
    b64url(sig, slen, t + strlen(t));
    return t;
}

static char *
make(const char *alg, const char *payload)
{
    char h[64];

    snprintf(h, sizeof h, "{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg);
    return make_with(h, payload, alg, strcmp(alg, "ES256") == 0 ? ec : rsa, SECRET,
                     strlen(SECRET));
}

static char payload_buf[512];

/* The usual claims with exp and extra members. */
static const char *
claims_json(long long exp, const char *extra)
{
    snprintf(payload_buf, sizeof payload_buf,
             "{\"sub\":\"alice\",\"jti\":\"j-1\",\"iat\":%lld,\"exp\":%lld%s%s}", NOW - 10, exp,
             extra[0] ? "," : "", extra);
    return payload_buf;
}

/* ---- rules -------------------------------------------------------------------- */

static struct cg_jwt_rules
rules_all(void)
{
    return (struct cg_jwt_rules){ .secret = secret, .pkey = rsa_pub, .pkey_alg = CG_JWT_RS256,
                                  .leeway_s = 30 };
}

static int
verify(const struct cg_jwt_rules *r, const char *tok)
{
    why[0] = '\0';
    return cg_jwt_verify(r, tok, strlen(tok), NOW, &claims, why, sizeof why);
}

static void
assert_refused(const struct cg_jwt_rules *r, const char *tok, const char *want)
{
    cr_assert(eq(int, verify(r, tok), CG_E_AUTH), "accepted: %s", tok);
    cr_assert(eq(str, why, (char *)want));
    cr_assert(eq(str, claims.sub, ""));
}

/* ---- keys ------------------------------------------------------------------------ */

static void
write_pub(EVP_PKEY *k, char *path)
{
    int fd;
    FILE *f;

    strcpy(path, "/tmp/cg-jwt-XXXXXX");
    fd = mkstemp(path);
    f = fdopen(fd, "w");
    PEM_write_PUBKEY(f, k);
    fclose(f);
}

static void
setup(void)
{
    char e[256];

    rsa = EVP_RSA_gen(2048);
    ec = EVP_EC_gen("P-256");
    cr_assert(not(zero(ptr, rsa)));
    cr_assert(not(zero(ptr, ec)));
    write_pub(rsa, rsa_pem_path);
    write_pub(ec, ec_pem_path);
    cr_assert(eq(int, cg_jwt_pkey_load(rsa_pem_path, &rsa_pub, e, sizeof e), 0), "%s", e);
    cr_assert(eq(int, cg_jwt_pkey_load(ec_pem_path, &ec_pub, e, sizeof e), 0), "%s", e);
    cr_assert(eq(int, cg_jwt_secret_parse(SECRET, &secret, e, sizeof e), 0), "%s", e);
}

static void
teardown(void)
{
    cg_jwt_pkey_destroy(rsa_pub);
    cg_jwt_pkey_destroy(ec_pub);
    cg_jwt_secret_destroy(secret);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    unlink(rsa_pem_path);
    unlink(ec_pem_path);
}

TestSuite(jwt, .init = setup, .fini = teardown);

/* ---- accepted ---------------------------------------------------------------------- */

Test(jwt, keys_load_with_the_one_algorithm_they_fit)
{
    cr_assert(eq(int, rsa_pub->fits, CG_JWT_RS256));
    cr_assert(eq(int, ec_pub->fits, CG_JWT_ES256));
}

Test(jwt, hs256_rs256_es256_are_accepted_with_their_keys)
{
    struct cg_jwt_rules r = rules_all(), re = rules_all();
    char *t;

    re.pkey = ec_pub;
    re.pkey_alg = CG_JWT_ES256;
    t = make("HS256", claims_json(NOW + 60, ""));
    cr_assert(eq(int, verify(&r, t), 0), "%s", why);
    cr_assert(eq(str, claims.sub, "alice"));
    cr_assert(eq(str, claims.jti, "j-1"));
    cr_assert(eq(i64, claims.exp, NOW + 60));
    cr_assert(eq(i64, claims.iat, NOW - 10));
    free(t);
    t = make("RS256", claims_json(NOW + 60, ""));
    cr_assert(eq(int, verify(&r, t), 0), "%s", why);
    free(t);
    t = make("ES256", claims_json(NOW + 60, ""));
    cr_assert(eq(int, verify(&re, t), 0), "%s", why);
    free(t);
}

/* ---- signature and algorithm ------------------------------------------------------- */

Test(jwt, a_bad_signature_is_refused_for_every_alg)
{
    struct cg_jwt_rules r = rules_all(), re = rules_all();
    const char *algs[] = { "HS256", "RS256", "ES256" };

    re.pkey = ec_pub;
    re.pkey_alg = CG_JWT_ES256;
    for (size_t i = 0; i < 3; i++) {
        char *t = make(algs[i], claims_json(NOW + 60, "")), want[64];
        char *sig = strrchr(t, '.') + 1;

        sig[5] = sig[5] == 'A' ? 'B' : 'A';
        snprintf(want, sizeof want, "bad %s signature", algs[i]);
        assert_refused(i == 2 ? &re : &r, t, want);
        free(t);
    }
}

Test(jwt, a_changed_payload_breaks_the_signature)
{
    struct cg_jwt_rules r = rules_all();
    char *t = make("HS256", claims_json(NOW + 60, "")), *u, other[512];
    char *p1 = strchr(t, '.') + 1, *p2 = strchr(p1, '.');

    /* The same header and signature around bob's payload. */
    b64url((const unsigned char *)"{\"sub\":\"bob\",\"exp\":1900000000}", 31, other);
    u = malloc(strlen(t) + strlen(other) + 1);
    sprintf(u, "%.*s%s%s", (int)(p1 - t), t, other, p2);
    assert_refused(&r, u, "bad HS256 signature");
    free(u);
    free(t);
}

Test(jwt, alg_none_is_refused)
{
    struct cg_jwt_rules r = rules_all();
    char h[64], p[256], t[400];

    b64url((const unsigned char *)"{\"alg\":\"none\"}", 14, h);
    b64url((const unsigned char *)claims_json(NOW + 60, ""), strlen(payload_buf), p);
    snprintf(t, sizeof t, "%s.%s.", h, p);
    assert_refused(&r, t, "alg is not HS256, RS256 or ES256");
    b64url((const unsigned char *)"{\"alg\":\"None\"}", 14, h);
    snprintf(t, sizeof t, "%s.%s.", h, p);
    assert_refused(&r, t, "alg is not HS256, RS256 or ES256");
    b64url((const unsigned char *)"{\"typ\":\"JWT\"}", 13, h);
    snprintf(t, sizeof t, "%s.%s.", h, p);
    assert_refused(&r, t, "header has no alg");
}

Test(jwt, an_alg_other_than_the_keys_is_refused)
{
    struct cg_jwt_rules r = rules_all();
    char *t;

    /* An ES256 token while the public key is configured for RS256. */
    t = make("ES256", claims_json(NOW + 60, ""));
    assert_refused(&r, t, "no key configured for alg ES256");
    free(t);
    /* An RS256 token while the key is an EC key for ES256. */
    r.pkey = ec_pub;
    r.pkey_alg = CG_JWT_ES256;
    t = make("RS256", claims_json(NOW + 60, ""));
    assert_refused(&r, t, "no key configured for alg RS256");
    free(t);
    /* HS256 without a secret configured. */
    r.secret = NULL;
    t = make("HS256", claims_json(NOW + 60, ""));
    assert_refused(&r, t, "no key configured for alg HS256");
    free(t);
}

Test(jwt, hs256_signed_with_the_public_keys_bytes_is_refused)
{
    struct cg_jwt_rules r = rules_all();
    char pem[4096];
    FILE *f = fopen(rsa_pem_path, "r");
    size_t n = fread(pem, 1, sizeof pem, f);
    char *t;

    fclose(f);
    /* The classic confusion: HMAC keyed with the RSA public key's PEM. With
     * only the public key configured there is no HS256 key at all... */
    r.secret = NULL;
    t = make_with("{\"alg\":\"HS256\"}", claims_json(NOW + 60, ""), "HS256", NULL, pem, n);
    assert_refused(&r, t, "no key configured for alg HS256");
    /* ... and with a secret configured, it is that secret, never the key. */
    r.secret = secret;
    assert_refused(&r, t, "bad HS256 signature");
    free(t);
}

Test(jwt, crit_is_refused)
{
    struct cg_jwt_rules r = rules_all();
    char *t = make_with("{\"alg\":\"HS256\",\"crit\":[\"x\"],\"x\":1}", claims_json(NOW + 60, ""),
                        "HS256", NULL, SECRET, strlen(SECRET));

    assert_refused(&r, t, "header has crit");
    free(t);
}

/* ---- time ------------------------------------------------------------------------------- */

Test(jwt, exp_is_required_and_honoured_with_the_leeway)
{
    struct cg_jwt_rules r = rules_all();
    char *t;

    t = make("HS256", "{\"sub\":\"alice\"}");
    assert_refused(&r, t, "no exp claim");
    free(t);
    t = make("HS256", claims_json(NOW - 29, ""));       /* within the 30 s leeway */
    cr_assert(eq(int, verify(&r, t), 0), "%s", why);
    free(t);
    t = make("HS256", claims_json(NOW - 30, ""));
    assert_refused(&r, t, "expired (exp 1799999970, now 1800000000, leeway 30 s)");
    free(t);
    r.leeway_s = 0;
    t = make("HS256", claims_json(NOW, ""));
    assert_refused(&r, t, "expired (exp 1800000000, now 1800000000, leeway 0 s)");
    free(t);
    t = make("HS256", "{\"sub\":\"alice\",\"exp\":\"1900000000\"}");
    assert_refused(&r, t, "exp, nbf or iat is not a NumericDate");
    free(t);
}

Test(jwt, nbf_and_iat_are_honoured_with_the_leeway)
{
    struct cg_jwt_rules r = rules_all();
    char *t, extra[64];

    snprintf(extra, sizeof extra, "\"nbf\":%lld", NOW + 30);
    t = make("HS256", claims_json(NOW + 600, extra));
    cr_assert(eq(int, verify(&r, t), 0), "%s", why);
    free(t);
    snprintf(extra, sizeof extra, "\"nbf\":%lld", NOW + 31);
    t = make("HS256", claims_json(NOW + 600, extra));
    assert_refused(&r, t, "not valid yet (nbf 1800000031, now 1800000000)");
    free(t);
    t = make("HS256", "{\"sub\":\"alice\",\"iat\":1800000031,\"exp\":1800000600}");
    assert_refused(&r, t, "issued in the future (iat 1800000031, now 1800000000)");
    free(t);
}

/* ---- aud, iss, sub, jti ------------------------------------------------------------------- */

Test(jwt, aud_is_checked_when_configured)
{
    struct cg_jwt_rules r = rules_all();
    char *t;

    r.audience = "chat";
    t = make("HS256", claims_json(NOW + 60, "\"aud\":\"chat\""));
    cr_assert(eq(int, verify(&r, t), 0), "%s", why);
    free(t);
    t = make("HS256", claims_json(NOW + 60, "\"aud\":[\"web\",\"chat\"]"));
    cr_assert(eq(int, verify(&r, t), 0), "%s", why);
    free(t);
    t = make("HS256", claims_json(NOW + 60, "\"aud\":\"web\""));
    assert_refused(&r, t, "aud does not name jwt_audience");
    free(t);
    t = make("HS256", claims_json(NOW + 60, ""));
    assert_refused(&r, t, "no aud claim (jwt_audience is set)");
    free(t);
    r.audience = NULL;                  /* not configured: any aud passes */
    t = make("HS256", claims_json(NOW + 60, "\"aud\":\"web\""));
    cr_assert(eq(int, verify(&r, t), 0), "%s", why);
    free(t);
}

Test(jwt, iss_is_checked_when_configured)
{
    struct cg_jwt_rules r = rules_all();
    char *t;

    r.issuer = "https://app.example";
    t = make("HS256", claims_json(NOW + 60, "\"iss\":\"https://app.example\""));
    cr_assert(eq(int, verify(&r, t), 0), "%s", why);
    free(t);
    t = make("HS256", claims_json(NOW + 60, "\"iss\":\"https://evil.example\""));
    assert_refused(&r, t, "iss is not jwt_issuer");
    free(t);
    t = make("HS256", claims_json(NOW + 60, ""));
    assert_refused(&r, t, "iss is not jwt_issuer");
    free(t);
}

Test(jwt, sub_is_required_and_jti_optional)
{
    struct cg_jwt_rules r = rules_all();
    char *t;

    t = make("HS256", "{\"exp\":1800000600}");
    assert_refused(&r, t, "no sub claim");
    free(t);
    t = make("HS256", "{\"sub\":42,\"exp\":1800000600}");
    assert_refused(&r, t, "sub is not a string");
    free(t);
    t = make("HS256", "{\"sub\":\"\",\"exp\":1800000600}");
    assert_refused(&r, t, "sub is empty, over 256 bytes or holds a NUL");
    free(t);
    t = make("HS256", "{\"sub\":\"a\",\"jti\":7,\"exp\":1800000600}");
    assert_refused(&r, t, "jti is not a string");
    free(t);
    t = make("HS256", "{\"sub\":\"a\",\"exp\":1800000600}");
    cr_assert(eq(int, verify(&r, t), 0), "%s", why);
    cr_assert(eq(str, claims.jti, ""));
    cr_assert(eq(i64, claims.iat, 0));
    free(t);
}

/* ---- bytes -------------------------------------------------------------------------------- */

Test(jwt, base64url_is_strict)
{
    unsigned char out[16];

    cr_assert(eq(long, cg_jwt_b64url_decode("YWI", 3, out, sizeof out), 2));
    cr_assert(eq(int, memcmp(out, "ab", 2), 0));
    cr_assert(eq(long, cg_jwt_b64url_decode("YWI=", 4, out, sizeof out), -1));  /* padding */
    cr_assert(eq(long, cg_jwt_b64url_decode("YWJ", 3, out, sizeof out), -1));   /* stray bits */
    cr_assert(eq(long, cg_jwt_b64url_decode("Y", 1, out, sizeof out), -1));     /* 1 mod 4 */
    cr_assert(eq(long, cg_jwt_b64url_decode("YW+j", 4, out, sizeof out), -1));  /* base64 */
    cr_assert(eq(long, cg_jwt_b64url_decode("YW j", 4, out, sizeof out), -1));
    cr_assert(eq(long, cg_jwt_b64url_decode("", 0, out, sizeof out), 0));
}

Test(jwt, malformed_parts_are_refused)
{
    struct cg_jwt_rules r = rules_all();
    char *t = make("HS256", claims_json(NOW + 60, "")), *u;

    assert_refused(&r, "abc", "not three base64url parts");
    assert_refused(&r, "a.b.c.d", "not three base64url parts");
    assert_refused(&r, "a+b.c.d", "not three base64url parts");
    assert_refused(&r, "e30=.e30.x", "not three base64url parts");
    free(t);
    /* A 16-byte header: its last character holds 2 bits and 4 zero bits
     * ('Q' for the final '}'); 'R' decodes alike but sets a stray bit. */
    t = make_with("{\"alg\":\"HS256\" }", claims_json(NOW + 60, ""), "HS256", NULL, SECRET,
                  strlen(SECRET));
    cr_assert(eq(int, verify(&r, t), 0), "%s", why);
    u = strdup(t);
    cr_assert(eq(chr, u[strchr(u, '.') - u - 1], 'Q'));
    u[strchr(u, '.') - u - 1] = 'R';
    assert_refused(&r, u, "header is not strict base64url");
    free(u);
    free(t);
    t = make_with("not json", claims_json(NOW + 60, ""), "HS256", NULL, SECRET, strlen(SECRET));
    assert_refused(&r, t, "header is not a JSON object");
    free(t);
    t = make_with("{\"alg\":\"HS256\",\"alg\":\"HS256\"}", claims_json(NOW + 60, ""), "HS256",
                  NULL, SECRET, strlen(SECRET));
    assert_refused(&r, t, "header is not a JSON object");
    free(t);
    t = make("HS256", "[1,2]");
    assert_refused(&r, t, "payload is not a JSON object");
    free(t);
    t = make("HS256", "{\"sub\":\"a\",\"exp\":1800000600,\"exp\":1800000600}");
    assert_refused(&r, t, "payload is not a JSON object");
    free(t);
}

Test(jwt, length_is_capped_at_CG_JWT_MAX)
{
    struct cg_jwt_rules r = rules_all();
    const char *heads[] = { "{\"alg\":\"HS256\"}", "{\"alg\":\"HS256\",\"typ\":\"JWT\"}" };
    char *at = NULL, *past = NULL, p[4096], pad[3200];

    /* Pad the payload until a token is exactly CG_JWT_MAX long (base64url
     * lengths skip some values, so try two headers). */
    for (size_t h = 0; h < 2 && at == NULL; h++) {
        for (size_t n = 2800; n < 3100 && at == NULL; n++) {
            char *t;

            memset(pad, 'x', n);
            pad[n] = '\0';
            snprintf(p, sizeof p, "{\"sub\":\"alice\",\"exp\":%lld,\"pad\":\"%s\"}", NOW + 60,
                     pad);
            t = make_with(heads[h], p, "HS256", NULL, SECRET, strlen(SECRET));
            if (strlen(t) == CG_JWT_MAX) {
                at = t;
                pad[n] = 'x';
                pad[n + 1] = '\0';
                snprintf(p, sizeof p, "{\"sub\":\"alice\",\"exp\":%lld,\"pad\":\"%s\"}",
                         NOW + 60, pad);
                past = make_with(heads[h], p, "HS256", NULL, SECRET, strlen(SECRET));
            } else {
                free(t);
            }
        }
    }
    cr_assert(not(zero(ptr, at)));
    cr_assert(eq(int, verify(&r, at), 0), "%s", why);
    cr_assert(gt(sz, strlen(past), CG_JWT_MAX));
    assert_refused(&r, past, "longer than 4096 bytes");
    free(at);
    free(past);
}

/* ---- the keys as config loads them -------------------------------------------------------- */

Test(jwt, config_refuses_a_key_that_does_not_fit_jwt_alg)
{
    struct cg_config cfg;
    char e[512];
    const char *argv1[] = { "chatgate", "--jwt-public-key", ec_pem_path, "--jwt-alg", "RS256",
                            NULL };
    const char *argv2[] = { "chatgate", "--jwt-public-key", ec_pem_path, "--jwt-alg", "ES256",
                            NULL };
    char *env[] = { NULL };
    char want[512];

    cr_assert(eq(int, cg_config_init(&cfg), 0));
    cr_assert(eq(int, cg_config_load(&cfg, 5, (char **)argv1, env, NULL, NULL, e, sizeof e),
                 CG_E_INVAL));
    snprintf(want, sizeof want, "jwt_alg=RS256 does not fit jwt_public_key=%s (a key for ES256)",
             ec_pem_path);
    cr_assert(eq(str, e, want));
    cg_config_cleanup(&cfg);
    cr_assert(eq(int, cg_config_init(&cfg), 0));
    cr_assert(eq(int, cg_config_load(&cfg, 5, (char **)argv2, env, NULL, NULL, e, sizeof e), 0),
              "%s", e);
    cr_assert(eq(int, cfg.jwt_alg_parsed, CG_JWT_ES256));
    cr_assert(eq(int, cfg.jwt_pkey->fits, CG_JWT_ES256));
    cg_config_cleanup(&cfg);
}

Test(jwt, a_file_without_a_public_key_is_refused)
{
    struct cg_jwt_pkey *k = NULL;
    char e[256], want[256];

    cr_assert(eq(int, cg_jwt_pkey_load("/dev/null", &k, e, sizeof e), CG_E_INVAL));
    snprintf(want, sizeof want, "/dev/null holds no PEM public key");
    cr_assert(eq(str, e, want));
    cr_assert(zero(ptr, k));
}

/* ---- a JWKS: keys chosen by kid ------------------------------------------------------------ */

static char jwks_path[64];

/* Write text to a fresh temporary file named in jwks_path. */
static void
write_file(const char *text)
{
    int fd;

    strcpy(jwks_path, "/tmp/cg-jwks-XXXXXX");
    fd = mkstemp(jwks_path);
    cr_assert(eq(sz, (size_t)write(fd, text, strlen(text)), strlen(text)));
    close(fd);
}

/* The JWKS of this test's RSA key (kid r1) and EC key (kid e1). */
static void
write_jwks(void)
{
    char n[400], e[16], x[48], y[48], text[1200];
    unsigned char buf[600];
    size_t len = 0;
    BIGNUM *bn = NULL;
    int k;

    EVP_PKEY_get_bn_param(rsa, OSSL_PKEY_PARAM_RSA_N, &bn);
    k = BN_bn2bin(bn, buf);
    b64url(buf, (size_t)k, n);
    BN_free(bn);
    bn = NULL;
    EVP_PKEY_get_bn_param(rsa, OSSL_PKEY_PARAM_RSA_E, &bn);
    k = BN_bn2bin(bn, buf);
    b64url(buf, (size_t)k, e);
    BN_free(bn);
    EVP_PKEY_get_octet_string_param(ec, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, buf, sizeof buf, &len);
    cr_assert(eq(sz, len, 65));
    b64url(buf + 1, 32, x);
    b64url(buf + 33, 32, y);
    snprintf(text, sizeof text,
             "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"r1\",\"alg\":\"RS256\",\"use\":\"sig\","
             "\"n\":\"%s\",\"e\":\"%s\"},{\"kty\":\"EC\",\"kid\":\"e1\",\"alg\":\"ES256\","
             "\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}]}", n, e, x, y);
    write_file(text);
}

static char *
make_kid(const char *alg, const char *kid)
{
    char h[96];

    snprintf(h, sizeof h, "{\"alg\":\"%s\",\"kid\":\"%s\"}", alg, kid);
    return make_with(h, claims_json(NOW + 60, ""), alg, strcmp(alg, "ES256") == 0 ? ec : rsa,
                     SECRET, strlen(SECRET));
}

Test(jwt, a_jwks_picks_the_key_by_kid_and_holds_it_to_its_alg)
{
    struct cg_jwt_jwks *set = NULL;
    struct cg_jwt_rules r = { .leeway_s = 30 };
    char e[256], *t;

    write_jwks();
    cr_assert(eq(int, cg_jwt_jwks_load(jwks_path, &set, e, sizeof e), 0), "%s", e);
    unlink(jwks_path);
    cr_assert(eq(sz, set->n, 2));
    r.jwks = set;
    t = make_kid("RS256", "r1");
    cr_assert(eq(int, verify(&r, t), 0), "%s", why);
    free(t);
    t = make_kid("ES256", "e1");
    cr_assert(eq(int, verify(&r, t), 0), "%s", why);
    free(t);
    t = make_kid("RS256", "e1");
    assert_refused(&r, t, "alg RS256 is not the alg of key e1 (ES256)");
    free(t);
    t = make_kid("HS256", "r1");
    assert_refused(&r, t, "alg HS256 is not the alg of key r1 (RS256)");
    free(t);
    t = make_kid("RS256", "r2");
    assert_refused(&r, t, "no key in jwt_jwks has its kid");
    free(t);
    /* No kid: the single keys, of which there are none here. */
    t = make("RS256", claims_json(NOW + 60, ""));
    assert_refused(&r, t, "no key configured for alg RS256");
    free(t);
    /* The RS256 key signs; a token signed by the EC key under kid r1 fails. */
    t = make_with("{\"alg\":\"ES256\",\"kid\":\"r1\"}", claims_json(NOW + 60, ""), "ES256", ec,
                  NULL, 0);
    assert_refused(&r, t, "alg ES256 is not the alg of key r1 (RS256)");
    free(t);
    cg_jwt_jwks_destroy(set);
}

struct jwks_case {
    char text[200], why[96];
};

ParameterizedTestParameters(jwt, a_jwks_file_is_checked)
{
    static struct jwks_case cases[] = {
        { "[]", "expected {\"keys\":[...]} with 1-16 keys" },
        { "{\"keys\":[]}", "expected {\"keys\":[...]} with 1-16 keys" },
        { "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"h\",\"alg\":\"HS256\",\"k\":\"AAAA\"}]}",
          "key h: kty must be RSA or EC" },
        { "{\"keys\":[{\"kty\":\"EC\",\"kid\":\"e\",\"alg\":\"RS256\"}]}",
          "key e: alg must be ES256 for kty EC" },
        { "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"r\"}]}", "key r: alg must be RS256 for kty RSA" },
        { "{\"keys\":[{\"kty\":\"RSA\",\"alg\":\"RS256\"}]}", "key 1: kid must be a string of 1-64 bytes" },
        { "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"r\",\"alg\":\"RS256\",\"use\":\"enc\"}]}",
          "key r: use must be sig" },
        { "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"r\",\"alg\":\"RS256\",\"n\":\"AQAB\",\"e\":\"AQAB\","
          "\"d\":\"AQAB\"}]}", "key r holds a private key (d): give only public keys" },
        { "{\"keys\":[{\"kty\":\"EC\",\"kid\":\"e\",\"alg\":\"ES256\",\"crv\":\"P-384\"}]}",
          "key e: crv is not P-256" },
        { "{\"keys\":[{\"kty\":\"EC\",\"kid\":\"e\",\"alg\":\"ES256\",\"crv\":\"P-256\","
          "\"x\":\"AAAA\",\"y\":\"AAAA\"}]}", "key e: x or y is not 32 bytes of base64url" },
    };
    return cr_make_param_array(struct jwks_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct jwks_case *c, jwt, a_jwks_file_is_checked)
{
    struct cg_jwt_jwks *set = NULL;
    char e[256], want[320];

    write_file(c->text);
    cr_assert(eq(int, cg_jwt_jwks_load(jwks_path, &set, e, sizeof e), CG_E_INVAL), "%s", c->text);
    if (strncmp(c->why, "expected", 8) == 0)
        snprintf(want, sizeof want, "%s: %s", jwks_path, c->why);
    else
        snprintf(want, sizeof want, "%s", c->why);
    unlink(jwks_path);
    cr_assert(eq(str, e, want));
    cr_assert(zero(ptr, set));
}
