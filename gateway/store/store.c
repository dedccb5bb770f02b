/* store.c - asynchronous Redis on the gateway's libuv loop (hiredis 0.14.1
 * async API + its libuv adapter): the Lua scripts, plain commands,
 * and the per-user pub/sub channels.
 *
 * 1 + N connections (N = redis_connections command connections, default
 * 4, and one subscriber), each a small state machine driven by its own
 * retry timer, watchdog and backoff:
 *
 *            retry timer                connect + AUTH/SELECT/SCRIPT LOAD
 *   DOWN ─────────────────► [RESOLVING] ─► HANDSHAKE ───────────────────► UP
 *    ▲                                        │  error reply, EOF, or       │
 *    └──────── backoff (100 ms doubling to ◄──┴── no reply for ────────────┘
 *              redis_reconnect_max_ms,            redis_timeout_ms
 *              jittered to [d/2, d])
 *
 *   command connections    everything pipelined (replies come in order on
 *                          each). A request goes to connection
 *                          shard_key % N (cg_store_eval_keyed; plain
 *                          commands and cg_store_eval use shard 0), so all
 *                          requests with one key keep their order. Why N:
 *                          Redis reads at most ~16-20 KiB per client per
 *                          event-loop turn and, with appendfsync always,
 *                          fsyncs once per turn; N connections let one turn
 *                          (one fsync) carry N times as many scripts.
 *                          Handshake: [AUTH] [SELECT db] SCRIPT LOAD per script; a
 *                          connection is UP once every script's SHA came
 *                          back: nothing is computed locally. cg_store_ready()
 *                          = every command connection UP.
 *   subscriber connection  Handshake: [AUTH] PING. Once UP it SUBSCRIBEs
 *                          every uid of the set again (a batch), and is
 *                          "synced" when all of those confirmations arrived.
 *
 * The state callback reports "full" readiness: every command connection UP
 * and subscriber UP + synced (see store.h). A command connection that is
 * down fails only its own shard's requests (CG_E_STORE); the others go on. RESOLVING only happens for a host
 * name: it is resolved with uv_getaddrinfo so the loop never blocks on DNS.
 *
 * Command deadline. hiredis 0.14 async has no command timeout, so each
 * connection has a watchdog timer: while replies are outstanding, if none
 * arrives for redis_timeout_ms the connection is dropped (redisAsyncFree),
 * which fires every pending callback with reply == NULL -> CG_E_STORE, and
 * the reconnect starts. That is what turns a hung or vanished Redis into
 * prompt 503s. A command-connection timeout also drops the subscriber,
 * which would otherwise sit on a dead server unnoticed (the other command
 * connections notice on their own, by their own watchdogs).
 *
 * Exactly-once callbacks (STYLE.md 3). Each user command is a struct req
 * given to hiredis as privdata; hiredis calls it exactly once, with the
 * reply or with NULL when the context is freed (EOF, our drop, close). A
 * NULL reply maps to CG_E_STORE, or CG_E_CLOSED once cg_store_close() ran.
 * A NOSCRIPT error reply re-sends SCRIPT LOAD followed by the same EVALSHA
 * (the formatted command is kept in the req), once; the caller never sees
 * the first error. Subscription confirmations are struct waiter lists on
 * the subscription entries; completions that must not run before the
 * caller's function returns go through the "defer" timer.
 *
 * Ownership and lifetime. hiredis owns each redisAsyncContext; we only
 * request its free, never from inside onConnect/onDisconnect (hiredis would
 * touch it afterwards), and set conn->ac = NULL first so that re-entrant
 * calls (a user callback that issues a command or closes the store) see the
 * connection as gone. The adapter closes its uv_poll handle asynchronously.
 * cg_store_close() frees every context (callbacks fire with CG_E_CLOSED),
 * fails every waiter, cancels DNS, uv_close()s our 1 + 2 * (N + 1) timers,
 * and frees the store only when the last close callback and any cancelled
 * DNS request have come back; close_cb runs just before that free. After that,
 * uv_loop_close() succeeds once the loop has run the adapter's closes too.
 *
 * Pub/sub payloads on cg:u:<uid> are passed to the push callback only for
 * uids still in the set (a message can race an UNSUBSCRIBE).
 *
 * hiredis 0.14.1 quirks handled here: reply callbacks get NULL when the
 * context is freed; redisAsyncFree() inside a reply callback is deferred;
 * onConnect(REDIS_ERR) is followed by a free; the libuv adapter drops poll
 * errors on the floor, so attach_loop() swaps in read/write hooks that
 * pass them on (a refused connect would otherwise hang until the watchdog). */
#include "fmacros.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libuv.h>

#include "core/common.h"
#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "store/store.h"

/* Generated from gateway/store/lua/<name>.lua by embed_lua.cmake. */
extern const char cg_lua_chat[];
extern const char cg_lua_fetch[];
extern const char cg_lua_pending[];

/* ---- constants ------------------------------------------------------- */

#define BACKOFF_FIRST_MS      100     /* first reconnect delay (doubles) */
#define DEFAULT_TIMEOUT_MS    2000    /* if the config gives none */
#define DEFAULT_BACKOFF_MAX   5000
#define DEFAULT_CMD_CONNS     4       /* if the config gives none */
#define MAX_CMD_CONNS         64
#define SUB_BATCH             256     /* channels per SUBSCRIBE when resyncing */
#define DEFAULT_BATCH_OPS     128     /* chat operations per EVALSHA, if unset */
#define BATCH_MAX_BYTES       (1u << 20) /* flush a batch at once past this */
#define SUB_BUCKETS_MIN       64
#define SHA_LEN               40
#define LOG_FAILURES_LOUD     3       /* warn on the first N failed attempts, */
#define LOG_FAILURES_EVERY    10      /* then on every Nth */

static const char *const script_name[CG_SCRIPT_MAX] = {
    "chat", "fetch", "pending"
};

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
 * strings, and their callbacks. flush_batch() sends them as one EVALSHA of
 * the chat script. */
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
    uint64_t           last_progress; /* uv_now() of the last reply */
    uv_timer_t         retry;
    uv_timer_t         watchdog;
    uv_getaddrinfo_t   gai;
    int                gai_busy;      /* gai request in flight */
    size_t             resub_left;    /* SUB: confirmations of the resync batch due */
    int                synced;        /* SUB: resync batch fully confirmed */
    struct batch       batch;         /* CMD: chat operations not sent yet */
};

struct redis_url {
    char *host;              /* TCP host, NULL for a unix socket */
    int   port;
    char *path;              /* unix socket path, NULL for TCP */
    char *user;              /* ACL user name or NULL */
    char *pass;              /* password or NULL */
    int   db;
    char  shown[300];        /* for logs: password left out */
};

