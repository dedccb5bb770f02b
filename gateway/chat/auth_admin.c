/* auth_admin.c - the backend API's calls on users (auth.h, PROTOCOL.md
 * section 8): create, disable, enable, delete, mint a token.
 *
 * Create is register's chain (auth.c) without the registration limit and,
 * when no password is given, without the hash. The others are one OP_ADMIN
 * each: find the user, then act:
 *
 *   [GET cg:name:<lname> ->] HMGET {u:U}:user name disabled ->
 *     disable: HSET disabled 1 revoked_before <now> + PUBLISH "K.."
 *     enable:  HDEL disabled
 *     delete:  PUBLISH "K.." + UNLINK {u:U}:user,msg,pending,seq,psend ->
 *              GET cg:name:<lname> -> DEL it when it still names U
 *     mint:    (disabled: CG_E_FORBIDDEN) SET cg:tok:<hash> (auth.c)
 *
 * Every command goes to shard 0 in order (store.h), so the pipelined
 * commands without a callback run before the one whose reply ends the op.
 *
 * Disabling refuses every token issued before it (revoked_before, read by
 * the token check in auth.c), so enabling again does not bring old tokens
 * back: the user logs in again, or the backend mints a new one. Deleting
 * UNLINKs the user's keys: Redis frees a large inbox in a background
 * thread, so deleting a user with 100 000 pending messages costs the
 * server O(1) on its main thread and leaves nothing behind. The name is
 * free again at once; a new account with it gets a new uid, and old tokens
 * name the old uid, whose record is gone: they are refused. */
#include "fmacros.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/auth.h"
#include "chat/auth_internal.h"
#include "core/common.h"
#include "core/config.h"
#include "core/log.h"
#include "store/push_record.h"
#include "store/store.h"

enum {
    ADM_NAME = 0,     /* GET cg:name -> uid */
    ADM_USER,         /* HMGET user name disabled */
    ADM_ACTED,        /* the action's last reply */
    ADM_NAME_AGAIN,   /* delete: GET cg:name -> still U? */
    ADM_NAME_DELETED, /* delete: DEL cg:name */
};

static const char *
action_name(enum admin_action a)
{
    switch (a) {
    case ADM_DISABLE: return "disabled";
    case ADM_ENABLE:  return "enabled";
    case ADM_DELETE:  return "deleted";
    case ADM_MINT:    return "minted a token for";
    }
    return "?";
}

/* Send a command whose reply nobody waits for (pipelined before the next
 * one of op, on the same shard). */
static int
quiet(struct auth_op *op, int argc, const char **argv)
{
    size_t l[8];

    for (int i = 0; i < argc; i++)
        l[i] = strlen(argv[i]);
    return cg_store_command(op->a->store, argc, argv, l, NULL, NULL);
}

/* PUBLISH a K record closing every session of op->who (without a reply
 * callback when last is 0). */
static int
kick(struct auth_op *op, const char *reason, int last)
{
    char ch[48], msg[2 + CG_PUSH_REASON_MAX];
    struct cg_push_record rec = { .type = CG_PUSH_KICK, .data = reason,
                                  .len = strlen(reason) };

    cg_store_channel(ch, sizeof ch, op->who.uid);
    if (cg_push_record_encode(&rec, msg, sizeof msg) < 0)
        return CG_E_INVAL;          /* not reached: the reasons are ours */
    if (last) {
        cmd(op, 3, (const char *[]){ "PUBLISH", ch, msg });
        return 0;
    }
    return quiet(op, 3, (const char *[]){ "PUBLISH", ch, msg });
}

static void
act(struct auth_op *op)
{
    char k[96], now[24], msg[CG_STORE_KEY_MAX], pend[CG_STORE_KEY_MAX],
         seq[CG_STORE_KEY_MAX], psend[CG_STORE_KEY_MAX];

    op->step = ADM_ACTED;
    key_user(k, sizeof k, op->who.uid);
    switch (op->action) {
    case ADM_DISABLE:
        snprintf(now, sizeof now, "%lld", (long long)cg_now_ms());
        if (quiet(op, 6, (const char *[]){ "HSET", k, "disabled", "1", "revoked_before",
                                           now }) < 0)
            return op_finish(op, CG_E_STORE);
        op->who.disabled = 1;
        kick(op, "account disabled", 1);
        return;
    case ADM_ENABLE:
        op->who.disabled = 0;
        return cmd(op, 3, (const char *[]){ "HDEL", k, "disabled" });
    case ADM_DELETE:
        cg_store_key(msg, sizeof msg, op->who.uid, "msg");
        cg_store_key(pend, sizeof pend, op->who.uid, "pending");
        cg_store_key(seq, sizeof seq, op->who.uid, "seq");
        /* psend: the per-sender pending counters another change adds; a
         * key that does not exist costs UNLINK nothing. */
        cg_store_key(psend, sizeof psend, op->who.uid, "psend");
        if (kick(op, "account deleted", 0) < 0 ||
            quiet(op, 6, (const char *[]){ "UNLINK", k, msg, pend, seq, psend }) < 0)
            return op_finish(op, CG_E_STORE);
        op->step = ADM_NAME_AGAIN;
        key_name(k, sizeof k, op->lname);
        return cmd(op, 2, (const char *[]){ "GET", k });
    case ADM_MINT:
        if (op->who.disabled)
            return op_finish(op, CG_E_FORBIDDEN);
        return token_issue(op, op->ttl_ms);
    }
}

