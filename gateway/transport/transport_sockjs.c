/* transport_sockjs.c - the SockJS 0.3.3 server at {base}/socketServer.
 *
 * What it does. Every SockJS transport is one more cg_transport_ops behind
 * the same session interface as transport_ws.c: this file turns SockJS
 * URLs, HTTP requests and WebSocket messages into cg_session_on_bytes()
 * calls, and the frames it pops with cg_session_pop_frame() into SockJS
 * frames (o, a[...], h, c[code,"reason"]). session.c and chat.c know
 * nothing of SockJS. The pure framing (URL parsing, JSON quoting, payload
 * decoding) lives in sockjs_frame.c.
 *
 *   URL (relative to the prefix)     handled by
 *   "" "/"                           greeting, "Welcome to SockJS!\n"
 *   /info                            GET (+ OPTIONS): capabilities, CORS
 *   /websocket                       raw WebSocket: STOMP bytes, no framing
 *   /{server}/{session}/websocket    framed WebSocket (one sj_ws)
 *   /{server}/{session}/xhr ...      HTTP transports (sj_sess + sj_req)
 *   /iframe*.html, anything else     404
 *
 * No iframe page: sockjs-client 1.x needs /iframe.html only for its
 * iframe-* transports (browsers without CORS XHR, IE 9 and older), and the
 * page would load sockjs.js from a CDN into this origin, where the token
 * lives. Every browser the web client supports has WebSocket or CORS XHR.
 * jsonp and htmlfile exist behind sockjs_jsonp (off by default) for the
 * same old browsers; they echo a callback name, so it is checked strictly
 * and their answers carry X-Content-Type-Options: nosniff.
 *
 * WebSocket transports (struct sj_ws, one per connection) mirror
 * transport_ws.c: the session is created at ESTABLISHED and ends at
 * CLOSED. The framed one sends "o" first, each batch of popped frames as
 * one a[...] message, "h" after sockjs_heartbeat_ms without a write, and
 * c[3000,"Go away!"] before it closes; a message that is not a JSON
 * string or array of strings closes it.
 *
 * HTTP transports. A SockJS session outlives the requests that carry it,
 * so it is its own object (struct sj_sess) in a table keyed by the session
 * id, holding the one cg_session of that id. Requests (struct sj_req, one
 * per HTTP request) are receivers (xhr, xhr_streaming, eventsource,
 * htmlfile, jsonp: they carry frames to the client) or senders (xhr_send,
 * jsonp_send: they carry the client's messages in). At most one receiver
 * is attached to a session at a time; while none is, nothing is popped:
 * frames wait in the session's own bounded outbound queue and the next
 * receiver takes them all as one a[...].
 *
 *   sj_sess (one per SockJS session id):
 *
 *     first receiving request (cg_session_create; it gets "o")
 *        |
 *        v          a receiver attaches             one frame (poll), the
 *     WAITING ----------------------------> POLLED  byte limit or the close
 *        ^   (frames queue in the              |    frame (stream), or its
 *        |    cg_session; reaped after         |    connection breaks
 *        |    sockjs_disconnect_ms)            |    ("h" every hb_ms)
 *        +-------------------------------------+
 *        |
 *        | the cg_session wants to close after its last frame (DISCONNECT's
 *        | RECEIPT, ERROR, shutdown), ops->close() (output cap, logout),
 *        | queue over sockjs_max_queue_bytes with no receiver, a
 *        | receiver's connection broke, or reaped: cg_session_on_closed()
 *        v
 *     CLOSED: receivers get the close frame and end; reaped
 *        |    sockjs_disconnect_ms after the last one
 *        v
 *     freed: out of the table, uv_close() of its timer, memory in close_cb
 *
 *   sj_req (receiver):  attach -> [headers] -> [prelude] -> frames ->
 *                       last frame (poll: the first one; stream: close
 *                       frame or sockjs_stream_bytes) -> detach ->
 *                       transaction completed
 *   sj_req (sender):    body (<= SJ_SEND_MAX) -> decode -> session bytes ->
 *                       204 -> done
 *
 * Reading cannot be paused on HTTP transports (a client's next xhr_send is
 * already on its way): while the session does not read, what arrives
 * waits in its input buffer, which session.c bounds (max_frame_bytes plus
 * a slack that holds one whole SJ_SEND_MAX body); past it the session
 * fails with a limit error like any other.
 *
 * An idle receiver (a held poll, a quiet stream) has reading turned off:
 * lws 4.1 does not read an HTTP/1 connection in the middle of a
 * transaction, so a peer that closed it would leave POLLIN signalled on
 * every turn of the loop (a busy loop); with reading off, a vanished peer
 * is noticed when the next frame or heartbeat fails to write. See
 * req_idle(). A chunked request body (any Transfer-Encoding) is refused
 * with 411: lws 4.1 cannot read one. A request whose length is refused
 * (411; a Content-Length that is not one decimal number: 400; over
 * SJ_SEND_MAX: 413), and a send without Content-Length, are answered with
 * "Connection: close" and the connection closed after the answer
 * (close_after): lws frames bodies by an atoll() of Content-Length (or up
 * to 100 MB when there is none) and parses what it did not take as the
 * body as the next request (lws_glue.h, cg_request_body_framing), so
 * those bytes must never be read as a request.
 *
 * A second receiver while one is attached gets c[2010,"Another connection
 * still open"] and ends; a receiver on a CLOSED session gets the close
 * frame (c[3000,"Go away!"], or c[1002,"Connection interrupted"] after a
 * receiver's connection broke mid-response). xhr_send to an unknown id is
 * 404.
 *
 * Ownership and lifetime (STYLE.md 4). lws owns each connection's pss and
 * frees it after CLOSED / CLOSED_HTTP and when an HTTP transaction
 * completes, so requests and WebSocket conns are heap objects the pss
 * points to, detached from the pss before lws_http_transaction_completed().
 * A request is freed when its transaction completes or its connection
 * closes; before that it is unlinked from its session (the session's
 * pointers to requests are cleared synchronously, never across a turn of
 * the loop). A session's timer is embedded in it: the session is freed in
 * the timer's close callback, so the timer can never outlive it; a
 * WebSocket conn's heartbeat timer likewise. The cg_session is handed
 * back only through cg_session_on_closed(), never from inside a session
 * call: ops->close() marks the SockJS session and its timer ends the
 * cg_session on the next turn.
 *
 * Writes. Every write happens in a WRITEABLE callback, one lws_write per
 * callback (headers, then prelude, then each frame). Streaming responses
 * use chunked encoding on HTTP/1.1 (we frame the chunks: lws 4.1 only
 * chunks its own compressed output), end with the connection on HTTP/1.0
 * and with LWS_WRITE_HTTP_FINAL on HTTP/2. */
#include "fmacros.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <uv.h>

#include "core/common.h"
#include "core/config.h"
#include "core/context.h"
#include "core/log.h"
#include "core/metrics.h"
#include "http/linger.h"
#include "http/request.h"
#include "session/close_codes.h"
#include "session/session.h"
#include "transport/sockjs_frame.h"
#include "transport/transport.h"

/* ------------------------------------------------------------------------ */
/* Limits and constants                                                      */
/* ------------------------------------------------------------------------ */

/* Frames popped into one a[...] before it is written. Bigger batches mean
 * fewer writes (and fewer polls) under load; the socket buffer bounds what
 * helps, as in transport_ws.c. */
#define SJ_WRITE_BATCH (64 * 1024)

/* Largest xhr_send / jsonp_send body (413 beyond it). sockjs-client sends
 * everything queued while its previous send was in flight as one array,
 * so this is well above one STOMP frame; it equals session.c's input
 * slack while reading is paused, so one whole body can always be taken. */
#define SJ_SEND_MAX (1024 * 1024)

/* Largest message on the framed WebSocket (closed with 1009 beyond it):
 * the same reasoning and the same bound as SJ_SEND_MAX. */
#define SJ_WS_MSG_MAX (1024 * 1024)

/* While no receiver is attached and the session has output queued, the
 * queue is checked against sockjs_max_queue_bytes this often. */
#define SJ_QUEUE_CHECK_MS 250

/* A connection whose last frame cannot be written is cut after this long
 * (the peer is not reading). */
#define SJ_KILL_SECS 2

/* Bucket count of the session table at start; it doubles when the table
 * holds more sessions than buckets. */
#define SJ_TABLE_MIN 64

/* Chunk header "%08zx\r\n": a fixed width, so it can be written in front
 * of a payload of unknown length (leading zeros are valid chunk sizes). */
#define SJ_CHUNK_HDR 10

/* sockjs-client's xhr-streaming needs 2 KiB before the first frame, or
 * some browsers buffer the response (spec: 'h' * 2048 + '\n'). */
#define SJ_PRELUDE_XHR 2048

/* The htmlfile page is padded past 1 KiB for the same reason. */
#define SJ_HTMLFILE_MIN 1024

#define ONE_YEAR_S 31536000

