/* auth.c - users, passwords and login tokens (PROTOCOL.md section 1).
 *
 * Every operation is a small chain of asynchronous steps carried by one
 * heap "op" (struct auth_op): Redis commands through the store, and
 * password work on libuv's thread pool so the loop never hashes:
 *
 *   register: EXISTS name -> [pool] hash -> INCR cg:uid -> HSET user +
 *             SET name NX (pipelined) -> 201 | DEL user -> 409
 *   login:    GET name -> HMGET user name pw -> [pool] verify -> SET token
 *   check:    GET cg:tok:<sha256>
 *   logout:   GET token -> DEL token + PUBLISH "L<hash>" to the user
 *   lookup:   [GET name] -> HGET user name -> PUBSUB NUMSUB (online)
 *
 * Nothing secret is kept longer than needed: passwords are wiped after
 * hashing, tokens are never logged, Redis stores only SHA-256 of a token.
 * The auth object stays alive until its last op finishes, so shutdown can
 * destroy it with ops in flight: they complete with CG_E_CLOSED.
 *
 * The node also remembers tokens it knows are invalid (revoked here or
 * elsewhere, or looked up and not found) in a small direct-mapped cache,
 * so the WebSocket handshake can refuse them synchronously. */
#include "fmacros.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hiredis/hiredis.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <uv.h>

#include "chatgate/auth.h"
#include "chatgate/common.h"
#include "chatgate/config.h"
#include "chatgate/log.h"
#include "chatgate/metrics.h"
#include "chatgate/store.h"

#define SALT_BYTES   16
#define HASH_BYTES   32
#define PW_MIN       8
#define PW_MAX       128
/* Known-invalid tokens remembered per node: 1024 x ~72 bytes. */
#define BAD_SLOTS    1024
#define BAD_KEEP_MS  (10 * 60 * 1000)
/* Login attempts: per account and per address, a token bucket refilled at
 * LOGIN_RATE per second up to LOGIN_BURST (brute force slows to a crawl,
 * a person mistyping is never blocked). */
#define LIMIT_SLOTS  4096
#define LOGIN_BURST  10.0
#define LOGIN_RATE   0.2

struct bad_token {
    char     hash[CG_TOKEN_HASH_LEN + 1];
    uint64_t until_ms;
};

struct login_bucket {
    uint64_t key;          /* hash of "u:<name>" or "a:<addr>"; 0 = free */
    double   tokens;
    uint64_t last_ms;
};

struct cg_auth {
    uv_loop_t              *loop;
    const struct cg_config *cfg;
    cg_store               *store;
    struct cg_metrics      *metrics;
    unsigned                ops;       /* in flight */
    int                     closing;
    struct bad_token        bad[BAD_SLOTS];
    struct login_bucket     limits[LIMIT_SLOTS];
};

enum op_kind { OP_REGISTER, OP_LOGIN, OP_CHECK, OP_LOGOUT, OP_LOOKUP };

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
};

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

static void
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

static uint64_t
fnv1a(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h ? h : 1;
}

static void
lower_name(const char *name, size_t len, char *out)
{
    for (size_t i = 0; i < len; i++)
        out[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] | 0x20 : name[i]);
    out[len] = '\0';
}

/* ---- the known-invalid token cache --------------------------------------- */

static struct bad_token *
bad_slot(cg_auth *a, const char *hash)
{
    return &a->bad[fnv1a(hash, CG_TOKEN_HASH_LEN) % BAD_SLOTS];
}

static void
remember_bad(cg_auth *a, const char *hash)
{
    struct bad_token *b = bad_slot(a, hash);
    memcpy(b->hash, hash, CG_TOKEN_HASH_LEN + 1);
    b->until_ms = cg_mono_ms() + BAD_KEEP_MS;
}

void
cg_auth_forget(cg_auth *a, const char *token_hash)
{
    if (strlen(token_hash) == CG_TOKEN_HASH_LEN)
        remember_bad(a, token_hash);
}

int
cg_auth_token_peek(cg_auth *a, const char *tok, size_t len)
{
    char hash[CG_TOKEN_HASH_LEN + 1];
    struct bad_token *b;

    if (!cg_auth_token_wellformed(tok, len))
        return -1;
    cg_auth_token_hash(tok, len, hash);
    b = bad_slot(a, hash);
    if (b->until_ms > cg_mono_ms() && strcmp(b->hash, hash) == 0)
        return -1;
    return 0;
}

/* ---- login rate limit ------------------------------------------------------ */

