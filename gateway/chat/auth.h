/* auth.h - users, passwords and login tokens.
 *
 * Passwords are stored only as PBKDF2-HMAC-SHA256 records
 * ("pbkdf2-sha256$<iterations>$<salt b64>$<hash b64>"), hashed and checked
 * on libuv's thread pool, never on the loop. Tokens are 256-bit random
 * values in base64url (43 chars); Redis holds only their SHA-256, with an
 * expiry. Every function that takes a callback follows STYLE.md 3: an error
 * return means the callback will not run; 0 means it runs exactly once. */
#ifndef CHATGATE_AUTH_H
#define CHATGATE_AUTH_H

#include <stddef.h>
#include <stdint.h>

struct uv_loop_s;
struct cg_config;
struct cg_store;
struct cg_metrics;

typedef struct cg_auth cg_auth;

#define CG_NAME_MAX       32
#define CG_TOKEN_LEN      43     /* base64url of 32 bytes, no padding */
#define CG_TOKEN_HASH_LEN 64     /* hex SHA-256 */

struct cg_principal {
    uint64_t uid;
    char     name[CG_NAME_MAX + 1];
    char     token_hash[CG_TOKEN_HASH_LEN + 1];  /* "" when not from a token */
    int64_t  expires_ms;                         /* token expiry (login, check) */
    int      online;                             /* lookup only: nodes with a live
                                                    session of the user */
    int64_t  retry_after_s;                      /* login refused with CG_E_LIMIT:
                                                    seconds until it may retry */
    int      disabled;                           /* lookup and the admin calls:
                                                    the user is disabled */
};

/* err: 0, CG_E_AUTH (bad/expired/revoked token or wrong password),
 * CG_E_LIMIT (login only: too many failed logins, see cg_auth_login),
 * CG_E_NOTFOUND, CG_E_EXISTS, CG_E_INVAL, CG_E_STORE, CG_E_CLOSED.
 * who is borrowed for the call and NULL unless err == 0 or CG_E_LIMIT
 * (then only who->retry_after_s is set). token is the new token (login
 * only, NUL-terminated) and NULL otherwise. */
typedef void (*cg_auth_cb)(int err, const struct cg_principal *who,
                           const char *token, void *data);

/* Logs a warning when the login_* limits let one client address fill an
 * account's own limit (one address could then lock the account out). */
int  cg_auth_create(struct uv_loop_s *loop, const struct cg_config *cfg,
                    struct cg_store *store, struct cg_metrics *metrics,
                    cg_auth **out);
/* Outstanding callbacks fire with CG_E_CLOSED (thread-pool work completes
 * first). */
void cg_auth_destroy(cg_auth *a);

/* 1 if s is a syntactically valid username: 1-32 of [A-Za-z0-9_.-]. */
int cg_auth_valid_name(const char *s, size_t len);

/* Why s cannot be registered as a username, or NULL when it can: it must
 * be a valid name, not all digits (an all-digit name would be read as a
 * uid in /api/users/{x} and /user/{x}/recive) and not only dots ("." and
 * ".." cannot travel in a URL path). */
const char *cg_auth_name_refused(const char *s, size_t len);

/* 1 if tok has the shape of a token (43 base64url chars). */
int cg_auth_token_wellformed(const char *tok, size_t len);

/* The longest token read anywhere: a JWT the app signed (PROTOCOL.md
 * section 1.5) may be this long; the gateway's own are CG_TOKEN_LEN. */
#define CG_TOKEN_MAX 4096

/* 1 if tok has the shape of a token cg_auth_check_token() may accept: the
 * gateway's own (cg_auth_token_wellformed) or a JWT (three base64url
 * parts, at most CG_TOKEN_MAX bytes). */
int cg_auth_token_shaped(const char *tok, size_t len);

/* Hex SHA-256 of a token into out (65 bytes). */
void cg_auth_token_hash(const char *tok, size_t len, char out[CG_TOKEN_HASH_LEN + 1]);

/* Synchronous answer from this node's token cache, for the WebSocket
 * handshake (lws has no asynchronous upgrade filter): 1 known valid,
 * -1 known invalid (malformed, expired, revoked), 0 unknown (accept the
 * upgrade and check asynchronously before CONNECTED). */
int cg_auth_token_peek(cg_auth *a, const char *tok, size_t len);

/* Resolve a token to its user with one Redis GET, then the user's state.
 * A JWT the app signed (PROTOCOL.md section 1.5) is verified here, then
 * its jti, its user and the user's state are read in Redis;
 * who->expires_ms is its exp plus jwt_leeway_s. A malformed token, a JWT
 * that fails its signature or claims, or one this node knows to be
 * revoked, returns CG_E_AUTH at once (callback not called). Callbacks of every auth function always run later, from the
 * loop, never before the function returns. */
