/* store_internal.h - what the files of gateway/store/ share, and nothing
 * outside gateway/store/ may include: the store object, its connections,
 * requests and subscriptions, and the calls between the files.
 *
 *   store.c            the object: create, close, readiness, deferred
 *                      completions, key helpers
 *   store_conn.c       the connection state machine: connect, reconnect with
 *                      backoff, watchdog, readiness, the libuv adapter hooks
 *   store_handshake.c  AUTH, SELECT, PING and SCRIPT LOAD after a connect
 *   store_resp.c       the RESP encoder
 *   store_cmd.c        requests on the command connections: submit, reply,
 *                      exactly-once completion
 *   store_batch.c      chat operations batched into one EVALSHA per turn
 *   store_pubsub.c     the subscription set, the subscriber connection's
 *                      replies and pushes
 *   store_scripts.c    the Lua scripts: sources, EVALSHA, NOSCRIPT reload
 *   store_reply.c      struct cg_store_reply, the view callbacks get
 *
 * Functions one file calls in another are named cg_store__<name> (STYLE.md
 * 2); everything else stays static in its file. */
#ifndef CHATGATE_STORE_INTERNAL_H
#define CHATGATE_STORE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "core/common.h"
#include "core/metrics.h"
#include "store/store.h"
#include "core/redis_url.h"

/* ---- constants shared by several files -------------------------------- */

#define BACKOFF_FIRST_MS      100     /* first reconnect delay (doubles) */
#define SHA_LEN               40

/* ---- types ----------------------------------------------------------- */

/* A growable byte buffer (RESP being built). */
struct rbuf {
    char   *p;
    size_t  len, cap;
};

/* One queued chat operation: whom to tell. */
struct op {
    cg_store_reply_cb  cb;
    void              *data;
};

/* The chat operations queued on one command connection during the current
 * loop turn, in order: their keys and their arguments as RESP bulk
 * strings, and their callbacks. cg_store__flush_batch() sends them as one
 * EVALSHA of the chat script. */
struct batch {
    struct rbuf  keys, args;
    size_t       nkeys, nargs;
    struct op   *ops;
    size_t       nops, cap;
};

enum conn_kind { CONN_CMD = 0, CONN_SUB = 1 };

enum conn_state { CONN_DOWN = 0, CONN_RESOLVING, CONN_HANDSHAKE, CONN_UP };

/* Handshake steps, passed to on_hs_reply as privdata. */
enum hs_step { HS_AUTH = 0, HS_SELECT, HS_PING, HS_SCRIPT /* + script */ };

struct conn {
    struct cg_store   *st;
    enum conn_kind     kind;
    const char        *name;          /* "command" / "command 2/4" / "subscriber" */
    char               namebuf[32];
    redisAsyncContext *ac;            /* NULL unless HANDSHAKE or UP */
    enum conn_state    state;
    unsigned           hs_left;       /* handshake replies still due */
    unsigned           failures;      /* consecutive failed attempts/losses */
    int                ever_up;
    size_t             outstanding;   /* replies due on ac (watchdog) */
    uint64_t           last_progress; /* ms (uv_hrtime) of the last reply
                                         (on the subscriber: any message) */
    uv_timer_t         retry;
    uv_timer_t         watchdog;
    uv_getaddrinfo_t   gai;
    int                gai_busy;      /* gai request in flight */
    size_t             resub_left;    /* SUB: confirmations of the resync batch due */
    int                synced;        /* SUB: resync batch fully confirmed */
    struct batch       batch;         /* CMD: chat operations not sent yet */
};

/* A subscription callback waiting for its confirmation, or deferred with
 * err set (later is its first member: the deferred callback converts the
 * node back). */
struct waiter {
    struct cg_store_defer later;
    struct waiter     *next;
    cg_store_reply_cb  cb;
    void              *data;
    int                err;
};

struct sub_entry {
    struct sub_entry *next;       /* bucket chain */
    uint64_t          uid;
    int               confirmed;      /* by Redis, on the current connection */
    int               ever_confirmed; /* some caller was told "subscribed" */
    struct waiter    *waiters;    /* FIFO via wtail */
    struct waiter   **wtail;
};

/* One command on the wire: a plain command, a script call, or a batch of
 * chat operations (ops != NULL; cb is unused, each op has its own). */
struct req {
    struct cg_store   *st;
    cg_store_reply_cb  cb;
    void              *data;
    struct op         *ops;
    size_t             nops;
    int                script;    /* enum cg_script, or -1 for a plain command */
    int                retried;   /* NOSCRIPT retry done */
    uint64_t           sent_ns;
    char              *cmd;       /* formatted command (cg_malloc), kept for the retry */
    size_t             cmdlen;
};

struct cg_store {
    uv_loop_t               *loop;
    const struct cg_config  *cfg;
    struct cg_metrics       *m;
    const struct cg_redis_url *url; /* the config's redis_url, parsed */
    struct conn             *conns;        /* [0] subscriber, [1..ncmd] command */
    size_t                   nconn;        /* 1 + ncmd */
    size_t                   ncmd;
    char                     sha[CG_SCRIPT_MAX][SHA_LEN + 1];
    int                      notified;     /* last value given to state_cb */
    size_t                   inflight;     /* user requests without an answer */
    size_t                   batch_ops;    /* chat operations per EVALSHA, at most */
    uv_check_t               flush;        /* sends the batches after each I/O phase */
    int                      flush_armed;
    uint64_t                 timeout_ms;
    uint64_t                 backoff_max_ms;
    uint64_t                 rng;

