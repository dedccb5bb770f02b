/* store_handshake.c - what a connection sends right after it connected,
 * pipelined, before it counts as UP (store_conn.c):
 *
 *   command connection     [AUTH] [SELECT db] SCRIPT LOAD per script; UP once
 *                          every script's SHA came back: nothing is computed
 *                          locally, so the SHAs are whatever this Redis says.
 *   subscriber connection  [AUTH] PING.
 *
 * An error reply to any step drops the connection, with a log line that
 * says what to check (password, database number, a script bug); the
 * reconnect then follows its backoff. */
#include "fmacros.h"

#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "core/common.h"
#include "core/log.h"
#include "store/store_internal.h"

static void
on_hs_reply(redisAsyncContext *ac, void *rv, void *priv)
{
    struct conn *c = ac->data;
    cg_store *st = c->st;
    redisReply *r = rv;
    unsigned step = (unsigned)(uintptr_t)priv;

    if (c->ac != ac)
        return;
    if (r == NULL) {
        cg_store__conn_lost(c, ac->c.errstr[0] ? ac->c.errstr : "connection closed during the handshake");
        return;
    }
    cg_store__conn_progress(c);
    if (r->type == REDIS_REPLY_ERROR) {
        const char *advice =
            strncmp(r->str, "NOAUTH", 6) == 0 ?
                "Redis wants a password: put it in redis_url (redis://:PASSWORD@host:port/db)" :
            strncmp(r->str, "LOADING", 7) == 0 ? "Redis is loading its data set; waiting" :
            step == HS_AUTH   ? "check the user and password in redis_url" :
            step == HS_SELECT ? "check the database number in redis_url" :
            step >= HS_SCRIPT ? "a script failed to load; this is a bug in gateway/store/lua" :
                                "unexpected answer";
        if (cg_store__loud_failure(c->failures + 1))
            cg_log(strncmp(r->str, "LOADING", 7) == 0 ? CG_LOG_NOTICE : CG_LOG_ERROR,
                   "redis: %s connection to %s: %s%s refused: %s (%s)",
                   c->name, st->url->shown,
                   step == HS_AUTH ? "AUTH" : step == HS_SELECT ? "SELECT" :
                   step == HS_PING ? "PING" : "SCRIPT LOAD ",
                   step >= HS_SCRIPT ? cg_store__script_names[step - HS_SCRIPT] : "", r->str, advice);
        cg_store__conn_drop(c, "handshake refused");
        return;
    }
    if (step >= HS_SCRIPT && step < HS_SCRIPT + CG_SCRIPT_MAX) {
        if (r->type != REDIS_REPLY_STRING || r->len != SHA_LEN) {
            cg_store__conn_drop(c, "unexpected SCRIPT LOAD reply");
            return;
        }
        memcpy(st->sha[step - HS_SCRIPT], r->str, SHA_LEN);
        st->sha[step - HS_SCRIPT][SHA_LEN] = '\0';
    }
    if (c->hs_left > 0 && --c->hs_left == 0)
        cg_store__conn_up(c);
}

static int
hs_send(struct conn *c, enum hs_step step, int argc, const char **argv, const size_t *lens)
{
    if (redisAsyncCommandArgv(c->ac, on_hs_reply, (void *)(uintptr_t)step, argc, argv,
                              lens) != REDIS_OK)
        return CG_E_STORE;
    c->hs_left++;
    cg_store__conn_expect(c, 1);
    return 0;
}

int
cg_store__queue_handshake(struct conn *c)
{
    cg_store *st = c->st;
    const struct cg_redis_url *u = st->url;

    if (u->pass) {
        const char *argv[3] = { "AUTH", u->user ? u->user : u->pass, u->pass };
        if (hs_send(c, HS_AUTH, u->user ? 3 : 2, argv, NULL) < 0)
            return CG_E_STORE;
    }
    if (c->kind == CONN_SUB) {
        const char *argv[1] = { "PING" };
        return hs_send(c, HS_PING, 1, argv, NULL);
    }
    if (u->db != 0) {
        char db[16];
        const char *argv[2] = { "SELECT", db };
        snprintf(db, sizeof db, "%d", u->db);
        if (hs_send(c, HS_SELECT, 2, argv, NULL) < 0)
            return CG_E_STORE;
    }
    for (int i = 0; i < CG_SCRIPT_MAX; i++) {
        const char *argv[3] = { "SCRIPT", "LOAD", cg_store_script_source((enum cg_script)i) };
        if (hs_send(c, (enum hs_step)(HS_SCRIPT + i), 3, argv, NULL) < 0)
            return CG_E_STORE;
    }
    return 0;
}
