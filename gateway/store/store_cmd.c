/* store_cmd.c - requests on the command connections: plain commands and
 * script calls submitted, sent pipelined on their shard's connection
 * (behind any batch queued there, store_batch.c), and answered.
 *
 * Exactly-once callbacks (STYLE.md 3). Each user command is a struct req
 * given to hiredis as privdata; hiredis calls it exactly once, with the
 * reply or with NULL when the context is freed (EOF, our drop, close). A
 * NULL reply maps to CG_E_STORE, or CG_E_CLOSED once cg_store_close() ran.
 * A NOSCRIPT error reply re-sends SCRIPT LOAD followed by the same EVALSHA
 * (the formatted command is kept in the req), once; the caller never sees
 * the first error (store_scripts.c). */
#include "fmacros.h"

#include <string.h>

#include <uv.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "core/common.h"
#include "core/log.h"
#include "store/store_internal.h"

static void
req_finish(struct req *q, redisReply *r, int err)
{
    cg_store *st = q->st;

    if (q->ops) {
        cg_store__finish_ops(q, r, err);
        cg_free(q->ops);
    } else {
        st->inflight--;
        if (q->cb)
            q->cb(cg_store__reply(r), err, q->data);
    }
    cg_free(q->cmd);
    cg_free(q);
}

void
cg_store__on_cmd_reply(redisAsyncContext *ac, void *rv, void *priv)
{
    struct conn *c = ac->data;
    struct req *q = priv;
    cg_store *st = q->st;
    redisReply *r = rv;

    if (r == NULL) {
        if (c->ac == ac)
            cg_store__conn_lost(c, ac->c.errstr[0] ? ac->c.errstr : "connection closed");
        req_finish(q, NULL, err_gone(st));
        return;
    }
    if (c->ac == ac)
        cg_store__conn_progress(c);
    if (q->script >= 0 && !q->retried && cg_store__is_noscript(r) && c->ac == ac &&
        !st->closing && cg_store__req_retry(q, c) == 0)
        return;
    observe_rtt(st, q->sent_ns);
    if (r->type == REDIS_REPLY_ERROR) {
        count_error(st);
        cg_log(CG_LOG_WARN, "redis: %s%s answered an error: %s",
               q->script >= 0 ? "script " : "a command",
               q->script >= 0 ? cg_store__script_names[q->script] : "", r->str);
    }
    req_finish(q, r, 0);
}

int
cg_store__send_formatted(struct conn *c, struct req *q)
{
    if (redisAsyncFormattedCommand(c->ac, cg_store__on_cmd_reply, q, q->cmd,
                                   q->cmdlen) != REDIS_OK)
        return CG_E_STORE;
    q->sent_ns = uv_hrtime();
    cg_store__conn_expect(c, 1);
    return 0;
}

/* The command connection of shard_key. */
struct conn *
cg_store__cmd_conn(cg_store *st, uint64_t shard_key)
{
    return CMD_CONN(st, (size_t)(shard_key % st->ncmd));
}

int
cg_store__check_up(const struct conn *c)
{
    if (c->st->closing)
        return CG_E_CLOSED;
    if (c->state != CONN_UP || c->ac == NULL)
        return CG_E_STORE;
    return 0;
}

/* Format argv (with head[0..nhead) in front) as one command. */
static int
format_cmd(struct req *q, int nhead, const char **head, const size_t *headlen,
           int argc, const char **argv, const size_t *argvlen)
{
    struct rbuf b = { 0 };
    int rc = cg_store__rbuf_array(&b, (size_t)(nhead + argc));

    for (int i = 0; rc == 0 && i < nhead; i++)
        rc = cg_store__rbuf_bulk(&b, head[i], headlen[i]);
    for (int i = 0; rc == 0 && i < argc; i++)
        rc = cg_store__rbuf_bulk(&b, argv[i], argvlen ? argvlen[i] : strlen(argv[i]));
    if (rc < 0) {
        cg_free(b.p);
        return rc;
    }
    q->cmd = b.p;
    q->cmdlen = b.len;
    return 0;
}

int
cg_store__submit(cg_store *st, uint64_t shard_key, int script, int nhead,
                 const char **head, const size_t *headlen, int argc, const char **argv,
                 const size_t *argvlen, cg_store_reply_cb cb, void *data)
{
    struct conn *c = cg_store__cmd_conn(st, shard_key);
    struct req *q;
    int rc;

    if ((rc = cg_store__check_up(c)) < 0)
        return rc;
    if (argc < 0 || (argc > 0 && argv == NULL))
        return CG_E_INVAL;
    /* Whatever was queued on this connection before runs before this. */
    if ((rc = cg_store__flush_batch(c, 0)) < 0)
        return rc;
    if ((q = cg_calloc(1, sizeof *q)) == NULL)
        return CG_E_NOMEM;
    q->st = st;
    q->cb = cb;
    q->data = data;
    q->script = script;
    if ((rc = format_cmd(q, nhead, head, headlen, argc, argv, argvlen)) < 0 ||
        (rc = cg_store__send_formatted(c, q)) < 0) {
        cg_free(q->cmd);
        cg_free(q);
        return rc;
    }
    st->inflight++;
    /* Plain commands are never re-sent: drop their copy now. */
    if (script < 0) {
        cg_free(q->cmd);
        q->cmd = NULL;
    }
    return 0;
}

int
cg_store_command(cg_store *st, int argc, const char **argv, const size_t *argvlen,
                 cg_store_reply_cb cb, void *data)
{
    if (argc < 1)
        return st->closing ? CG_E_CLOSED : CG_E_INVAL;
    return cg_store__submit(st, 0, -1, 0, NULL, NULL, argc, argv, argvlen, cb, data);
}