static const char FRAME_OPEN[] = "o";
static const char FRAME_HEARTBEAT[] = "h";
/* The close frames (close_codes.h): each number is checked against the
 * enum, since a literal cannot be made from it. */
static const char FRAME_GO_AWAY[] = CG_SOCKJS_CLOSE_FRAME(3000, "Go away!");
static const char FRAME_ANOTHER[] =
    CG_SOCKJS_CLOSE_FRAME(2010, "Another connection still open");
static const char FRAME_INTERRUPTED[] =
    CG_SOCKJS_CLOSE_FRAME(1002, "Connection interrupted");
_Static_assert(CG_CLOSE_SOCKJS_GO_AWAY == 3000, "FRAME_GO_AWAY");
_Static_assert(CG_CLOSE_SOCKJS_ANOTHER == 2010, "FRAME_ANOTHER");
_Static_assert(CG_CLOSE_SOCKJS_INTERRUPTED == 1002, "FRAME_INTERRUPTED");

static const char CT_TEXT[] = "text/plain; charset=UTF-8";
static const char CT_JS[] = "application/javascript; charset=UTF-8";
static const char CT_JSON[] = "application/json; charset=UTF-8";
static const char CT_SSE[] = "text/event-stream; charset=UTF-8";
static const char CT_HTML[] = "text/html; charset=UTF-8";

/* ------------------------------------------------------------------------ */
/* Types                                                                     */
/* ------------------------------------------------------------------------ */

struct sj_req;

/* One HTTP-based SockJS session (see the state diagram above). */
struct sj_sess {
    struct cg_sockjs *sj;
    struct sj_sess   *next;         /* bucket chain */
    cg_session       *s;            /* NULL once the STOMP session ended */
    struct sj_req    *recv;         /* the attached receiver, or NULL */
    uv_timer_t        timer;        /* heartbeat / reap / deferred work */
    uint64_t          hb_at;        /* receiver attached: heartbeat due then */
    uint64_t          reap_at;      /* no receiver: reaped then */
    const char       *close_frame;  /* CLOSED: what receivers get */
    unsigned          opened : 1;   /* "o" handed to a receiver */
    unsigned          close_due : 1;/* ops->close(): end the cg_session */
    unsigned          check_due : 1;/* look at the idle session's queue */
    unsigned          hb_due : 1;   /* a heartbeat is owed to the receiver */
    unsigned          gone : 1;     /* reaped: timer closing, memory next */
    enum cg_transport_kind kind;    /* of the first receiver (metrics) */
    char              peer[64];     /* address of the first request */
    size_t            keylen;
    char              key[CG_SOCKJS_ID_MAX + 1];   /* the session id */
};

/* HEAD and the rest are 405 everywhere: SockJS clients never send them. */
enum sj_method { SJ_M_OTHER = 0, SJ_M_GET, SJ_M_POST, SJ_M_OPTIONS };
enum sj_cache { SJ_CACHE_NO = 0, SJ_CACHE_YEAR };
enum sj_cors { SJ_CORS_NONE = 0, SJ_CORS_STAR, SJ_CORS_ORIGIN };
enum sj_framing { SJ_FR_CHUNKED = 0, SJ_FR_CLOSE, SJ_FR_H2 };

/* One HTTP request under the SockJS prefix. */
struct sj_req {
    struct cg_sockjs    *sj;
    struct lws          *wsi;       /* NULL once the connection is gone */
    struct cg_pss       *pss;       /* lws's per-session data while attached */
    struct sj_sess      *sess;      /* receiver: the session attached to */
    enum cg_sockjs_route route;
    enum sj_method       method;
    /* the response */
    unsigned             status;
    const char          *ctype;     /* NULL: no Content-Type (405) */
    const char          *allow;     /* Allow (405) / Allow-Methods (OPTIONS) */
    const char          *oneshot;   /* receiver not attached: its one frame */
    enum sj_cache        cache;
    enum sj_cors         cors;
    enum sj_framing      framing;   /* streaming responses */
    unsigned             receiver : 1;  /* frames flow to this request */
    unsigned             streaming : 1; /* ... several of them */
    unsigned             ready : 1;     /* status and body are final */
    unsigned             hdr_sent : 1;
    unsigned             prelude_sent : 1;
    unsigned             ending : 1;    /* the write in out is the last */
    unsigned             body_over : 1; /* more than SJ_SEND_MAX arrived */
    unsigned             nosniff : 1;
    unsigned             close_after : 1; /* untrusted framing: close after the answer */
    unsigned             flushing : 1;    /* answered; lws still sends the rest */
    unsigned             rx_off : 1;      /* idle receiver: POLLIN off (see req_idle) */
    uint64_t             sent;          /* streamed frame bytes */
    struct cg_wbuf       out;           /* the next write; LWS_PRE headroom */
    struct cg_wbuf       body;          /* sender: the request body */
    char                 origin[256];   /* reflected when allowed */
    char                 acrh[256];     /* Access-Control-Request-Headers */
    char                 callback[CG_SOCKJS_CALLBACK_MAX + 1];
    char                 peer[64];
    size_t               keylen;
    char                 key[CG_SOCKJS_ID_MAX + 1];   /* session id */
};

/* One SockJS WebSocket connection (framed; the raw /websocket is the plain
 * transport of transport_ws.c at another URL). */
struct sj_ws {
    struct cg_sockjs *sj;
    struct lws       *wsi;
    cg_session       *s;
    struct cg_wbuf    out;            /* LWS_PRE headroom; freed when idle */
    struct cg_wbuf    in;             /* framed: the message being reassembled */
    uv_timer_t        hb;             /* framed: heartbeat */
    unsigned          open_sent : 1;  /* framed: "o" went out */
    unsigned          hb_due : 1;
    unsigned          go_away : 1;    /* framed: send the close frame, then close */
    unsigned          c_sent : 1;     /* framed: the close frame went out */
    unsigned          closing : 1;    /* the WebSocket close has started */
    char              peer[64];
};

struct cg_sockjs {
    struct cg_server *srv;
    struct sj_sess  **buckets;        /* session table, chained */
    size_t            nbuckets;       /* a power of two */
    size_t            count;
    struct cg_wbuf    scratch;        /* one popped STOMP frame */
    struct cg_wbuf    frame;          /* one SockJS frame being built */
};

static const struct cg_config *
cfg_of(const struct cg_sockjs *sj)
{
    return sj->srv->cfg;
}

static uint64_t
now_ms(const struct cg_sockjs *sj)
{
    return uv_now(sj->srv->loop);
}

static void sess_arm(struct sj_sess *ss);
static void sess_end_stomp(struct sj_sess *ss, const char *frame);
static void req_detach_sess(struct sj_req *r, int aborted);
static void req_want_write(struct sj_req *r);

/* ------------------------------------------------------------------------ */
/* Session table                                                             */
/* ------------------------------------------------------------------------ */

