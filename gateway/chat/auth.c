/* auth.c - users, passwords and login tokens (PROTOCOL.md section 1).
 *
 * Every operation is a small chain of asynchronous steps carried by one
 * heap "op" (struct auth_op): Redis commands through the store, and
 * password work on libuv's thread pool so the loop never hashes:
 *
 *   register: EXISTS name -> [pool] hash -> INCR cg:uid -> HSET user +
 *             SET name NX (pipelined) -> 201 | DEL user -> 409
 *   login:    INCR x 3 (the login limit, below) -> GET name ->
 *             HMGET user name pw -> [pool] verify -> SET token
 *   check:    GET cg:tok:<sha256>  (a JWT the app signed: auth_jwt.c)
 *   logout:   GET token -> DEL token + PUBLISH "L<hash>" to the user
 *             (a push record, store/push_record.h)
 *   lookup:   [GET name] -> HGET user name -> PUBSUB NUMSUB (online)
 *
 * Nothing secret is kept longer than needed: passwords are wiped after
 * hashing, tokens are never logged, Redis stores only SHA-256 of a token.
 * The auth object stays alive until its last op finishes, so shutdown can
 * destroy it with ops in flight: they complete with CG_E_CLOSED.
 *
 * The node also remembers tokens it knows are invalid (revoked here or
 * elsewhere, or looked up and not found) in a small direct-mapped cache,
 * so the WebSocket handshake can refuse them synchronously.
 *
 * Login limit. Failed logins (a wrong password or an unknown name) are
 * counted in Redis, shared by every node, in three fixed windows checked
 * narrowest first (<addr> is cg_proxies_limit_key() of the client address
 * that proxies.c derives, so an IPv6 client counts by its /64):
 *
 *   bucket            key                          config
 *   account, address  cg:login:ua:<lname>:<addr>   login_account_addr_*
 *   address           cg:login:a:<addr>            login_addr_*
 *   account           cg:login:u:<lname>           login_account_*
 *
 * An attempt takes one count from each bucket in that order, one round
 * trip each (INCR; then PEXPIRE .. NX starts the window when the INCR made
 * the key, so every key expires), and stops at the first bucket over its
 * max: CG_E_LIMIT (HTTP 429) with who->retry_after_s from that key's PTTL.
 * An attempt refused by a narrow bucket never reaches a wider one, so an
 * attacker hammering an account from one address only fills its own
 * (account, address) bucket: the account's own bucket, which would lock
 * the owner out at every address, sees at most what that bucket lets
 * through (cg_auth_create() warns when the config lets one address fill
 * it). Every count taken is given back (DECR) unless the attempt fails on
 * the password or the name, so the buckets count failures only: a user
 * logging in often, or many users behind one NAT, are never limited.
 *
 * A login for a name that does not exist runs the same password hash as
 * one for a name that does (against a decoy record with the configured
 * rounds), so the answer's timing does not tell which names exist.
 *
 * Registration limit. Every registration attempt counts, in two fixed
 * windows checked in this order: cg:reg:a:<addr> (register_addr_*) and
 * cg:reg:all (register_*); over either, CG_E_LIMIT (HTTP 429) with
 * Retry-After. A registration's password hash then waits in this node's
 * own queue: at most REGISTER_HASHING of them run on libuv's thread pool
 * at once (REGISTER_QUEUE_MAX wait; beyond that CG_E_LIMIT, Retry-After
 * 1), so a burst of registrations never takes the pool threads that
 * logins need. */
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
#include "store/push_record.h"
#include "store/store.h"

/* ---- the known-invalid token cache --------------------------------------- */

static struct bad_token *
bad_slot(cg_auth *a, const char *hash)
{
    return &a->bad[fnv1a(hash, CG_TOKEN_HASH_LEN) % BAD_SLOTS];
}

void
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

    if (cg_jwt_shaped(tok, len))
        return jwt_peek(a, tok, len);
    if (!cg_auth_token_wellformed(tok, len))
        return -1;
    cg_auth_token_hash(tok, len, hash);
    b = bad_slot(a, hash);
    if (b->until_ms > cg_mono_ms() && strcmp(b->hash, hash) == 0)
        return -1;
    return 0;
}

/* ---- op plumbing ----------------------------------------------------------- */

struct auth_op *
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
 * object, if it was destroyed meanwhile and this was its last op). A login
 * that did not fail on the password gives its limit counts back first. */