/* Take one attempt from the bucket of key; 0 if allowed, -1 if limited. */
static int
limit_take(cg_auth *a, const char *prefix, const char *what)
{
    char key[128];
    int n = snprintf(key, sizeof key, "%s%s", prefix, what);
    uint64_t k = fnv1a(key, n > 0 ? (size_t)n : 0), now = cg_mono_ms();
    struct login_bucket *b = &a->limits[k % LIMIT_SLOTS];

    if (b->key != k) {               /* new or evicted: start full */
        b->key = k;
        b->tokens = LOGIN_BURST;
        b->last_ms = now;
    }
    b->tokens += (double)(now - b->last_ms) / 1000.0 * LOGIN_RATE;
    if (b->tokens > LOGIN_BURST)
        b->tokens = LOGIN_BURST;
    b->last_ms = now;
    if (b->tokens < 1.0)
        return -1;
    b->tokens -= 1.0;
    return 0;
}

/* ---- password hashing (runs on the thread pool) --------------------------- */

static int
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

static void
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

static void
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

/* ---- op plumbing ----------------------------------------------------------- */

static struct auth_op *
op_create(cg_auth *a, enum op_kind kind, cg_auth_cb cb, void *data)
{
    struct auth_op *op = cg_calloc(1, sizeof *op);

    if (op == NULL)
        return NULL;
    op->a = a;
    op->kind = kind;
    op->cb = cb;
    op->data = data;
    op->work.data = op;
    a->ops++;
    return op;
}

/* Finish op: call its callback exactly once, then free it (and the auth
 * object, if it was destroyed meanwhile and this was its last op). */
static void
op_finish(struct auth_op *op, int err)
{
    cg_auth *a = op->a;

    if (a->closing && err == 0)
        err = CG_E_CLOSED;
    op->cb(err, err == 0 ? &op->who : NULL,
           err == 0 && op->token[0] ? op->token : NULL, op->data);
    explicit_bzero(op, sizeof *op);
    cg_free(op);
    if (--a->ops == 0 && a->closing)
        cg_free(a);
}

static void step(struct auth_op *op, redisReply *r, int err);

static void
on_reply(redisReply *r, int err, void *data)
{
    step(data, r, err);
}

/* Send a command for op; on a synchronous failure finish the op. */
static void
cmd(struct auth_op *op, int argc, const char **argv)
{
    size_t lens[8];

    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    if (op->a->closing) {
        op_finish(op, CG_E_CLOSED);
        return;
    }
    if (cg_store_command(op->a->store, argc, argv, lens, on_reply, op) < 0)
        op_finish(op, CG_E_STORE);
}

static void
on_work_done(uv_work_t *w, int status)
{
    struct auth_op *op = w->data;

    explicit_bzero(op->pw, sizeof op->pw);
    step(op, NULL, status < 0 ? CG_E_CLOSED : op->err);
}

static void
pool(struct auth_op *op, uv_work_cb fn)
{
    if (uv_queue_work(op->a->loop, &op->work, fn, on_work_done) < 0)
        op_finish(op, CG_E_STORE);
}

/* Send op's first command. On failure the op is dropped without its
 * callback (the caller returns the error instead: STYLE.md 3). */
static int
op_start(struct auth_op *op, int argc, const char **argv)
{
    cg_auth *a = op->a;
    size_t lens[4];

    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    if (cg_store_command(a->store, argc, argv, lens, on_reply, op) == 0)
        return 0;
    explicit_bzero(op, sizeof *op);
    cg_free(op);
    a->ops--;
    return CG_E_STORE;
}

static void
key_name(char *buf, size_t cap, const char *lname)
{
    snprintf(buf, cap, "cg:name:%s", lname);
}

static void
key_user(char *buf, size_t cap, uint64_t uid)
{
    cg_store_key(buf, cap, uid, "user");
}

static void
key_token(char *buf, size_t cap, const char *hash)
{
    snprintf(buf, cap, "cg:tok:%s", hash);
}

static int
reply_u64(const redisReply *r, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (r == NULL)
        return -1;
    if (r->type == REDIS_REPLY_INTEGER) {
        if (r->integer <= 0)
            return -1;
        *out = (uint64_t)r->integer;
        return 0;
    }
    if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->str[0] == '-')
        return -1;
    v = strtoull(r->str, &end, 10);
    if (*end != '\0' || v == 0)
        return -1;
    *out = v;
    return 0;
}