static uint64_t
hash_key(const char *k, size_t n)
{
    uint64_t h = 1469598103934665603ULL;          /* FNV-1a */

    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)k[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static struct sj_sess *
table_find(const struct cg_sockjs *sj, const char *key, size_t n)
{
    struct sj_sess *ss = sj->buckets[hash_key(key, n) & (sj->nbuckets - 1)];

    for (; ss != NULL; ss = ss->next)
        if (ss->keylen == n && memcmp(ss->key, key, n) == 0)
            return ss;
    return NULL;
}

static void
table_grow(struct cg_sockjs *sj)
{
    size_t nb = sj->nbuckets * 2;
    struct sj_sess **b = cg_calloc(nb, sizeof *b);

    if (b == NULL)
        return;                       /* longer chains, still correct */
    for (size_t i = 0; i < sj->nbuckets; i++) {
        struct sj_sess *ss = sj->buckets[i], *next;

        for (; ss != NULL; ss = next) {
            size_t at = hash_key(ss->key, ss->keylen) & (nb - 1);

            next = ss->next;
            ss->next = b[at];
            b[at] = ss;
        }
    }
    cg_free(sj->buckets);
    sj->buckets = b;
    sj->nbuckets = nb;
}

static void
table_add(struct cg_sockjs *sj, struct sj_sess *ss)
{
    size_t at;

    if (sj->count >= sj->nbuckets)
        table_grow(sj);
    at = hash_key(ss->key, ss->keylen) & (sj->nbuckets - 1);
    ss->next = sj->buckets[at];
    sj->buckets[at] = ss;
    sj->count++;
}

static void
table_remove(struct cg_sockjs *sj, struct sj_sess *ss)
{
    struct sj_sess **pp = &sj->buckets[hash_key(ss->key, ss->keylen) & (sj->nbuckets - 1)];

    for (; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == ss) {
            *pp = ss->next;
            ss->next = NULL;
            sj->count--;
            return;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Frames                                                                    */
/* ------------------------------------------------------------------------ */

/* Append the JSON string literal of in[0..n) to wb. */
static int
append_quoted(struct cg_wbuf *wb, const char *in, size_t n, unsigned flags)
{
    size_t q = cg_sockjs_quote(in, n, flags, NULL);
    int rc;

    if ((rc = cg_wbuf_reserve(wb, q)) < 0)
        return rc;
    cg_sockjs_quote(in, n, flags, cg_wbuf_data(wb) + wb->len);
    wb->len += q;
    return 0;
}

static int
append_str(struct cg_wbuf *wb, const char *s)
{
    return cg_wbuf_append(wb, s, strlen(s));
}

/* Pop what the session has ready, up to SJ_WRITE_BATCH, as one a[...]
 * frame appended to fb: each STOMP frame (or heart-beat EOL) is one JSON
 * string. Returns the number of frames (0: nothing ready; fb unchanged),
 * *more = 1 when the batch filled before the session ran dry, or < 0. */
static int
pop_batch(struct cg_sockjs *sj, cg_session *s, struct cg_wbuf *fb, int *more)
{
    int n, count = 0;

    *more = 0;
    for (;;) {
        if (fb->len >= SJ_WRITE_BATCH) {
            *more = 1;
            break;
        }
        cg_wbuf_reset(&sj->scratch);
        n = cg_session_pop_frame(s, &sj->scratch);
        if (n < 0)
            return n;
        if (n == 0)
            break;
        if (cg_wbuf_append(fb, count == 0 ? "a[" : ",", count == 0 ? 2 : 1) < 0 ||
            append_quoted(fb, cg_wbuf_data(&sj->scratch), sj->scratch.len, 0) < 0)
            return CG_E_NOMEM;
        count++;
    }
    if (count > 0 && cg_wbuf_append(fb, "]", 1) < 0)
        return CG_E_NOMEM;
    return count;
}

/* ------------------------------------------------------------------------ */
/* Transport ops: HTTP sessions                                              */
/* ------------------------------------------------------------------------ */

static void
sess_want_write(void *t)
{
    struct sj_sess *ss = t;

    if (ss->gone || ss->s == NULL)
        return;
    if (ss->recv != NULL && ss->recv->wsi != NULL) {
        req_want_write(ss->recv);
    } else {
        /* Nobody to write to: the timer checks whether the session has
         * finished (a close whose last frame was popped earlier) and
         * bounds what waits for the next receiver. */
        ss->check_due = 1;
        sess_arm(ss);
    }
}

/* HTTP transports cannot stop a client from sending (see the top). */
static void
sess_pause_read(void *t, int paused)
{
    (void)t;
    (void)paused;
}

static void
sess_close(void *t, int code, const char *why)
{
    struct sj_sess *ss = t;

    (void)code;
    (void)why;
    /* Called from inside the session: end it from the timer. */
    ss->close_due = 1;
    sess_arm(ss);
}

static const char *
sess_peer(void *t)
{
    return ((struct sj_sess *)t)->peer;
}

#define SESS_OPS(var, nm, k)                                             \
    static const struct cg_transport_ops var = {                         \
        .name = nm, .kind = k, .want_write = sess_want_write,            \
        .pause_read = sess_pause_read, .close = sess_close,              \
        .peer = sess_peer,                                               \
    }

SESS_OPS(ops_xhr, "sockjs-xhr", CG_TR_SOCKJS_XHR);
SESS_OPS(ops_xhr_streaming, "sockjs-xhr-streaming", CG_TR_SOCKJS_XHR_STREAMING);
SESS_OPS(ops_eventsource, "sockjs-eventsource", CG_TR_SOCKJS_EVENTSOURCE);
SESS_OPS(ops_htmlfile, "sockjs-htmlfile", CG_TR_SOCKJS_HTMLFILE);
SESS_OPS(ops_jsonp, "sockjs-jsonp", CG_TR_SOCKJS_JSONP);

static const struct cg_transport_ops *
ops_for_route(enum cg_sockjs_route route)
{
    switch (route) {
    case CG_SJ_XHR_STREAMING: return &ops_xhr_streaming;
    case CG_SJ_EVENTSOURCE:   return &ops_eventsource;
    case CG_SJ_HTMLFILE:      return &ops_htmlfile;
    case CG_SJ_JSONP:         return &ops_jsonp;
    default:                  return &ops_xhr;
    }
}

/* ------------------------------------------------------------------------ */
/* HTTP sessions                                                             */
/* ------------------------------------------------------------------------ */

static void
sess_log(const struct sj_sess *ss, enum cg_log_level lvl, const char *what)
{
    char ctx[CG_SOCKJS_ID_MAX + 96], id[64];

    if (!cg_log_enabled(lvl))
        return;
    cg_log_repr(ss->key, ss->keylen, 32, id, sizeof id);
    snprintf(ctx, sizeof ctx, "sockjs %s %s", id, ss->peer);
    cg_log_ctx(lvl, ctx, "%s (%zu SockJS sessions in the table)", what, ss->sj->count);
}

static void
on_sess_timer_closed(uv_handle_t *h)
{
    cg_free(h->data);
}

/* The STOMP session is over: hand it back and remember what receivers get
 * from now on. Never called from inside a session call. */
static void
sess_end_stomp(struct sj_sess *ss, const char *frame)
{
    cg_session *s = ss->s;

    if (ss->close_frame == NULL)
        ss->close_frame = frame;
    if (s == NULL)
        return;
    ss->s = NULL;
    ss->close_due = 0;
    ss->check_due = 0;
    cg_session_on_closed(s);
    if (ss->recv != NULL && ss->recv->wsi != NULL) {
        req_want_write(ss->recv);
        /* The close frame goes out at once unless the peer stopped
         * reading; then do not wait for it forever. (A response that
         * completes gets lws's keep-alive timeout instead.) */
        lws_set_timeout(ss->recv->wsi, PENDING_TIMEOUT_CLOSE_SEND, SJ_KILL_SECS);
    }
}

/* Remove the session for good; its memory goes with the timer. */
static void
sess_reap(struct sj_sess *ss)
{
    if (ss->s != NULL) {
        cg_session_close(ss->s, CG_CLOSE_GOING_AWAY,
                         "SockJS session timed out: no receiving request");
        sess_end_stomp(ss, FRAME_GO_AWAY);
    }
    if (ss->recv != NULL) {
        ss->recv->sess = NULL;
        ss->recv = NULL;
    }
    ss->gone = 1;
    table_remove(ss->sj, ss);
    sess_log(ss, CG_LOG_INFO, "SockJS session reaped");
    uv_timer_stop(&ss->timer);
    uv_close((uv_handle_t *)&ss->timer, on_sess_timer_closed);
}

static void
on_sess_timer(uv_timer_t *t)
{
    struct sj_sess *ss = t->data;
    const struct cg_config *cfg = cfg_of(ss->sj);
    uint64_t now = now_ms(ss->sj);

    if (ss->gone)
        return;
    ss->check_due = 0;
    if (ss->close_due) {
        ss->close_due = 0;
        sess_end_stomp(ss, FRAME_GO_AWAY);
    }
    if (ss->s != NULL && ss->recv == NULL) {
        size_t queued = cg_session_queued_bytes(ss->s);

        if (cg_session_wants_close(ss->s, NULL, NULL)) {
            sess_end_stomp(ss, FRAME_GO_AWAY);
        } else if (queued > (size_t)cfg->sockjs_max_queue_bytes) {
            char msg[160];

            ss->sj->srv->metrics.output_cap_closes++;
            snprintf(msg, sizeof msg, "closed: %zu bytes queued while no SockJS "
                     "receiver is open (sockjs_max_queue_bytes %lld); its messages "
                     "stay pending for the next connect", queued,
                     (long long)cfg->sockjs_max_queue_bytes);
            sess_log(ss, CG_LOG_WARN, msg);
            cg_session_close(ss->s, CG_CLOSE_POLICY,
                             "SockJS queue over sockjs_max_queue_bytes");
            sess_end_stomp(ss, FRAME_GO_AWAY);
        }
    }
    if (ss->recv != NULL) {
        if (now >= ss->hb_at) {
            ss->hb_due = 1;
            ss->hb_at = now + (uint64_t)cfg->sockjs_heartbeat_ms;
            req_want_write(ss->recv);
        }
    } else if (now >= ss->reap_at) {
        sess_reap(ss);
        return;
    }
    sess_arm(ss);
}

/* Re-arm the timer for the nearest thing due. */
static void
sess_arm(struct sj_sess *ss)
{
    uint64_t now = now_ms(ss->sj), at;

    if (ss->gone)
        return;
    if (ss->close_due || ss->check_due) {
        at = now;
    } else if (ss->recv != NULL) {
        at = ss->hb_at;
    } else {
        at = ss->reap_at;
        if (ss->s != NULL && cg_session_queued_bytes(ss->s) > 0 &&
            now + SJ_QUEUE_CHECK_MS < at)
            at = now + SJ_QUEUE_CHECK_MS;
    }
    uv_timer_start(&ss->timer, on_sess_timer, at > now ? at - now : 0, 0);
}

static struct sj_sess *
sess_create(struct cg_sockjs *sj, struct sj_req *r, struct cg_str key)
{
    struct cg_session_open open = { 0 };
    struct sj_sess *ss;
    char token[256];
    int tlen;

    if ((ss = cg_calloc(1, sizeof *ss)) == NULL)
        return NULL;
    /* The timer first: the session may ask for a write while it is being
     * created, and the session's memory is released by its close_cb. */
    uv_timer_init(sj->srv->loop, &ss->timer);   /* cannot fail */
    ss->timer.data = ss;
    ss->sj = sj;
    ss->kind = ops_for_route(r->route)->kind;
    memcpy(ss->key, key.ptr, key.len);
    ss->keylen = key.len;
    snprintf(ss->peer, sizeof ss->peer, "%s", r->peer);
    /* sockjs-client appends the base URL's query (srect=TOKEN) to every
     * transport URL; the first request of the session carries it. */
    tlen = cg_request_token(r->wsi, token, sizeof token);
    if (tlen > 0) {
        open.token = token;
        open.token_len = (size_t)tlen;
    }
    ss->s = cg_session_create(sj->srv, ops_for_route(r->route), ss, &open);
    explicit_bzero(token, sizeof token);
    if (ss->s == NULL) {
        ss->gone = 1;
        uv_close((uv_handle_t *)&ss->timer, on_sess_timer_closed);
        return NULL;
    }
    ss->reap_at = now_ms(sj) + (uint64_t)cfg_of(sj)->sockjs_disconnect_ms;
    table_add(sj, ss);
    sess_log(ss, CG_LOG_INFO, "SockJS session opened");
    return ss;
}

/* ------------------------------------------------------------------------ */
/* HTTP requests: responses                                                  */
/* ------------------------------------------------------------------------ */

/* A receiver waits with nothing to write. lws 4.1 does not read an HTTP/1
 * connection in the middle of a transaction (LRS_DOING_TRANSACTION), so a
 * peer that closes it meanwhile would leave POLLIN signalled on every turn
 * of the loop: a busy loop until our next write fails. While idle, POLLIN
 * is off; a peer that went away is noticed when the next frame or
 * heartbeat fails to write. lws also services no POLLOUT on a connection
 * whose reading is off, so it is turned on again before every write
 * request (req_want_write) and before the transaction completes. */
static void
req_idle(struct sj_req *r)
{
    if (r->wsi != NULL && !r->rx_off && !lws_partial_buffered(r->wsi)) {
        lws_rx_flow_control(r->wsi, 0);
        r->rx_off = 1;
    }
}

static void
req_want_write(struct sj_req *r)
{
    if (r->wsi == NULL)
        return;
    if (r->rx_off) {
        lws_rx_flow_control(r->wsi, 1);
        r->rx_off = 0;
    }
    lws_callback_on_writable(r->wsi);
}

/* A complete response with a known body; written at the next WRITEABLE. */
static void
respond(struct sj_req *r, unsigned status, const char *ctype, const char *body,
        size_t len)
{
    r->status = status;
    r->ctype = ctype;
    r->receiver = 0;
    r->streaming = 0;
    r->ready = 1;
    cg_wbuf_reset(&r->out);
    if (len > 0 && cg_wbuf_append(&r->out, body, len) < 0) {
        r->status = 500;
        r->out.len = 0;
    }
    req_want_write(r);
}

static void
respond_text(struct sj_req *r, unsigned status, const char *text)
{
    respond(r, status, CT_TEXT, text, strlen(text));
}

static void
respond_405(struct sj_req *r, const char *allow)
{
    r->allow = allow;
    respond(r, 405, NULL, NULL, 0);
}

static int
add_hdr(struct lws *wsi, const char *name, const char *value,
        unsigned char **p, unsigned char *end)
{
    return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                       (const unsigned char *)value,
                                       (int)strlen(value), p, end);
}

/* Write the status line and headers. content_length < 0: a streaming
 * response (chunked on HTTP/1.1, to the connection's end on 1.0). */
static int
write_headers(struct sj_req *r, long long content_length)
{
    unsigned char buf[LWS_PRE + 2048], *start = buf + LWS_PRE, *p = start,
                  *end = buf + sizeof buf - 1;
    struct lws *wsi = r->wsi;
    int rc;

    if (content_length >= 0) {
        rc = lws_add_http_common_headers(wsi, r->status, r->ctype,
                                         (lws_filepos_t)content_length, &p, end);
    } else if (r->framing == SJ_FR_CHUNKED) {
        rc = lws_add_http_header_status(wsi, r->status, &p, end) ||
             lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
                                          (const unsigned char *)r->ctype,
                                          (int)strlen(r->ctype), &p, end) ||
             add_hdr(wsi, "transfer-encoding:", "chunked", &p, end);
    } else {
        /* HTTP/1.0 (lws adds "connection: close") and HTTP/2. */
        rc = lws_add_http_common_headers(wsi, r->status, r->ctype,
                                         LWS_ILLEGAL_HTTP_CONTENT_LEN, &p, end);
    }
    if (rc)
        return -1;
    if (r->cache == SJ_CACHE_YEAR) {
        char expires[64];
        time_t t = time(NULL) + ONE_YEAR_S;
        struct tm tm;

        gmtime_r(&t, &tm);
        strftime(expires, sizeof expires, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        if (add_hdr(wsi, "cache-control:", "public, max-age=31536000", &p, end) ||
            add_hdr(wsi, "expires:", expires, &p, end) ||
            add_hdr(wsi, "access-control-max-age:", "31536000", &p, end))
            return -1;
    } else if (add_hdr(wsi, "cache-control:",
                       "no-store, no-cache, must-revalidate, max-age=0", &p, end)) {
        return -1;
    }
    if (r->cors == SJ_CORS_STAR &&
        add_hdr(wsi, "access-control-allow-origin:", "*", &p, end))
        return -1;
    if (r->cors == SJ_CORS_ORIGIN &&
        (add_hdr(wsi, "access-control-allow-origin:", r->origin, &p, end) ||
         add_hdr(wsi, "access-control-allow-credentials:", "true", &p, end) ||
         add_hdr(wsi, "vary:", "Origin", &p, end)))
        return -1;
    if (r->allow != NULL) {
        if (r->method == SJ_M_OPTIONS && r->status < 300) {
            if (add_hdr(wsi, "access-control-allow-methods:", r->allow, &p, end) ||
                (r->acrh[0] &&
                 add_hdr(wsi, "access-control-allow-headers:", r->acrh, &p, end)))
                return -1;
        } else if (add_hdr(wsi, "allow:", r->allow, &p, end)) {
            return -1;
        }
    }
    if (r->nosniff && add_hdr(wsi, "x-content-type-options:", "nosniff", &p, end))
        return -1;
    if (r->close_after && add_hdr(wsi, "connection:", "close", &p, end))
        return -1;
    return lws_finalize_write_http_header(wsi, start, &p, end) ? -1 : 0;
}

/* ------------------------------------------------------------------------ */
/* HTTP requests: receivers                                                  */
/* ------------------------------------------------------------------------ */

/* Wrap one SockJS frame for r's transport (into r->out, after the
 * reserved chunk header). */
static int
wrap_frame(struct sj_req *r, const char *f, size_t n)
{
    struct cg_wbuf *o = &r->out;
    int rc = 0;

    switch (r->route) {
    case CG_SJ_EVENTSOURCE:
        rc = append_str(o, "data: ") || cg_wbuf_append(o, f, n) ||
             append_str(o, "\r\n\r\n");
        break;
    case CG_SJ_HTMLFILE:
        rc = append_str(o, "<script>\np(") ||
             append_quoted(o, f, n, CG_SJ_QUOTE_HTML) ||
             append_str(o, ");\n</script>\r\n");
        break;
    case CG_SJ_JSONP:
        rc = append_str(o, r->callback) || append_str(o, "(") ||
             append_quoted(o, f, n, 0) || append_str(o, ");\r\n");
        break;
    default:                          /* xhr, xhr_streaming */
        rc = cg_wbuf_append(o, f, n) || cg_wbuf_append(o, "\n", 1);
        break;
    }
    return rc ? CG_E_NOMEM : 0;
}

/* The next frame for receiver r, appended to fb. Returns 1 (a frame;
 * *last = 1 when the response must end after it), 0 (nothing yet) or < 0. */
static int
take_frame(struct sj_req *r, struct cg_wbuf *fb, int *last)
{
    struct sj_sess *ss = r->sess;
    int n, more;

    *last = 0;
    if (r->oneshot != NULL) {
        *last = 1;
        return append_str(fb, r->oneshot) < 0 ? CG_E_NOMEM : 1;
    }
    if (ss == NULL)
        return 0;
    if (!ss->opened) {
        ss->opened = 1;
        return append_str(fb, FRAME_OPEN) < 0 ? CG_E_NOMEM : 1;
    }
    if (ss->s != NULL) {
        n = pop_batch(r->sj, ss->s, fb, &more);
        if (n < 0)
            return n;
        if (!more && cg_session_wants_close(ss->s, NULL, NULL))
            sess_end_stomp(ss, FRAME_GO_AWAY);   /* close frame next */
        if (n > 0)
            return 1;
    }
    if (ss->s == NULL) {
        *last = 1;
        return append_str(fb, ss->close_frame ? ss->close_frame : FRAME_GO_AWAY) < 0
               ? CG_E_NOMEM : 1;
    }
    if (ss->hb_due) {
        ss->hb_due = 0;
        return append_str(fb, FRAME_HEARTBEAT) < 0 ? CG_E_NOMEM : 1;
    }
    return 0;
}

/* The stream's prelude: what some browsers need before they hand the
 * first bytes of a response to the page. */
static int
prelude(struct sj_req *r)
{
    struct cg_wbuf *o = &r->out;

    switch (r->route) {
    case CG_SJ_XHR_STREAMING:
        if (cg_wbuf_reserve(o, SJ_PRELUDE_XHR + 1) < 0)
            return CG_E_NOMEM;
        memset(cg_wbuf_data(o) + o->len, 'h', SJ_PRELUDE_XHR);
        o->len += SJ_PRELUDE_XHR;
        return cg_wbuf_append(o, "\n", 1);
    case CG_SJ_EVENTSOURCE:
        return cg_wbuf_append(o, "\r\n", 2);
    case CG_SJ_HTMLFILE: {
        size_t at = o->len;
        char head[1024 + CG_SOCKJS_CALLBACK_MAX];
        int n = snprintf(head, sizeof head,
            "<!doctype html>\n"
            "<html><head>\n"
            "  <meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n"
            "  <meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n"
            "</head><body><h2>Don't panic!</h2>\n"
            "  <script>\n"
            "    document.domain = document.domain;\n"
            "    var c = parent.%s;\n"
            "    c.start();\n"
            "    function p(d) {c.message(d);};\n"
            "    window.onload = function() {c.stop();};\n"
            "  </script>\n", r->callback);

        if (n < 0 || (size_t)n >= sizeof head ||
            cg_wbuf_append(o, head, (size_t)n) < 0)
            return CG_E_NOMEM;
        while (o->len - at < SJ_HTMLFILE_MIN)
            if (cg_wbuf_append(o, " ", 1) < 0)
                return CG_E_NOMEM;
        return cg_wbuf_append(o, "\r\n\r\n", 4);
    }
    default:
        return 0;
    }
}

/* Frame r->out (payload after SJ_CHUNK_HDR reserved bytes) as one chunk
 * when chunked; returns the offset of the bytes to write. */
static size_t
seal_chunk(struct sj_req *r)
{
    size_t n = r->out.len - SJ_CHUNK_HDR;
    char hdr[SJ_CHUNK_HDR + 1];

    if (r->framing != SJ_FR_CHUNKED)
        return SJ_CHUNK_HDR;
    snprintf(hdr, sizeof hdr, "%08zx\r\n", n);
    memcpy(cg_wbuf_data(&r->out), hdr, SJ_CHUNK_HDR);
    if (cg_wbuf_append(&r->out, "\r\n", 2) < 0 ||
        (r->ending && cg_wbuf_append(&r->out, "0\r\n\r\n", 5) < 0))
        return (size_t)-1;
    return 0;
}

/* Complete the transaction: lws frees the pss, so let go of it first. */
static int
req_complete(struct sj_req *r)
{
    struct lws *wsi = r->wsi;
    struct cg_pss *pss = r->pss;

    if (r->rx_off)
        lws_rx_flow_control(wsi, 1);  /* read the next request */
    req_detach_sess(r, 0);
    if (pss != NULL) {
        pss->obj = NULL;
        pss->kind = CG_PSS_NONE;
    }
    r->wsi = NULL;
    r->pss = NULL;
    cg_wbuf_cleanup(&r->out);
    cg_wbuf_cleanup(&r->body);
    cg_free(r);
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* WRITEABLE for a streaming receiver: headers, prelude, then frames. */
static int
stream_writable(struct sj_req *r)
{
    const struct cg_config *cfg = cfg_of(r->sj);
    struct cg_wbuf *fb = &r->sj->frame;
    size_t off;
    int rc, last;

    if (!r->hdr_sent) {
        if (write_headers(r, -1) < 0)
            return -1;
        r->hdr_sent = 1;
        lws_callback_on_writable(r->wsi);
        return 0;
    }
    cg_wbuf_reset(&r->out);
    if (cg_wbuf_append(&r->out, "          ", SJ_CHUNK_HDR) < 0)
        return -1;
    if (!r->prelude_sent) {
        if (prelude(r) < 0)
            return -1;
        r->prelude_sent = 1;
    } else {
        cg_wbuf_reset(fb);
        rc = take_frame(r, fb, &last);
        if (rc < 0)
            return -1;
        if (rc == 0) {
            req_idle(r);              /* the session or the timer will ask */
            return 0;
        }
        if (wrap_frame(r, cg_wbuf_data(fb), fb->len) < 0)
            return -1;
        r->sent += r->out.len - SJ_CHUNK_HDR;
        if (last || r->sent >= (uint64_t)cfg->sockjs_stream_bytes) {
            r->ending = 1;
            req_detach_sess(r, 0);    /* the next receiver may attach */
        } else if (r->sess != NULL) {
            r->sess->hb_at = now_ms(r->sj) + (uint64_t)cfg->sockjs_heartbeat_ms;
            sess_arm(r->sess);
        }
    }
    if ((off = seal_chunk(r)) == (size_t)-1)
        return -1;
    if (lws_write(r->wsi, (unsigned char *)cg_wbuf_data(&r->out) + off,
                  r->out.len - off,
                  r->ending ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) <
        (int)(r->out.len - off))
        return -1;
    if (r->ending)
        return req_complete(r);
    lws_callback_on_writable(r->wsi);   /* more may be ready */
    return 0;
}

/* A polling receiver with nothing sent yet: take a frame, if any, and turn
 * it into a complete response. */
static void
poll_take(struct sj_req *r)
{
    struct cg_wbuf *fb = &r->sj->frame;
    int rc, last;

    cg_wbuf_reset(fb);
    rc = take_frame(r, fb, &last);
    if (rc == 0) {
        req_idle(r);
        return;
    }
    req_detach_sess(r, 0);            /* one frame per poll */
    if (rc < 0) {
        respond_text(r, 500, "out of memory");
        return;
    }
    cg_wbuf_reset(&r->out);
    if (wrap_frame(r, cg_wbuf_data(fb), fb->len) < 0) {
        respond_text(r, 500, "out of memory");
        return;
    }
    r->receiver = 0;
    r->ready = 1;
}

/* ------------------------------------------------------------------------ */
/* HTTP requests: lifecycle                                                  */
/* ------------------------------------------------------------------------ */

/* Unlink r from its session. aborted: the connection broke while r was
 * the session's receiver (spec "Handling close": the session ends). */
static void
req_detach_sess(struct sj_req *r, int aborted)
{
    struct sj_sess *ss = r->sess;

    if (ss == NULL)
        return;
    r->sess = NULL;
    if (ss->recv != r)
        return;
    ss->recv = NULL;
    ss->hb_due = 0;
    ss->reap_at = now_ms(r->sj) + (uint64_t)cfg_of(r->sj)->sockjs_disconnect_ms;
    if (aborted && ss->s != NULL) {
        sess_log(ss, CG_LOG_INFO, "SockJS receiver broke off mid-response: session ends");
        cg_session_close(ss->s, CG_CLOSE_ABNORMAL, "SockJS receiving request interrupted");
        sess_end_stomp(ss, FRAME_INTERRUPTED);
    }
    sess_arm(ss);
}

static void
req_attach(struct sj_req *r, struct sj_sess *ss)
{
    uint64_t now = now_ms(r->sj);

    ss->recv = r;
    r->sess = ss;
    ss->hb_due = 0;
    ss->hb_at = now + (uint64_t)cfg_of(r->sj)->sockjs_heartbeat_ms;
    sess_arm(ss);
}

static enum sj_method
method_of(struct lws *wsi)
{
    if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI))    return SJ_M_POST;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI))     return SJ_M_GET;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_OPTIONS_URI)) return SJ_M_OPTIONS;
    return SJ_M_OTHER;
}

