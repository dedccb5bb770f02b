/* transport_ll.c - the native long link over plain TCP (PROTOCOL.md
 * section 9): one long-link session per connection.
 *
 * What it does. server.c's listener (longlink_listen, listener.c) accepts
 * and hands each descriptor to cg_longlink_accept(); this file wraps it in
 * a libuv TCP handle on the gateway's loop, creates a session that speaks
 * packets (CG_PROTO_LONGLINK), feeds it every byte read, and writes what it
 * pops. The session does everything else (packets, limits, timers, the
 * chat); this file knows nothing of packets but the close packet it writes
 * last (cg_session_close_packet) and the one it writes to a connection it
 * refuses.
 *
 * A connection:
 *
 *   accepted --admitted--> OPEN --session closing, queue written,
 *      |                     |   or ops->close--> close packet written
 *      | refused (429/503)   | EOF, read or write error    |
 *      v                     v                             v
 *   close packet ------> CLOSED <--- EOF or LINGER_MS --- LINGER
 *   (no session)     (uv_close; the session's on_closed   (the session's
 *                     if it was not called yet)            on_closed, FIN,
 *                                                          input dropped)
 *
 * Writes: at most one uv_write in flight per connection. want_write puts
 * the connection on the transport's pending list, served from one idle
 * handle on a later turn (never inside the session's call); a flush pops
 * frames until WRITE_BATCH bytes or the queue runs dry and writes them at
 * once, and the write's callback flushes again. Reads go to one shared
 * buffer (the session copies what it keeps), so an idle connection holds
 * no buffer but its write buffer's, which is freed when a write ends.
 *
 * The close: after the close packet, a FIN (uv_shutdown), then input is
 * read and dropped until the peer's EOF or LINGER_MS, so that the close
 * packet is not lost to a reset (a close() with unread input sends RST).
 *
 * Owns the connections (struct ll_conn) and the transport object (the
 * read buffer, the pending list, the idle handle). */
#include "fmacros.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "core/buf.h"
#include "core/common.h"
#include "core/config.h"
#include "core/context.h"
#include "core/log.h"
#include "core/metrics.h"
#include "session/close_codes.h"
#include "session/session.h"
#include "transport/transport.h"
#include "longlink/longlink.h"

/* Bytes popped into one write: enough to batch a burst of pushes, small
 * enough not to hold a large buffer for a slow peer. */
#define WRITE_BATCH (64 * 1024)

/* The shared read buffer: one read at most. */
#define READ_BUF (64 * 1024)

/* How long a closed connection waits for the peer's EOF after its FIN. */
#define LINGER_MS 2000

struct ll_conn {
    struct cg_longlink *ll;
    uv_tcp_t            tcp;
    uv_timer_t          linger;
    uv_write_t          wreq;
    uv_shutdown_t       sreq;
    cg_session         *s;          /* NULL once on_closed was called */
    struct cg_wbuf      wb;         /* the write in flight, or being built */
    struct ll_conn     *next_pending;
    struct ll_conn     *prev, *next;   /* every connection of ll */
    unsigned            pending : 1;   /* on ll->pending */
    unsigned            writing : 1;   /* a uv_write in flight */
    unsigned            reading : 1;   /* uv_read_start in force */
    unsigned            paused : 1;    /* the session asked to stop reading */
    unsigned            last : 1;      /* the close packet is in wb */
    unsigned            lingering : 1; /* FIN sent: input is dropped */
    unsigned            closing : 1;   /* uv_close called */
    unsigned            close_req : 1; /* ops->close: close packet now */
    int                 handles;       /* handles still to close */
    int                 close_code;
    char                close_why[64];
    char                peer[INET6_ADDRSTRLEN];
};

struct cg_longlink {
    struct cg_server *srv;
    uv_idle_t         idle;
    struct ll_conn   *pending;
    struct ll_conn   *all;          /* connections not yet freed */
    size_t            open;         /* how many */
    int               closing;      /* cg_longlink_destroy() was called */
    int               idle_closed;
    char              rbuf[READ_BUF];
};

static void conn_close(struct ll_conn *c);
static void flush(struct ll_conn *c);
static void maybe_free(struct cg_longlink *ll);

/* ---- the pending list --------------------------------------------------- */

static void
on_idle(uv_idle_t *h)
{
    struct cg_longlink *ll = h->data;
    struct ll_conn *c;

    while ((c = ll->pending) != NULL) {
        ll->pending = c->next_pending;
        c->next_pending = NULL;
        c->pending = 0;
        flush(c);
    }
    uv_idle_stop(&ll->idle);
}

static void
schedule(struct ll_conn *c)
{
    struct cg_longlink *ll = c->ll;

    if (c->pending || c->closing)
        return;
    c->pending = 1;
    c->next_pending = ll->pending;
    ll->pending = c;
    uv_idle_start(&ll->idle, on_idle);
}