void
op_finish(struct auth_op *op, int err)
{
    cg_auth *a = op->a;

    if (a->closing && err == 0)
        err = CG_E_CLOSED;
    if (err != CG_E_AUTH)
        limit_give_back(op);
    op->cb(err, err == 0 || err == CG_E_LIMIT ? &op->who : NULL,
           err == 0 && op->token[0] ? op->token : NULL, op->data);
    explicit_bzero(op, sizeof *op);
    cg_free(op);
    if (--a->ops == 0 && a->closing)
        cg_free(a);
}


static void
on_reply(const struct cg_store_reply *r, int err, void *data)
{
    step(data, r, err);
}

/* Send a command for op. On a synchronous failure finish the op (it is
 * gone then) and return -1. */
int
cmd_sent(struct auth_op *op, int argc, const char **argv)
{
    size_t lens[8];

    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    if (op->a->closing) {
        op_finish(op, CG_E_CLOSED);
        return -1;
    }
    if (cg_store_command(op->a->store, argc, argv, lens, on_reply, op) < 0) {
        op_finish(op, CG_E_STORE);
        return -1;
    }
    return 0;
}

void
cmd(struct auth_op *op, int argc, const char **argv)
{
    (void)cmd_sent(op, argc, argv);
}

static void reg_dispatch(cg_auth *a);

static void
on_work_done(uv_work_t *w, int status)
{
    struct auth_op *op = w->data;
    cg_auth *a = op->a;
    int reg = op->kind == OP_REGISTER;

    explicit_bzero(op->pw, sizeof op->pw);
    if (reg)
        a->reg_hashing--;
    a->ops++;                         /* hold a: op may be its last */
    step(op, NULL, status < 0 ? CG_E_CLOSED : op->err);
    if (reg && a->reg_head != NULL)
        reg_dispatch(a);
    if (--a->ops == 0 && a->closing)
        cg_free(a);
}

void
pool(struct auth_op *op, uv_work_cb fn)
{
    if (op->kind == OP_REGISTER)
        op->a->reg_hashing++;
    if (uv_queue_work(op->a->loop, &op->work, fn, on_work_done) < 0) {
        if (op->kind == OP_REGISTER)
            op->a->reg_hashing--;
        op_finish(op, CG_E_STORE);
    }
}

/* The first registration waiting for the pool, taken off the queue. */
static struct auth_op *
reg_pop(cg_auth *a)
{
    struct auth_op *op = a->reg_head;

    a->reg_head = op->reg_next;
    if (a->reg_head == NULL)
        a->reg_tail = NULL;
    a->reg_waiting--;
    op->reg_next = NULL;
    return op;
}

/* Start the registration hashes that may run now (see the top). */
static void
reg_dispatch(cg_auth *a)
{
    while (a->reg_head != NULL && a->reg_hashing < REGISTER_HASHING) {
        struct auth_op *op = reg_pop(a);

        if (a->closing)
            op_finish(op, CG_E_CLOSED);
        else
            pool(op, work_hash);
    }
}

/* Hash a registration's password when the registration queue lets it. */
static void
reg_enqueue(struct auth_op *op)
{
    cg_auth *a = op->a;

    if (a->reg_waiting >= REGISTER_QUEUE_MAX) {
        cg_log(CG_LOG_WARN, "registration of %s refused: %zu registrations already "
               "wait for a password hash; it answers 429", op->lname, a->reg_waiting);
        op->who.retry_after_s = 1;
        a->metrics->register_limited++;
        return op_finish(op, CG_E_LIMIT);
    }
    if (a->reg_tail != NULL)
        a->reg_tail->reg_next = op;
    else
        a->reg_head = op;
    a->reg_tail = op;
    a->reg_waiting++;
    reg_dispatch(a);
}

/* Send op's first command. On failure the op is dropped without its
 * callback (the caller returns the error instead: STYLE.md 3). */
int
op_start(struct auth_op *op, int argc, const char **argv)
{
    cg_auth *a = op->a;
    size_t lens[8];

    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    if (cg_store_command(a->store, argc, argv, lens, on_reply, op) == 0)
        return 0;
    explicit_bzero(op, sizeof *op);
    cg_free(op);
    a->ops--;
    return CG_E_STORE;
}

void
key_name(char *buf, size_t cap, const char *lname)
{
    snprintf(buf, cap, "cg:name:%s", lname);
}