static enum sj_framing
framing_of(struct lws *wsi)
{
    char v[16];

    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_COLON_PATH) > 0)
        return SJ_FR_H2;
    if (lws_hdr_copy(wsi, v, sizeof v, WSI_TOKEN_HTTP) > 7 &&
        strncmp(v, "HTTP/1.0", 8) == 0)
        return SJ_FR_CLOSE;
    return SJ_FR_CHUNKED;
}

/* CORS and the Origin allow-list (PROTOCOL.md 2). Returns 1 when the
 * request's Origin is admitted (none is admitted), 0 when it is not; an
 * admitted origin is reflected (with credentials), except that no Origin
 * and "null" get "*" (the spec: echoing "null" does not work). An origin
 * that is not admitted is never reflected. */
static int
cors_check(struct cg_sockjs *sj, struct sj_req *r)
{
    char host[256];
    int olen, hlen;

    olen = lws_hdr_copy(r->wsi, r->origin, sizeof r->origin, WSI_TOKEN_ORIGIN);
    if (olen == 0) {
        r->cors = SJ_CORS_STAR;
        return 1;
    }
    if (olen < 0) {
        r->origin[0] = '\0';
        r->cors = SJ_CORS_NONE;
        return 0;
    }
    hlen = lws_hdr_copy(r->wsi, host, sizeof host, WSI_TOKEN_HOST);
    if (!cg_origins_allowed(sj->srv->origins, r->origin, (size_t)olen, host,
                            hlen > 0 ? (size_t)hlen : 0)) {
        r->cors = SJ_CORS_NONE;
        return 0;
    }
    r->cors = strcmp(r->origin, "null") == 0 ? SJ_CORS_STAR : SJ_CORS_ORIGIN;
    return 1;
}

