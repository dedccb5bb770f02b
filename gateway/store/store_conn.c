/* store_conn.c - the store's connections: 1 + N (N = redis_connections
 * command connections, default 4, and one subscriber), each a small state
 * machine driven by its own retry timer, watchdog and backoff:
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
 *                          The handshake (store_handshake.c) loads the
 *                          scripts. cg_store_ready() = every command
 *                          connection UP.
 *   subscriber connection  Once UP it SUBSCRIBEs every uid of the set again
 *                          (a batch, store_pubsub.c), and is "synced" when
 *                          all of those confirmations arrived.
 *
 * The state callback reports "full" readiness: every command connection UP
 * and subscriber UP + synced (see store.h). A command connection that is
 * down fails only its own shard's requests (CG_E_STORE); the others go on.
 * RESOLVING only happens for a host name: it is resolved with
 * uv_getaddrinfo so the loop never blocks on DNS.
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
 * Ownership. hiredis owns each redisAsyncContext; we only request its free,
 * never from inside onConnect/onDisconnect (hiredis would touch it
 * afterwards), and set conn->ac = NULL first so that re-entrant calls (a
 * user callback that issues a command or closes the store) see the
 * connection as gone. The adapter closes its uv_poll handle asynchronously.
 *
 * hiredis 0.14.1 quirks handled here: reply callbacks get NULL when the
 * context is freed; redisAsyncFree() inside a reply callback is deferred;
 * onConnect(REDIS_ERR) is followed by a free; the libuv adapter drops poll
 * errors on the floor, so attach_loop() swaps in read/write hooks that
 * pass them on (a refused connect would otherwise hang until the watchdog). */
#include "fmacros.h"

#include <poll.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <uv.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libuv.h>

#include "core/common.h"
#include "core/log.h"
#include "core/metrics.h"
#include "store/store_internal.h"

/* hiredis calls per readable wake-up of a connection, 16 KiB each at most
 * (on_poll): 512 KiB, then the loop serves the others. */
#define READS_PER_WAKE 32

#define LOG_FAILURES_LOUD     3       /* warn on the first N failed attempts, */
#define LOG_FAILURES_EVERY    10      /* then on every Nth */

static void conn_start(struct conn *c);
static void on_watchdog(uv_timer_t *t);

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

int
cg_store__loud_failure(unsigned n)
{
    return n <= LOG_FAILURES_LOUD || n % LOG_FAILURES_EVERY == 0;
}

/* The monotonic clock in ms, read now: uv_now() is the loop's time, read
 * once per turn, so a long turn of this node would count as Redis's
 * silence. Same clock and unit as uv_now(). */
static uint64_t
fresh_ms(void)
{
    return uv_hrtime() / 1000000u;
}

/* Whether c's socket holds bytes this node has not read yet: then the node
 * is behind (a busy loop), not Redis. */
static int
unread_bytes(const struct conn *c)
{
    struct pollfd p = { .fd = c->ac->c.fd, .events = POLLIN };

    return p.fd >= 0 && poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

void
cg_store__conn_alive(struct conn *c)
{
    c->last_progress = fresh_ms();
}

void
cg_store__conn_expect(struct conn *c, size_t n)
{
    cg_store *st = c->st;

    if (c->outstanding == 0)
        c->last_progress = fresh_ms();
    c->outstanding += n;
    if (!uv_is_active((uv_handle_t *)&c->watchdog) && !st->closing)
        uv_timer_start(&c->watchdog, on_watchdog, st->timeout_ms, 0);
}

void
cg_store__conn_progress(struct conn *c)
{
    if (c->outstanding > 0)
        c->outstanding--;
    c->last_progress = fresh_ms();
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
void
cg_store__conn_lost(struct conn *c, const char *why)
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
        cg_store__subs_conn_lost(st);
    }
    if (st->closing)
        return;

    count_error(st);
    c->failures++;
    delay = backoff_delay(c);
    if (was == CONN_UP) {
        cg_log(CG_LOG_WARN, "redis: %s connection to %s lost (%s); %s; reconnecting in "
               "%llu ms (check that redis-server is running at %s)", c->name,
               st->url->shown, why,
               c->kind == CONN_CMD ? "sends answer 503 until it is back"
                                   : "pushes wait in the pending inboxes until it is back",
               (unsigned long long)delay, st->url->shown);
    } else if (cg_store__loud_failure(c->failures)) {
        cg_log(CG_LOG_WARN, "redis: cannot connect the %s connection to %s (%s); attempt %u, "
               "retrying in %llu ms (check that redis-server is running at %s and that "
               "redis_url is right)", c->name, st->url->shown, why, c->failures,
               (unsigned long long)delay, st->url->shown);
    }
    uv_timer_start(&c->retry, on_retry, delay, 0);
    cg_store__notify_state(st);
}

/* Drop a live connection ourselves (timeout, bad handshake reply). */
void
cg_store__conn_drop(struct conn *c, const char *why)
{
    redisAsyncContext *ac = c->ac;

    if (ac == NULL)
        return;
    cg_store__conn_lost(c, why);
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
    if (unread_bytes(c))
        cg_store__conn_alive(c);       /* late: we are, not Redis */
    idle = fresh_ms() - c->last_progress;
    if (idle < st->timeout_ms) {
        uv_timer_start(t, on_watchdog, st->timeout_ms - idle, 0);
        return;
    }
    cg_log(CG_LOG_WARN, "redis: no reply on the %s connection for %llu ms with %zu "
           "replies due (redis_timeout_ms); dropping it (is redis-server at %s stalled "
           "or overloaded?)", c->name, (unsigned long long)idle, c->outstanding,
           st->url->shown);
    cg_store__conn_drop(c, "no reply within redis_timeout_ms");
    if (c->kind == CONN_CMD && !st->closing)
        cg_store__conn_drop(SUB_CONN(st), "the command connection timed out");
}

