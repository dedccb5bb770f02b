/* store.c - asynchronous Redis on the gateway's libuv loop (hiredis 0.14.1
 * async API + its libuv adapter): the Lua scripts, plain commands, and the
 * per-user pub/sub channels. This file is the store object itself: create,
 * close, readiness, the callbacks the store reports to, the deferred
 * completions (one queue, run by one timer on the next loop turn, for the
 * store's own callbacks and its callers' alike) and the key schema
 * helpers. The other jobs each have a file (store_internal.h lists them);
 * store.h is the contract.
 *
 * Ownership and lifetime. cg_store_close() frees every context (callbacks
 * fire with CG_E_CLOSED), fails every waiter, cancels DNS, uv_close()s our
 * 1 + 2 * (N + 1) timers, and frees the store only when the last close
 * callback and any cancelled DNS request have come back; close_cb runs just
 * before that free. After that, uv_loop_close() succeeds once the loop has
 * run the adapter's closes too. */
#include "fmacros.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "core/common.h"
#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "store/store.h"
#include "store/store_internal.h"

#define DEFAULT_TIMEOUT_MS    2000    /* if the config gives none */
#define DEFAULT_BACKOFF_MAX   5000
#define DEFAULT_CMD_CONNS     4       /* if the config gives none */
#define MAX_CMD_CONNS         64
#define DEFAULT_BATCH_OPS     128     /* chat operations per EVALSHA, if unset */
#define SUB_BUCKETS_MIN       64

int
cg_store_key(char *buf, size_t cap, uint64_t uid, const char *suffix)
{
    char digits[CG_U64_STR_MAX];
    size_t dlen = cg_u64_str(digits, uid), slen = strlen(suffix);
    size_t n = 3 + dlen + 2 + slen;                     /* {u:<uid>}:<suffix> */

    if (n >= cap)
        return CG_E_INVAL;
    memcpy(buf, "{u:", 3);
    memcpy(buf + 3, digits, dlen);
    memcpy(buf + 3 + dlen, "}:", 2);
    memcpy(buf + 5 + dlen, suffix, slen + 1);
    return (int)n;
}

int
cg_store_channel(char *buf, size_t cap, uint64_t uid)
{
    static const size_t plen = sizeof(CG_STORE_CHANNEL_PREFIX) - 1;
    char digits[CG_U64_STR_MAX];
    size_t dlen = cg_u64_str(digits, uid);

    if (plen + dlen >= cap)
        return CG_E_INVAL;
    memcpy(buf, CG_STORE_CHANNEL_PREFIX, plen);
    memcpy(buf + plen, digits, dlen + 1);
    return (int)(plen + dlen);
}

void
cg_store_set_state_cb(cg_store *st, cg_store_state_cb cb, void *data)
{
    st->state_cb = cb;
    st->state_data = data;
}

/* ---- deferred completions ------------------------------------------- */

static void
on_defer(uv_timer_t *t)
{
    cg_store *st = t->data;
    struct cg_store_defer *d = st->defer_head, *next;

    /* Detached first: what a callback defers runs on the turn after. */
    st->defer_head = NULL;
    st->defer_tail = &st->defer_head;
    for (; d; d = next) {
        next = d->next;
        d->cb(d, st->closing ? CG_E_CLOSED : 0);
    }
}

void
cg_store__defer_push(cg_store *st, struct cg_store_defer *d, cg_store_defer_cb cb)
{
    d->next = NULL;
    d->cb = cb;
    *st->defer_tail = d;
    st->defer_tail = &d->next;
    if (!st->closing && !uv_is_active((uv_handle_t *)&st->defer))
        uv_timer_start(&st->defer, on_defer, 0, 0);
}

int
cg_store_defer(cg_store *st, struct cg_store_defer *d, cg_store_defer_cb cb)
{
    if (st->closing)
        return CG_E_CLOSED;
    cg_store__defer_push(st, d, cb);
    return 0;
}

/* cg_store_close(): what was deferred hears CG_E_CLOSED now. */
static void
defer_close(cg_store *st)
{
    struct cg_store_defer *d = st->defer_head, *next;

    st->defer_head = NULL;
    st->defer_tail = &st->defer_head;
    for (; d; d = next) {
        next = d->next;
        d->cb(d, CG_E_CLOSED);
    }
}

int
cg_store_ready(const cg_store *st)
{
    return !st->closing && cg_store__all_cmd_up(st);
}

size_t
cg_store_inflight(const cg_store *st)
{
    return st->inflight;
}

/* ---- create / close -------------------------------------------------- */

int
cg_store_create(uv_loop_t *loop, const struct cg_config *cfg,
                struct cg_metrics *metrics, cg_store **out)
{
    cg_store *st;