static void
route_info(struct sj_req *r)
{
    char body[128];
    uint32_t entropy = 0;
    int n;

    lws_get_random(lws_get_context(r->wsi), &entropy, sizeof entropy);
    n = snprintf(body, sizeof body,
                 "{\"websocket\":true,\"cookie_needed\":false,"
                 "\"origins\":[\"*:*\"],\"entropy\":%u}", (unsigned)entropy);
    respond(r, 200, CT_JSON, body, (size_t)n);
}

static void
route_options(struct sj_req *r, const char *methods)
{
    int n = lws_hdr_copy(r->wsi, r->acrh, sizeof r->acrh,
                         WSI_TOKEN_HTTP_AC_REQUEST_HEADERS);

    if (n <= 0)
        r->acrh[0] = '\0';
    r->allow = methods;
    r->cache = SJ_CACHE_YEAR;
    respond(r, 204, NULL, NULL, 0);
}

/* A receiving request (xhr, xhr_streaming, eventsource, htmlfile, jsonp). */
static void
route_receiver(struct cg_sockjs *sj, struct sj_req *r, const struct cg_sockjs_path *sp)
{
    struct sj_sess *ss;

    if (r->route == CG_SJ_HTMLFILE || r->route == CG_SJ_JSONP) {
        char cb[CG_SOCKJS_CALLBACK_MAX + 8];
        const char *v = lws_get_urlarg_by_name(r->wsi, "c=", cb, (int)sizeof cb);

        if (v == NULL)
            v = lws_get_urlarg_by_name(r->wsi, "callback=", cb, (int)sizeof cb);
        if (v == NULL || !cg_sockjs_callback_valid(v, strlen(v))) {
            respond_text(r, 500, "\"callback\" parameter required");
            return;
        }
        snprintf(r->callback, sizeof r->callback, "%s", v);
        r->nosniff = 1;
    }
    r->ctype = r->route == CG_SJ_EVENTSOURCE ? CT_SSE
             : r->route == CG_SJ_HTMLFILE    ? CT_HTML : CT_JS;
    r->status = 200;
    r->receiver = 1;
    r->streaming = r->route == CG_SJ_XHR_STREAMING || r->route == CG_SJ_EVENTSOURCE ||
                   r->route == CG_SJ_HTMLFILE;
    r->framing = framing_of(r->wsi);

    ss = table_find(sj, sp->session.ptr, sp->session.len);
    if (ss == NULL) {
        if (sj->srv->stopping) {
            r->oneshot = FRAME_GO_AWAY;       /* no new sessions now */
        } else if ((ss = sess_create(sj, r, sp->session)) == NULL) {
            respond_text(r, 500, "cannot open a session: out of memory");
            return;
        }
    }
    if (ss != NULL && ss->recv != NULL)
        r->oneshot = FRAME_ANOTHER;
    else if (ss != NULL)
        req_attach(r, ss);
    /* Frames may take a while: lws's request timer is not ours to keep. */
    lws_set_timeout(r->wsi, NO_PENDING_TIMEOUT, 0);
    lws_callback_on_writable(r->wsi);
}

