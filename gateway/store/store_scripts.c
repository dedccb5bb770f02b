/* store_scripts.c - the Lua scripts (gateway/store/lua/<name>.lua, compiled
 * in by embed_lua.cmake): their sources, the EVALSHA calls of the public API,
 * and the NOSCRIPT recovery.
 *
 * Every command connection loads every script in its handshake
 * (store_handshake.c) and keeps the SHA Redis answered. When a script
 * vanished anyway (SCRIPT FLUSH, a Redis restart behind a proxy, a failover
 * to a replica that never saw SCRIPT LOAD), the NOSCRIPT reply of an
 * EVALSHA makes store_cmd.c load it again and re-send the same call, once. */
#include "fmacros.h"

#include <stdio.h>
#include <string.h>

#include <uv.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "core/common.h"
#include "core/log.h"
#include "store/store_internal.h"

/* Generated from gateway/store/lua/<name>.lua by embed_lua.cmake. */
extern const char cg_lua_chat[];
extern const char cg_lua_fetch[];
extern const char cg_lua_pending[];
extern const char cg_lua_pending_admin[];

const char *const cg_store__script_names[CG_SCRIPT_MAX] = {
    "chat", "fetch", "pending", "pending_admin"
};

const char *
cg_store_script_source(enum cg_script script)
{
    switch (script) {
    case CG_SCRIPT_CHAT:   return cg_lua_chat;
    case CG_SCRIPT_FETCH:  return cg_lua_fetch;
    case CG_SCRIPT_PENDING: return cg_lua_pending;
    case CG_SCRIPT_PENDING_ADMIN: return cg_lua_pending_admin;
    default:               return NULL;
    }
}

static void
on_reload_reply(redisAsyncContext *ac, void *rv, void *priv)
{
    struct conn *c = ac->data;
    redisReply *r = rv;

    if (c->ac != ac)
        return;
    if (r == NULL) {
        cg_store__conn_lost(c, ac->c.errstr[0] ? ac->c.errstr : "connection closed");
        return;
    }
    cg_store__conn_progress(c);
    if (r->type == REDIS_REPLY_ERROR)
        cg_log(CG_LOG_ERROR, "redis: reloading script %s failed: %s",
               cg_store__script_names[(uintptr_t)priv], r->str);
}

int
cg_store__is_noscript(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR && r->len >= 8 && memcmp(r->str, "NOSCRIPT", 8) == 0;
}

/* The script vanished (SCRIPT FLUSH, a Redis restart behind a proxy, a
 * failover to a replica that never saw SCRIPT LOAD): load it and send the
 * same EVALSHA again, pipelined, so Redis runs the two in order. */
int
cg_store__req_retry(struct req *q, struct conn *c)
{
    const char *argv[3] = { "SCRIPT", "LOAD",
                            cg_store_script_source((enum cg_script)q->script) };

    if (redisAsyncCommandArgv(c->ac, on_reload_reply, (void *)(uintptr_t)q->script, 3,
                              argv, NULL) != REDIS_OK)
        return CG_E_STORE;
    cg_store__conn_expect(c, 1);
    if (redisAsyncFormattedCommand(c->ac, cg_store__on_cmd_reply, q, q->cmd,
                                   q->cmdlen) != REDIS_OK)
        return CG_E_STORE;
    cg_store__conn_expect(c, 1);
    q->retried = 1;
    q->sent_ns = uv_hrtime();
    cg_log(CG_LOG_NOTICE, "redis: script %s was missing on %s (SCRIPT FLUSH or a "
           "failover?); loaded it again", cg_store__script_names[q->script], c->st->url->shown);
    return 0;
}

int
cg_store_eval(cg_store *st, enum cg_script script, int nkeys, int argc,
              const char **argv, const size_t *argvlen,
              cg_store_reply_cb cb, void *data)
{
    return cg_store_eval_keyed(st, 0, script, nkeys, argc, argv, argvlen, cb, data);
}

int
cg_store_eval_keyed(cg_store *st, uint64_t shard_key, enum cg_script script, int nkeys,
                    int argc, const char **argv, const size_t *argvlen,
                    cg_store_reply_cb cb, void *data)
{
    char nk[16];
    const char *head[3];
    size_t headlen[3];

    if ((unsigned)script >= CG_SCRIPT_MAX || script == CG_SCRIPT_CHAT || nkeys < 0 ||
        nkeys > argc)
        return st->closing ? CG_E_CLOSED : CG_E_INVAL;
    snprintf(nk, sizeof nk, "%d", nkeys);
    head[0] = "EVALSHA";
    head[1] = st->sha[script];
    head[2] = nk;
    headlen[0] = 7;
    headlen[1] = strlen(st->sha[script]);
    headlen[2] = strlen(nk);
    return cg_store__submit(st, shard_key, (int)script, 3, head, headlen, argc, argv,
                            argvlen, cb, data);
}
