/* store_batch.c - the chat operations (send, recive) submitted during one
 * turn of the loop are queued per command connection and sent as one
 * EVALSHA of the chat script (gateway/store/lua/chat.lua) right after the
 * loop's I/O phase (a uv_check handle), or at once when redis_batch_max
 * operations or BATCH_MAX_BYTES are queued. Any other request on that
 * connection first sends what is queued (store_cmd.c), which keeps the
 * order of store.h.
 *
 * The batch's reply is one element per operation; each operation's callback
 * gets its own element, or the whole reply when it has another shape (an
 * error for the whole batch). Queued operations count as in flight. */
#include "fmacros.h"

#include <string.h>

#include <uv.h>
#include <hiredis/hiredis.h>

#include "core/common.h"
#include "core/log.h"
#include "core/metrics.h"
#include "store/store_internal.h"

#define BATCH_MAX_BYTES       (1u << 20) /* flush a batch at once past this */

/* Tell one queued operation; its share of inflight ends here. */
static void
op_finish(cg_store *st, const struct op *o, redisReply *r, int err)
{
    st->inflight--;
    if (o->cb)
        o->cb(cg_store__reply(r), err, o->data);
}

/* A batch's reply is one element per operation (chat.lua). Anything else
 * (an error for the whole batch, or a reply of another shape) goes to
 * every operation as it is; they answer 503. */
void
cg_store__finish_ops(struct req *q, redisReply *r, int err)
{
    int whole = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == q->nops;

    if (r != NULL && !whole && r->type != REDIS_REPLY_ERROR)
        cg_log(CG_LOG_WARN, "redis: the chat script answered a batch of %zu operations "
               "with a reply of type %d; answering 503 to each", q->nops, r->type);
    for (size_t i = 0; i < q->nops; i++)
        op_finish(q->st, &q->ops[i], whole ? r->element[i] : r, err);
}

static void
batch_clear(struct batch *b)
{
    b->keys.len = b->args.len = 0;
    b->nkeys = b->nargs = 0;
    b->nops = 0;
}

/* Take the queued operations off c's batch (the caller owns the array). */
static struct op *
batch_take(struct batch *b, size_t *n)
{
    struct op *ops = b->ops;

    *n = b->nops;
    b->ops = NULL;
    b->cap = 0;
    batch_clear(b);
    return ops;
}

/* Fail every queued operation of c. Only from a loop callback or
 * cg_store_close(), never from inside a caller's request. */
void
cg_store__batch_fail(struct conn *c, int err)
{
    size_t n;
    struct op *ops = batch_take(&c->batch, &n);

    /* Detached first: a callback may queue new operations. */
    for (size_t i = 0; i < n; i++)
        op_finish(c->st, &ops[i], NULL, err);
    cg_free(ops);
}

/* Send c's queued operations as one EVALSHA of the chat script. On
 * failure they stay queued and the error is returned; from_check (the loop's
 * check callback, where callbacks may run) fails them instead. */
int
cg_store__flush_batch(struct conn *c, int from_check)
{
    struct batch *b = &c->batch;
    cg_store *st = c->st;
    struct rbuf cmd = { 0 };
    struct req *q = NULL;
    char nk[CG_U64_STR_MAX];
    size_t nkl, n;
    int rc;

    if (b->nops == 0)
        return 0;
    if ((rc = cg_store__check_up(c)) < 0)
        goto fail;
    nkl = cg_u64_str(nk, b->nkeys);
    if ((rc = cg_store__rbuf_reserve(&cmd, 128 + b->keys.len + b->args.len)) < 0 ||
        (rc = cg_store__rbuf_array(&cmd, 3 + b->nkeys + b->nargs)) < 0 ||
        (rc = cg_store__rbuf_bulk(&cmd, "EVALSHA", 7)) < 0 ||
        (rc = cg_store__rbuf_bulk(&cmd, st->sha[CG_SCRIPT_CHAT], SHA_LEN)) < 0 ||
        (rc = cg_store__rbuf_bulk(&cmd, nk, nkl)) < 0)
        goto fail;
    memcpy(cmd.p + cmd.len, b->keys.p, b->keys.len);
    cmd.len += b->keys.len;
    memcpy(cmd.p + cmd.len, b->args.p, b->args.len);
    cmd.len += b->args.len;
    if ((q = cg_calloc(1, sizeof *q)) == NULL) {
        rc = CG_E_NOMEM;
        goto fail;
    }
    q->st = st;
    q->script = CG_SCRIPT_CHAT;
    q->cmd = cmd.p;
    q->cmdlen = cmd.len;
    q->ops = b->ops;
    q->nops = b->nops;
    if ((rc = cg_store__send_formatted(c, q)) < 0)
        goto fail;
    if (st->m) {
        st->m->redis_batches++;
        st->m->redis_batch_ops += b->nops;
    }
    (void)batch_take(b, &n);
    return 0;
fail:
    cg_free(q);
    cg_free(cmd.p);
    if (from_check)
        cg_store__batch_fail(c, rc == CG_E_CLOSED ? CG_E_CLOSED : CG_E_STORE);
    return rc;
}

static void
on_flush(uv_check_t *h)
{
    cg_store *st = h->data;

    uv_check_stop(h);
    st->flush_armed = 0;
    for (size_t i = 0; i < st->ncmd; i++)
        cg_store__flush_batch(CMD_CONN(st, i), 1);
}

int
cg_store_chat_op(cg_store *st, uint64_t shard_key, int nkeys, int argc, const char **argv,
                 const size_t *argvlen, cg_store_reply_cb cb, void *data)
{
    struct conn *c;
    struct batch *b;
    size_t klen, alen;
    int rc = 0;

    if (st->closing)
        return CG_E_CLOSED;
    if (nkeys < 0 || argc <= nkeys || argv == NULL || argvlen == NULL)
        return CG_E_INVAL;
    c = cg_store__cmd_conn(st, shard_key);
    if ((rc = cg_store__check_up(c)) < 0)
        return rc;
    b = &c->batch;
    if (b->nops == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        struct op *ops = cg_realloc(b->ops, cap * sizeof *ops);
        if (ops == NULL)
            return CG_E_NOMEM;
        b->ops = ops;
        b->cap = cap;
    }
    klen = b->keys.len;
    alen = b->args.len;
    for (int i = 0; rc == 0 && i < argc; i++)
        rc = cg_store__rbuf_bulk(i < nkeys ? &b->keys : &b->args, argv[i], argvlen[i]);
    if (rc < 0) {
        b->keys.len = klen;
        b->args.len = alen;
        return rc;
    }
    b->nkeys += (size_t)nkeys;
    b->nargs += (size_t)(argc - nkeys);
    b->ops[b->nops].cb = cb;
    b->ops[b->nops].data = data;
    b->nops++;
    st->inflight++;
    if (b->nops >= st->batch_ops || b->keys.len + b->args.len >= BATCH_MAX_BYTES)
        (void)cg_store__flush_batch(c, 0);       /* on failure the check retries */
    if (b->nops > 0 && !st->flush_armed) {
        uv_check_start(&st->flush, on_flush);
        st->flush_armed = 1;
    }
    return 0;
}