/* Refuse r with status and close the connection after the answer (see
 * the top: its framing cannot be trusted). */
static void
refuse_framing(struct sj_req *r, unsigned status, const char *text)
{
    cg_log_ctx(CG_LOG_INFO, r->peer, "SockJS request refused (%u %s): closing the "
               "connection after the answer", status, text);
    r->close_after = 1;
    respond_text(r, status, text);
}

/* Check r's framing before lws reads any of its body. Returns 1 when r
 * was refused; else 0 with *framing and *len. */
static int
framing_refused(struct sj_req *r, enum cg_body_framing *framing, uint64_t *len)
{
    *framing = cg_request_body_framing(r->wsi, len);
    if (*framing == CG_BODY_CHUNKED) {
        /* Browsers' XHR always sends Content-Length. */
        refuse_framing(r, 411, "Content-Length required: chunked request "
                       "bodies are not supported.");
        return 1;
    }
    if (*framing == CG_BODY_BAD) {
        refuse_framing(r, 400, "Bad Content-Length.");
        return 1;
    }
    if (*len > SJ_SEND_MAX) {
        refuse_framing(r, 413, "Payload too large.");
        return 1;
    }
    return 0;
}

/* The body of xhr_send / jsonp_send has arrived. */
static void
route_sender(struct cg_sockjs *sj, struct sj_req *r)
{
    struct sj_sess *ss;
    char *data = cg_wbuf_data(&r->body), ctype[64];
    size_t n = 0;
    long dlen;
    int rc;

    if (r->body_over) {
        refuse_framing(r, 413, "Payload too large.");
        return;
    }
    ss = table_find(sj, r->key, r->keylen);
    if (ss == NULL) {
        respond_text(r, 404, "Not found");
        return;
    }
    if (r->body.len == 0) {
        respond_text(r, 500, cg_sockjs_decode_strerror(CG_SJ_E_EMPTY));
        return;
    }
    if (r->route == CG_SJ_JSONP_SEND &&
        lws_hdr_copy(r->wsi, ctype, sizeof ctype, WSI_TOKEN_HTTP_CONTENT_TYPE) > 0 &&
        strncasecmp(ctype, "application/x-www-form-urlencoded", 33) == 0) {
        dlen = cg_sockjs_form_d(data, r->body.len, data);
        if (dlen < 0) {
            respond_text(r, 500, cg_sockjs_decode_strerror((int)dlen));
            return;
        }
        r->body.len = (size_t)dlen;
    }
    rc = cg_sockjs_decode(data, r->body.len, 0, data, &n, NULL, NULL);
    if (rc < 0) {
        respond_text(r, 500, cg_sockjs_decode_strerror(rc));
        return;
    }
    if (r->route == CG_SJ_JSONP_SEND) {
        /* Konqueror mishandles 204: jsonp_send answers "ok". */
        respond(r, 200, CT_TEXT, "ok", 2);
    } else {
        respond(r, 204, CT_TEXT, NULL, 0);
    }
    if (ss->s == NULL || n == 0)
        return;                       /* a closed session drops the data */
    (void)cg_session_on_bytes(ss->s, data, n);
}

/* The connection is gone: a receiver still attached broke off. */
static void
req_free(struct sj_req *r)
{
    req_detach_sess(r, 1);
    cg_wbuf_cleanup(&r->out);
    cg_wbuf_cleanup(&r->body);
    cg_free(r);
}

int
cg_sockjs_http_on_request(struct cg_server *srv, struct lws *wsi,
                          struct cg_pss *pss, const char *path, size_t len)
{
    struct cg_sockjs *sj = srv->sockjs;
    struct cg_sockjs_path sp;
    enum cg_body_framing framing;
    struct sj_req *r;
    uint64_t blen;
    int admitted;

    if ((r = cg_calloc(1, sizeof *r)) == NULL)
        return -1;
    r->sj = sj;
    r->wsi = wsi;
    r->pss = pss;
    cg_wbuf_init(&r->out, LWS_PRE);
    cg_wbuf_init(&r->body, 0);
    cg_request_client_addr(srv, wsi, r->peer, sizeof r->peer);
    pss->kind = CG_PSS_SOCKJS_HTTP;
    pss->obj = r;
    r->method = method_of(wsi);
    cg_sockjs_parse_path(path, len, &sp);
    r->route = sp.route;
    if (sp.session.len > 0)                    /* <= CG_SOCKJS_ID_MAX */
        memcpy(r->key, sp.session.ptr, sp.session.len);
    r->keylen = sp.session.len;
    admitted = cors_check(sj, r);
    if (framing_refused(r, &framing, &blen))
        return 0;