    struct sub_entry       **buckets;
    size_t                   nbuckets;     /* power of two */
    size_t                   nsubs;

    struct cg_store_defer   *defer_head;   /* run on the next loop turn */
    struct cg_store_defer  **defer_tail;
    uv_timer_t               defer;

    cg_store_push_cb         push_cb;
    void                    *push_data;
    cg_store_state_cb        state_cb;
    void                    *state_data;

    int                      closing;
    unsigned                 handles_open;
    void                   (*close_cb)(void *data);
    void                    *close_data;
};

#define SUB_CONN(st)    (&(st)->conns[0])
#define CMD_CONN(st, i) (&(st)->conns[1 + (i)])

/* ---- small helpers --------------------------------------------------- */

/* The view of a hiredis reply that callbacks get (store_reply.c). */
static inline const struct cg_store_reply *
cg_store__reply(const redisReply *r)
{
    return (const struct cg_store_reply *)(const void *)r;
}

static inline int
err_gone(const cg_store *st)
{
    return st->closing ? CG_E_CLOSED : CG_E_STORE;
}

static inline void
observe_rtt(cg_store *st, uint64_t sent_ns)
{
    if (st->m)
        cg_hist_observe(&st->m->redis_rtt_ms, (double)(uv_hrtime() - sent_ns) / 1e6);
}

static inline void
count_error(cg_store *st)
{
    if (st->m)
        st->m->redis_errors++;
}

/* ---- store.c --------------------------------------------------------- */

/* Free the store once every handle is closed and no DNS request is out. */
void cg_store__maybe_finish(cg_store *st);
/* cg_store_defer() for the store's own completions (never while closing). */
void cg_store__defer_push(cg_store *st, struct cg_store_defer *d, cg_store_defer_cb cb);

/* ---- store_conn.c ---------------------------------------------------- */

/* Set up connection i of st (0 is the subscriber) and schedule its first
 * attempt on the next loop iteration. */
void cg_store__conn_init(cg_store *st, size_t i);
void cg_store__conn_lost(struct conn *c, const char *why);
void cg_store__conn_drop(struct conn *c, const char *why);
/* The handshake is done: the connection is UP. */
void cg_store__conn_up(struct conn *c);
/* n more replies are due on c (arms the watchdog); one arrived. */
void cg_store__conn_expect(struct conn *c, size_t n);
void cg_store__conn_progress(struct conn *c);
/* Something arrived on c (not a reply it waits for): it is alive. */
void cg_store__conn_alive(struct conn *c);
int  cg_store__loud_failure(unsigned n);
int  cg_store__all_cmd_up(const cg_store *st);
void cg_store__notify_state(cg_store *st);

/* ---- store_handshake.c ----------------------------------------------- */

/* Queue the handshake of a freshly opened connection (c->ac is set). */
int  cg_store__queue_handshake(struct conn *c);

/* ---- store_resp.c ---------------------------------------------------- */

int  cg_store__rbuf_reserve(struct rbuf *b, size_t n);
int  cg_store__rbuf_bulk(struct rbuf *b, const char *s, size_t n);
int  cg_store__rbuf_array(struct rbuf *b, size_t n);

/* ---- store_cmd.c ----------------------------------------------------- */

void cg_store__on_cmd_reply(redisAsyncContext *ac, void *rv, void *priv);
int  cg_store__send_formatted(struct conn *c, struct req *q);
struct conn *cg_store__cmd_conn(cg_store *st, uint64_t shard_key);
int  cg_store__check_up(const struct conn *c);
/* Queue a plain command (script < 0) or a script call on shard_key's
 * connection, behind whatever was batched there. */
int  cg_store__submit(cg_store *st, uint64_t shard_key, int script, int nhead,
                      const char **head, const size_t *headlen, int argc,
                      const char **argv, const size_t *argvlen, cg_store_reply_cb cb,
                      void *data);

/* ---- store_batch.c --------------------------------------------------- */

/* Answer each operation of a batch request from the batch's reply. */
void cg_store__finish_ops(struct req *q, redisReply *r, int err);
int  cg_store__flush_batch(struct conn *c, int from_check);
void cg_store__batch_fail(struct conn *c, int err);

/* ---- store_pubsub.c -------------------------------------------------- */

/* SUBSCRIBE every uid of the set again (the subscriber just came UP). */
int  cg_store__sub_resubscribe(struct conn *c);
/* The subscriber connection is gone: tell the waiters, forget the uids
 * nobody was ever told about. */
void cg_store__subs_conn_lost(cg_store *st);
/* cg_store_close(): fire every waiter with CG_E_CLOSED and empty the set. */
void cg_store__subs_close(cg_store *st);

/* ---- store_scripts.c ------------------------------------------------- */

extern const char *const cg_store__script_names[CG_SCRIPT_MAX];
int  cg_store__is_noscript(const redisReply *r);
int  cg_store__req_retry(struct req *q, struct conn *c);

#endif
