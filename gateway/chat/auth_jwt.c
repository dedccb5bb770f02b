/* auth_jwt.c - tokens issued by the app (PROTOCOL.md section 1.5): a JWT
 * the app signed, accepted wherever the gateway's own tokens are
 * (cg_auth_check_token() and cg_auth_token_peek() hand any token with a
 * JWT's shape here).
 *
 * The signature and the claims are checked first, on the loop, by the pure
 * verifier (core/jwt.h). Then one OP_JWT in Redis:
 *
 *   [EXISTS cg:jwt:rev:<sha256 of jti>  (1: revoked) ->]
 *   GET cg:name:<lower-cased sub> -> uid
 *     nil, jwt_create_users: INCR cg:uid -> HSET user name created +
 *       SET cg:name NX (pipelined; lost the race: DEL user, GET again)
 *     nil otherwise: refused
 *   -> HMGET user name disabled revoked_before: the same user-state check
 *      as the gateway's own tokens (auth.c), with the token's iat as the
 *      time it was issued (no iat: issued at 0, so a user ever disabled
 *      refuses it).
 *
 * Every refusal is CG_E_AUTH to the caller, the same answer as any bad
 * token; the reason goes to the log at debug, never the token or a key.
 * Only a revoked jti is remembered in the node's bad-token cache: the
 * other refusals may change (a user created or enabled, nbf reached).
 *
 * Revocation (cg_auth_revoke_jti, the backend API): SET
 * cg:jwt:rev:<sha256 of jti> 1 PXAT <(exp + jwt_leeway_s) in ms>, so the
 * key lives exactly as long as the token could still be accepted. */
#include "fmacros.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "chat/auth.h"
#include "chat/auth_internal.h"
#include "core/common.h"
#include "core/config.h"
#include "core/jwt.h"
#include "core/log.h"
#include "store/store.h"

enum {
    JWT_REVOKED = 0,   /* EXISTS cg:jwt:rev:<hash> */
    JWT_NAME,          /* GET cg:name -> uid */
    JWT_NEW_UID,       /* create: INCR cg:uid */
    JWT_CLAIMED,       /* create: SET cg:name NX */
    JWT_NAME_AGAIN,    /* create lost the race: GET cg:name */
    JWT_STATE,         /* HMGET user name disabled revoked_before */
};

static void
key_revoked(char *buf, size_t cap, const char *jti_hash)
{
    snprintf(buf, cap, "cg:jwt:rev:%s", jti_hash);
}

void
jwt_rules_init(cg_auth *a, const struct cg_config *cfg)
{
    a->jwt.secret = cfg->jwt_secret;
    a->jwt.pkey = cfg->jwt_pkey;
    a->jwt.pkey_alg = cfg->jwt_alg_parsed;
    a->jwt.jwks = cfg->jwt_jwks_parsed;
    a->jwt.audience = cfg->jwt_audience;
    a->jwt.issuer = cfg->jwt_issuer;
    a->jwt.leeway_s = cfg->jwt_leeway_s;
    a->jwt_on = cfg->jwt_secret != NULL || cfg->jwt_pkey != NULL ||
                cfg->jwt_jwks_parsed != NULL;
}

/* Verify tok; 0 with c filled, or CG_E_AUTH (logged at debug). */
static int
verify(cg_auth *a, const char *tok, size_t len, struct cg_jwt_claims *c)
{
    char why[160];

    if (!a->jwt_on) {
        cg_log(CG_LOG_DEBUG, "app token refused: no jwt_hs256_secret, jwt_public_key or "
               "jwt_jwks is configured");
        return CG_E_AUTH;
    }
    if (cg_jwt_verify(&a->jwt, tok, len, cg_now_ms() / 1000, c, why, sizeof why) < 0) {
        cg_log(CG_LOG_DEBUG, "app token refused: %s", why);
        return CG_E_AUTH;
    }
    if (!cg_auth_valid_name(c->sub, strlen(c->sub))) {
        cg_log(CG_LOG_DEBUG, "app token refused: sub is not a username (1-32 of "
               "[A-Za-z0-9_.-])");
        return CG_E_AUTH;
    }
    return 0;
}