int cg_auth_check_token(cg_auth *a, const char *tok, size_t len,
                        cg_auth_cb cb, void *data);

/* Forget a revoked token (called by the registry on an "L" push). */
void cg_auth_forget(cg_auth *a, const char *token_hash);

/* Create a user. addr is the client address, as for login. Returns at
 * once (no callback) CG_E_INVAL for a name cg_auth_name_refused() refuses
 * or a password outside 8-128 bytes, CG_E_STORE, CG_E_NOMEM. Every
 * attempt counts against the registration limit (config register_*);
 * over it, or when too many registrations wait for their password hash,
 * the callback gets CG_E_LIMIT with who->retry_after_s. Else CG_E_EXISTS
 * for a taken name, or 0 with who's uid and name. */
int cg_auth_register(cg_auth *a, const char *name, size_t name_len,
                     const char *password, size_t pw_len, const char *addr,
                     cg_auth_cb cb, void *data);

/* Check name and password and make a token. addr is the client address
 * (cg_request_client_addr(): X-Forwarded-For only from trusted proxies).
 * Failed logins are limited per (account, address), per address and, far
 * more loosely, per account, each in a fixed window (config login_*);
 * over a limit the callback gets CG_E_LIMIT with who->retry_after_s, and
 * nothing is checked. Returns at once (no callback) CG_E_AUTH for a name
 * that cannot exist or a password over 128 bytes (neither counts as a
 * failure), CG_E_STORE when Redis is down, or CG_E_NOMEM. */
int cg_auth_login(cg_auth *a, const char *name, size_t name_len,
                  const char *password, size_t pw_len, const char *addr,
                  cg_auth_cb cb, void *data);

/* Revoke the token and publish "L<hash>" to its user's channel so every
 * node closes the token's live connections. */
int cg_auth_logout(cg_auth *a, const char *tok, size_t len, cg_auth_cb cb, void *data);

/* Look a user up by uid (all digits) or by name. who->disabled tells
 * whether the user is disabled. */
int cg_auth_lookup(cg_auth *a, const char *uid_or_name, size_t len,
                   cg_auth_cb cb, void *data);

/* ---- the backend API's calls (auth_admin.c; PROTOCOL.md section 8) ----
 * None is limited like register and login: the backend API limits its
 * keys itself. who names the user: a uid (all digits) or a name, as for
 * cg_auth_lookup(); an unknown one is CG_E_NOTFOUND. actor (the API key's
 * name) is only for the log lines. */

/* Revoke every app token (JWT) whose jti is jti (1..256 bytes), until
 * exp_s (the tokens' exp, seconds) plus jwt_leeway_s: they are refused by
 * every later check on every node. Sessions already connected with such a
 * token are not closed. Returns at once CG_E_INVAL for a bad jti.
 * Callback: 0. */
int cg_auth_revoke_jti(cg_auth *a, const char *jti, size_t len, int64_t exp_s,
                       const char *actor, cg_auth_cb cb, void *data);

/* Create a user with the name rules of register; pw may be NULL (pw_len
 * 0): the user then cannot log in with a password, only with minted or
 * app tokens. Returns at once CG_E_INVAL for a refused name or a password
 * outside 8-128 bytes. Callback: 0 (who's uid and name), CG_E_EXISTS. */
int cg_auth_create_user(cg_auth *a, const char *name, size_t name_len,
                        const char *pw, size_t pw_len, const char *actor,
                        cg_auth_cb cb, void *data);

/* Disable (disabled 1) or enable (0) a user. Disabling refuses the user's
 * logins (CG_E_FORBIDDEN after a right password) and every token issued
 * before it, for good (enabling does not bring them back), and closes
 * the user's sessions on every node (a K push record). */
int cg_auth_set_disabled(cg_auth *a, const char *who, size_t len, int disabled,
                         const char *actor, cg_auth_cb cb, void *data);

/* Delete a user: closes its sessions on every node, UNLINKs its keys (the
 * record, the inbox and its pending set, the sync counter: Redis frees a
 * large one off its main thread) and frees the name for a new
 * registration (a new user gets a new uid). Its tokens are refused from
 * then on: their user is gone. */
int cg_auth_delete_user(cg_auth *a, const char *who, size_t len, const char *actor,
                        cg_auth_cb cb, void *data);

/* A login token for the user, as login makes it, valid ttl_s seconds
 * (0: token_ttl_s; never longer). CG_E_FORBIDDEN for a disabled user.
 * The callback's token is the new token. */
int cg_auth_mint(cg_auth *a, const char *who, size_t len, int64_t ttl_s,
                 const char *actor, cg_auth_cb cb, void *data);

#endif