    *out = NULL;
    if (cfg->redis.host == NULL && cfg->redis.path == NULL) {
        cg_log(CG_LOG_ERROR, "redis_url is not set (cg_config_load() parses it)");
        return CG_E_INVAL;
    }
    if ((st = cg_calloc(1, sizeof *st)) == NULL)
        return CG_E_NOMEM;
    if ((st->buckets = cg_calloc(SUB_BUCKETS_MIN, sizeof *st->buckets)) == NULL) {
        cg_free(st);
        return CG_E_NOMEM;
    }
    st->nbuckets = SUB_BUCKETS_MIN;
    st->ncmd = cfg->redis_connections > 0 ? (size_t)cfg->redis_connections
                                          : DEFAULT_CMD_CONNS;
    if (st->ncmd > MAX_CMD_CONNS)
        st->ncmd = MAX_CMD_CONNS;
    st->nconn = 1 + st->ncmd;
    if ((st->conns = cg_calloc(st->nconn, sizeof *st->conns)) == NULL) {
        cg_free(st->buckets);
        cg_free(st);
        return CG_E_NOMEM;
    }
    st->loop = loop;
    st->cfg = cfg;
    st->url = &cfg->redis;
    st->m = metrics;
    st->timeout_ms = cfg->redis_timeout_ms > 0 ? (uint64_t)cfg->redis_timeout_ms
                                               : DEFAULT_TIMEOUT_MS;
    st->backoff_max_ms = cfg->redis_reconnect_max_ms > 0
                       ? (uint64_t)cfg->redis_reconnect_max_ms : DEFAULT_BACKOFF_MAX;
    if (st->backoff_max_ms < BACKOFF_FIRST_MS)
        st->backoff_max_ms = BACKOFF_FIRST_MS;
    st->rng = uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)st;
    if (st->rng == 0)
        st->rng = 0x9E3779B97F4A7C15ULL;
    st->batch_ops = cfg->redis_batch_max > 0 ? (size_t)cfg->redis_batch_max
                                             : DEFAULT_BATCH_OPS;
    st->defer_tail = &st->defer_head;
    uv_timer_init(loop, &st->defer);
    st->defer.data = st;
    uv_check_init(loop, &st->flush);
    st->flush.data = st;
    for (size_t i = 0; i < st->nconn; i++)
        cg_store__conn_init(st, i);
    st->handles_open = (unsigned)(2 + 2 * st->nconn);
    cg_log(CG_LOG_INFO, "redis: connecting to %s", st->url->shown);
    *out = st;
    return 0;
}

void
cg_store__maybe_finish(cg_store *st)
{
    void (*cb)(void *);
    void *data;

    if (st->handles_open > 0)
        return;
    for (size_t i = 0; i < st->nconn; i++)
        if (st->conns[i].gai_busy)
            return;
    cb = st->close_cb;
    data = st->close_data;
    if (cb)
        cb(data);
    cg_free(st->buckets);
    for (size_t i = 0; i < st->nconn; i++) {
        cg_free(st->conns[i].batch.keys.p);
        cg_free(st->conns[i].batch.args.p);
        cg_free(st->conns[i].batch.ops);
    }
    cg_free(st->conns);
    cg_free(st);
}

static void
on_handle_closed(uv_handle_t *h)
{
    cg_store *st = h->data;

    st->handles_open--;
    cg_store__maybe_finish(st);
}

void
cg_store_close(cg_store *st, void (*close_cb)(void *data), void *data)
{
    if (st == NULL || st->closing)
        return;
    st->closing = 1;
    st->close_cb = close_cb;
    st->close_data = data;

    for (size_t i = 0; i < st->nconn; i++) {
        struct conn *c = &st->conns[i];
        redisAsyncContext *ac = c->ac;

        uv_timer_stop(&c->retry);
        uv_timer_stop(&c->watchdog);
        if (c->gai_busy)
            uv_cancel((uv_req_t *)&c->gai);   /* on_resolved still runs */
        c->ac = NULL;
        c->state = CONN_DOWN;
        if (ac)
            redisAsyncFree(ac);   /* pending callbacks: CG_E_CLOSED */
        cg_store__batch_fail(c, CG_E_CLOSED);
    }

    /* Subscription waiters, then everything deferred to the next turn. */
    cg_store__subs_close(st);
    defer_close(st);

    uv_timer_stop(&st->defer);
    st->defer.data = st;
    uv_close((uv_handle_t *)&st->defer, on_handle_closed);
    uv_check_stop(&st->flush);
    st->flush_armed = 0;
    uv_close((uv_handle_t *)&st->flush, on_handle_closed);
    for (size_t i = 0; i < st->nconn; i++) {
        st->conns[i].retry.data = st;
        st->conns[i].watchdog.data = st;
        uv_close((uv_handle_t *)&st->conns[i].retry, on_handle_closed);
        uv_close((uv_handle_t *)&st->conns[i].watchdog, on_handle_closed);
    }
}