    switch (sp.route) {
    case CG_SJ_GREETING:
        if (r->method != SJ_M_GET)
            respond_405(r, "GET");
        else
            respond_text(r, 200, "Welcome to SockJS!\n");
        return 0;
    case CG_SJ_INFO:
        if (r->method == SJ_M_OPTIONS)
            route_options(r, "OPTIONS, GET");
        else if (r->method == SJ_M_GET)
            route_info(r);
        else
            respond_405(r, "OPTIONS, GET");
        return 0;
    case CG_SJ_RAW_WEBSOCKET:
    case CG_SJ_WEBSOCKET:
        /* An upgrade never gets here (transport_ws.c routes it to
         * cg_sockjs_ws_filter); a plain request does. */
        if (r->method != SJ_M_GET)
            respond_405(r, "GET");
        else
            respond_text(r, 400, "Can \"Upgrade\" only to \"WebSocket\".");
        return 0;
    case CG_SJ_HTMLFILE:
    case CG_SJ_JSONP:
    case CG_SJ_JSONP_SEND:
        if (!cfg_of(sj)->sockjs_jsonp) {
            respond_text(r, 404, "Not found");
            return 0;
        }
        break;
    case CG_SJ_NOT_FOUND:
        respond_text(r, 404, "Not found");
        return 0;
    default:
        break;
    }

    /* Session transports. */
    if (r->method == SJ_M_OPTIONS &&
        (sp.route == CG_SJ_XHR || sp.route == CG_SJ_XHR_SEND ||
         sp.route == CG_SJ_XHR_STREAMING)) {
        route_options(r, "OPTIONS, POST");
        return 0;
    }
    {
        int post = sp.route == CG_SJ_XHR || sp.route == CG_SJ_XHR_SEND ||
                   sp.route == CG_SJ_XHR_STREAMING || sp.route == CG_SJ_JSONP_SEND;

        if (r->method != (post ? SJ_M_POST : SJ_M_GET)) {
            respond_405(r, post ? (sp.route == CG_SJ_JSONP_SEND ? "POST" : "OPTIONS, POST")
                                : "GET");
            return 0;
        }
    }
    if (!admitted) {
        /* A listed-but-wrong Origin (PROTOCOL.md 2); a missing one is fine. */
        char ctx[96];

        snprintf(ctx, sizeof ctx, "sockjs %s", r->peer);
        cg_log_ctx(CG_LOG_INFO, ctx, "SockJS request refused: 403 origin not allowed");
        respond_text(r, 403, "Origin not allowed");
        return 0;
    }
    if (sp.route == CG_SJ_XHR_SEND || sp.route == CG_SJ_JSONP_SEND) {
        /* The body comes with HTTP_BODY and lws announces its end with
         * BODY_COMPLETION (also for an explicit Content-Length: 0). */
        if (framing != CG_BODY_NONE)
            return 0;
        /* No body, but lws would read what follows as one. */
        r->close_after = 1;
        route_sender(sj, r);
        return 0;
    }
    route_receiver(sj, r, &sp);
    return 0;
}

int
cg_sockjs_http_on_body(struct cg_pss *pss, const void *in, size_t len)
{
    struct sj_req *r = pss->obj;

    if (pss->kind != CG_PSS_SOCKJS_HTTP || r == NULL || r->ready || r->receiver)
        return 0;
    if (r->body_over || r->body.len + len > SJ_SEND_MAX) {
        r->body_over = 1;
        return 0;
    }
    return cg_wbuf_append(&r->body, in, len) < 0 ? -1 : 0;
}

int
cg_sockjs_http_on_body_done(struct cg_pss *pss)
{
    struct sj_req *r = pss->obj;

    if (pss->kind != CG_PSS_SOCKJS_HTTP || r == NULL || r->ready || r->receiver ||
        r->wsi == NULL)
        return 0;
    if (r->route != CG_SJ_XHR_SEND && r->route != CG_SJ_JSONP_SEND)
        return 0;
    route_sender(r->sj, r);
    return 0;
}

static int answered(struct sj_req *r);

int
cg_sockjs_http_on_writable(struct cg_pss *pss)
{
    struct sj_req *r = pss->obj;

    if (pss->kind != CG_PSS_SOCKJS_HTTP || r == NULL || r->wsi == NULL)
        return 0;
    if (r->receiver && r->streaming)
        return stream_writable(r);
    if (r->receiver)
        poll_take(r);
    if (!r->ready)
        return 0;
    if (r->flushing)
        return answered(r);
    if (!r->hdr_sent) {
        if (write_headers(r, (long long)r->out.len) < 0)
            return -1;
        r->hdr_sent = 1;
        if (r->out.len > 0) {
            lws_callback_on_writable(r->wsi);
            return 0;
        }
    } else if (lws_write(r->wsi, (unsigned char *)cg_wbuf_data(&r->out), r->out.len,
                         LWS_WRITE_HTTP_FINAL) < (int)r->out.len) {
        return -1;
    }
    return answered(r);
}

/* r's answer is written. A connection to close lingers (linger.h) once lws
 * has handed the whole answer to the kernel; CLOSED_HTTP then frees r. */
static int
answered(struct sj_req *r)
{
    if (!r->close_after)
        return req_complete(r);
    if (lws_partial_buffered(r->wsi)) {
        r->flushing = 1;              /* lws sends the rest first */
        lws_callback_on_writable(r->wsi);
        return 0;
    }
    if (cg_linger_start(r->sj->srv->linger, lws_get_socket_fd(r->wsi)) < 0)
        cg_log(CG_LOG_DEBUG, "lingering close refused: closing at once");
    return -1;
}

void
cg_sockjs_http_on_closed(struct cg_pss *pss)
{
    struct sj_req *r = pss->obj;

    if (pss->kind != CG_PSS_SOCKJS_HTTP || r == NULL)
        return;
    pss->obj = NULL;
    pss->kind = CG_PSS_NONE;
    r->wsi = NULL;
    r->pss = NULL;
    req_free(r);
}

/* ------------------------------------------------------------------------ */
/* WebSocket transports                                                      */
/* ------------------------------------------------------------------------ */

static void
ws_want_write(void *t)
{
    lws_callback_on_writable(((struct sj_ws *)t)->wsi);
}

static void
ws_pause_read(void *t, int paused)
{
    lws_rx_flow_control(((struct sj_ws *)t)->wsi, !paused);
}

static void
ws_close(void *t, int code, const char *why)
{
    struct sj_ws *c = t;

    (void)code;                       /* SockJS speaks its own close frame: */
    (void)why;
    c->go_away = 1;                   /* c[3000,"Go away!"], then close */
    lws_callback_on_writable(c->wsi);
    /* If the peer never lets us write, do not wait for it forever. */
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, SJ_KILL_SECS);
}

static const char *
ws_peer(void *t)
{
    return ((struct sj_ws *)t)->peer;
}

static const struct cg_transport_ops ops_ws = {
    .name = "sockjs-websocket", .kind = CG_TR_SOCKJS_WS,
    .want_write = ws_want_write, .pause_read = ws_pause_read,
    .close = ws_close, .peer = ws_peer,
};


static void
on_ws_hb(uv_timer_t *t)
{
    struct sj_ws *c = t->data;

    c->hb_due = 1;
    lws_callback_on_writable(c->wsi);
}

static void
ws_hb_restart(struct sj_ws *c)
{
    uint64_t ms = (uint64_t)cfg_of(c->sj)->sockjs_heartbeat_ms;

    c->hb_due = 0;
    uv_timer_start(&c->hb, on_ws_hb, ms, ms);
}

static int
refuse(struct lws *wsi, unsigned int status, const char *why)
{
    char ctx[64];

    cg_request_client_addr(cg_server_of(wsi), wsi, ctx, sizeof ctx);
    cg_log_ctx(CG_LOG_INFO, ctx, "SockJS websocket upgrade refused: %u %s", status, why);
    lws_return_http_status(wsi, status, why);
    return -1;
}

int
cg_sockjs_ws_filter(struct cg_server *srv, struct lws *wsi, const char *path,
                    size_t len)
{
    struct cg_sockjs_path sp;
    char origin[256], host[256];
    int olen, hlen;

    cg_sockjs_parse_path(path, len, &sp);
    if (sp.route != CG_SJ_WEBSOCKET)     /* raw /websocket: transport_ws.c */
        return refuse(wsi, HTTP_STATUS_NOT_FOUND, "no websocket endpoint here");
    olen = lws_hdr_copy(wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN);
    if (olen < 0)
        return refuse(wsi, HTTP_STATUS_FORBIDDEN, "origin not allowed");
    if (olen > 0) {
        hlen = lws_hdr_copy(wsi, host, sizeof host, WSI_TOKEN_HOST);
        if (!cg_origins_allowed(srv->origins, origin, (size_t)olen,
                                host, hlen > 0 ? (size_t)hlen : 0))
            return refuse(wsi, HTTP_STATUS_FORBIDDEN, "origin not allowed");
    }
    /* The token is checked at CONNECT: a SockJS client cannot read a 401
     * from a refused upgrade, it would only fall back to another
     * transport. CONNECT answers ERROR, then c[3000,"Go away!"]. */
    return 0;
}

