/* auth_internal.h - what the files of auth share: the auth object and
 * its operations (auth.c: the steps of each operation and the public
 * API), the password and token primitives (auth_password.c), and the
 * login and registration limits (auth_limit.c). Not for use outside
 * gateway/chat/. */
#ifndef CG_AUTH_INTERNAL_H
#define CG_AUTH_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "chat/auth.h"
#include "core/config.h"
#include "core/jwt.h"
#include "core/metrics.h"
#include "store/store.h"

#define SALT_BYTES   16
#define HASH_BYTES   32
#define PW_MIN       8
#define PW_MAX       128
/* Known-invalid tokens remembered per node: 1024 x ~72 bytes. */
#define BAD_SLOTS    1024
#define BAD_KEEP_MS  (10 * 60 * 1000)
/* "cg:login:ua:" + a 32-byte name + ':' + a 64-byte address key. */
#define LIMIT_KEY_MAX 128
/* Registration hashes on the thread pool at once (libuv's pool has 4
 * threads unless UV_THREADPOOL_SIZE says otherwise: logins keep the
 * rest), and how many may wait for one. */
#define REGISTER_HASHING   2
#define REGISTER_QUEUE_MAX 256

struct bad_token {
    char     hash[CG_TOKEN_HASH_LEN + 1];
    uint64_t until_ms;
};

/* The login limit's buckets, narrowest first (the order they are taken). */
enum limit_bucket { LB_ACCOUNT_ADDR, LB_ADDR, LB_ACCOUNT, LB_N };

struct limit_rule {
    const char *option;      /* the config option of max, for logs */
    int64_t     max;         /* failures allowed per window */
    int64_t     window_s;
};

struct cg_auth {
    uv_loop_t              *loop;
    const struct cg_config *cfg;
    cg_store               *store;
    struct cg_metrics      *metrics;
    unsigned                ops;       /* in flight */
    int                     closing;
    struct bad_token        bad[BAD_SLOTS];
    struct limit_rule       rules[LB_N];
    /* registrations: hashing on the pool, and waiting to (a FIFO) */
    unsigned                reg_hashing;
    size_t                  reg_waiting;
    struct auth_op         *reg_head, *reg_tail;
    /* tokens issued by the app (auth_jwt.c) */
    struct cg_jwt_rules     jwt;
    int                     jwt_on;    /* a secret or a public key is set */
};

enum op_kind { OP_REGISTER, OP_LOGIN, OP_CHECK, OP_LOGOUT, OP_LOOKUP, OP_ADMIN, OP_JWT,
               OP_REVOKE };

/* What an OP_ADMIN does once it found its user (auth_admin.c). */
enum admin_action { ADM_DISABLE, ADM_ENABLE, ADM_DELETE, ADM_MINT };

struct auth_op {
    cg_auth            *a;
    enum op_kind        kind;
    cg_auth_cb          cb;
    void               *data;
    uv_work_t           work;
    int                 step;
    int                 err;           /* result of the pool work */
    struct cg_principal who;
    char                lname[CG_NAME_MAX + 1];  /* lower-cased name */
    char                pw[PW_MAX + 1];
    size_t              pw_len;
    char                record[160];   /* "pbkdf2-sha256$it$salt$hash" */
    char                token[CG_TOKEN_LEN + 1];
    /* login only */
    char                addr[64];      /* cg_proxies_limit_key() of the client */
    struct auth_op     *reg_next;      /* register: the queue to the pool */
    int                 decoy;         /* login: verifying the decoy record */
    int                 reserved;      /* limit buckets holding a count of this
                                          attempt (given back unless it fails
                                          on the password) */
    long long           count;         /* the last bucket's count after INCR */
    int                 disabled;      /* login: the user is disabled */
    int64_t             issued_ms;     /* check: when the token was made */
    int                 no_pw;         /* register: the backend's, no password */
    enum admin_action   action;        /* OP_ADMIN */
    int64_t             ttl_ms;        /* OP_ADMIN mint */
    char                actor[40];     /* OP_ADMIN, OP_REVOKE: the API key's name
                                          (logs) */
    int                 jwt_create;    /* OP_JWT: create the user if unknown */
};