void
key_user(char *buf, size_t cap, uint64_t uid)
{
    cg_store_key(buf, cap, uid, "user");
}

void
key_token(char *buf, size_t cap, const char *hash)
{
    snprintf(buf, cap, "cg:tok:%s", hash);
}

int
reply_u64(const struct cg_store_reply *r, uint64_t *out)
{
    const char *s;
    char *end;
    size_t len;
    unsigned long long v;

    if (r == NULL)
        return -1;
    if (cg_store_reply_type(r) == CG_STORE_REPLY_INTEGER) {
        if (cg_store_reply_integer(r) <= 0)
            return -1;
        *out = (uint64_t)cg_store_reply_integer(r);
        return 0;
    }
    s = cg_store_reply_str(r, &len);
    if (cg_store_reply_type(r) != CG_STORE_REPLY_STRING || len == 0 || s[0] == '-')
        return -1;
    v = strtoull(s, &end, 10);
    if (*end != '\0' || v == 0)
        return -1;
    *out = v;
    return 0;
}

/* The token record "uid:expires:name[:issued]" (issued: ms, written since
 * the backend API; a record without it counts as issued at 0, so that
 * disabling a user revokes it too). */
static int
parse_token_record(const struct cg_store_reply *r, struct cg_principal *who,
                   int64_t *issued_ms)
{
    char *end, *end2, *end3;
    const char *name, *colon;
    size_t nlen;

    if (cg_store_reply_type(r) != CG_STORE_REPLY_STRING)
        return -1;
    who->uid = strtoull(cg_store_reply_str(r, NULL), &end, 10);
    if (*end != ':' || who->uid == 0)
        return -1;
    who->expires_ms = strtoll(end + 1, &end2, 10);
    if (*end2 != ':')
        return -1;
    name = end2 + 1;
    colon = strchr(name, ':');
    nlen = colon ? (size_t)(colon - name) : strlen(name);
    if (nlen > CG_NAME_MAX)
        return -1;
    memcpy(who->name, name, nlen);
    who->name[nlen] = '\0';
    *issued_ms = 0;
    if (colon != NULL) {
        *issued_ms = strtoll(colon + 1, &end3, 10);
        if (*end3 != '\0')
            return -1;
    }
    return 0;
}

/* The store failed or Redis answered with an error: no usable reply. */
int
no_reply(const struct cg_store_reply *r, int err)
{
    return err < 0 || r == NULL || cg_store_reply_type(r) == CG_STORE_REPLY_ERROR;
}