/* "uid:expires:name" token record. */
static int
parse_token_record(const redisReply *r, struct cg_principal *who)
{
    char *end, *end2;

    if (r == NULL || r->type != REDIS_REPLY_STRING)
        return -1;
    who->uid = strtoull(r->str, &end, 10);
    if (*end != ':' || who->uid == 0)
        return -1;
    who->expires_ms = strtoll(end + 1, &end2, 10);
    if (*end2 != ':' || strlen(end2 + 1) > CG_NAME_MAX)
        return -1;
    snprintf(who->name, sizeof who->name, "%s", end2 + 1);
    return 0;
}

/* The store failed or Redis answered with an error: no usable reply. */
static int
no_reply(const redisReply *r, int err)
{
    return err < 0 || r == NULL || r->type == REDIS_REPLY_ERROR;
}

/* ---- the steps of each operation -------------------------------------------- */

static void
step_register(struct auth_op *op, redisReply *r, int err)
{
    char k1[96], k2[96], uid[24], now[24];

    switch (op->step++) {
    case 0: /* EXISTS name */
        if (err < 0 || r == NULL || r->type != REDIS_REPLY_INTEGER)
            goto fail_store;
        if (r->integer != 0)
            return op_finish(op, CG_E_EXISTS);
        return pool(op, work_hash);
    case 1: /* hashed */
        if (err < 0)
            return op_finish(op, err);
        return cmd(op, 2, (const char *[]){ "INCR", "cg:uid" });
    case 2: /* INCR -> uid; HSET user then SET name NX, pipelined */
        if (err < 0 || reply_u64(r, &op->who.uid) < 0)
            goto fail_store;
        key_user(k1, sizeof k1, op->who.uid);
        key_name(k2, sizeof k2, op->lname);
        snprintf(uid, sizeof uid, "%llu", (unsigned long long)op->who.uid);
        snprintf(now, sizeof now, "%lld", (long long)cg_now_ms());
        op->step = 10;
        {
            const char *hset[] = { "HSET", k1, "name", op->who.name, "pw", op->record,
                                   "created", now };
            size_t l[8];
            for (int i = 0; i < 8; i++)
                l[i] = strlen(hset[i]);
            if (cg_store_command(op->a->store, 8, hset, l, NULL, NULL) < 0)
                goto fail_store;
        }
        return cmd(op, 4, (const char *[]){ "SET", k2, uid, "NX" });
    case 10: /* SET name NX */
        if (no_reply(r, err))
            goto fail_store;
        if (r->type == REDIS_REPLY_NIL) {
            key_user(k1, sizeof k1, op->who.uid);
            op->step = 20;
            return cmd(op, 2, (const char *[]){ "DEL", k1 });
        }
        cg_log(CG_LOG_INFO, "registered user %s (uid %llu)", op->who.name,
               (unsigned long long)op->who.uid);
        return op_finish(op, 0);
    case 20: /* lost the race for the name */
        return op_finish(op, CG_E_EXISTS);
    }
    return;
fail_store:
    op_finish(op, err < 0 ? err : CG_E_STORE);
}

static void
step_login(struct auth_op *op, redisReply *r, int err)
{
    char k[96], val[96], ttl[24], hash[CG_TOKEN_HASH_LEN + 1];
    unsigned char raw[32];

    switch (op->step++) {
    case 0: /* GET name -> uid */
        if (no_reply(r, err))
            goto fail_store;
        if (r->type == REDIS_REPLY_NIL || reply_u64(r, &op->who.uid) < 0)
            return op_finish(op, CG_E_AUTH);
        key_user(k, sizeof k, op->who.uid);
        return cmd(op, 4, (const char *[]){ "HMGET", k, "name", "pw" });
    case 1: /* HMGET name pw */
        if (err < 0 || r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2)
            goto fail_store;
        if (r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[1]->type != REDIS_REPLY_STRING ||
            r->element[0]->len > CG_NAME_MAX ||
            r->element[1]->len >= sizeof op->record)
            return op_finish(op, CG_E_AUTH);
        memcpy(op->who.name, r->element[0]->str, r->element[0]->len + 1);
        memcpy(op->record, r->element[1]->str, r->element[1]->len + 1);
        return pool(op, work_verify);
    case 2: /* verified: make and store a token */
        if (err < 0)
            return op_finish(op, err);
        if (RAND_bytes(raw, sizeof raw) != 1)
            return op_finish(op, CG_E_STORE);
        b64url(raw, sizeof raw, op->token);
        explicit_bzero(raw, sizeof raw);
        cg_auth_token_hash(op->token, CG_TOKEN_LEN, hash);
        op->who.expires_ms = cg_now_ms() + op->a->cfg->token_ttl_s * 1000;
        key_token(k, sizeof k, hash);
        snprintf(val, sizeof val, "%llu:%lld:%s", (unsigned long long)op->who.uid,
                 (long long)op->who.expires_ms, op->who.name);
        snprintf(ttl, sizeof ttl, "%lld", (long long)op->a->cfg->token_ttl_s * 1000);
        return cmd(op, 5, (const char *[]){ "SET", k, val, "PX", ttl });
    case 3:
        if (no_reply(r, err))
            goto fail_store;
        cg_log(CG_LOG_INFO, "user %s (uid %llu) logged in", op->who.name,
               (unsigned long long)op->who.uid);
        return op_finish(op, 0);
    }
    return;
fail_store:
    op_finish(op, err < 0 ? err : CG_E_STORE);
}