/* A subscription callback waiting for its confirmation, or queued on the
 * defer list with err set. */
struct waiter {
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
    struct redis_url         url;
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

    struct waiter           *defer_head;
    struct waiter          **defer_tail;
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

static void conn_start(struct conn *c);
static void notify_state(cg_store *st);
static void on_watchdog(uv_timer_t *t);
static void maybe_finish(cg_store *st);

/* ---- small helpers --------------------------------------------------- */

static uint64_t
rng_next(cg_store *st)
{
    /* xorshift64*: only used for reconnect jitter. */
    uint64_t x = st->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    st->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static int
err_gone(const cg_store *st)
{
    return st->closing ? CG_E_CLOSED : CG_E_STORE;
}

static void
observe_rtt(cg_store *st, uint64_t sent_ns)
{
    if (st->m)
        cg_hist_observe(&st->m->redis_rtt_ms, (double)(uv_hrtime() - sent_ns) / 1e6);
}

static void
count_error(cg_store *st)
{
    if (st->m)
        st->m->redis_errors++;
}

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

/* uid of a channel name "cg:u:<digits>", or 0. */
static uint64_t
channel_uid(const char *s, size_t len)
{
    static const size_t plen = sizeof(CG_STORE_CHANNEL_PREFIX) - 1;
    uint64_t v = 0;

    if (len <= plen || len - plen > 20 || memcmp(s, CG_STORE_CHANNEL_PREFIX, plen) != 0)
        return 0;
    for (size_t i = plen; i < len; i++) {
        unsigned d = (unsigned char)s[i] - '0';
        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    return v;
}

const char *
cg_store_script_source(enum cg_script script)
{
    switch (script) {
    case CG_SCRIPT_CHAT:   return cg_lua_chat;
    case CG_SCRIPT_FETCH:  return cg_lua_fetch;
    case CG_SCRIPT_PENDING: return cg_lua_pending;
    default:               return NULL;
    }
}

/* ---- redis_url -------------------------------------------------------- */

static int
hexval(int ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Copy s[0..n) with %XX decoded. NULL on failure, with *rc set to
 * CG_E_NOMEM or CG_E_INVAL (bad escape). */
static char *
dup_decoded(const char *s, size_t n, int *rc)
{
    char *out = cg_malloc(n + 1), *o = out;

    if (out == NULL) {
        *rc = CG_E_NOMEM;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            *o++ = s[i];
            continue;
        }
        int a = n - i >= 3 ? hexval((unsigned char)s[i + 1]) : -1;
        int b = n - i >= 3 ? hexval((unsigned char)s[i + 2]) : -1;
        if (a < 0 || b < 0) {
            cg_free(out);
            *rc = CG_E_INVAL;
            return NULL;
        }
        *o++ = (char)(a * 16 + b);
        i += 2;
    }
    *o = '\0';
    return out;
}

/* Strict decimal in [lo, hi]; -1 if not. */
static long
parse_num(const char *s, size_t n, long lo, long hi)
{
    long v = 0;

    if (n == 0 || n > 9)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return (v < lo || v > hi) ? -1 : v;
}

static void
url_cleanup(struct redis_url *u)
{
    cg_free(u->host);
    cg_free(u->path);
    cg_free(u->user);
    cg_free(u->pass);
    memset(u, 0, sizeof *u);
}

/* userinfo "user:pass", ":pass" or "pass" (a bare word is a password, as
 * with Redis before ACLs). */
static int
url_userinfo(struct redis_url *u, const char *s, size_t n, int *rc)
{
    const char *colon = memchr(s, ':', n);

    if (colon == NULL)
        return (u->pass = dup_decoded(s, n, rc)) ? 0 : -1;
    if (colon > s && (u->user = dup_decoded(s, (size_t)(colon - s), rc)) == NULL)
        return -1;
    if ((u->pass = dup_decoded(colon + 1, n - (size_t)(colon - s) - 1, rc)) == NULL)
        return -1;
    return 0;
}

/* redis://[[user]:password@]host[:port][/db]   (host may be [v6])
 * unix://[[user]:password@]/path[?db=N][&password=P] */
static int
url_parse(const char *s, struct redis_url *u)
{
    int rc = CG_E_INVAL;   /* CG_E_NOMEM once an allocation failed */

    memset(u, 0, sizeof *u);
    u->port = 6379;

    if (s == NULL)
        return CG_E_INVAL;
    if (strncmp(s, "unix://", 7) == 0) {
        const char *p = s + 7, *q, *at = strchr(p, '@'), *slash = strchr(p, '/');

        if (at && slash && at < slash) {
            if (url_userinfo(u, p, (size_t)(at - p), &rc) < 0)
                goto fail;
            p = at + 1;
        }
        if (*p != '/')
            goto fail;
        q = strchr(p, '?');
        if ((u->path = dup_decoded(p, q ? (size_t)(q - p) : strlen(p), &rc)) == NULL)
            goto fail;
        while (q && *q) {
            const char *k = q + 1, *amp = strchr(k, '&'), *eq;
            size_t kn = amp ? (size_t)(amp - k) : strlen(k);

            eq = memchr(k, '=', kn);
            if (eq == NULL)
                goto fail;
            if ((size_t)(eq - k) == 2 && memcmp(k, "db", 2) == 0) {
                long db = parse_num(eq + 1, kn - 3, 0, 100000);
                if (db < 0)
                    goto fail;
                u->db = (int)db;
            } else if ((size_t)(eq - k) == 8 && memcmp(k, "password", 8) == 0) {
                cg_free(u->pass);
                if ((u->pass = dup_decoded(eq + 1, kn - 9, &rc)) == NULL)
                    goto fail;
            } else {
                goto fail;
            }
            q = amp;
        }
        snprintf(u->shown, sizeof u->shown, "unix://%s", u->path);
        if (u->db)
            snprintf(u->shown, sizeof u->shown, "unix://%s?db=%d", u->path, u->db);
        return 0;
    }
    if (strncmp(s, "redis://", 8) == 0) {
        const char *p = s + 8, *end = p + strcspn(p, "/"), *at = NULL, *hp, *he, *colon;

        for (const char *x = p; x < end; x++)
            if (*x == '@')
                at = x;
        if (at) {
            if (url_userinfo(u, p, (size_t)(at - p), &rc) < 0)
                goto fail;
            p = at + 1;
        }
        if (*p == '[') {
            hp = p + 1;
            he = memchr(hp, ']', (size_t)(end - hp));
            if (he == NULL)
                goto fail;
            colon = he + 1 < end ? he + 1 : NULL;
            if (colon && *colon != ':')
                goto fail;
        } else {
            hp = p;
            colon = memchr(p, ':', (size_t)(end - p));
            he = colon ? colon : end;
        }
        if (he == hp)
            goto fail;
        if ((u->host = cg_strndup(hp, (size_t)(he - hp))) == NULL) {
            rc = CG_E_NOMEM;
            goto fail;
        }
        if (colon) {
            long port = parse_num(colon + 1, (size_t)(end - colon - 1), 1, 65535);
            if (port < 0)
                goto fail;
            u->port = (int)port;
        }
        if (*end == '/' && end[1] != '\0') {
            long db = parse_num(end + 1, strlen(end + 1), 0, 100000);
            if (db < 0)
                goto fail;
            u->db = (int)db;
        }
        snprintf(u->shown, sizeof u->shown, "redis://%s%s%s:%d/%d",
                 strchr(u->host, ':') ? "[" : "", u->host,
                 strchr(u->host, ':') ? "]" : "", u->port, u->db);
        return 0;
    }
fail:
    url_cleanup(u);
    return rc;
}

/* ---- subscription set ------------------------------------------------ */

static size_t
sub_hash(const cg_store *st, uint64_t uid)
{
    return (size_t)((uid * 0x9E3779B97F4A7C15ULL) >> 17) & (st->nbuckets - 1);
}

static struct sub_entry **
sub_link(cg_store *st, uint64_t uid)
{
    struct sub_entry **l = &st->buckets[sub_hash(st, uid)];

    while (*l && (*l)->uid != uid)
        l = &(*l)->next;
    return l;
}

static struct sub_entry *
sub_find(cg_store *st, uint64_t uid)
{
    return *sub_link(st, uid);
}

static int
sub_grow(cg_store *st)
{
    size_t n = st->nbuckets * 2;
    struct sub_entry **nb = cg_calloc(n, sizeof *nb);

    if (nb == NULL)
        return CG_E_NOMEM;
    for (size_t i = 0; i < st->nbuckets; i++) {
        struct sub_entry *e = st->buckets[i], *next;
        for (; e; e = next) {
            size_t h = (size_t)((e->uid * 0x9E3779B97F4A7C15ULL) >> 17) & (n - 1);
            next = e->next;
            e->next = nb[h];
            nb[h] = e;
        }
    }
    cg_free(st->buckets);
    st->buckets = nb;
    st->nbuckets = n;
    return 0;
}

static struct sub_entry *
sub_add(cg_store *st, uint64_t uid)
{
    struct sub_entry *e;

    if (st->nsubs >= st->nbuckets)
        (void)sub_grow(st);   /* a full table still works, only slower */
    if ((e = cg_calloc(1, sizeof *e)) == NULL)
        return NULL;
    e->uid = uid;
    e->wtail = &e->waiters;
    struct sub_entry **l = &st->buckets[sub_hash(st, uid)];
    e->next = *l;
    *l = e;
    st->nsubs++;
    return e;
}

/* Unlink and return the entry of uid (caller frees), or NULL. */
static struct sub_entry *
sub_remove(cg_store *st, uint64_t uid)
{
    struct sub_entry **l = sub_link(st, uid), *e = *l;

    if (e) {
        *l = e->next;
        st->nsubs--;
    }
    return e;
}

static void
waiter_append(struct sub_entry *e, struct waiter *w)
{
    w->next = NULL;
    *e->wtail = w;
    e->wtail = &w->next;
}

/* ---- deferred completions ------------------------------------------- */

static void
on_defer(uv_timer_t *t)
{
    cg_store *st = t->data;
    struct waiter *w = st->defer_head, *next;

    st->defer_head = NULL;
    st->defer_tail = &st->defer_head;
    for (; w; w = next) {
        next = w->next;
        w->cb(NULL, st->closing ? CG_E_CLOSED : w->err, w->data);
        cg_free(w);
    }
}

/* Queue the waiters of list (a NULL-terminated chain) to fire with err on
 * the next loop turn. */
static void
defer_chain(cg_store *st, struct waiter *list, int err)
{
    struct waiter *next;

    for (; list; list = next) {
        next = list->next;
        list->next = NULL;
        list->err = err;
        *st->defer_tail = list;
        st->defer_tail = &list->next;
    }
    if (st->defer_head && !st->closing && !uv_is_active((uv_handle_t *)&st->defer))
        uv_timer_start(&st->defer, on_defer, 0, 0);
}

/* Fire every waiter of a chain now. */
static void
fire_chain(cg_store *st, struct waiter *list, int err)
{
    struct waiter *next;

    for (; list; list = next) {
        next = list->next;
        list->cb(NULL, st->closing ? CG_E_CLOSED : err, list->data);
        cg_free(list);
    }
}

/* ---- connection state ------------------------------------------------ */

static uint64_t
backoff_delay(struct conn *c)
{
    cg_store *st = c->st;
    uint64_t d = BACKOFF_FIRST_MS;

    for (unsigned i = 1; i < c->failures && d < st->backoff_max_ms; i++)
        d *= 2;
    if (d > st->backoff_max_ms)
        d = st->backoff_max_ms;
    /* Jitter to [d/2, d] so that many gateways do not reconnect in step. */
    return d / 2 + rng_next(st) % (d / 2 + 1);
}

static int
loud_failure(unsigned n)
{
    return n <= LOG_FAILURES_LOUD || n % LOG_FAILURES_EVERY == 0;
}

static void
conn_expect(struct conn *c, size_t n)
{
    cg_store *st = c->st;

    if (c->outstanding == 0)
        c->last_progress = uv_now(st->loop);
    c->outstanding += n;
    if (!uv_is_active((uv_handle_t *)&c->watchdog) && !st->closing)
        uv_timer_start(&c->watchdog, on_watchdog, st->timeout_ms, 0);
}

static void
conn_progress(struct conn *c)
{
    if (c->outstanding > 0)
        c->outstanding--;
    c->last_progress = uv_now(c->st->loop);
}

static void
on_retry(uv_timer_t *t)
{
    struct conn *c = t->data;

    if (c->st->m && c->ever_up)
        c->st->m->redis_reconnects++;
    conn_start(c);
}

/* The connection is gone (or never came up): forget the context (hiredis
 * frees it), fail what waits on it, and schedule the next attempt. Safe to
 * call more than once per context; re-entrant user code sees it as down. */
static void
conn_lost(struct conn *c, const char *why)
{
    cg_store *st = c->st;
    enum conn_state was = c->state;
    uint64_t delay;

    if (was == CONN_DOWN)
        return;
    c->ac = NULL;
    c->state = CONN_DOWN;
    c->outstanding = 0;
    c->hs_left = 0;
    uv_timer_stop(&c->watchdog);
    if (c->kind == CONN_SUB) {
        c->synced = 0;
        c->resub_left = 0;
        /* Waiters learn of the failure. A uid nobody was ever told about
         * leaves the set with them (its callers now believe it is not
         * subscribed); the others stay and are subscribed again. */
        for (size_t i = 0; i < st->nbuckets; i++) {
            struct sub_entry **l = &st->buckets[i];
            while (*l) {
                struct sub_entry *e = *l;
                struct waiter *w = e->waiters;

                e->confirmed = 0;
                e->waiters = NULL;
                e->wtail = &e->waiters;
                if (!st->closing)
                    defer_chain(st, w, CG_E_STORE);
                else
                    fire_chain(st, w, CG_E_CLOSED);
                if (w && !e->ever_confirmed) {
                    *l = e->next;
                    st->nsubs--;
                    cg_free(e);
                } else {
                    l = &e->next;
                }
            }
        }
    }
    if (st->closing)
        return;

    count_error(st);
    c->failures++;
    delay = backoff_delay(c);
    if (was == CONN_UP) {
        cg_log(CG_LOG_WARN, "redis: %s connection to %s lost (%s); %s; reconnecting in "
               "%llu ms (check that redis-server is running at %s)", c->name,
               st->url.shown, why,
               c->kind == CONN_CMD ? "sends answer 503 until it is back"
                                   : "pushes wait in the pending inboxes until it is back",
               (unsigned long long)delay, st->url.shown);
    } else if (loud_failure(c->failures)) {
        cg_log(CG_LOG_WARN, "redis: cannot connect the %s connection to %s (%s); attempt %u, "
               "retrying in %llu ms (check that redis-server is running at %s and that "
               "redis_url is right)", c->name, st->url.shown, why, c->failures,
               (unsigned long long)delay, st->url.shown);
    }
    uv_timer_start(&c->retry, on_retry, delay, 0);
    notify_state(st);
}

/* Drop a live connection ourselves (timeout, bad handshake reply). */
static void
conn_drop(struct conn *c, const char *why)
{
    redisAsyncContext *ac = c->ac;

    if (ac == NULL)
        return;
    conn_lost(c, why);
    /* Deferred by hiredis until the current reply callback returns when
     * called from one; otherwise every pending callback fires right here
     * with reply == NULL. */
    redisAsyncFree(ac);
}

static void
on_watchdog(uv_timer_t *t)
{
    struct conn *c = t->data;
    cg_store *st = c->st;
    uint64_t idle;

    if (c->ac == NULL || c->outstanding == 0 || st->closing)
        return;
    idle = uv_now(st->loop) - c->last_progress;
    if (idle < st->timeout_ms) {
        uv_timer_start(t, on_watchdog, st->timeout_ms - idle, 0);
        return;
    }
    cg_log(CG_LOG_WARN, "redis: no reply on the %s connection for %llu ms with %zu "
           "replies due (redis_timeout_ms); dropping it (is redis-server at %s stalled "
           "or overloaded?)", c->name, (unsigned long long)idle, c->outstanding,
           st->url.shown);
    conn_drop(c, "no reply within redis_timeout_ms");
    if (c->kind == CONN_CMD && !st->closing)
        conn_drop(SUB_CONN(st), "the command connection timed out");
}

/* Every command connection UP (scripts loaded). */
static int
all_cmd_up(const cg_store *st)
{
    for (size_t i = 0; i < st->ncmd; i++) {
        const struct conn *c = &st->conns[1 + i];
        if (c->state != CONN_UP || c->ac == NULL)
            return 0;
    }
    return 1;
}

static void
notify_state(cg_store *st)
{
    const struct conn *sub = SUB_CONN(st);
    int full = all_cmd_up(st) && sub->state == CONN_UP && sub->synced;

    if (st->closing || full == st->notified)
        return;
    st->notified = full;
    if (st->state_cb)
        st->state_cb(full, st->state_data);
}

/* ---- subscriber ------------------------------------------------------ */

static void
sub_confirmed(cg_store *st, uint64_t uid)
{
    struct conn *c = SUB_CONN(st);
    struct sub_entry *e = sub_find(st, uid);

    conn_progress(c);
    if (e && !e->confirmed) {
        struct waiter *w = e->waiters;
        e->confirmed = 1;
        e->ever_confirmed = 1;
        e->waiters = NULL;
        e->wtail = &e->waiters;
        fire_chain(st, w, 0);
    }
    if (c->resub_left > 0 && --c->resub_left == 0 && c->ac) {
        c->synced = 1;
        cg_log(CG_LOG_INFO, "redis: %zu channels subscribed again", st->nsubs);
        notify_state(st);
    }
}

static void
on_sub_reply(redisAsyncContext *ac, void *rv, void *priv)
{
    struct conn *c = ac->data;
    cg_store *st = c->st;
    redisReply *r = rv, *type, *chan;
    uint64_t uid;

    (void)priv;
    if (r == NULL) {
        if (c->ac == ac)
            conn_lost(c, ac->c.errstr[0] ? ac->c.errstr : "connection closed");
        return;
    }
    if (c->ac != ac || r->type != REDIS_REPLY_ARRAY || r->elements < 3)
        return;
    type = r->element[0];
    chan = r->element[1];
    if (type->type != REDIS_REPLY_STRING || chan->type != REDIS_REPLY_STRING)
        return;
    uid = channel_uid(chan->str, chan->len);
    if (uid == 0)
        return;
    if (type->len == 7 && memcmp(type->str, "message", 7) == 0) {
        if (r->element[2]->type == REDIS_REPLY_STRING && st->push_cb && sub_find(st, uid))
            st->push_cb(uid, r->element[2]->str, r->element[2]->len, st->push_data);
    } else if (type->len == 9 && memcmp(type->str, "subscribe", 9) == 0) {
        sub_confirmed(st, uid);
    }
    /* "unsubscribe" needs nothing. */
}

/* SUBSCRIBE every uid of the set again, in batches. */
static int
sub_resubscribe(struct conn *c)
{
    cg_store *st = c->st;
    const char *argv[SUB_BATCH + 1];
    char (*names)[32] = NULL;
    size_t n = 0;
    int rc = 0;

    c->synced = 0;
    c->resub_left = st->nsubs;
    if (st->nsubs == 0) {
        c->synced = 1;
        return 0;
    }
    if ((names = cg_malloc(SUB_BATCH * sizeof *names)) == NULL)
        return CG_E_NOMEM;
    argv[0] = "SUBSCRIBE";
    for (size_t i = 0; i < st->nbuckets && rc == 0; i++)
        for (struct sub_entry *e = st->buckets[i]; e && rc == 0; e = e->next) {
            cg_store_channel(names[n], sizeof names[n], e->uid);
            argv[n + 1] = names[n];
            if (++n == SUB_BATCH) {
                if (redisAsyncCommandArgv(c->ac, on_sub_reply, NULL, (int)n + 1, argv,
                                          NULL) != REDIS_OK)
                    rc = CG_E_STORE;
                n = 0;
            }
        }
    if (rc == 0 && n > 0 &&
        redisAsyncCommandArgv(c->ac, on_sub_reply, NULL, (int)n + 1, argv, NULL) != REDIS_OK)
        rc = CG_E_STORE;
    cg_free(names);
    if (rc == 0)
        conn_expect(c, st->nsubs);
    return rc;
}

/* ---- handshake ------------------------------------------------------- */

static void
conn_up(struct conn *c)
{
    cg_store *st = c->st;

    c->state = CONN_UP;
    if (c->ever_up && c->failures)
        cg_log(CG_LOG_NOTICE, "redis: %s connection to %s is back after %u reconnect "
               "attempt%s", c->name, st->url.shown, c->failures, c->failures == 1 ? "" : "s");
    else
        cg_log(CG_LOG_NOTICE, "redis: %s connection to %s up%s", c->name, st->url.shown,
               c->kind == CONN_CMD ? " (scripts send, recive, fetch, pending loaded)" : "");
    c->failures = 0;
    c->ever_up = 1;
    /* Redis is back: the other connections need not sit out their backoff.
     * This keeps short the window in which sends succeed while pushes
     * cannot be delivered yet (subscriber still away). */
    for (size_t i = 0; i < st->nconn; i++) {
        struct conn *other = &st->conns[i];
        if (other != c && other->state == CONN_DOWN &&
            uv_is_active((uv_handle_t *)&other->retry))
            uv_timer_start(&other->retry, on_retry, 0, 0);
    }
    if (c->kind == CONN_SUB && sub_resubscribe(c) < 0) {
        conn_drop(c, "cannot subscribe the channels again");
        return;
    }
    notify_state(st);
}

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
        conn_lost(c, ac->c.errstr[0] ? ac->c.errstr : "connection closed during the handshake");
        return;
    }
    conn_progress(c);
    if (r->type == REDIS_REPLY_ERROR) {
        const char *advice =
            strncmp(r->str, "NOAUTH", 6) == 0 ?
                "Redis wants a password: put it in redis_url (redis://:PASSWORD@host:port/db)" :
            strncmp(r->str, "LOADING", 7) == 0 ? "Redis is loading its data set; waiting" :
            step == HS_AUTH   ? "check the user and password in redis_url" :
            step == HS_SELECT ? "check the database number in redis_url" :
            step >= HS_SCRIPT ? "a script failed to load; this is a bug in gateway/store/lua" :
                                "unexpected answer";
        if (loud_failure(c->failures + 1))
            cg_log(strncmp(r->str, "LOADING", 7) == 0 ? CG_LOG_NOTICE : CG_LOG_ERROR,
                   "redis: %s connection to %s: %s%s refused: %s (%s)",
                   c->name, st->url.shown,
                   step == HS_AUTH ? "AUTH" : step == HS_SELECT ? "SELECT" :
                   step == HS_PING ? "PING" : "SCRIPT LOAD ",
                   step >= HS_SCRIPT ? script_name[step - HS_SCRIPT] : "", r->str, advice);
        conn_drop(c, "handshake refused");
        return;
    }
    if (step >= HS_SCRIPT && step < HS_SCRIPT + CG_SCRIPT_MAX) {
        if (r->type != REDIS_REPLY_STRING || r->len != SHA_LEN) {
            conn_drop(c, "unexpected SCRIPT LOAD reply");
            return;
        }
        memcpy(st->sha[step - HS_SCRIPT], r->str, SHA_LEN);
        st->sha[step - HS_SCRIPT][SHA_LEN] = '\0';
    }
    if (c->hs_left > 0 && --c->hs_left == 0)
        conn_up(c);
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
    struct conn *c = ac->data;

    /* Never free or call user code here: hiredis uses ac after we return. */
    if (status != REDIS_OK && c->ac == ac)
        conn_lost(c, ac->c.errstr[0] ? ac->c.errstr : "connect failed");
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
    struct conn *c = ac->data;

    (void)status;
    if (c->ac == ac)
        conn_lost(c, ac->c.errstr[0] ? ac->c.errstr : "closed by the server");
}

/* The hiredis 0.14.1 libuv adapter ignores a poll callback with status < 0,
 * which libuv reports (UV_EBADF, watcher stopped) when the socket has an
 * error, e.g. a refused TCP connect: hiredis would never hear of it and the
 * connection would hang until the watchdog. These hooks replace the
 * adapter's four read/write hooks (same semantics, same redisLibuvEvents)
 * with a callback that hands an error to hiredis as readable + writable, so
 * hiredis finds the socket error itself and disconnects. The adapter still
 * owns the handle and its cleanup. */
static void
on_poll(uv_poll_t *h, int status, int events)
{
    redisLibuvEvents *p = h->data;

    if (status < 0)
        events = UV_READABLE | UV_WRITABLE;
    if (p->context != NULL && (events & UV_READABLE))
        redisAsyncHandleRead(p->context);
    if (p->context != NULL && (events & UV_WRITABLE))
        redisAsyncHandleWrite(p->context);
}

static void
poll_update(redisLibuvEvents *p)
{
    if (p->events)
        uv_poll_start(&p->handle, p->events, on_poll);
    else
        uv_poll_stop(&p->handle);
}

static void
ev_add_read(void *d)
{
    redisLibuvEvents *p = d;
    p->events |= UV_READABLE;
    poll_update(p);
}

static void
ev_del_read(void *d)
{
    redisLibuvEvents *p = d;
    p->events &= ~UV_READABLE;
    poll_update(p);
}

static void
ev_add_write(void *d)
{
    redisLibuvEvents *p = d;
    p->events |= UV_WRITABLE;
    poll_update(p);
}

static void
ev_del_write(void *d)
{
    redisLibuvEvents *p = d;
    p->events &= ~UV_WRITABLE;
    poll_update(p);
}

static int
attach_loop(redisAsyncContext *ac, uv_loop_t *loop)
{
    if (redisLibuvAttach(ac, loop) != REDIS_OK)
        return REDIS_ERR;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    return REDIS_OK;
}

static int
hs_send(struct conn *c, enum hs_step step, int argc, const char **argv, const size_t *lens)
{
    if (redisAsyncCommandArgv(c->ac, on_hs_reply, (void *)(uintptr_t)step, argc, argv,
                              lens) != REDIS_OK)
        return CG_E_STORE;
    c->hs_left++;
    conn_expect(c, 1);
    return 0;
}

static int
queue_handshake(struct conn *c)
{
    cg_store *st = c->st;
    const struct redis_url *u = &st->url;

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

/* Open the connection to ip (NULL for the unix socket). */
static void
conn_open(struct conn *c, const char *ip)
{
    cg_store *st = c->st;
    redisAsyncContext *ac;
    char why[160];

    ac = st->url.path ? redisAsyncConnectUnix(st->url.path)
                      : redisAsyncConnect(ip, st->url.port);
    c->state = CONN_HANDSHAKE;
    if (ac == NULL || ac->err) {
        snprintf(why, sizeof why, "%s", ac ? ac->c.errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        conn_lost(c, why);
        return;
    }
    ac->data = c;
    if (attach_loop(ac, st->loop) != REDIS_OK) {
        /* The adapter set its hooks but not its data: keep it from
         * cleaning up what it never made. */
        ac->ev.cleanup = NULL;
        redisAsyncFree(ac);
        conn_lost(c, "cannot attach to the event loop");
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (st->url.path == NULL)
        redisEnableKeepAlive(&ac->c);
    c->ac = ac;
    c->hs_left = 0;
    if (queue_handshake(c) < 0)
        conn_drop(c, "cannot queue the handshake");
}

static void
on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct conn *c = req->data;
    cg_store *st = c->st;
    char ip[INET6_ADDRSTRLEN] = "";

    c->gai_busy = 0;
    if (res && status == 0) {
        /* Successive attempts walk the address list, so a name with an
         * address Redis does not listen on (often ::1 of "localhost")
         * still connects. */
        const struct addrinfo *ai = res;
        unsigned n = 0;

        for (const struct addrinfo *x = res; x; x = x->ai_next)
            n++;
        for (unsigned i = c->failures % n; i > 0; i--)
            ai = ai->ai_next;
        const void *a = ai->ai_family == AF_INET6
            ? (const void *)&((const struct sockaddr_in6 *)(const void *)ai->ai_addr)->sin6_addr
            : (const void *)&((const struct sockaddr_in *)(const void *)ai->ai_addr)->sin_addr;
        inet_ntop(ai->ai_family, a, ip, sizeof ip);
    }
    if (res)
        uv_freeaddrinfo(res);
    if (st->closing) {
        /* cg_store_close() waits for this request: finish it now. */
        c->state = CONN_DOWN;
        maybe_finish(st);
        return;
    }
    if (ip[0] == '\0') {
        char why[128];
        snprintf(why, sizeof why, "cannot resolve %s: %s", st->url.host,
                 status < 0 ? uv_strerror(status) : "no address");
        conn_lost(c, why);
        return;
    }
    conn_open(c, ip);
}

static int
is_numeric_host(const char *h)
{
    struct in6_addr a6;
    struct in_addr a4;

    return inet_pton(AF_INET, h, &a4) == 1 || inet_pton(AF_INET6, h, &a6) == 1;
}

static void
conn_start(struct conn *c)
{
    cg_store *st = c->st;
    struct addrinfo hints;
    int rc;

    if (st->closing || c->ac || c->gai_busy)
        return;
    if (st->url.path || is_numeric_host(st->url.host)) {
        conn_open(c, st->url.host);
        return;
    }
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    c->gai.data = c;
    c->state = CONN_RESOLVING;
    rc = uv_getaddrinfo(st->loop, &c->gai, on_resolved, st->url.host, NULL, &hints);
    if (rc < 0) {
        char why[128];
        snprintf(why, sizeof why, "cannot resolve %s: %s", st->url.host, uv_strerror(rc));
        conn_lost(c, why);
        return;
    }
    c->gai_busy = 1;
}

/* ---- commands -------------------------------------------------------- */

/* ---- RESP ------------------------------------------------------------ */

static int
rbuf_reserve(struct rbuf *b, size_t n)
{
    size_t cap = b->cap ? b->cap : 256;
    char *p;

    if (b->len + n <= b->cap)
        return 0;
    while (cap < b->len + n)
        cap *= 2;
    if ((p = cg_realloc(b->p, cap)) == NULL)
        return CG_E_NOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

/* "<type><n>\r\n" */
static void
rbuf_len_line(struct rbuf *b, char type, size_t n)
{
    char tmp[CG_U64_STR_MAX];
    size_t k = cg_u64_str(tmp, n);

    b->p[b->len++] = type;
    memcpy(b->p + b->len, tmp, k);
    b->len += k;
    b->p[b->len++] = '\r';
    b->p[b->len++] = '\n';
}

/* One bulk string "$<n>\r\n<s>\r\n". */
static int
rbuf_bulk(struct rbuf *b, const char *s, size_t n)
{
    if (rbuf_reserve(b, n + 26) < 0)
        return CG_E_NOMEM;
    rbuf_len_line(b, '$', n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len++] = '\r';
    b->p[b->len++] = '\n';
    return 0;
}

static int
rbuf_array(struct rbuf *b, size_t n)
{
    if (rbuf_reserve(b, 24) < 0)
        return CG_E_NOMEM;
    rbuf_len_line(b, '*', n);
    return 0;
}

/* ---- commands -------------------------------------------------------- */

/* Tell one queued operation; its share of inflight ends here. */
static void
op_finish(cg_store *st, const struct op *o, redisReply *r, int err)
{
    st->inflight--;
    if (o->cb)
        o->cb(r, err, o->data);
}

/* A batch's reply is one element per operation (chat.lua). Anything else
 * (an error for the whole batch, or a reply of another shape) goes to
 * every operation as it is; they answer 503. */
static void
finish_ops(struct req *q, redisReply *r, int err)
{
    int whole = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == q->nops;

    if (r != NULL && !whole && r->type != REDIS_REPLY_ERROR)
        cg_log(CG_LOG_WARN, "redis: the chat script answered a batch of %zu operations "
               "with a reply of type %d; answering 503 to each", q->nops, r->type);
    for (size_t i = 0; i < q->nops; i++)
        op_finish(q->st, &q->ops[i], whole ? r->element[i] : r, err);
}

static void
req_finish(struct req *q, redisReply *r, int err)
{
    cg_store *st = q->st;

    if (q->ops) {
        finish_ops(q, r, err);
        cg_free(q->ops);
    } else {
        st->inflight--;
        if (q->cb)
            q->cb(r, err, q->data);
    }
    cg_free(q->cmd);
    cg_free(q);
}

static void
on_reload_reply(redisAsyncContext *ac, void *rv, void *priv)
{
    struct conn *c = ac->data;
    redisReply *r = rv;

    if (c->ac != ac)
        return;
    if (r == NULL) {
        conn_lost(c, ac->c.errstr[0] ? ac->c.errstr : "connection closed");
        return;
    }
    conn_progress(c);
    if (r->type == REDIS_REPLY_ERROR)
        cg_log(CG_LOG_ERROR, "redis: reloading script %s failed: %s",
               script_name[(uintptr_t)priv], r->str);
}

static int
is_noscript(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR && r->len >= 8 && memcmp(r->str, "NOSCRIPT", 8) == 0;
}

static void on_cmd_reply(redisAsyncContext *ac, void *rv, void *priv);

/* The script vanished (SCRIPT FLUSH, a Redis restart behind a proxy, a
 * failover to a replica that never saw SCRIPT LOAD): load it and send the
 * same EVALSHA again, pipelined, so Redis runs the two in order. */
static int
req_retry(struct req *q, struct conn *c)
{
    const char *argv[3] = { "SCRIPT", "LOAD",
                            cg_store_script_source((enum cg_script)q->script) };

    if (redisAsyncCommandArgv(c->ac, on_reload_reply, (void *)(uintptr_t)q->script, 3,
                              argv, NULL) != REDIS_OK)
        return CG_E_STORE;
    conn_expect(c, 1);
    if (redisAsyncFormattedCommand(c->ac, on_cmd_reply, q, q->cmd, q->cmdlen) != REDIS_OK)
        return CG_E_STORE;
    conn_expect(c, 1);
    q->retried = 1;
    q->sent_ns = uv_hrtime();
    cg_log(CG_LOG_NOTICE, "redis: script %s was missing on %s (SCRIPT FLUSH or a "
           "failover?); loaded it again", script_name[q->script], c->st->url.shown);
    return 0;
}

static void
on_cmd_reply(redisAsyncContext *ac, void *rv, void *priv)
{
    struct conn *c = ac->data;
    struct req *q = priv;
    cg_store *st = q->st;
    redisReply *r = rv;

    if (r == NULL) {
        if (c->ac == ac)
            conn_lost(c, ac->c.errstr[0] ? ac->c.errstr : "connection closed");
        req_finish(q, NULL, err_gone(st));
        return;
    }
    if (c->ac == ac)
        conn_progress(c);
    if (q->script >= 0 && !q->retried && is_noscript(r) && c->ac == ac && !st->closing &&
        req_retry(q, c) == 0)
        return;
    observe_rtt(st, q->sent_ns);
    if (r->type == REDIS_REPLY_ERROR) {
        count_error(st);
        cg_log(CG_LOG_WARN, "redis: %s%s answered an error: %s",
               q->script >= 0 ? "script " : "a command",
               q->script >= 0 ? script_name[q->script] : "", r->str);
    }
    req_finish(q, r, 0);
}

static int
send_formatted(struct conn *c, struct req *q)
{
    if (redisAsyncFormattedCommand(c->ac, on_cmd_reply, q, q->cmd, q->cmdlen) != REDIS_OK)
        return CG_E_STORE;
    q->sent_ns = uv_hrtime();
    conn_expect(c, 1);
    return 0;
}

/* The command connection of shard_key. */
static struct conn *
cmd_conn(cg_store *st, uint64_t shard_key)
{
    return CMD_CONN(st, (size_t)(shard_key % st->ncmd));
}

static int
check_up(const struct conn *c)
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
    int rc = rbuf_array(&b, (size_t)(nhead + argc));

    for (int i = 0; rc == 0 && i < nhead; i++)
        rc = rbuf_bulk(&b, head[i], headlen[i]);
    for (int i = 0; rc == 0 && i < argc; i++)
        rc = rbuf_bulk(&b, argv[i], argvlen ? argvlen[i] : strlen(argv[i]));
    if (rc < 0) {
        cg_free(b.p);
        return rc;
    }
    q->cmd = b.p;
    q->cmdlen = b.len;
    return 0;
}

/* ---- batches of chat operations -------------------------------------- */

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
static void
batch_fail(struct conn *c, int err)
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
static int
flush_batch(struct conn *c, int from_check)
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
    if ((rc = check_up(c)) < 0)
        goto fail;
    nkl = cg_u64_str(nk, b->nkeys);
    if ((rc = rbuf_reserve(&cmd, 128 + b->keys.len + b->args.len)) < 0 ||
        (rc = rbuf_array(&cmd, 3 + b->nkeys + b->nargs)) < 0 ||
        (rc = rbuf_bulk(&cmd, "EVALSHA", 7)) < 0 ||
        (rc = rbuf_bulk(&cmd, st->sha[CG_SCRIPT_CHAT], SHA_LEN)) < 0 ||
        (rc = rbuf_bulk(&cmd, nk, nkl)) < 0)
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
    if ((rc = send_formatted(c, q)) < 0)
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
        batch_fail(c, rc == CG_E_CLOSED ? CG_E_CLOSED : CG_E_STORE);
    return rc;
}

static void
on_flush(uv_check_t *h)
{
    cg_store *st = h->data;

    uv_check_stop(h);
    st->flush_armed = 0;
    for (size_t i = 0; i < st->ncmd; i++)
        flush_batch(CMD_CONN(st, i), 1);
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
    c = cmd_conn(st, shard_key);
    if ((rc = check_up(c)) < 0)
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
        rc = rbuf_bulk(i < nkeys ? &b->keys : &b->args, argv[i], argvlen[i]);
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
        (void)flush_batch(c, 0);       /* on failure the check retries */
    if (b->nops > 0 && !st->flush_armed) {
        uv_check_start(&st->flush, on_flush);
        st->flush_armed = 1;
    }
    return 0;
}

static int
submit(cg_store *st, uint64_t shard_key, int script, int nhead, const char **head, const size_t *headlen,
       int argc, const char **argv, const size_t *argvlen, cg_store_reply_cb cb, void *data)
{
    struct conn *c = cmd_conn(st, shard_key);
    struct req *q;
    int rc;

    if ((rc = check_up(c)) < 0)
        return rc;
    if (argc < 0 || (argc > 0 && argv == NULL))
        return CG_E_INVAL;
    /* Whatever was queued on this connection before runs before this. */
    if ((rc = flush_batch(c, 0)) < 0)
        return rc;
    if ((q = cg_calloc(1, sizeof *q)) == NULL)
        return CG_E_NOMEM;
    q->st = st;
    q->cb = cb;
    q->data = data;
    q->script = script;
    if ((rc = format_cmd(q, nhead, head, headlen, argc, argv, argvlen)) < 0 ||
        (rc = send_formatted(c, q)) < 0) {
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
    return submit(st, shard_key, (int)script, 3, head, headlen, argc, argv, argvlen, cb,
                  data);
}

int
cg_store_command(cg_store *st, int argc, const char **argv, const size_t *argvlen,
                 cg_store_reply_cb cb, void *data)
{
    if (argc < 1)
        return st->closing ? CG_E_CLOSED : CG_E_INVAL;
    return submit(st, 0, -1, 0, NULL, NULL, argc, argv, argvlen, cb, data);
}

int
cg_store_ready(const cg_store *st)
{
    return !st->closing && all_cmd_up(st);
}

size_t
cg_store_inflight(const cg_store *st)
{
    return st->inflight;
}

/* ---- subscriptions --------------------------------------------------- */

int
cg_store_subscribe(cg_store *st, uint64_t uid, cg_store_reply_cb cb, void *data)
{
    struct conn *c = SUB_CONN(st);
    struct sub_entry *e;
    struct waiter *w = NULL;
    char ch[32];
    const char *argv[2] = { "SUBSCRIBE", ch };

    if (st->closing)
        return CG_E_CLOSED;
    if (uid == 0)
        return CG_E_INVAL;
    if (c->state != CONN_UP || c->ac == NULL)
        return CG_E_STORE;
    if (cb) {
        if ((w = cg_calloc(1, sizeof *w)) == NULL)
            return CG_E_NOMEM;
        w->cb = cb;
        w->data = data;
    }
    if ((e = sub_find(st, uid)) != NULL) {
        if (w == NULL)
            return 0;
        if (e->confirmed)
            defer_chain(st, w, 0);       /* "at once", on the next loop turn */
        else
            waiter_append(e, w);
        return 0;
    }
    if ((e = sub_add(st, uid)) == NULL) {
        cg_free(w);
        return CG_E_NOMEM;
    }
    cg_store_channel(ch, sizeof ch, uid);
    if (redisAsyncCommandArgv(c->ac, on_sub_reply, NULL, 2, argv, NULL) != REDIS_OK) {
        cg_free(sub_remove(st, uid));
        cg_free(w);
        return CG_E_STORE;
    }
    conn_expect(c, 1);
    if (w)
        waiter_append(e, w);
    return 0;
}

void
cg_store_unsubscribe(cg_store *st, uint64_t uid)
{
    struct conn *c = SUB_CONN(st);
    struct sub_entry *e;
    char ch[32];
    const char *argv[2] = { "UNSUBSCRIBE", ch };

    if (st->closing || (e = sub_remove(st, uid)) == NULL)
        return;
    defer_chain(st, e->waiters, CG_E_CLOSED);
    cg_free(e);
    if (c->state == CONN_UP && c->ac) {
        cg_store_channel(ch, sizeof ch, uid);
        /* No callback: hiredis routes the confirmation to the channel's
         * on_sub_reply, which ignores it. Fails harmlessly if hiredis has
         * already left subscribed mode. */
        (void)redisAsyncCommandArgv(c->ac, NULL, NULL, 2, argv, NULL);
    }
}

void
cg_store_set_push_cb(cg_store *st, cg_store_push_cb cb, void *data)
{
    st->push_cb = cb;
    st->push_data = data;
}

void
cg_store_set_state_cb(cg_store *st, cg_store_state_cb cb, void *data)
{
    st->state_cb = cb;
    st->state_data = data;
}

/* ---- create / close -------------------------------------------------- */

int
cg_store_create(uv_loop_t *loop, const struct cg_config *cfg,
                struct cg_metrics *metrics, cg_store **out)
{
    cg_store *st;
    int rc;

    *out = NULL;
    if ((st = cg_calloc(1, sizeof *st)) == NULL)
        return CG_E_NOMEM;
    if ((rc = url_parse(cfg->redis_url, &st->url)) < 0) {
        cg_free(st);
        if (rc == CG_E_NOMEM)
            return rc;
        cg_log(CG_LOG_ERROR, "redis_url=%s: expected redis://[[user]:password@]host[:port]"
               "[/db] or unix:///path[?db=N]",
               cfg->redis_url == NULL ? "(none)" :
               strchr(cfg->redis_url, '@') || strstr(cfg->redis_url, "password=")
                   ? "(not shown: it holds a password)" : cfg->redis_url);
        return CG_E_INVAL;
    }
    if ((st->buckets = cg_calloc(SUB_BUCKETS_MIN, sizeof *st->buckets)) == NULL) {
        url_cleanup(&st->url);
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
        url_cleanup(&st->url);
        cg_free(st);
        return CG_E_NOMEM;
    }
    st->loop = loop;
    st->cfg = cfg;
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
    for (size_t i = 0; i < st->nconn; i++) {
        struct conn *c = &st->conns[i];
        c->st = st;
        c->kind = i == 0 ? CONN_SUB : CONN_CMD;
        if (i == 0)
            c->name = "subscriber";
        else if (st->ncmd == 1)
            c->name = "command";
        else {
            snprintf(c->namebuf, sizeof c->namebuf, "command %zu/%zu", i, st->ncmd);
            c->name = c->namebuf;
        }
        uv_timer_init(loop, &c->retry);
        uv_timer_init(loop, &c->watchdog);
        c->retry.data = c;
        c->watchdog.data = c;
        c->gai.data = c;
        /* First attempt on the next loop iteration (store.h). */
        uv_timer_start(&c->retry, on_retry, 0, 0);
    }
    st->handles_open = (unsigned)(2 + 2 * st->nconn);
    cg_log(CG_LOG_INFO, "redis: connecting to %s", st->url.shown);
    *out = st;
    return 0;
}

static void
maybe_finish(cg_store *st)
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
    url_cleanup(&st->url);
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
    maybe_finish(st);
}

void
cg_store_close(cg_store *st, void (*close_cb)(void *data), void *data)
{
    struct waiter *fail = NULL, **ftail = &fail;

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
        batch_fail(c, CG_E_CLOSED);
    }

    /* Subscription waiters, then everything queued for the next turn. */
    for (size_t i = 0; i < st->nbuckets; i++) {
        struct sub_entry *e = st->buckets[i], *next;
        for (; e; e = next) {
            next = e->next;
            if (e->waiters) {
                *ftail = e->waiters;
                ftail = e->wtail;
            }
            cg_free(e);
        }
        st->buckets[i] = NULL;
    }
    st->nsubs = 0;
    *ftail = st->defer_head;
    st->defer_head = NULL;
    st->defer_tail = &st->defer_head;
    fire_chain(st, fail, CG_E_CLOSED);

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