/* ---- the steps of each operation -------------------------------------------- */
static void
step_register(struct auth_op *op, const struct cg_store_reply *r, int err)
{
    char k1[96], k2[96], uid[24], now[24];

    switch (op->step++) {
    case REG_LIMIT_ADDR:
    case REG_LIMIT_ALL:
        if (no_reply(r, err) || cg_store_reply_type(r) != CG_STORE_REPLY_INTEGER)
            goto fail_store;
        if (reg_over_limit(op, op->step - 1 == REG_LIMIT_ADDR, cg_store_reply_integer(r)))
            return;
        if (op->step == REG_LIMIT_ALL)
            return reg_limit_take(op, 0);
        op->step = 0;
        key_name(k1, sizeof k1, op->lname);
        return cmd(op, 2, (const char *[]){ "EXISTS", k1 });
    case REG_PTTL:
        if (!no_reply(r, err) && cg_store_reply_type(r) == CG_STORE_REPLY_INTEGER &&
            cg_store_reply_integer(r) > 0)
            op->who.retry_after_s = (cg_store_reply_integer(r) + 999) / 1000;
        return op_finish(op, CG_E_LIMIT);
    case 0: /* EXISTS name */
        if (err < 0 || cg_store_reply_type(r) != CG_STORE_REPLY_INTEGER)
            goto fail_store;
        if (cg_store_reply_integer(r) != 0)
            return op_finish(op, CG_E_EXISTS);
        if (op->no_pw) {              /* the backend API's user without one */
            op->step = 2;
            return cmd(op, 2, (const char *[]){ "INCR", "cg:uid" });
        }
        return reg_enqueue(op);
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
            const char *hset[] = { "HSET", k1, "name", op->who.name, "created", now,
                                   "pw", op->record };
            int n = op->no_pw ? 6 : 8;     /* no password: no pw field, no login */
            size_t l[8];
            for (int i = 0; i < n; i++)
                l[i] = strlen(hset[i]);
            if (cg_store_command(op->a->store, n, hset, l, NULL, NULL) < 0)
                goto fail_store;
        }
        return cmd(op, 4, (const char *[]){ "SET", k2, uid, "NX" });
    case 10: /* SET name NX */
        if (no_reply(r, err))
            goto fail_store;
        if (cg_store_reply_type(r) == CG_STORE_REPLY_NIL) {
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

/* No such user (or no usable record): hash the password all the same,
 * against a record that no password matches, with the rounds a new
 * password gets, so that the answer takes as long as a wrong password's
 * (see the top). The step after gets CG_E_AUTH from the pool. */
static void
verify_decoy(struct auth_op *op)
{
    op->who.uid = 0;
    op->who.name[0] = '\0';
    /* a 16-byte salt and a 32-byte hash, base64url, as work_hash() writes */
    snprintf(op->record, sizeof op->record, "pbkdf2-sha256$%lld$%s$%s",
             (long long)op->a->cfg->password_iterations, "Y2hhdGdhdGUtZGVjb3k",
             "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    op->step = LOGIN_VERIFIED;
    op->decoy = 1;
    op->a->metrics->password_checks++;
    pool(op, work_verify);
}

void
token_issue(struct auth_op *op, int64_t ttl_ms)
{
    char k[96], val[128], ttl[24], hash[CG_TOKEN_HASH_LEN + 1];
    unsigned char raw[32];
    int64_t now = cg_now_ms();

    if (RAND_bytes(raw, sizeof raw) != 1)
        return op_finish(op, CG_E_STORE);
    b64url(raw, sizeof raw, op->token);
    explicit_bzero(raw, sizeof raw);
    cg_auth_token_hash(op->token, CG_TOKEN_LEN, hash);
    op->who.expires_ms = now + ttl_ms;
    key_token(k, sizeof k, hash);
    snprintf(val, sizeof val, "%llu:%lld:%s:%lld", (unsigned long long)op->who.uid,
             (long long)op->who.expires_ms, op->who.name, (long long)now);
    snprintf(ttl, sizeof ttl, "%lld", (long long)ttl_ms);
    cmd(op, 5, (const char *[]){ "SET", k, val, "PX", ttl });
}

int
user_state_refuses(const struct cg_store_reply *r, int64_t issued_ms)
{
    const struct cg_store_reply *rb;
    char *end;
    long long before;

    if (cg_store_reply_type(r) != CG_STORE_REPLY_ARRAY || cg_store_reply_count(r) != 3 ||
        cg_store_reply_type(cg_store_reply_element(r, 0)) != CG_STORE_REPLY_STRING ||
        cg_store_reply_type(cg_store_reply_element(r, 1)) == CG_STORE_REPLY_STRING)
        return 1;
    rb = cg_store_reply_element(r, 2);
    if (cg_store_reply_type(rb) == CG_STORE_REPLY_STRING) {
        before = strtoll(cg_store_reply_str(rb, NULL), &end, 10);
        if (*end != '\0' || issued_ms < before)
            return 1;
    }
    return 0;
}

static void
step_login(struct auth_op *op, const struct cg_store_reply *r, int err)
{
    char k[96];
    const char *name, *record;
    size_t name_len, record_len;

    if (op->step < LOGIN_NAME)
        return step_limit(op, r, err);
    switch (op->step++) {
    case LOGIN_NAME:
        if (no_reply(r, err))
            goto fail_store;
        if (cg_store_reply_type(r) == CG_STORE_REPLY_NIL || reply_u64(r, &op->who.uid) < 0)
            return verify_decoy(op);
        key_user(k, sizeof k, op->who.uid);
        return cmd(op, 5, (const char *[]){ "HMGET", k, "name", "pw", "disabled" });
    case LOGIN_RECORD:
        if (err < 0 || cg_store_reply_type(r) != CG_STORE_REPLY_ARRAY ||
            cg_store_reply_count(r) != 3)
            goto fail_store;
        op->disabled = cg_store_reply_type(cg_store_reply_element(r, 2)) ==
                       CG_STORE_REPLY_STRING;
        name = cg_store_reply_str(cg_store_reply_element(r, 0), &name_len);
        record = cg_store_reply_str(cg_store_reply_element(r, 1), &record_len);
        if (cg_store_reply_type(cg_store_reply_element(r, 0)) != CG_STORE_REPLY_STRING ||
            cg_store_reply_type(cg_store_reply_element(r, 1)) != CG_STORE_REPLY_STRING ||
            name_len > CG_NAME_MAX || record_len >= sizeof op->record)
            return verify_decoy(op);
        /* + 1: the reply's strings end in NUL (store.h) */
        memcpy(op->who.name, name, name_len + 1);
        memcpy(op->record, record, record_len + 1);
        op->a->metrics->password_checks++;
        return pool(op, work_verify);
    case LOGIN_VERIFIED: /* make and store a token */
        if (err < 0 || op->decoy)
            return op_finish(op, err < 0 ? err : CG_E_AUTH);
        if (op->disabled) {
            /* The password was right: the failure is not counted. */
            cg_log(CG_LOG_INFO, "login of disabled user %s (uid %llu) refused",
                   op->who.name, (unsigned long long)op->who.uid);
            return op_finish(op, CG_E_FORBIDDEN);
        }
        return token_issue(op, op->a->cfg->token_ttl_s * 1000);
    case LOGIN_TOKEN:
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

/* check: GET cg:tok:<hash> -> HMGET user name disabled revoked_before.
 * A token of a deleted user (no name), of a disabled one, or issued before
 * the user's revoked_before (set when it was disabled) is refused. */
static void
step_check(struct auth_op *op, const struct cg_store_reply *r, int err)
{
    char k[96];

    if (no_reply(r, err))
        return op_finish(op, err < 0 ? err : CG_E_STORE);
    switch (op->step++) {
    case 0:
        if (parse_token_record(r, &op->who, &op->issued_ms) < 0 ||
            op->who.expires_ms <= cg_now_ms())
            goto refused;
        key_user(k, sizeof k, op->who.uid);
        cmd(op, 5, (const char *[]){ "HMGET", k, "name", "disabled", "revoked_before" });
        return;
    case 1:
        if (user_state_refuses(r, op->issued_ms))
            goto refused;
        return op_finish(op, 0);
    }
    return;
refused:
    remember_bad(op->a, op->who.token_hash);
    op->a->metrics->auth_failures++;
    op_finish(op, CG_E_AUTH);
}

static void
step_logout(struct auth_op *op, const struct cg_store_reply *r, int err)
{
    char k[96], ch[48], msg[2 + CG_TOKEN_HASH_LEN];
    struct cg_push_record rec = { .type = CG_PUSH_LOGOUT, .data = op->who.token_hash,
                                  .len = CG_TOKEN_HASH_LEN };

    switch (op->step++) {
    case 0:
        if (no_reply(r, err))
            goto fail_store;
        if (parse_token_record(r, &op->who, &op->issued_ms) < 0)
            return op_finish(op, CG_E_AUTH);
        key_token(k, sizeof k, op->who.token_hash);
        {
            const char *del[] = { "DEL", k };
            size_t l[] = { 3, strlen(k) };
            if (cg_store_command(op->a->store, 2, del, l, NULL, NULL) < 0)
                goto fail_store;
        }
        cg_store_channel(ch, sizeof ch, op->who.uid);
        if (cg_push_record_encode(&rec, msg, sizeof msg) < 0)
            goto fail_store;       /* not reached: the hash is ours */
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
step_lookup(struct auth_op *op, const struct cg_store_reply *r, int err)
{
    char k[96], ch[48];
    const char *name;
    size_t name_len;

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
        return cmd(op, 4, (const char *[]){ "HMGET", k, "name", "disabled" });
    case 2:
        if (no_reply(r, err))
            goto fail_store;
        op->who.disabled = cg_store_reply_type(cg_store_reply_element(r, 1)) ==
                           CG_STORE_REPLY_STRING;
        r = cg_store_reply_element(r, 0);
        name = cg_store_reply_str(r, &name_len);
        if (cg_store_reply_type(r) != CG_STORE_REPLY_STRING || name_len > CG_NAME_MAX)
            return op_finish(op, CG_E_NOTFOUND);
        memcpy(op->who.name, name, name_len + 1);      /* with its NUL (store.h) */
        cg_store_channel(ch, sizeof ch, op->who.uid);
        return cmd(op, 3, (const char *[]){ "PUBSUB", "NUMSUB", ch });
    case 3: /* [channel, count] */
        if (err < 0 || cg_store_reply_type(r) != CG_STORE_REPLY_ARRAY ||
            cg_store_reply_count(r) != 2 ||
            cg_store_reply_type(cg_store_reply_element(r, 1)) != CG_STORE_REPLY_INTEGER)
            goto fail_store;
        op->who.online = (int)cg_store_reply_integer(cg_store_reply_element(r, 1));
        return op_finish(op, 0);
    }
    return;
fail_store:
    op_finish(op, err < 0 ? err : CG_E_STORE);
}

void
step(struct auth_op *op, const struct cg_store_reply *r, int err)
{
    switch (op->kind) {
    case OP_REGISTER: step_register(op, r, err); break;
    case OP_LOGIN:    step_login(op, r, err); break;
    case OP_CHECK:    step_check(op, r, err); break;
    case OP_LOGOUT:   step_logout(op, r, err); break;
    case OP_LOOKUP:   step_lookup(op, r, err); break;
    case OP_ADMIN:    step_admin(op, r, err); break;
    case OP_JWT:
    case OP_REVOKE:   step_jwt(op, r, err); break;
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
    limit_rules_init(a, cfg);
    jwt_rules_init(a, cfg);
    *out = a;
    return 0;
}

void
cg_auth_destroy(cg_auth *a)
{
    if (a == NULL)
        return;
    a->closing = 1;
    /* Registrations still waiting for the pool end now; the ones on the
     * pool end when their work does. */
    while (a->reg_head != NULL)
        op_finish(reg_pop(a), CG_E_CLOSED);
    if (a->ops == 0)
        cg_free(a);
}

int
cg_auth_check_token(cg_auth *a, const char *tok, size_t len, cg_auth_cb cb, void *data)
{
    struct auth_op *op;
    char k[96];

    if (cg_jwt_shaped(tok, len))
        return jwt_check(a, tok, len, cb, data);
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
                 size_t pw_len, const char *addr, cg_auth_cb cb, void *data)
{
    struct auth_op *op;
    char k[LIMIT_KEY_MAX];

    if (cg_auth_name_refused(name, name_len) != NULL || pw_len < PW_MIN ||
        pw_len > PW_MAX || memchr(password, '\0', pw_len))
        return CG_E_INVAL;
    if ((op = op_create(a, OP_REGISTER, cb, data)) == NULL)
        return CG_E_NOMEM;
    memcpy(op->who.name, name, name_len);
    lower_name(name, name_len, op->lname);
    cg_proxies_limit_key(addr ? addr : "", op->addr, sizeof op->addr);
    memcpy(op->pw, password, pw_len);
    op->pw_len = pw_len;
    /* The address's window first; reg_limit_take() for the rest. */
    op->step = REG_LIMIT_ADDR;
    reg_limit_key(op, 1, k, sizeof k);
    if (op_start(op, 2, (const char *[]){ "INCR", k }) < 0)
        return CG_E_STORE;
    reg_window_start(op, 1, k);
    return 0;
}

int
cg_auth_login(cg_auth *a, const char *name, size_t name_len, const char *password,
              size_t pw_len, const char *addr, cg_auth_cb cb, void *data)
{
    struct auth_op *op;
    char k[LIMIT_KEY_MAX];

    if (!cg_auth_valid_name(name, name_len) || pw_len > PW_MAX)
        return CG_E_AUTH;
    if ((op = op_create(a, OP_LOGIN, cb, data)) == NULL)
        return CG_E_NOMEM;
    lower_name(name, name_len, op->lname);
    cg_proxies_limit_key(addr ? addr : "", op->addr, sizeof op->addr);
    memcpy(op->pw, password, pw_len);
    op->pw_len = pw_len;
    /* The first bucket's INCR; limit_take() for the others. */
    limit_key(op, LB_ACCOUNT_ADDR, k, sizeof k);
    if (op_start(op, 2, (const char *[]){ "INCR", k }) < 0)
        return CG_E_STORE;
    limit_expire(op, LB_ACCOUNT_ADDR, k);
    return 0;
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
    /* A uid is written without leading zeros: "0001" names no one (and no
     * user can be named so: cg_auth_name_refused()). */
    if (digits && who[0] == '0')
        return CG_E_NOTFOUND;
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
    return op_start(op, 4, (const char *[]){ "HMGET", k, "name", "disabled" });
}