static int
known_bad(cg_auth *a, const char *hash)
{
    struct bad_token *b = &a->bad[fnv1a(hash, CG_TOKEN_HASH_LEN) % BAD_SLOTS];

    return b->until_ms > cg_mono_ms() && strcmp(b->hash, hash) == 0;
}

int
jwt_peek(cg_auth *a, const char *tok, size_t len)
{
    struct cg_jwt_claims c;
    char hash[CG_TOKEN_HASH_LEN + 1];

    if (verify(a, tok, len, &c) < 0)
        return -1;
    cg_auth_token_hash(tok, len, hash);
    return known_bad(a, hash) ? -1 : 0;
}

int
jwt_check(cg_auth *a, const char *tok, size_t len, cg_auth_cb cb, void *data)
{
    struct cg_jwt_claims c;
    struct auth_op *op;
    char hash[CG_TOKEN_HASH_LEN + 1], k[96];

    cg_auth_token_hash(tok, len, hash);
    if (known_bad(a, hash)) {
        cg_log(CG_LOG_DEBUG, "app token refused: its jti was revoked (known here)");
        a->metrics->auth_failures++;
        return CG_E_AUTH;
    }
    if (verify(a, tok, len, &c) < 0) {
        a->metrics->auth_failures++;
        return CG_E_AUTH;
    }
    if ((op = op_create(a, OP_JWT, cb, data)) == NULL)
        return CG_E_NOMEM;
    memcpy(op->who.token_hash, hash, sizeof hash);
    memcpy(op->who.name, c.sub, strlen(c.sub) + 1);     /* a valid name: <= 32 */
    lower_name(c.sub, strlen(c.sub), op->lname);
    op->issued_ms = c.iat * 1000;
    op->who.expires_ms = (c.exp + a->jwt.leeway_s) * 1000;
    op->jwt_create = a->cfg->jwt_create_users &&
                     cg_auth_name_refused(c.sub, strlen(c.sub)) == NULL;
    if (c.jti[0] != '\0') {
        cg_auth_token_hash(c.jti, strlen(c.jti), hash);
        key_revoked(k, sizeof k, hash);
        op->step = JWT_REVOKED;
        return op_start(op, 2, (const char *[]){ "EXISTS", k });
    }
    op->step = JWT_NAME;
    key_name(k, sizeof k, op->lname);
    return op_start(op, 2, (const char *[]){ "GET", k });
}

static void
refused(struct auth_op *op, const char *why, int remember)
{
    cg_log(CG_LOG_DEBUG, "app token of %s refused: %s", op->who.name, why);
    if (remember)
        remember_bad(op->a, op->who.token_hash);
    op->a->metrics->auth_failures++;
    op_finish(op, CG_E_AUTH);
}

static void
read_state(struct auth_op *op)
{
    char k[96];

    op->step = JWT_STATE;
    key_user(k, sizeof k, op->who.uid);
    cmd(op, 5, (const char *[]){ "HMGET", k, "name", "disabled", "revoked_before" });
}