static void
step_check(struct auth_op *op, redisReply *r, int err)
{
    if (no_reply(r, err))
        return op_finish(op, err < 0 ? err : CG_E_STORE);
    if (parse_token_record(r, &op->who) < 0 || op->who.expires_ms <= cg_now_ms()) {
        remember_bad(op->a, op->who.token_hash);
        op->a->metrics->auth_failures++;
        return op_finish(op, CG_E_AUTH);
    }
    op_finish(op, 0);
}

static void
step_logout(struct auth_op *op, redisReply *r, int err)
{
    char k[96], ch[48], msg[2 + CG_TOKEN_HASH_LEN];

    switch (op->step++) {
    case 0:
        if (no_reply(r, err))
            goto fail_store;
        if (parse_token_record(r, &op->who) < 0)
            return op_finish(op, CG_E_AUTH);
        key_token(k, sizeof k, op->who.token_hash);
        {
            const char *del[] = { "DEL", k };
            size_t l[] = { 3, strlen(k) };
            if (cg_store_command(op->a->store, 2, del, l, NULL, NULL) < 0)
                goto fail_store;
        }
        cg_store_channel(ch, sizeof ch, op->who.uid);
        snprintf(msg, sizeof msg, "L%s", op->who.token_hash);
        remember_bad(op->a, op->who.token_hash);
        return cmd(op, 3, (const char *[]){ "PUBLISH", ch, msg });
    case 1:
        if (no_reply(r, err))
            goto fail_store;
        cg_log(CG_LOG_INFO, "user %s (uid %llu) logged out", op->who.name,
               (unsigned long long)op->who.uid);
        return op_finish(op, 0);
    }
    return;
fail_store:
    op_finish(op, err < 0 ? err : CG_E_STORE);
}

static void
step_lookup(struct auth_op *op, redisReply *r, int err)
{
    char k[96], ch[48];

    switch (op->step++) {
    case 0: /* GET name -> uid (skipped when looking up by uid) */
        if (no_reply(r, err))
            goto fail_store;
        if (reply_u64(r, &op->who.uid) < 0)
            return op_finish(op, CG_E_NOTFOUND);
        /* fall through */
    case 1:
        op->step = 2;
        key_user(k, sizeof k, op->who.uid);
        return cmd(op, 3, (const char *[]){ "HGET", k, "name" });
    case 2:
        if (no_reply(r, err))
            goto fail_store;
        if (r->type != REDIS_REPLY_STRING || r->len > CG_NAME_MAX)
            return op_finish(op, CG_E_NOTFOUND);
        memcpy(op->who.name, r->str, r->len + 1);
        cg_store_channel(ch, sizeof ch, op->who.uid);
        return cmd(op, 3, (const char *[]){ "PUBSUB", "NUMSUB", ch });
    case 3: /* [channel, count] */
        if (err < 0 || r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[1]->type != REDIS_REPLY_INTEGER)
            goto fail_store;
        op->who.online = (int)r->element[1]->integer;
        return op_finish(op, 0);
    }
    return;
fail_store:
    op_finish(op, err < 0 ? err : CG_E_STORE);
}

static void
step(struct auth_op *op, redisReply *r, int err)
{
    switch (op->kind) {
    case OP_REGISTER: step_register(op, r, err); break;
    case OP_LOGIN:    step_login(op, r, err); break;
    case OP_CHECK:    step_check(op, r, err); break;
    case OP_LOGOUT:   step_logout(op, r, err); break;
    case OP_LOOKUP:   step_lookup(op, r, err); break;
    }
}

/* ---- public API ---------------------------------------------------------------- */

int
cg_auth_create(uv_loop_t *loop, const struct cg_config *cfg, cg_store *store,
               struct cg_metrics *metrics, cg_auth **out)
{
    cg_auth *a = cg_calloc(1, sizeof *a);