static void
unschedule(struct ll_conn *c)
{
    struct ll_conn **pp;

    if (!c->pending)
        return;
    for (pp = &c->ll->pending; *pp != NULL; pp = &(*pp)->next_pending) {
        if (*pp == c) {
            *pp = c->next_pending;
            break;
        }
    }
    c->pending = 0;
    c->next_pending = NULL;
}

/* ---- reading ------------------------------------------------------------ */

static void
on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct ll_conn *c = h->data;

    (void)suggested;
    *buf = uv_buf_init(c->ll->rbuf, sizeof c->ll->rbuf);
}

static void
on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct ll_conn *c = st->data;

    if (nread == 0)
        return;
    if (nread < 0) {
        /* EOF or a reset: the peer is gone (or answered our FIN). */
        conn_close(c);
        return;
    }
    if (c->lingering || c->s == NULL)
        return;                    /* dropped: the session is closing */
    (void)cg_session_on_bytes(c->s, buf->base, (size_t)nread);
}

static void
set_reading(struct ll_conn *c, int on)
{
    if (c->closing || on == (int)c->reading)
        return;
    if (on && uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
        c->reading = 1;
    else if (!on && uv_read_stop((uv_stream_t *)&c->tcp) == 0)
        c->reading = 0;
}

/* ---- closing ------------------------------------------------------------ */

static void
on_handle_closed(uv_handle_t *h)
{
    struct ll_conn *c = h->data;
    struct cg_longlink *ll = c->ll;

    if (--c->handles > 0)
        return;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        ll->all = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    cg_wbuf_cleanup(&c->wb);
    cg_free(c);
    ll->open--;
    maybe_free(ll);
}

static void
conn_close(struct ll_conn *c)
{
    cg_session *s = c->s;

    if (c->closing)
        return;
    c->closing = 1;
    unschedule(c);
    c->s = NULL;
    if (s != NULL)
        cg_session_on_closed(s);
    uv_timer_stop(&c->linger);
    uv_close((uv_handle_t *)&c->linger, on_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void
on_linger_over(uv_timer_t *t)
{
    conn_close(t->data);
}

static void
on_shutdown(uv_shutdown_t *req, int status)
{
    struct ll_conn *c = req->data;

    (void)status;
    if (c->closing)
        return;
    /* Read and drop until the peer's EOF, for LINGER_MS at most. */
    c->lingering = 1;
    c->paused = 0;
    set_reading(c, 1);
    uv_timer_start(&c->linger, on_linger_over, LINGER_MS, 0);
}

/* The close packet is written: the session is done (it leaves the
 * registry now, not after the linger); FIN, then the linger. */
static void
finish(struct ll_conn *c)
{
    cg_session *s = c->s;

    c->s = NULL;
    if (s != NULL)
        cg_session_on_closed(s);
    c->sreq.data = c;
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) < 0)
        conn_close(c);
}

/* ---- writing ------------------------------------------------------------ */

static void
on_written(uv_write_t *req, int status)
{
    struct ll_conn *c = req->data;

    c->writing = 0;
    cg_wbuf_cleanup(&c->wb);       /* idle connections hold no buffer */
    cg_wbuf_init(&c->wb, 0);
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->last) {
        finish(c);
        return;
    }
    flush(c);
}

static void
start_write(struct ll_conn *c)
{
    uv_buf_t b = uv_buf_init(cg_wbuf_data(&c->wb), (unsigned)c->wb.len);

    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_written) < 0) {
        conn_close(c);
        return;
    }
    c->writing = 1;
}

/* Pop what the session has ready (or its close packet) and write it. */
static void
flush(struct ll_conn *c)
{
    int code, n = 0;
    const char *why;

    if (c->closing || c->writing || c->last || c->lingering)
        return;
    if (c->s == NULL) {
        conn_close(c);
        return;
    }
    if (!c->close_req) {
        while (c->wb.len < WRITE_BATCH && (n = cg_session_pop_frame(c->s, &c->wb)) > 0)
            ;
        if (n < 0) {
            conn_close(c);
            return;
        }
    }
    if (c->close_req) {
        cg_wbuf_reset(&c->wb);     /* ops->close: what was not written is dropped */
        if (cg_session_close_packet(c->s, c->close_code, c->close_why, &c->wb) < 0) {
            conn_close(c);
            return;
        }
        c->last = 1;
    } else if (c->wb.len < WRITE_BATCH && cg_session_wants_close(c->s, &code, &why)) {
        if (cg_session_close_packet(c->s, code, NULL, &c->wb) < 0) {
            conn_close(c);
            return;
        }
        c->last = 1;
    }
    if (c->wb.len > 0)
        start_write(c);
    else if (c->last)
        finish(c);
}

/* ---- the session's ops -------------------------------------------------- */

static void
ll_want_write(void *t)
{
    schedule(t);
}