int
cg_sockjs_ws_on_open(struct cg_server *srv, struct lws *wsi, struct cg_pss *pss,
                     const char *path, size_t len)
{
    struct cg_session_open open = { 0 };
    struct sj_ws *c;
    char token[256];
    int tlen;

    (void)path;                       /* the filter admitted only .../websocket */
    (void)len;
    if ((c = cg_calloc(1, sizeof *c)) == NULL)
        return -1;
    c->sj = srv->sockjs;
    c->wsi = wsi;
    cg_wbuf_init(&c->out, LWS_PRE);
    cg_wbuf_init(&c->in, 0);
    cg_request_client_addr(srv, wsi, c->peer, sizeof c->peer);
    tlen = cg_request_token(wsi, token, sizeof token);
    if (tlen > 0) {
        open.token = token;
        open.token_len = (size_t)tlen;
    }
    /* sockjs-client offers no STOMP subprotocol: CONNECT decides. */
    c->s = cg_session_create(srv, &ops_ws, c, &open);
    explicit_bzero(token, sizeof token);
    if (c->s == NULL) {
        cg_free(c);
        return -1;
    }
    uv_timer_init(srv->loop, &c->hb);        /* cannot fail */
    c->hb.data = c;
    ws_hb_restart(c);
    lws_callback_on_writable(wsi);           /* the open frame */
    pss->kind = CG_PSS_SOCKJS_WS;
    pss->obj = c;
    return 0;
}

int
cg_sockjs_ws_on_data(struct cg_pss *pss, const void *in, size_t len)
{
    struct sj_ws *c = pss->kind == CG_PSS_SOCKJS_WS ? pss->obj : NULL;
    size_t n = 0;
    int rc;

    if (c == NULL || c->s == NULL)
        return -1;
    if (c->closing)
        return 0;                     /* only the peer's close frame matters now */
    /* A message is one JSON payload; reassemble it first. */
    if (c->in.len + len > SJ_WS_MSG_MAX) {
        cg_log_ctx(CG_LOG_INFO, c->peer, "SockJS websocket message over %d bytes: "
                   "closed", SJ_WS_MSG_MAX);
        c->closing = 1;
        cg_ws_close_politely(c->wsi, CG_CLOSE_TOO_BIG,
                             "message too big");
        return 0;
    }
    if (cg_wbuf_append(&c->in, in, len) < 0)
        return -1;
    if (!lws_is_final_fragment(c->wsi) || lws_remaining_packet_payload(c->wsi) > 0)
        return 0;
    if (c->in.len == 0)
        return 0;                     /* empty messages are ignored (spec) */
    rc = cg_sockjs_decode(cg_wbuf_data(&c->in), c->in.len, CG_SJ_DECODE_SINGLE,
                          cg_wbuf_data(&c->in), &n, NULL, NULL);
    c->in.len = 0;
    if (c->in.cap > 64 * 1024) {      /* keep a small buffer, drop a big one */
        cg_wbuf_cleanup(&c->in);
        cg_wbuf_init(&c->in, 0);
    }
    if (rc < 0) {
        cg_log_ctx(CG_LOG_INFO, c->peer, "SockJS websocket message: %s closed",
                   cg_sockjs_decode_strerror(rc));
        c->closing = 1;
        cg_ws_close_politely(c->wsi, CG_CLOSE_PROTOCOL,
                             "Broken JSON encoding.");
        return 0;
    }
    if (n > 0)
        (void)cg_session_on_bytes(c->s, cg_wbuf_data(&c->in), n);
    return 0;
}

static int
ws_write(struct sj_ws *c, const char *data, size_t n)
{
    cg_wbuf_reset(&c->out);
    if (cg_wbuf_append(&c->out, data, n) < 0)
        return -1;
    if (lws_write(c->wsi, (unsigned char *)cg_wbuf_data(&c->out), n,
                  LWS_WRITE_TEXT) < (int)n)
        return -1;
    return 0;
}

/* Framed: o, then a[...] batches and h, then c[3000,"Go away!"] and the
 * close. One message per callback. */
static int
framed_writable(struct sj_ws *c)
{
    struct cg_wbuf *fb = &c->sj->frame;
    int n, more;

    if (c->closing)
        return 0;
    if (c->c_sent) {
        c->closing = 1;
        return cg_ws_close_politely(c->wsi, CG_CLOSE_NORMAL, "Go away!");
    }
    if (!c->open_sent) {
        c->open_sent = 1;
        if (ws_write(c, FRAME_OPEN, 1) < 0)
            return -1;
        ws_hb_restart(c);
        lws_callback_on_writable(c->wsi);
        return 0;
    }
    if (c->go_away) {
        c->c_sent = 1;
        if (ws_write(c, FRAME_GO_AWAY, sizeof FRAME_GO_AWAY - 1) < 0)
            return -1;
        lws_callback_on_writable(c->wsi);
        return 0;
    }
    cg_wbuf_reset(fb);
    n = pop_batch(c->sj, c->s, fb, &more);
    if (n < 0)
        return -1;
    if (n > 0) {
        if (ws_write(c, cg_wbuf_data(fb), fb->len) < 0)
            return -1;
        ws_hb_restart(c);
    }
    if (!more && cg_session_wants_close(c->s, NULL, NULL)) {
        c->go_away = 1;
        lws_callback_on_writable(c->wsi);
        return 0;
    }
    if (more) {
        lws_callback_on_writable(c->wsi);
    } else if (n == 0 && c->hb_due) {
        if (ws_write(c, FRAME_HEARTBEAT, 1) < 0)
            return -1;
        ws_hb_restart(c);
    }
    return 0;
}

int
cg_sockjs_ws_on_writable(struct cg_pss *pss)
{
    struct sj_ws *c = pss->kind == CG_PSS_SOCKJS_WS ? pss->obj : NULL;
    int rc;

    if (c == NULL || c->s == NULL)
        return -1;
    rc = framed_writable(c);
    if (rc == 0 && c->out.cap > SJ_WRITE_BATCH) {
        cg_wbuf_cleanup(&c->out);     /* idle connections hold no big buffer */
        cg_wbuf_init(&c->out, LWS_PRE);
    }
    return rc;
}

static void
on_ws_hb_closed(uv_handle_t *h)
{
    cg_free(h->data);
}

void
cg_sockjs_ws_on_closed(struct cg_pss *pss)
{
    struct sj_ws *c = pss->kind == CG_PSS_SOCKJS_WS ? pss->obj : NULL;

    if (c == NULL)
        return;
    pss->obj = NULL;
    pss->kind = CG_PSS_NONE;
    if (c->s)
        cg_session_on_closed(c->s);
    c->s = NULL;
    cg_wbuf_cleanup(&c->out);
    cg_wbuf_cleanup(&c->in);
    uv_timer_stop(&c->hb);
    uv_close((uv_handle_t *)&c->hb, on_ws_hb_closed);
}

/* ------------------------------------------------------------------------ */
/* Create / destroy                                                          */
/* ------------------------------------------------------------------------ */

int
cg_sockjs_create(struct cg_server *srv, struct cg_sockjs **out)
{
    struct cg_sockjs *sj = cg_calloc(1, sizeof *sj);

    if (sj == NULL)
        return CG_E_NOMEM;
    sj->srv = srv;
    sj->nbuckets = SJ_TABLE_MIN;
    if ((sj->buckets = cg_calloc(sj->nbuckets, sizeof *sj->buckets)) == NULL) {
        cg_free(sj);
        return CG_E_NOMEM;
    }
    cg_wbuf_init(&sj->scratch, 0);
    cg_wbuf_init(&sj->frame, 0);
    *out = sj;
    return 0;
}

void
cg_sockjs_destroy(struct cg_sockjs *sj)
{
    if (sj == NULL)
        return;
    /* lws is gone: every request's CLOSED_HTTP has run, so no session
     * should point at a request; make sure none is touched anyway. What is
     * left are sessions waiting for a poll or for their reaping. */
    for (size_t i = 0; i < sj->nbuckets; i++) {
        for (struct sj_sess *ss = sj->buckets[i]; ss != NULL; ss = ss->next) {
            if (ss->recv != NULL)
                ss->recv->sess = NULL;
            ss->recv = NULL;
        }
    }
    for (size_t i = 0; i < sj->nbuckets; i++) {
        struct sj_sess *ss;

        while ((ss = sj->buckets[i]) != NULL) {
            if (ss->s != NULL) {
                cg_session_close(ss->s, CG_CLOSE_GOING_AWAY, "server shutting down");
                sess_end_stomp(ss, FRAME_GO_AWAY);
            }
            sess_reap(ss);
        }
    }
    cg_free(sj->buckets);
    cg_wbuf_cleanup(&sj->scratch);
    cg_wbuf_cleanup(&sj->frame);
    cg_free(sj);
}