static void
done(struct auth_op *op)
{
    cg_log(CG_LOG_NOTICE, "backend: key %s %s user %s (uid %" PRIu64 ")", op->actor,
           action_name(op->action), op->who.name, op->who.uid);
    op_finish(op, 0);
}

void
step_admin(struct auth_op *op, const struct cg_store_reply *r, int err)
{
    const struct cg_store_reply *e;
    const char *name;
    size_t len;
    uint64_t uid;
    char k[96];

    if (no_reply(r, err))
        return op_finish(op, err < 0 ? err : CG_E_STORE);
    switch (op->step++) {
    case ADM_NAME:
        if (reply_u64(r, &op->who.uid) < 0)
            return op_finish(op, CG_E_NOTFOUND);
        key_user(k, sizeof k, op->who.uid);
        return cmd(op, 4, (const char *[]){ "HMGET", k, "name", "disabled" });
    case ADM_USER:
        e = cg_store_reply_element(r, 0);
        name = cg_store_reply_str(e, &len);
        if (cg_store_reply_type(e) != CG_STORE_REPLY_STRING || len > CG_NAME_MAX)
            return op_finish(op, CG_E_NOTFOUND);
        memcpy(op->who.name, name, len + 1);            /* with its NUL (store.h) */
        lower_name(op->who.name, len, op->lname);
        op->who.disabled = cg_store_reply_type(cg_store_reply_element(r, 1)) ==
                           CG_STORE_REPLY_STRING;
        return act(op);
    case ADM_ACTED:
        return done(op);
    case ADM_NAME_AGAIN:
        if (reply_u64(r, &uid) < 0 || uid != op->who.uid)
            return done(op);        /* the name is someone else's already */
        key_name(k, sizeof k, op->lname);
        return cmd(op, 2, (const char *[]){ "DEL", k });
    case ADM_NAME_DELETED:
        return done(op);
    }
}

/* Start an OP_ADMIN on the user who names (see cg_auth_lookup()). */
static int
admin_start(cg_auth *a, const char *who, size_t len, enum admin_action action,
            int64_t ttl_ms, const char *actor, cg_auth_cb cb, void *data)
{
    struct auth_op *op;
    char k[96], lname[CG_NAME_MAX + 1];
    int digits = len > 0 && len <= 19;

    for (size_t i = 0; digits && i < len; i++)
        digits = who[i] >= '0' && who[i] <= '9';
    if ((digits && who[0] == '0') || (!digits && !cg_auth_valid_name(who, len)))
        return CG_E_NOTFOUND;
    if ((op = op_create(a, OP_ADMIN, cb, data)) == NULL)
        return CG_E_NOMEM;
    op->action = action;
    op->ttl_ms = ttl_ms;
    snprintf(op->actor, sizeof op->actor, "%s", actor ? actor : "-");
    if (!digits) {
        lower_name(who, len, lname);
        key_name(k, sizeof k, lname);
        return op_start(op, 2, (const char *[]){ "GET", k });
    }
    op->who.uid = strtoull(who, NULL, 10);
    op->step = ADM_USER;
    key_user(k, sizeof k, op->who.uid);
    return op_start(op, 4, (const char *[]){ "HMGET", k, "name", "disabled" });
}

int
cg_auth_create_user(cg_auth *a, const char *name, size_t name_len, const char *pw,
                    size_t pw_len, const char *actor, cg_auth_cb cb, void *data)
{
    struct auth_op *op;
    char k[96];

    if (cg_auth_name_refused(name, name_len) != NULL ||
        (pw_len > 0 && (pw_len < PW_MIN || pw_len > PW_MAX || memchr(pw, '\0', pw_len))))
        return CG_E_INVAL;
    if ((op = op_create(a, OP_REGISTER, cb, data)) == NULL)
        return CG_E_NOMEM;
    memcpy(op->who.name, name, name_len);
    lower_name(name, name_len, op->lname);
    if (pw_len > 0) {
        memcpy(op->pw, pw, pw_len);
        op->pw_len = pw_len;
    } else {
        op->no_pw = 1;
    }
    snprintf(op->actor, sizeof op->actor, "%s", actor ? actor : "-");
    key_name(k, sizeof k, op->lname);
    return op_start(op, 2, (const char *[]){ "EXISTS", k });
}

int
cg_auth_set_disabled(cg_auth *a, const char *who, size_t len, int disabled,
                     const char *actor, cg_auth_cb cb, void *data)
{
    return admin_start(a, who, len, disabled ? ADM_DISABLE : ADM_ENABLE, 0, actor, cb,
                       data);
}

int
cg_auth_delete_user(cg_auth *a, const char *who, size_t len, const char *actor,
                    cg_auth_cb cb, void *data)
{
    return admin_start(a, who, len, ADM_DELETE, 0, actor, cb, data);
}

int
cg_auth_mint(cg_auth *a, const char *who, size_t len, int64_t ttl_s, const char *actor,
             cg_auth_cb cb, void *data)
{
    int64_t max = a->cfg->token_ttl_s;

    if (ttl_s < 0)
        return CG_E_INVAL;
    return admin_start(a, who, len, ADM_MINT, (ttl_s == 0 || ttl_s > max ? max : ttl_s) * 1000,
                       actor, cb, data);
}
