/* api_keys.h - the backend API's keys (option api_keys): who may call
 * {base}/api/backend/..., and with which scopes. Pure apart from reading
 * the key file once, at configuration time: no lws, no Redis.
 *
 * Grammar of the option's value: entries "name:scope[,scope...]:secret",
 * separated by ';' or new lines; or "@/path/to/file" naming a file of such
 * entries, one a line, where blank lines and lines starting with '#' are
 * ignored.
 *
 *   name    1-32 of [A-Za-z0-9_.-], unique: the key's name in logs (it
 *           ends at the first ':'; the secret starts after the last)
 *   scope   users:write, tokens:mint, tokens:revoke, pending:read, pending:write (PROTOCOL.md section 8); at least one
 *   secret  16-256 of [A-Za-z0-9._~+/=-]: what a caller sends as
 *           "Authorization: Bearer <secret>"
 *
 * Only the SHA-256 of each secret is kept; a presented secret is hashed
 * and compared with every key's hash in constant time (CRYPTO_memcmp, no
 * early exit), so the answer's timing tells nothing about a key. */
#ifndef CG_API_KEYS_H
#define CG_API_KEYS_H

#include <stddef.h>

#define CG_API_KEYS_MAX   64
#define CG_API_NAME_MAX   32
#define CG_API_SECRET_MIN 16
#define CG_API_SECRET_MAX 256

/* The scopes, one bit each. */
enum cg_api_scope {
    CG_SCOPE_USERS_WRITE   = 1u << 0,
    CG_SCOPE_TOKENS_MINT   = 1u << 1,
    CG_SCOPE_PENDING_READ  = 1u << 3,
    CG_SCOPE_PENDING_WRITE = 1u << 4,
    CG_SCOPE_TOKENS_REVOKE = 1u << 5,
};

struct cg_api_key {
    char          name[CG_API_NAME_MAX + 1];
    unsigned      scopes;             /* enum cg_api_scope bits */
    unsigned char hash[32];           /* SHA-256 of the secret */
};

struct cg_api_keys {
    size_t            n;
    struct cg_api_key key[CG_API_KEYS_MAX];
};

/* Parse the option's value (see the top; "" is no key). Returns 0 with
 * *out (NULL for ""), CG_E_INVAL with the reason in why (cap bytes; it
 * never quotes a secret), or CG_E_NOMEM. */
int  cg_api_keys_parse(const char *v, struct cg_api_keys **out, char *why, size_t cap);
void cg_api_keys_destroy(struct cg_api_keys *k);

/* The key whose secret is secret[0..len), or NULL. Constant time in the
 * secret's bytes over every key (see the top). k may be NULL. */
const struct cg_api_key *cg_api_keys_find(const struct cg_api_keys *k,
                                          const char *secret, size_t len);

/* The index of key in k (for per-key state kept elsewhere). */
size_t cg_api_keys_index(const struct cg_api_keys *k, const struct cg_api_key *key);

/* A scope's name ("users:write"), or NULL for no single known bit. */
const char *cg_api_scope_name(unsigned scope);

#endif