/* Login op steps: 0 .. LB_N-1 take a count from that bucket. */
enum {
    LOGIN_PTTL = LB_N,     /* a bucket refused: its PTTL -> Retry-After */
    LOGIN_NAME,            /* GET name -> uid */
    LOGIN_RECORD,          /* HMGET name pw */
    LOGIN_VERIFIED,        /* the pool checked the password */
    LOGIN_TOKEN,           /* SET token */
};

/* Register op steps (op->step++ moves to the next one). */
enum {
    REG_LIMIT_ADDR = 30,   /* INCR cg:reg:a:<addr> */
    REG_LIMIT_ALL,         /* INCR cg:reg:all */
    REG_PTTL,              /* a window refused: its PTTL -> Retry-After */
};

/* auth.c: running an operation's steps */
struct auth_op *op_create(cg_auth *a, enum op_kind kind, cg_auth_cb cb, void *data);
int op_start(struct auth_op *op, int argc, const char **argv);
void key_user(char *buf, size_t cap, uint64_t uid);
void key_token(char *buf, size_t cap, const char *hash);
int reply_u64(const struct cg_store_reply *r, uint64_t *out);
void remember_bad(cg_auth *a, const char *hash);
/* Make a token for op->who valid ttl_ms, SET it (the next step gets the
 * reply); op->token holds it. */
void token_issue(struct auth_op *op, int64_t ttl_ms);
/* 1 when the reply of HMGET user name disabled revoked_before refuses a
 * token issued at issued_ms: no such user, disabled, or revoked since. */
int user_state_refuses(const struct cg_store_reply *r, int64_t issued_ms);
/* auth_admin.c */
void step_admin(struct auth_op *op, const struct cg_store_reply *r, int err);
void op_finish(struct auth_op *op, int err);
int cmd_sent(struct auth_op *op, int argc, const char **argv);
void cmd(struct auth_op *op, int argc, const char **argv);
void pool(struct auth_op *op, uv_work_cb fn);
void key_name(char *buf, size_t cap, const char *lname);
int no_reply(const struct cg_store_reply *r, int err);
void step(struct auth_op *op, const struct cg_store_reply *r, int err);

/* auth_jwt.c: tokens issued by the app. jwt_check() and jwt_peek() are
 * cg_auth_check_token() and cg_auth_token_peek() for a token with a JWT's
 * shape; step_jwt() runs OP_JWT and OP_REVOKE. */
void jwt_rules_init(cg_auth *a, const struct cg_config *cfg);
int  jwt_check(cg_auth *a, const char *tok, size_t len, cg_auth_cb cb, void *data);
int  jwt_peek(cg_auth *a, const char *tok, size_t len);
void step_jwt(struct auth_op *op, const struct cg_store_reply *r, int err);

/* auth_password.c: names, tokens, password hashes (the work functions run
 * on the thread pool) */
void b64url(const unsigned char *in, size_t n, char *out);
uint64_t fnv1a(const char *s, size_t n);
void lower_name(const char *name, size_t len, char *out);
int pbkdf2(const char *pw, size_t pw_len, const unsigned char *salt, size_t salt_len,    int iterations, unsigned char *out);
void work_hash(uv_work_t *w);
void work_verify(uv_work_t *w);

/* auth_limit.c: the login and registration limits (auth.c's top comment) */
void limit_key(const struct auth_op *op, enum limit_bucket b, char *buf, size_t cap);
void on_expire_reply(const struct cg_store_reply *r, int err, void *data);
void send_quiet(cg_auth *a, int argc, const char **argv, cg_store_reply_cb cb);
void window_start(cg_auth *a, const char *k, int64_t window_s);
void reg_window_start(struct auth_op *op, int by_addr, const char *k);
void limit_expire(struct auth_op *op, enum limit_bucket b, const char *k);
void limit_take(struct auth_op *op, enum limit_bucket b);
void limit_give_back(struct auth_op *op);
void step_limit(struct auth_op *op, const struct cg_store_reply *r, int err);
void limit_rules_init(cg_auth *a, const struct cg_config *cfg);
void reg_limit_key(const struct auth_op *op, int by_addr, char *buf, size_t cap);
void reg_limit_take(struct auth_op *op, int by_addr);
int reg_over_limit(struct auth_op *op, int by_addr, long long count);

#endif