/* Every command connection UP (scripts loaded). */
int
cg_store__all_cmd_up(const cg_store *st)
{
    for (size_t i = 0; i < st->ncmd; i++) {
        const struct conn *c = &st->conns[1 + i];
        if (c->state != CONN_UP || c->ac == NULL)
            return 0;
    }
    return 1;
}

void
cg_store__notify_state(cg_store *st)
{
    const struct conn *sub = SUB_CONN(st);
    int full = cg_store__all_cmd_up(st) && sub->state == CONN_UP && sub->synced;

    if (st->closing || full == st->notified)
        return;
    st->notified = full;
    if (st->state_cb)
        st->state_cb(full, st->state_data);
}

void
cg_store__conn_up(struct conn *c)
{
    cg_store *st = c->st;

    c->state = CONN_UP;
    if (c->ever_up && c->failures)
        cg_log(CG_LOG_NOTICE, "redis: %s connection to %s is back after %u reconnect "
               "attempt%s", c->name, st->url->shown, c->failures, c->failures == 1 ? "" : "s");
    else
        cg_log(CG_LOG_NOTICE, "redis: %s connection to %s up%s", c->name, st->url->shown,
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
    if (c->kind == CONN_SUB && cg_store__sub_resubscribe(c) < 0) {
        cg_store__conn_drop(c, "cannot subscribe the channels again");
        return;
    }
    cg_store__notify_state(st);
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
    struct conn *c = ac->data;

    /* Never free or call user code here: hiredis uses ac after we return. */
    if (status != REDIS_OK && c->ac == ac)
        cg_store__conn_lost(c, ac->c.errstr[0] ? ac->c.errstr : "connect failed");
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
    struct conn *c = ac->data;

    (void)status;
    if (c->ac == ac)
        cg_store__conn_lost(c, ac->c.errstr[0] ? ac->c.errstr : "closed by the server");
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
    /* hiredis reads at most 16 KiB per call: one call per wake-up capped a
     * connection at 16 KiB per loop turn, and a subscriber flooded with
     * pushes on a busy loop fell further behind every turn (a SUBSCRIBE's
     * confirmation, and with it a CONNECT, waited seconds behind them). So
     * read on while the socket holds bytes, up to READS_PER_WAKE calls;
     * the context may be gone after any of them (cleanup clears it). */
    for (int i = 0; i < READS_PER_WAKE && p->context != NULL && (events & UV_READABLE); i++) {
        int avail = 0;

        redisAsyncHandleRead(p->context);
        if (p->context == NULL || ioctl(p->context->c.fd, FIONREAD, &avail) < 0 || avail <= 0)
            break;
    }
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

/* Open the connection to ip (NULL for the unix socket). */
static void
conn_open(struct conn *c, const char *ip)
{
    cg_store *st = c->st;
    redisAsyncContext *ac;
    char why[160];

    ac = st->url->path ? redisAsyncConnectUnix(st->url->path)
                      : redisAsyncConnect(ip, st->url->port);
    c->state = CONN_HANDSHAKE;
    if (ac == NULL || ac->err) {
        snprintf(why, sizeof why, "%s", ac ? ac->c.errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        cg_store__conn_lost(c, why);
        return;
    }
    ac->data = c;
    if (attach_loop(ac, st->loop) != REDIS_OK) {
        /* The adapter set its hooks but not its data: keep it from
         * cleaning up what it never made. */
        ac->ev.cleanup = NULL;
        redisAsyncFree(ac);
        cg_store__conn_lost(c, "cannot attach to the event loop");
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (st->url->path == NULL)
        redisEnableKeepAlive(&ac->c);
    c->ac = ac;
    c->hs_left = 0;
    if (cg_store__queue_handshake(c) < 0)
        cg_store__conn_drop(c, "cannot queue the handshake");
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
        cg_store__maybe_finish(st);
        return;
    }
    if (ip[0] == '\0') {
        char why[128];
        snprintf(why, sizeof why, "cannot resolve %s: %s", st->url->host,
                 status < 0 ? uv_strerror(status) : "no address");
        cg_store__conn_lost(c, why);
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
    if (st->url->path || is_numeric_host(st->url->host)) {
        conn_open(c, st->url->host);
        return;
    }
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    c->gai.data = c;
    c->state = CONN_RESOLVING;
    rc = uv_getaddrinfo(st->loop, &c->gai, on_resolved, st->url->host, NULL, &hints);
    if (rc < 0) {
        char why[128];
        snprintf(why, sizeof why, "cannot resolve %s: %s", st->url->host, uv_strerror(rc));
        cg_store__conn_lost(c, why);
        return;
    }
    c->gai_busy = 1;
}

void
cg_store__conn_init(cg_store *st, size_t i)
{
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
    uv_timer_init(st->loop, &c->retry);
    uv_timer_init(st->loop, &c->watchdog);
    c->retry.data = c;
    c->watchdog.data = c;
    c->gai.data = c;
    /* First attempt on the next loop iteration (store.h). */
    uv_timer_start(&c->retry, on_retry, 0, 0);
}