void
step_jwt(struct auth_op *op, const struct cg_store_reply *r, int err)
{
    char k[96], uid[24], now[24];
    const char *name;
    size_t nlen;

    if (op->kind == OP_REVOKE) {
        if (no_reply(r, err))
            return op_finish(op, err < 0 ? err : CG_E_STORE);
        cg_log(CG_LOG_NOTICE, "backend: audit: key %s revoked an app token's jti (until %"
               PRId64 ")", op->actor, op->ttl_ms);
        return op_finish(op, 0);
    }
    if (no_reply(r, err))
        return op_finish(op, err < 0 ? err : CG_E_STORE);
    switch (op->step) {
    case JWT_REVOKED:
        if (cg_store_reply_type(r) != CG_STORE_REPLY_INTEGER)
            return op_finish(op, CG_E_STORE);
        if (cg_store_reply_integer(r) != 0)
            return refused(op, "its jti was revoked", 1);
        op->step = JWT_NAME;
        key_name(k, sizeof k, op->lname);
        return cmd(op, 2, (const char *[]){ "GET", k });
    case JWT_NAME:
    case JWT_NAME_AGAIN:
        if (cg_store_reply_type(r) == CG_STORE_REPLY_NIL) {
            if (op->step == JWT_NAME_AGAIN || !op->jwt_create)
                return refused(op, op->jwt_create ? "no such user"
                                                  : "no such user (jwt_create_users is off, "
                                                    "or sub cannot be registered)", 0);
            op->step = JWT_NEW_UID;
            return cmd(op, 2, (const char *[]){ "INCR", "cg:uid" });
        }
        if (reply_u64(r, &op->who.uid) < 0)
            return op_finish(op, CG_E_STORE);
        return read_state(op);
    case JWT_NEW_UID:
        if (reply_u64(r, &op->who.uid) < 0)
            return op_finish(op, CG_E_STORE);
        key_user(k, sizeof k, op->who.uid);
        snprintf(now, sizeof now, "%lld", (long long)cg_now_ms());
        {
            /* No pw field: the user cannot log in with a password, as a
             * user the backend API made without one. */
            const char *hset[] = { "HSET", k, "name", op->who.name, "created", now };
            size_t l[6];

            for (int i = 0; i < 6; i++)
                l[i] = strlen(hset[i]);
            if (cg_store_command(op->a->store, 6, hset, l, NULL, NULL) < 0)
                return op_finish(op, CG_E_STORE);
        }
        key_name(k, sizeof k, op->lname);
        snprintf(uid, sizeof uid, "%" PRIu64, op->who.uid);
        op->step = JWT_CLAIMED;
        return cmd(op, 4, (const char *[]){ "SET", k, uid, "NX" });
    case JWT_CLAIMED:
        if (cg_store_reply_type(r) == CG_STORE_REPLY_NIL) {
            /* Someone took the name meanwhile: drop our record, use theirs. */
            key_user(k, sizeof k, op->who.uid);
            {
                const char *del[] = { "DEL", k };
                size_t l[] = { 3, strlen(k) };

                if (cg_store_command(op->a->store, 2, del, l, NULL, NULL) < 0)
                    return op_finish(op, CG_E_STORE);
            }
            op->step = JWT_NAME_AGAIN;
            key_name(k, sizeof k, op->lname);
            return cmd(op, 2, (const char *[]){ "GET", k });
        }
        cg_log(CG_LOG_INFO, "created user %s (uid %" PRIu64 ") on first sight of an app "
               "token", op->who.name, op->who.uid);
        return read_state(op);
    case JWT_STATE:
        if (user_state_refuses(r, op->issued_ms))
            return refused(op, "the user is deleted or disabled, or the token was issued "
                           "before its last disable", 0);
        name = cg_store_reply_str(cg_store_reply_element(r, 0), &nlen);
        if (nlen > CG_NAME_MAX)
            return op_finish(op, CG_E_STORE);
        memcpy(op->who.name, name, nlen + 1);    /* as registered, with its NUL */
        return op_finish(op, 0);
    }
}

int
cg_auth_revoke_jti(cg_auth *a, const char *jti, size_t len, int64_t exp_s,
                   const char *actor, cg_auth_cb cb, void *data)
{
    struct auth_op *op;
    char hash[CG_TOKEN_HASH_LEN + 1], k[96], at[24];
    int64_t until = (exp_s + a->cfg->jwt_leeway_s) * 1000, soon = cg_now_ms() + 1000;

    if (len == 0 || len > CG_JWT_CLAIM_MAX || memchr(jti, '\0', len) != NULL)
        return CG_E_INVAL;
    if ((op = op_create(a, OP_REVOKE, cb, data)) == NULL)
        return CG_E_NOMEM;
    snprintf(op->actor, sizeof op->actor, "%s", actor);
    /* A token already past its exp needs no key, but one that lives a
     * second more costs nothing and keeps the answer uniform. */
    op->ttl_ms = until > soon ? until : soon;
    cg_auth_token_hash(jti, len, hash);
    key_revoked(k, sizeof k, hash);
    snprintf(at, sizeof at, "%" PRId64, op->ttl_ms);
    return op_start(op, 5, (const char *[]){ "SET", k, "1", "PXAT", at });
}