static void
ll_pause_read(void *t, int paused)
{
    struct ll_conn *c = t;

    c->paused = paused != 0;
    if (!c->lingering)
        set_reading(c, !c->paused);
}

static void
ll_close(void *t, int code, const char *why)
{
    struct ll_conn *c = t;

    c->close_req = 1;
    c->close_code = code;
    snprintf(c->close_why, sizeof c->close_why, "%s", why ? why : "");
    schedule(c);
}

static const char *
ll_peer(void *t)
{
    return ((struct ll_conn *)t)->peer;
}

static const struct cg_transport_ops ll_ops = {
    .name       = "longlink",
    .kind       = CG_TR_LONGLINK,
    .want_write = ll_want_write,
    .pause_read = ll_pause_read,
    .close      = ll_close,
    .peer       = ll_peer,
};

/* ---- accepting ---------------------------------------------------------- */

/* A refused connection gets a close packet {"code","reason"} (our own
 * text: no escaping needed), then the close. */
static void
refuse(struct ll_conn *c, int code, const char *why)
{
    char body[256];
    int n = snprintf(body, sizeof body, "{\"code\":%d,\"reason\":\"%s\"}", code, why);
    ssize_t len = ll_encode(NULL, 0, LL_OP_CLOSE, 0, body, (size_t)n);

    cg_log(CG_LOG_INFO, "long link from %s refused: %s", c->peer, why);
    if (len < 0 || cg_wbuf_reserve(&c->wb, (size_t)len) < 0) {
        conn_close(c);
        return;
    }
    (void)ll_encode(cg_wbuf_data(&c->wb), (size_t)len, LL_OP_CLOSE, 0, body, (size_t)n);
    c->wb.len = (size_t)len;
    c->last = 1;
    start_write(c);
}

static void
peer_of(int fd, char *buf, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;

    snprintf(buf, cap, "-");
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
        return;
    if (ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, buf, (socklen_t)cap);
    else if (ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, buf, (socklen_t)cap);
}

void
cg_longlink_accept(void *data, int fd)
{
    struct cg_longlink *ll = data;
    struct cg_session_open open = { 0 };
    struct ll_conn *c;
    const char *why = NULL;
    int status;

    if ((c = cg_calloc(1, sizeof *c)) == NULL) {
        close(fd);
        return;
    }
    c->ll = ll;
    cg_wbuf_init(&c->wb, 0);
    peer_of(fd, c->peer, sizeof c->peer);
    uv_tcp_init(ll->srv->loop, &c->tcp);
    uv_timer_init(ll->srv->loop, &c->linger);
    c->tcp.data = c->linger.data = c;
    c->handles = 2;
    c->next = ll->all;
    if (ll->all != NULL)
        ll->all->prev = c;
    ll->all = c;
    ll->open++;
    if (uv_tcp_open(&c->tcp, fd) < 0) {
        close(fd);
        conn_close(c);
        return;
    }
    if (ll->closing) {
        refuse(c, CG_CLOSE_GOING_AWAY, "server shutting down");
        return;
    }
    if ((status = cg_session_admit(ll->srv, c->peer, &why)) != 0) {
        refuse(c, status == 503 ? CG_CLOSE_TRY_LATER : CG_CLOSE_POLICY, why);
        return;
    }
    open.proto = CG_PROTO_LONGLINK;
    if ((c->s = cg_session_create(ll->srv, &ll_ops, c, &open)) == NULL) {
        refuse(c, CG_CLOSE_INTERNAL, "500 internal error");
        return;
    }
    set_reading(c, 1);
}

/* ---- the transport ------------------------------------------------------ */

int
cg_longlink_create(struct cg_server *srv, struct cg_longlink **out)
{
    struct cg_longlink *ll = cg_calloc(1, sizeof *ll);

    *out = NULL;
    if (ll == NULL)
        return CG_E_NOMEM;
    ll->srv = srv;
    uv_idle_init(srv->loop, &ll->idle);
    ll->idle.data = ll;
    *out = ll;
    return 0;
}

/* The transport is freed once it is destroyed, its idle handle closed and
 * its last connection freed. */
static void
maybe_free(struct cg_longlink *ll)
{
    if (ll->closing && ll->idle_closed && ll->open == 0)
        cg_free(ll);
}

static void
on_idle_closed(uv_handle_t *h)
{
    struct cg_longlink *ll = h->data;

    ll->idle_closed = 1;
    maybe_free(ll);
}

void
cg_longlink_destroy(struct cg_longlink *ll)
{
    struct ll_conn *c;

    if (ll == NULL)
        return;
    ll->closing = 1;
    /* Sessions are gone by now (server.c drains first); what is left is
     * lingering, or cut now. */
    for (c = ll->all; c != NULL; c = c->next)
        conn_close(c);
    uv_idle_stop(&ll->idle);
    uv_close((uv_handle_t *)&ll->idle, on_idle_closed);
}