    if (a == NULL)
        return CG_E_NOMEM;
    a->loop = loop;
    a->cfg = cfg;
    a->store = store;
    a->metrics = metrics;
    *out = a;
    return 0;
}

void
cg_auth_destroy(cg_auth *a)
{
    if (a == NULL)
        return;
    a->closing = 1;
    if (a->ops == 0)
        cg_free(a);
}

int
cg_auth_check_token(cg_auth *a, const char *tok, size_t len, cg_auth_cb cb, void *data)
{
    struct auth_op *op;
    char k[96];

    if (cg_auth_token_peek(a, tok, len) < 0) {
        a->metrics->auth_failures++;
        return CG_E_AUTH;
    }
    if ((op = op_create(a, OP_CHECK, cb, data)) == NULL)
        return CG_E_NOMEM;
    cg_auth_token_hash(tok, len, op->who.token_hash);
    key_token(k, sizeof k, op->who.token_hash);
    return op_start(op, 2, (const char *[]){ "GET", k });
}

int
cg_auth_register(cg_auth *a, const char *name, size_t name_len, const char *password,
                 size_t pw_len, cg_auth_cb cb, void *data)
{
    struct auth_op *op;
    char k[96];

    if (!cg_auth_valid_name(name, name_len) || pw_len < PW_MIN || pw_len > PW_MAX ||
        memchr(password, '\0', pw_len))
        return CG_E_INVAL;
    if ((op = op_create(a, OP_REGISTER, cb, data)) == NULL)
        return CG_E_NOMEM;
    memcpy(op->who.name, name, name_len);
    lower_name(name, name_len, op->lname);
    memcpy(op->pw, password, pw_len);
    op->pw_len = pw_len;
    key_name(k, sizeof k, op->lname);
    return op_start(op, 2, (const char *[]){ "EXISTS", k });
}

int
cg_auth_login(cg_auth *a, const char *name, size_t name_len, const char *password,
              size_t pw_len, const char *addr, cg_auth_cb cb, void *data)
{
    struct auth_op *op;
    char k[96], lname[CG_NAME_MAX + 1];

    if (!cg_auth_valid_name(name, name_len) || pw_len > PW_MAX)
        return CG_E_AUTH;
    lower_name(name, name_len, lname);
    if (limit_take(a, "u:", lname) < 0 || limit_take(a, "a:", addr ? addr : "") < 0) {
        a->metrics->login_limited++;
        cg_log(CG_LOG_WARN, "login for %s from %s rate-limited (too many attempts)",
               lname, addr ? addr : "?");
        return CG_E_LIMIT;
    }
    if ((op = op_create(a, OP_LOGIN, cb, data)) == NULL)
        return CG_E_NOMEM;
    memcpy(op->lname, lname, sizeof lname);
    memcpy(op->pw, password, pw_len);
    op->pw_len = pw_len;
    key_name(k, sizeof k, op->lname);
    return op_start(op, 2, (const char *[]){ "GET", k });
}

int
cg_auth_logout(cg_auth *a, const char *tok, size_t len, cg_auth_cb cb, void *data)
{
    struct auth_op *op;
    char k[96];

    if (!cg_auth_token_wellformed(tok, len))
        return CG_E_AUTH;
    if ((op = op_create(a, OP_LOGOUT, cb, data)) == NULL)
        return CG_E_NOMEM;
    cg_auth_token_hash(tok, len, op->who.token_hash);
    key_token(k, sizeof k, op->who.token_hash);
    return op_start(op, 2, (const char *[]){ "GET", k });
}

int
cg_auth_lookup(cg_auth *a, const char *who, size_t len, cg_auth_cb cb, void *data)
{
    struct auth_op *op;
    char k[96], lname[CG_NAME_MAX + 1];
    int digits = len > 0 && len <= 19;

    for (size_t i = 0; digits && i < len; i++)
        digits = who[i] >= '0' && who[i] <= '9';
    if (!digits && !cg_auth_valid_name(who, len))
        return CG_E_NOTFOUND;
    if ((op = op_create(a, OP_LOOKUP, cb, data)) == NULL)
        return CG_E_NOMEM;
    if (!digits) {
        lower_name(who, len, lname);
        key_name(k, sizeof k, lname);
        return op_start(op, 2, (const char *[]){ "GET", k });
    }
    /* By uid: skip the name step and start at HGET. */
    op->who.uid = strtoull(who, NULL, 10);
    op->step = 2;
    key_user(k, sizeof k, op->who.uid);
    return op_start(op, 3, (const char *[]){ "HGET", k, "name" });
}
