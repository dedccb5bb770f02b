/* jwt.h - tokens issued by the app: JSON Web Tokens (RFC 7519) in the
 * compact JWS form, verified with OpenSSL (PROTOCOL.md section 1.5).
 *
 * The keys are parsed once, by config (jwt_hs256_secret, jwt_public_key
 * with jwt_alg); cg_jwt_verify() is a pure function of the token, the
 * keys, the rules and the time: no I/O, no state. The user's existence,
 * state and the revocation of a jti are looked up in Redis by auth
 * (gateway/chat/auth_jwt.c) after the token passed here. */
#ifndef CG_JWT_H
#define CG_JWT_H

#include <stddef.h>
#include <stdint.h>

/* The longest JWT read anywhere (the handshake, CONNECT, HTTP): fits a
 * 4 KiB header line under http_max_head_bytes (8192) with room to spare. */
#define CG_JWT_MAX      4096
/* The longest sub and jti kept; longer ones are refused. */
#define CG_JWT_CLAIM_MAX 256
/* The shortest HS256 secret: 256 bits, as RFC 7518 section 3.2 asks. */
#define CG_JWT_SECRET_MIN 32

enum cg_jwt_alg { CG_JWT_NONE = 0, CG_JWT_HS256, CG_JWT_RS256, CG_JWT_ES256 };

/* An HS256 secret (jwt_hs256_secret, or the file it names). */
struct cg_jwt_secret {
    size_t        len;
    unsigned char bytes[];
};

/* A public key (jwt_public_key): an RSA key (RS256) or an EC P-256 key
 * (ES256). key is an EVP_PKEY. */
struct cg_jwt_pkey {
    void           *key;
    enum cg_jwt_alg fits;    /* the one algorithm this key's type can verify */
};

/* A JSON Web Key Set (jwt_jwks): public keys chosen by a token's kid,
 * each with the one algorithm it verifies (its "alg", required). */
#define CG_JWT_JWKS_MAX 16
#define CG_JWT_KID_MAX  64
struct cg_jwt_jwk {
    char               kid[CG_JWT_KID_MAX + 1];
    struct cg_jwt_pkey key;      /* key.fits: the key's alg */
};
struct cg_jwt_jwks {
    size_t            n;
    struct cg_jwt_jwk k[CG_JWT_JWKS_MAX];
};

/* What a token is checked against. A key that is NULL verifies nothing:
 * a token whose alg needs it is refused. pkey_alg is the algorithm
 * configured for pkey; a token's alg must equal it exactly. */
struct cg_jwt_rules {
    const struct cg_jwt_secret *secret;    /* HS256, or NULL */
    const struct cg_jwt_pkey   *pkey;      /* RS256 or ES256, or NULL */
    enum cg_jwt_alg             pkey_alg;
    const struct cg_jwt_jwks   *jwks;      /* keys by kid, or NULL */
    const char                 *audience;  /* NULL or "": not checked */
    const char                 *issuer;    /* NULL or "": not checked */
    int64_t                     leeway_s;  /* allowed clock skew */
};

struct cg_jwt_claims {
    char    sub[CG_JWT_CLAIM_MAX + 1];
    char    jti[CG_JWT_CLAIM_MAX + 1];     /* "" when the token has none */
    int64_t exp;                           /* seconds since the epoch */
    int64_t iat;                           /* 0 when the token has none */
};

/* 1 when tok has a JWT's shape: three base64url parts separated by two
 * dots, at most CG_JWT_MAX bytes (a gateway token has no dot). */
int cg_jwt_shaped(const char *tok, size_t len);

/* Verify tok (len bytes, not NUL-terminated) at now_s (seconds since the
 * epoch) against rules. Returns 0 with out filled, or CG_E_AUTH with a
 * one-line reason in why (for the log at debug: never the token, never a
 * key). Checked: strict base64url (no padding, no stray bits), JSON
 * objects (duplicate members refused), the header's alg exactly the one
 * configured for the key it needs ("none" and unknown algs refused, crit
 * refused; a kid, when rules has a JWKS, picks the key of that kid, whose
 * alg it must be), the signature, exp (required), nbf and iat with leeway_s, aud
 * and iss when configured, sub (a string of 1..CG_JWT_CLAIM_MAX bytes),
 * jti (when present, a string of 1..CG_JWT_CLAIM_MAX bytes). */
int cg_jwt_verify(const struct cg_jwt_rules *rules, const char *tok, size_t len,
                  int64_t now_s, struct cg_jwt_claims *out, char *why, size_t cap);

/* Strict base64url decode of in[0..len) into out (cap bytes): no padding,
 * nothing outside the alphabet, a length that is not 1 mod 4, unused
 * trailing bits zero. Returns the decoded length or -1. */
long cg_jwt_b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap);

/* The typed values of config (config_values.c): read an HS256 secret
 * ("@/path" reads the file, trailing newline dropped) or a PEM public key
 * file. 0, or CG_E_INVAL / CG_E_NOMEM with the reason in why. */
int  cg_jwt_secret_parse(const char *v, struct cg_jwt_secret **out, char *why, size_t cap);
void cg_jwt_secret_destroy(struct cg_jwt_secret *s);
int  cg_jwt_pkey_load(const char *path, struct cg_jwt_pkey **out, char *why, size_t cap);
void cg_jwt_pkey_destroy(struct cg_jwt_pkey *k);
/* Read a JWKS file: {"keys":[...]} of 1..CG_JWT_JWKS_MAX public keys,
 * each {"kty":"RSA","n","e"} (2048-8192 bits) or {"kty":"EC",
 * "crv":"P-256","x","y"}, with a unique "kid" (1..CG_JWT_KID_MAX bytes)
 * and "alg" RS256 or ES256 fitting its kty; "use", if any, "sig"; a
 * private member ("d") is refused. 0, or CG_E_INVAL / CG_E_NOMEM with the
 * reason in why. */
int  cg_jwt_jwks_load(const char *path, struct cg_jwt_jwks **out, char *why, size_t cap);
void cg_jwt_jwks_destroy(struct cg_jwt_jwks *j);

/* "HS256", "RS256", "ES256" -> the enum; CG_JWT_NONE for anything else. */
enum cg_jwt_alg cg_jwt_alg_parse(const char *s, size_t len);
const char *cg_jwt_alg_name(enum cg_jwt_alg alg);

#endif
