/* session.c - STOMP semantics over any transport.
 *
 * What it does. A transport (plain WebSocket, a SockJS transport, a test's
 * fake) hands a session the peer's bytes and pulls the frames it should
 * send. In between the session parses frames (libstomp), checks them
 * against one dispatch table, and turns them into chat requests
 * (session_chat.c, which talks to chat.c), subscriptions (subs.c),
 * transactions and RECEIPTs; answers, chat messages and heart-beats wait in
 * the bounded outbound queue (outq.c) until the transport pulls them. The
 * session never sees a wsi, a URL or SockJS framing; it talks to its
 * transport only through cg_transport_ops. This file is the STOMP side;
 * session_internal.h lists the calls between it and session_chat.c.
 *
 * States:
 *
 *                    CONNECT/STOMP, token found     token valid
 *   AWAIT_CONNECT ----------------------------> AUTHENTICATING ------+
 *     |   any other frame, connect_timeout,       |  invalid token,   |
 *     |   bad version, no token: ERROR            |  store error:    |
 *     v                                           v  ERROR           v
 *   CLOSING <-------------------------------------+------------- ATTACHING
 *     ^   ERROR (session_fail), DISCONNECT,           user channel   |
 *     |   heart-beat/frame timeout, token expiry,     subscribed:    |
 *     |   output cap, cg_session_close(),             CONNECTED sent |
 *     |   transport gone                                             |
 *     +-------------------------------------------- CONNECTED <-----+
 *
 *   Reading pauses (transport pause_read + no parsing) while
 *   AUTHENTICATING/ATTACHING, while max_inflight requests await Redis
 *   (resumes below half), and for good in CLOSING. Frames that arrived in
 *   the meantime wait, unparsed, in the input buffer.
 *
 * Frame dispatch. rules[] maps each command to {states that accept it,
 * required headers per version, handler}. dispatch() collects the
 * well-known headers once (first wins), checks state and required headers
 * once, calls the handler, and queues the RECEIPT when the handler
 * succeeded: the shared checks live in one place (Redis processCommand),
 * never in the handlers. A handler returns 0 or an error code with a
 * one-line detail; session_fail() is the only place that turns an error
 * into an ERROR frame followed by a close (STYLE.md 3).
 *
 * Ordering. Answers and RECEIPTs leave in request order. A request that
 * waits for Redis queues a ticket (outq.c) at request time; its answer
 * fills the ticket; the queue does not pop past a pending ticket, so a
 * frame's RECEIPT follows its answer, and DISCONNECT's RECEIPT follows every
 * outstanding answer. Chat messages pushed by the registry and the init
 * stream are appended when they arrive: they are not answers to a frame
 * and never wait behind one. (session_chat.c has the tickets, the init
 * stream and how status answers and chat messages find a subscription.)
 *
 * Choices where STOMP or PROTOCOL.md leave room:
 *   - message-id (and the 1.2 ack header) of a chat message is
 *     "<uid>-<id>"; ACK of it on a client/client-individual recive
 *     subscription confirms that one message (client mode is not
 *     cumulative); NACK leaves it pending; ACK of anything else is ignored.
 *   - UNSUBSCRIBE of an unknown id is ignored in every version.
 *   - Close codes: 1000 after DISCONNECT, 1002 protocol errors, 1008
 *     auth, forbidden, limits and timeouts, 1011 store or memory failure,
 *     1013 output cap (come back later; nothing is lost), 1001/1008 as
 *     given by cg_session_close() (shutdown, logout).
 *   - A closing session gets frame_timeout_ms to flush its last frames,
 *     then ops->close() cuts it.
 *   - A session lives no longer than its login token: at the expiry auth.c
 *     read at CONNECT, ERROR "401 token expired: log in again" and a close
 *     (1008; SockJS adds c[3000,"Go away!"] as after any ERROR). Logout
 *     revokes a token early (registry.c closes its sessions). The check is
 *     one more deadline of the session's one timer, so it costs no handle
 *     and no walk over the sessions, and it is as exact as the loop's
 *     millisecond clock; the expiry is converted to loop time once, at the
 *     token check, so a later step of the wall clock does not move it.
 *
 * Asynchronous callbacks (the token check, the registry attach) carry the
 * session id, never a bare session pointer (STYLE.md 4.3), and find the
 * session again with cg_session_lookup().
 *
 * Owns: the input buffer (lazily allocated, freed when empty: idle
 * sessions hold none), the outbound queue, the subscription table, open
 * transactions, one uv_timer (re-armed to the nearest deadline:
 * connect, frame, heart-beat in and out, token expiry, soft output limit,
 * close flush) and the token until the token check answers.
 *
 * Lifetime (STYLE.md 4): the transport holds the first reference; a close
 * is only requested (begin_close) and the transport closes when
 * cg_session_wants_close() says so, or at once after ops->close(). After
 * cg_session_on_closed() the session leaves the registry, closes its timer
 * and drops the transport's reference; memory is released once the timer's
 * close_cb has run and no reference is left. */
#include "fmacros.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "chatgate/auth.h"
#include "chatgate/buf.h"
#include "chatgate/chat.h"
#include "chatgate/common.h"
#include "chatgate/config.h"
#include "chatgate/log.h"
#include "chatgate/metrics.h"
#include "chatgate/registry.h"
#include "chatgate/server.h"
#include "chatgate/session.h"
#include "outq.h"
#include "session_internal.h"
#include "session_test.h"
#include "stomp/stomp.h"
#include "subs.h"

#ifndef CG_VERSION
#define CG_VERSION "dev"
#endif

/* ------------------------------------------------------------------------ */
/* Limits and constants                                                      */
/* ------------------------------------------------------------------------ */

/* The parser needs an array of max_headers entries. It lives on the stack
 * of process_input() (32 bytes an entry, 32 KiB at most), not in the
 * session, so idle sessions do not pay for it. 1024 is config.c's upper
 * bound for max_headers; the clamp only guards against a mismatch. */
#define SESSION_HEADERS_MAX 1024

/* Open transactions per session. stomp.js opens one at a time; the bound
 * only stops a peer from opening thousands (each one is capped by
 * max_tx_frames already). */
#define SESSION_MAX_TX 16

/* Input kept while reading is paused: the transport may hand over what it
 * had already read when it was asked to pause (one read), plus this slack
 * for transports that deliver a little more (a SockJS xhr_send batch). */
#define SESSION_PAUSED_SLACK (1024 * 1024)

/* hiredis's rule: compact the input buffer only when the consumed prefix
 * is at least this big, never after each frame. */
#define SESSION_COMPACT_AT 1024

/* Longest token accepted from anywhere (real ones are 43 chars). */
#define SESSION_TOKEN_MAX 256

/* WebSocket close codes used here. 1013 "Try Again Later" for the output
 * cap: the client did nothing wrong protocol-wise and may reconnect (and
 * init) at once; its messages are still pending. */
#define WS_CLOSE_NORMAL     1000
#define WS_CLOSE_GOING_AWAY 1001
#define WS_CLOSE_PROTOCOL   1002
#define WS_CLOSE_ABNORMAL   1006
#define WS_CLOSE_POLICY     1008
#define WS_CLOSE_INTERNAL   1011
#define WS_CLOSE_TRY_LATER  1013

/* ------------------------------------------------------------------------ */
/* The session                                                               */
/* ------------------------------------------------------------------------ */

#define SM(st) (1u << (st))

static const char *const state_names[] = {
    "AWAIT_CONNECT", "AUTHENTICATING", "ATTACHING", "CONNECTED", "CLOSING",
};

struct tx_op {
    struct tx_op *next;
    uint64_t      ack_id;       /* TX_ACK: chat message id to confirm */
    uint32_t      dest_len;     /* TX_SEND: destination then body in data */
    uint32_t      body_len;
    uint8_t       kind;
    char          data[];
};

enum { TX_SEND, TX_ACK };

struct tx {
    struct tx    *next;
    struct tx_op *head, *tail;
    uint32_t      nops;
    uint16_t      name_len;
    char          name[];
};

/* The well-known headers, collected once per frame (first wins). */
enum hdr_idx {
    H_DESTINATION, H_ID, H_RECEIPT, H_TRANSACTION, H_MESSAGE_ID,
    H_SUBSCRIPTION, H_ACK, H_ACCEPT_VERSION, H_HEART_BEAT, H_PASSCODE,
    H_TOKEN, H_COUNT
};

#define HN(lit) { (lit), sizeof(lit) - 1 }
static const struct stomp_str hdr_names[H_COUNT] = {
    [H_DESTINATION]    = HN("destination"),
    [H_ID]             = HN("id"),
    [H_RECEIPT]        = HN("receipt"),
    [H_TRANSACTION]    = HN("transaction"),
    [H_MESSAGE_ID]     = HN("message-id"),
    [H_SUBSCRIPTION]   = HN("subscription"),
    [H_ACK]            = HN("ack"),
    [H_ACCEPT_VERSION] = HN("accept-version"),
    [H_HEART_BEAT]     = HN("heart-beat"),
    [H_PASSCODE]       = HN("passcode"),
    [H_TOKEN]          = HN("token"),
};
#undef HN

#define HB(h) (1u << (h))

struct frame_ctx {
    const struct stomp_frame *f;
    const struct stomp_str   *h[H_COUNT];
    char                      detail[DETAIL_MAX];
};

enum close_how {
    CLOSE_FLUSH,    /* send everything, answers still awaited included */
    CLOSE_CANCEL,   /* send what is ready; drop answers still awaited */
    CLOSE_NOW,      /* drop everything; ops->close() at once */
};

static void begin_close(cg_session *s, int code, const char *why, enum close_how how);
static void session_fail(cg_session *s, int err, const char *detail);
static void process_input(cg_session *s);
static void arm_timer(cg_session *s);

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */
/* ------------------------------------------------------------------------ */

static int
fail(struct frame_ctx *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Record a handler's error detail; returns err for "return fail(...)". */
static int
fail(struct frame_ctx *c, int err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->detail, sizeof c->detail, fmt, ap);
    va_end(ap);
    return err;
}

/* Peer bytes for a detail or log line: escaped, quoted, at most 64 bytes. */
static const char *
repr(const struct stomp_str *v, char *out, size_t cap)
{
    return cg_log_repr(v->ptr, v->len, 64, out, cap);
}

static int
str_eq(struct stomp_str a, struct stomp_str b)
{
    return a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0;
}

static struct cg_str
to_cg(struct stomp_str v)
{
    return (struct cg_str){ v.ptr, v.len };
}

/* Strict unsigned decimal (hiredis string2ll style): no sign, no spaces,
 * no overflow. */
static int
parse_u64(const char *p, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    size_t i;

    if (len == 0 || len > 20)
        return -1;
    for (i = 0; i < len; i++) {
        unsigned d = (unsigned char)p[i] - '0';

        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static void
token_forget(cg_session *s)
{
    if (s->token != NULL) {
        explicit_bzero(s->token, s->token_len);
        cg_free(s->token);
        s->token = NULL;
        s->token_len = 0;
    }
}

static void
input_free(cg_session *s)
{
    cg_free(s->in);
    s->in = NULL;
    s->in_len = s->in_off = s->in_cap = 0;
}

/* ------------------------------------------------------------------------ */
/* Transport calls                                                           */
/* ------------------------------------------------------------------------ */

static void
want_write(cg_session *s)
{
    if (!ops_usable(s) || (s->flags & F_WRITE_ASKED))
        return;
    s->flags |= F_WRITE_ASKED;
    s->ops->want_write(s->t);
}

static int
input_paused(const cg_session *s)
{
    return s->paused != 0;
}

void
cg_session__pause_input(cg_session *s, unsigned why)
{
    s->paused |= (uint8_t)why;
    if (!(s->flags & F_READ_STOPPED) && ops_usable(s)) {
        s->flags |= F_READ_STOPPED;
        s->ops->pause_read(s->t, 1);
    }
}

void
cg_session__resume_input(cg_session *s, unsigned why)
{
    if (!(s->paused & why))
        return;
    s->paused &= (uint8_t)~why;
    if (s->paused != 0)
        return;
    if ((s->flags & F_READ_STOPPED) && ops_usable(s)) {
        s->flags &= (uint16_t)~F_READ_STOPPED;
        s->ops->pause_read(s->t, 0);
    }
    /* The peer was not heard while it could not be read. */
    s->last_read = now_ms(s);
    /* Frames buffered meanwhile are parsed from the timer, never from inside
     * the callback that resumed us (which may be deep in a handler). */
    if (s->in_len > s->in_off) {
        s->flags |= F_PARSE_PENDING;
        arm_timer(s);
    }
}

/* ------------------------------------------------------------------------ */
/* Rendering whole frames (CONNECTED, RECEIPT, ERROR)                        */
/* ------------------------------------------------------------------------ */

struct kv {
    const char      *name;
    struct stomp_str value;
};

static void
build(struct stomp_writer *w, enum stomp_command cmd, const struct kv *h,
      size_t nh, const struct stomp_str *body)
{
    size_t i;

    stomp_writer_command(w, cmd);
    for (i = 0; i < nh; i++)
        stomp_writer_header(w, (struct stomp_str){ h[i].name, strlen(h[i].name) },
                            h[i].value);
    if (body != NULL)
        stomp_writer_body(w, *body);
}

/* Measure, allocate once, write. Returns 0, CG_E_NOMEM, or CG_E_INVAL when
 * the headers cannot be carried in this version. */
static int
render_raw(enum stomp_version v, enum stomp_command cmd, const struct kv *h,
           size_t nh, const struct stomp_str *body, struct cg_buf **out)
{
    struct stomp_writer w;
    struct cg_buf *b;
    size_t n;

    stomp_writer_init(&w, NULL, 0, v);
    build(&w, cmd, h, nh, body);
    if (stomp_writer_finish(&w, &n) != STOMP_OK)
        return CG_E_INVAL;
    if ((b = cg_buf_create(NULL, n)) == NULL)
        return CG_E_NOMEM;
    stomp_writer_init(&w, b->data, n, v);
    build(&w, cmd, h, nh, body);
    if (stomp_writer_finish(&w, &n) != STOMP_OK) {   /* not reached */
        cg_buf_unref(b);
        return CG_E_INVAL;
    }
    *out = b;
    return 0;
}

static enum stomp_version
out_version(const cg_session *s)
{
    return s->version ? (enum stomp_version)s->version : STOMP_V1_0;
}

/* Queue RECEIPT receipt-id:<id>. 0, CG_E_NOMEM or CG_E_PROTO. */
static int
queue_receipt(cg_session *s, const struct stomp_str *id)
{
    struct kv h[] = { { "receipt-id", *id } };
    struct cg_buf *b = NULL;
    int rc;

    rc = render_raw(out_version(s), STOMP_CMD_RECEIPT, h, 1, NULL, &b);
    if (rc < 0)
        return rc == CG_E_NOMEM ? rc : CG_E_PROTO;
    if ((rc = cg_outq_push_raw(&s->outq, b)) < 0)
        return rc;
    cg_session__after_enqueue(s);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Queueing answers and messages                                             */
/* ------------------------------------------------------------------------ */

static int
resolve_sub(void *ctx, uint32_t key, struct cg_outq_target *out)
{
    const cg_session *s = ctx;
    const struct cg_sub *sub = cg_subs_by_key(&s->subs, key);

    if (sub == NULL)
        return CG_E_NOTFOUND;
    out->dest = (struct stomp_str){ cg_sub_dest(sub), sub->dest_len };
    out->sub_id = (struct stomp_str){ sub->id, sub->id_len };
    out->client_ack = sub->ack != CG_SUB_ACK_AUTO;
    return 0;
}

struct cg_outq_render
cg_session__render_ctx(cg_session *s)
{
    return (struct cg_outq_render){ out_version(s), s->uid, resolve_sub, s };
}

static void
output_cap_close(cg_session *s, enum cg_outq_limit lim)
{
    const struct cg_config *cfg = cfg_of(s);
    size_t pending = cg_outq_chat(&s->outq);

    if (lim == CG_OUTQ_OVER_HARD)
        cg_slog(s, CG_LOG_WARN, "closed: output queue over %lld bytes "
                "(out_max_bytes); %zu messages stay pending for the next connect",
                (long long)cfg->out_max_bytes, pending);
    else
        cg_slog(s, CG_LOG_WARN, "closed: output queue over %lld bytes for %lld s "
                "(out_soft_bytes, out_soft_seconds); %zu messages stay pending "
                "for the next connect", (long long)cfg->out_soft_bytes,
                (long long)cfg->out_soft_seconds, pending);
    s->srv->metrics.output_cap_closes++;
    begin_close(s, WS_CLOSE_TRY_LATER, "output queue over limit", CLOSE_NOW);
}

void
cg_session__after_enqueue(cg_session *s)
{
    enum cg_outq_limit lim;

    if (!ops_usable(s))
        return;
    lim = cg_outq_check(&s->outq, now_ms(s));
    if (lim != CG_OUTQ_OK) {
        output_cap_close(s, lim);
        return;
    }
    /* Ready frames need a write; so does a closing session that has just
     * run out of things to wait for (the transport then sees
     * cg_session_wants_close()). */
    if (cg_outq_ready(&s->outq) ||
        (s->state == ST_CLOSING && cg_outq_idle(&s->outq)))
        want_write(s);
    arm_timer(s);
}

/* ------------------------------------------------------------------------ */
/* Transactions                                                              */
/* ------------------------------------------------------------------------ */

static struct tx **
tx_find(cg_session *s, const struct stomp_str *name)
{
    struct tx **pp;

    for (pp = &s->txs; *pp != NULL; pp = &(*pp)->next)
        if ((*pp)->name_len == name->len && memcmp((*pp)->name, name->ptr, name->len) == 0)
            return pp;
    return NULL;
}

static void
tx_free(struct tx *tx)
{
    struct tx_op *op = tx->head;

    while (op != NULL) {
        struct tx_op *next = op->next;

        cg_free(op);
        op = next;
    }
    cg_free(tx);
}

static void
tx_abort_all(cg_session *s)
{
    while (s->txs != NULL) {
        struct tx *tx = s->txs;

        s->txs = tx->next;
        tx_free(tx);
    }
    s->ntx = 0;
}

/* Buffer a SEND (or ACK) of transaction c->h[H_TRANSACTION] until COMMIT. */
static int
tx_add(cg_session *s, struct frame_ctx *c, int kind, uint64_t ack_id)
{
    const struct stomp_str *name = c->h[H_TRANSACTION];
    const struct stomp_str *dest = c->h[H_DESTINATION];
    struct stomp_str body = c->f->body;
    struct tx **pp = tx_find(s, name);
    struct tx_op *op;
    char r[80];
    size_t dl = kind == TX_SEND ? dest->len : 0, bl = kind == TX_SEND ? body.len : 0;

    if (pp == NULL)
        return fail(c, CG_E_PROTO, "unknown transaction %s", repr(name, r, sizeof r));
    if ((*pp)->nops >= cfg_size(cfg_of(s)->max_tx_frames))
        return fail(c, CG_E_LIMIT, "transaction exceeds %lld frames (max_tx_frames)",
                    (long long)cfg_of(s)->max_tx_frames);
    /* Each copy is bounded by max_frame_bytes: it came from one frame. */
    if ((op = cg_malloc(sizeof *op + dl + bl)) == NULL)
        return fail(c, CG_E_NOMEM, "out of memory");
    op->next = NULL;
    op->kind = (uint8_t)kind;
    op->ack_id = ack_id;
    op->dest_len = (uint32_t)dl;
    op->body_len = (uint32_t)bl;
    if (dl)
        memcpy(op->data, dest->ptr, dl);
    if (bl)
        memcpy(op->data + dl, body.ptr, bl);
    if ((*pp)->tail)
        (*pp)->tail->next = op;
    else
        (*pp)->head = op;
    (*pp)->tail = op;
    (*pp)->nops++;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Frame handlers                                                            */
/* ------------------------------------------------------------------------ */

/* Highest of 1.0/1.1/1.2 offered in accept-version (missing: 1.0), or the
 * subprotocol's version when the client offers it too. 0: none common. */
static int
negotiate_version(const cg_session *s, const struct stomp_str *av)
{
    unsigned offered = 0;       /* bit 0: 1.0, bit 1: 1.1, bit 2: 1.2 */
    size_t i = 0, start;

    if (av == NULL)
        offered = 1;
    else {
        while (i <= av->len) {
            start = i;
            while (i < av->len && av->ptr[i] != ',')
                i++;
            if (i - start == 3 && av->ptr[start] == '1' && av->ptr[start + 1] == '.' &&
                av->ptr[start + 2] >= '0' && av->ptr[start + 2] <= '2')
                offered |= 1u << (av->ptr[start + 2] - '0');
            i++;
        }
    }
    if (s->ws_version >= 10 && s->ws_version <= 12 &&
        (offered & (1u << (s->ws_version - 10))))
        return s->ws_version;
    if (offered & 4) return STOMP_V1_2;
    if (offered & 2) return STOMP_V1_1;
    if (offered & 1) return STOMP_V1_0;
    return 0;
}

/* "cx,cy" in milliseconds. */
static int
parse_heart_beat(const struct stomp_str *v, uint64_t *cx, uint64_t *cy)
{
    const char *comma = memchr(v->ptr, ',', v->len);

    if (comma == NULL)
        return -1;
    if (parse_u64(v->ptr, (size_t)(comma - v->ptr), cx) < 0 ||
        parse_u64(comma + 1, v->len - (size_t)(comma - v->ptr) - 1, cy) < 0)
        return -1;
    return 0;
}

static uint64_t
clamp_u64(uint64_t v, uint64_t max)
{
    return max > 0 && v > max ? max : v;
}

struct auth_req {
    struct cg_server *srv;
    uint64_t          sid;
};

static void on_auth(int err, const struct cg_principal *who, const char *token,
                    void *data);

static int
on_connect(cg_session *s, struct frame_ctx *c)
{
    const struct cg_config *cfg = cfg_of(s);
    const struct stomp_str *tok = NULL;
    uint64_t cx = 0, cy = 0, sx, sy, max;
    struct auth_req *req;
    char r[80];
    int v, rc;

    if ((v = negotiate_version(s, c->h[H_ACCEPT_VERSION])) == 0)
        return fail(c, CG_E_PROTO, "supported versions are 1.0,1.1,1.2");

    /* Heart-beats are STOMP 1.1+. The client can send every cx and wants
     * one every cy; we can send every sx and want one every sy. Each
     * direction uses the larger of the pair, 0 meaning none. A client
     * asking for more than heartbeat_max_ms is held to heartbeat_max_ms. */
    if (v >= STOMP_V1_1 && c->h[H_HEART_BEAT] != NULL &&
        parse_heart_beat(c->h[H_HEART_BEAT], &cx, &cy) < 0)
        return fail(c, CG_E_PROTO, "invalid heart-beat header %s (expected cx,cy)",
                    repr(c->h[H_HEART_BEAT], r, sizeof r));
    max = cfg->heartbeat_max_ms > 0 ? (uint64_t)cfg->heartbeat_max_ms : 0;
    sx = sy = v >= STOMP_V1_1 ? clamp_u64(cfg_size(cfg->heartbeat_ms), max) : 0;
    cx = clamp_u64(cx, max);
    cy = clamp_u64(cy, max);
    s->hb_sx = (uint32_t)clamp_u64(sx, UINT32_MAX);
    s->hb_sy = (uint32_t)clamp_u64(sy, UINT32_MAX);
    s->hb_out = (uint32_t)clamp_u64(sx && cy ? (sx > cy ? sx : cy) : 0, UINT32_MAX);
    s->hb_in = (uint32_t)clamp_u64(sy && cx ? (sy > cx ? sy : cx) : 0, UINT32_MAX);
    s->version = (uint8_t)v;

    /* The token: handshake first, then passcode (any login), then token. */
    if (s->token == NULL) {
        tok = c->h[H_PASSCODE] && c->h[H_PASSCODE]->len ? c->h[H_PASSCODE] : c->h[H_TOKEN];
        if (tok != NULL && tok->len > 0 && tok->len <= SESSION_TOKEN_MAX) {
            if ((s->token = cg_strndup(tok->ptr, tok->len)) == NULL)
                return fail(c, CG_E_NOMEM, "out of memory");
            s->token_len = tok->len;
        } else if (tok != NULL && tok->len > SESSION_TOKEN_MAX) {
            s->srv->metrics.auth_failures++;
            return fail(c, CG_E_AUTH, "invalid token");
        }
    }
    if (s->token == NULL) {
        s->srv->metrics.auth_failures++;
        return fail(c, CG_E_AUTH, "missing token");
    }
    if (!cg_auth_token_wellformed(s->token, s->token_len)) {
        s->srv->metrics.auth_failures++;
        token_forget(s);
        return fail(c, CG_E_AUTH, "invalid token");
    }
    if (s->srv->auth == NULL)
        return fail(c, CG_E_STORE, "authentication unavailable");

    s->state = ST_AUTHENTICATING;
    cg_session__pause_input(s, PAUSE_AUTH);    /* later frames wait for CONNECTED */
    if ((req = cg_malloc(sizeof *req)) == NULL)
        return fail(c, CG_E_NOMEM, "out of memory");
    req->srv = s->srv;
    req->sid = s->id;
    rc = cg_auth_check_token(s->srv->auth, s->token, s->token_len, on_auth, req);
    if (rc < 0) {
        cg_free(req);
        if (rc == CG_E_AUTH)       /* known bad here; auth.c counted it */
            return fail(c, CG_E_AUTH, "invalid or expired token");
        return fail(c, rc == CG_E_NOMEM ? rc : CG_E_STORE, "token check failed: %s",
                    cg_strerror(rc));
    }
    return 0;                      /* on_auth() may already have run */
}

static int
on_send(cg_session *s, struct frame_ctx *c)
{
    int rc;

    if (c->h[H_TRANSACTION] != NULL)
        return tx_add(s, c, TX_SEND, 0);
    rc = cg_session__chat_send(s, *c->h[H_DESTINATION], c->f->body);
    return rc < 0 ? fail(c, rc, "%s", cg_strerror(rc)) : 0;
}

static int
on_subscribe(cg_session *s, struct frame_ctx *c)
{
    const struct cg_config *cfg = cfg_of(s);
    const struct stomp_str *dest = c->h[H_DESTINATION];
    /* STOMP 1.0 makes id optional; the destination then names it. */
    const struct stomp_str *id = c->h[H_ID] ? c->h[H_ID] : dest;
    enum cg_sub_ack ack = CG_SUB_ACK_AUTO;
    enum cg_chat_topic topic;
    uint32_t key;
    char r[80];
    int rc;

    if (c->h[H_ACK] != NULL && cg_subs_parse_ack(to_cg(*c->h[H_ACK]), &ack) < 0)
        return fail(c, CG_E_PROTO, "invalid ack mode %s (auto, client or client-individual)",
                    repr(c->h[H_ACK], r, sizeof r));
    if (cg_subs_classify(to_cg(*dest), s->uid, s->name, &topic) < 0)
        return fail(c, CG_E_FORBIDDEN, "destination %s is not yours",
                    repr(dest, r, sizeof r));
    rc = cg_subs_add(&s->subs, to_cg(*id), to_cg(*dest), topic, ack,
                     cfg_size(cfg->max_subscriptions), &key);
    switch (rc) {
    case 0:
        cg_slog(s, CG_LOG_DEBUG, "subscribed %s (topic %d, key %" PRIu32 ")",
                repr(dest, r, sizeof r), (int)topic, key);
        return 0;
    case CG_E_EXISTS:
        return fail(c, CG_E_PROTO, "duplicate subscription id %s", repr(id, r, sizeof r));
    case CG_E_LIMIT:
        return fail(c, CG_E_LIMIT, "more than %lld subscriptions (max_subscriptions)",
                    (long long)cfg->max_subscriptions);
    case CG_E_INVAL:
        return fail(c, CG_E_PROTO, "subscription id or destination over %d bytes",
                    CG_SUB_STR_MAX);
    default:
        return fail(c, rc, "out of memory");
    }
}

/* UNSUBSCRIBE of an id we do not know is ignored in every version: STOMP
 * does not require an ERROR, and an ERROR closes the connection, which
 * would punish a harmless client race (unsubscribe twice). */
static int
on_unsubscribe(cg_session *s, struct frame_ctx *c)
{
    const struct stomp_str *id = c->h[H_ID] ? c->h[H_ID] : c->h[H_DESTINATION];
    char r[80];

    if (id == NULL)                /* 1.0 allows either header, not neither */
        return fail(c, CG_E_PROTO, "missing header 'id' in UNSUBSCRIBE");
    if (cg_subs_remove(&s->subs, to_cg(*id)) < 0)
        cg_slog(s, CG_LOG_DEBUG, "UNSUBSCRIBE of unknown id %s ignored",
                repr(id, r, sizeof r));
    else
        cg_session__chat_unsubscribed(s);
    return 0;
}

/* An ACK names "<uid>-<id>" (our message-id format, outq.c). Returns the
 * chat message id to confirm, or 0 when it names nothing of ours. */
static uint64_t
ack_target(const cg_session *s, const struct stomp_str *v)
{
    const char *dash;
    uint64_t uid, id;

    if (v == NULL || (dash = memchr(v->ptr, '-', v->len)) == NULL)
        return 0;
    if (parse_u64(v->ptr, (size_t)(dash - v->ptr), &uid) < 0 || uid != s->uid ||
        parse_u64(dash + 1, v->len - (size_t)(dash - v->ptr) - 1, &id) < 0)
        return 0;
    return id;
}

/* ACK confirms a chat message ("<uid>-<id>") as /socket/chat/recive would,
 * when the client asked for client acknowledgement on its recive
 * subscription (the one named in 1.0/1.1 subscription, else any of them).
 * "client" mode is treated like "client-individual": the ACK confirms that
 * one message, not everything before it, which is all the inbox needs (a
 * message older than an ACKed one stays pending until ACKed itself). An
 * ACK of anything else (a status answer, another user's id) is ignored. */
static uint64_t
ack_id_of(cg_session *s, struct frame_ctx *c)
{
    const struct stomp_str *v = s->version >= STOMP_V1_2 ? c->h[H_ID] : c->h[H_MESSAGE_ID];
    const struct stomp_str *subv = c->h[H_SUBSCRIPTION];
    uint64_t id = ack_target(s, v);

    if (id == 0)
        return 0;
    if (subv != NULL && s->version < STOMP_V1_2) {
        const struct cg_sub *sub = cg_subs_by_id(&s->subs, to_cg(*subv));

        if (sub == NULL || sub->topic != CG_TOPIC_RECIVE || sub->ack == CG_SUB_ACK_AUTO)
            return 0;
    } else if (!cg_subs_topic_client_ack(&s->subs, CG_TOPIC_RECIVE)) {
        return 0;
    }
    return id;
}

static int
on_ack(cg_session *s, struct frame_ctx *c)
{
    uint64_t id = ack_id_of(s, c);
    int rc;

    if (id == 0)
        cg_slog(s, CG_LOG_DEBUG, "ACK of no chat message of ours ignored");
    if (c->h[H_TRANSACTION] != NULL)
        return tx_add(s, c, TX_ACK, id);
    rc = cg_session__chat_confirm(s, id);
    return rc < 0 ? fail(c, rc, "%s", cg_strerror(rc)) : 0;
}

/* NACK leaves the message pending: the next init redelivers it. */
static int
on_nack(cg_session *s, struct frame_ctx *c)
{
    char r[80];

    if (c->h[H_TRANSACTION] != NULL && tx_find(s, c->h[H_TRANSACTION]) == NULL)
        return fail(c, CG_E_PROTO, "unknown transaction %s",
                    repr(c->h[H_TRANSACTION], r, sizeof r));
    return 0;
}

static int
on_begin(cg_session *s, struct frame_ctx *c)
{
    const struct stomp_str *name = c->h[H_TRANSACTION];
    struct tx *tx;
    char r[80];

    if (tx_find(s, name) != NULL)
        return fail(c, CG_E_PROTO, "transaction %s already begun", repr(name, r, sizeof r));
    if (s->ntx >= SESSION_MAX_TX)
        return fail(c, CG_E_LIMIT, "more than %d open transactions", SESSION_MAX_TX);
    if (name->len > UINT16_MAX || (tx = cg_calloc(1, sizeof *tx + name->len)) == NULL)
        return fail(c, CG_E_NOMEM, "out of memory");
    memcpy(tx->name, name->ptr, name->len);
    tx->name_len = (uint16_t)name->len;
    tx->next = s->txs;
    s->txs = tx;
    s->ntx++;
    return 0;
}

/* Remove and return the named transaction, or NULL. */
static struct tx *
tx_take(cg_session *s, const struct stomp_str *name)
{
    struct tx **pp = tx_find(s, name), *tx;

    if (pp == NULL)
        return NULL;
    tx = *pp;
    *pp = tx->next;
    s->ntx--;
    return tx;
}

static int
on_commit(cg_session *s, struct frame_ctx *c)
{
    struct tx *tx = tx_take(s, c->h[H_TRANSACTION]);
    struct tx_op *op;
    char r[80];
    int rc = 0;

    if (tx == NULL)
        return fail(c, CG_E_PROTO, "unknown transaction %s",
                    repr(c->h[H_TRANSACTION], r, sizeof r));
    /* The frames take effect now, in order; COMMIT's RECEIPT (queued by
     * dispatch after this returns) follows all their answers. */
    for (op = tx->head; op != NULL && rc == 0 && s->state == ST_CONNECTED; op = op->next) {
        if (op->kind == TX_SEND)
            rc = cg_session__chat_send(s, (struct stomp_str){ op->data, op->dest_len },
                                       (struct stomp_str){ op->data + op->dest_len,
                                                           op->body_len });
        else
            rc = cg_session__chat_confirm(s, op->ack_id);
    }
    tx_free(tx);
    return rc < 0 ? fail(c, rc, "%s", cg_strerror(rc)) : 0;
}

static int
on_abort(cg_session *s, struct frame_ctx *c)
{
    struct tx *tx = tx_take(s, c->h[H_TRANSACTION]);
    char r[80];

    if (tx == NULL)
        return fail(c, CG_E_PROTO, "unknown transaction %s",
                    repr(c->h[H_TRANSACTION], r, sizeof r));
    tx_free(tx);
    return 0;
}

/* DISCONNECT: open transactions are aborted, an init stream stops (its
 * messages stay pending), reading stops; the RECEIPT is queued behind every
 * outstanding answer, and the transport closes (1000) once it has left. */
static int
on_disconnect(cg_session *s, struct frame_ctx *c)
{
    tx_abort_all(s);
    cg_session__init_stop(s);
    if (c->h[H_RECEIPT] != NULL && queue_receipt(s, c->h[H_RECEIPT]) < 0)
        cg_slog(s, CG_LOG_WARN, "DISCONNECT receipt lost: out of memory");
    begin_close(s, WS_CLOSE_NORMAL, "client disconnected", CLOSE_FLUSH);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The dispatch table                                                        */
/* ------------------------------------------------------------------------ */

#define R_NO_RECEIPT  0x01u   /* the generic RECEIPT does not apply */

struct frame_rule {
    uint8_t  states;          /* SM() of the states that accept it */
    uint8_t  flags;           /* R_* */
    uint16_t req[3];          /* required headers (HB()) in 1.0, 1.1, 1.2 */
    int    (*handler)(cg_session *s, struct frame_ctx *c);  /* NULL: server frame */
};

#define REQ_ALL(m) { (m), (m), (m) }
#define ACK_REQ { HB(H_MESSAGE_ID), HB(H_MESSAGE_ID) | HB(H_SUBSCRIPTION), HB(H_ID) }

static const struct frame_rule rules[STOMP_CMD_COUNT] = {
    [STOMP_CMD_CONNECT]     = { SM(ST_AWAIT_CONNECT), R_NO_RECEIPT, REQ_ALL(0), on_connect },
    [STOMP_CMD_STOMP]       = { SM(ST_AWAIT_CONNECT), R_NO_RECEIPT, REQ_ALL(0), on_connect },
    [STOMP_CMD_SEND]        = { SM(ST_CONNECTED), 0, REQ_ALL(HB(H_DESTINATION)), on_send },
    [STOMP_CMD_SUBSCRIBE]   = { SM(ST_CONNECTED), 0,
                                { HB(H_DESTINATION), HB(H_DESTINATION) | HB(H_ID),
                                  HB(H_DESTINATION) | HB(H_ID) }, on_subscribe },
    [STOMP_CMD_UNSUBSCRIBE] = { SM(ST_CONNECTED), 0, { 0, HB(H_ID), HB(H_ID) }, on_unsubscribe },
    [STOMP_CMD_ACK]         = { SM(ST_CONNECTED), 0, ACK_REQ, on_ack },
    [STOMP_CMD_NACK]        = { SM(ST_CONNECTED), 0, ACK_REQ, on_nack },
    [STOMP_CMD_BEGIN]       = { SM(ST_CONNECTED), 0, REQ_ALL(HB(H_TRANSACTION)), on_begin },
    [STOMP_CMD_COMMIT]      = { SM(ST_CONNECTED), 0, REQ_ALL(HB(H_TRANSACTION)), on_commit },
    [STOMP_CMD_ABORT]       = { SM(ST_CONNECTED), 0, REQ_ALL(HB(H_TRANSACTION)), on_abort },
    [STOMP_CMD_DISCONNECT]  = { SM(ST_CONNECTED), R_NO_RECEIPT, REQ_ALL(0), on_disconnect },
    /* CONNECTED, MESSAGE, RECEIPT, ERROR: server frames, never accepted. */
};

static void
collect_headers(struct frame_ctx *c, unsigned *have)
{
    size_t i, k;

    for (i = 0; i < c->f->nheaders; i++) {
        const struct stomp_str *n = &c->f->headers[i].name;

        for (k = 0; k < H_COUNT; k++) {
            if (c->h[k] == NULL && str_eq(*n, hdr_names[k])) {
                c->h[k] = &c->f->headers[i].value;     /* first one wins */
                *have |= HB(k);
                break;
            }
        }
    }
}

static void
dispatch(cg_session *s, const struct stomp_frame *f)
{
    const char *name = stomp_command_name(f->command);
    const struct frame_rule *rule = NULL;
    struct frame_ctx c;
    unsigned have = 0, need, k;
    int rc;

    memset(c.h, 0, sizeof c.h);
    c.f = f;
    c.detail[0] = '\0';
    s->srv->metrics.frames_in++;
    collect_headers(&c, &have);
    cg_slog(s, CG_LOG_DEBUG, "<< %s (%zu headers, %zu body bytes)", name ? name : "?",
            f->nheaders, f->body.len);

    if ((unsigned)f->command < STOMP_CMD_COUNT)
        rule = &rules[f->command];
    if (rule == NULL || rule->handler == NULL) {
        fail(&c, CG_E_PROTO, "%s is a server frame", name ? name : "?");
        goto failed;
    }
    if (!(rule->states & SM(s->state))) {
        if (s->state == ST_AWAIT_CONNECT)
            fail(&c, CG_E_PROTO, "expected CONNECT or STOMP, got %s", name);
        else
            fail(&c, CG_E_PROTO, "%s not allowed while %s", name, state_names[s->state]);
        goto failed;
    }
    need = rule->req[s->version == STOMP_V1_0 ? 0 : s->version == STOMP_V1_1 ? 1 : 2];
    if ((have & need) != need) {
        for (k = 0; k < H_COUNT && ((have & HB(k)) || !(need & HB(k))); k++)
            ;
        fail(&c, CG_E_PROTO, "missing header '%s' in %s", hdr_names[k < H_COUNT ? k : 0].ptr,
             name);
        goto failed;
    }
    s->cur_receipt = c.h[H_RECEIPT];
    rc = rule->handler(s, &c);
    s->cur_receipt = NULL;
    if (rc < 0)
        goto failed_rc;
    if (c.h[H_RECEIPT] != NULL && !(rule->flags & R_NO_RECEIPT) &&
        s->state != ST_CLOSING && (rc = queue_receipt(s, c.h[H_RECEIPT])) < 0) {
        fail(&c, rc, rc == CG_E_NOMEM ? "out of memory" : "receipt id cannot be carried");
        goto failed_rc;
    }
    return;

failed:
    rc = CG_E_PROTO;
failed_rc:
    s->cur_receipt = c.h[H_RECEIPT];
    session_fail(s, rc, c.detail);
    s->cur_receipt = NULL;
}

/* ------------------------------------------------------------------------ */
/* Errors and closing                                                        */
/* ------------------------------------------------------------------------ */

/* The one place an error code becomes an ERROR frame followed by a close.
 * message: a short reason (the detail itself for protocol errors and
 * limits, which name the limit); body: the one-line detail. Before the
 * version is agreed the ERROR also carries version:1.0,1.1,1.2 (STOMP 1.2
 * "Protocol Negotiation") and is written without escapes. When the error
 * is about a frame that asked for a receipt, receipt-id names it (STOMP
 * 1.2 "ERROR"). */
static void
session_fail(cg_session *s, int err, const char *detail)
{
    const char *msg;
    struct kv h[4];
    struct stomp_str body = { detail, strlen(detail) };
    struct cg_buf *b = NULL;
    size_t nh = 0;
    int code;

    if (s->state == ST_CLOSING || (s->flags & F_GONE))
        return;                    /* one ERROR at most */
    switch (err) {
    case CG_E_AUTH:      msg = "401 unauthorized";          code = WS_CLOSE_POLICY;   break;
    case CG_E_EXPIRED:   msg = "401 token expired: log in again"; code = WS_CLOSE_POLICY; break;
    case CG_E_FORBIDDEN: msg = "403 forbidden destination"; code = WS_CLOSE_POLICY;   break;
    case CG_E_STORE:     msg = "503 service unavailable";   code = WS_CLOSE_INTERNAL; break;
    case CG_E_NOMEM:     msg = "500 internal error";        code = WS_CLOSE_INTERNAL; break;
    case CG_E_LIMIT:     msg = detail;                      code = WS_CLOSE_POLICY;   break;
    default:             msg = detail;                      code = WS_CLOSE_PROTOCOL; break;
    }
    s->srv->metrics.stomp_errors++;
    cg_slog(s, CG_LOG_INFO, "ERROR %s: %s", msg == detail ? cg_strerror(err) : msg, detail);

    if (s->version == 0)
        h[nh++] = (struct kv){ "version", STOMP_STR("1.0,1.1,1.2") };
    h[nh++] = (struct kv){ "message", { msg, strlen(msg) } };
    h[nh++] = (struct kv){ "content-type", STOMP_STR("text/plain") };
    if (s->cur_receipt != NULL)
        h[nh++] = (struct kv){ "receipt-id", *s->cur_receipt };
    if (render_raw(out_version(s), STOMP_CMD_ERROR, h, nh, &body, &b) == CG_E_INVAL) {
        /* Our own words always fit; a detail or receipt quoting the peer
         * may not (a CR in 1.1, say): send the bare error. */
        nh = s->version == 0;
        h[nh++] = (struct kv){ "message", STOMP_STR("protocol error") };
        (void)render_raw(out_version(s), STOMP_CMD_ERROR, h, nh, NULL, &b);
    }
    if (b != NULL && cg_outq_push_raw(&s->outq, b) < 0)
        cg_slog(s, CG_LOG_WARN, "ERROR frame lost: out of memory");
    begin_close(s, code, msg, CLOSE_CANCEL);
}

static void
begin_close(cg_session *s, int code, const char *why, enum close_how how)
{
    if (s->flags & F_GONE)
        return;
    if (s->state != ST_CLOSING) {
        s->state = ST_CLOSING;
        s->close_code = code;
        snprintf(s->close_why, sizeof s->close_why, "%s", why ? why : "");
        cg_session__pause_input(s, PAUSE_CLOSING);
        tx_abort_all(s);
        cg_session__init_stop(s);
        if (!(s->flags & F_IN_INPUT))
            input_free(s);         /* else process_input() frees it */
        s->flags &= (uint16_t)~(F_EOL_DUE | F_PARSE_PENDING);
        s->connect_dl = s->frame_dl = 0;
        /* The flush gets as long as a peer gets to finish a frame. */
        s->close_dl = now_ms(s) + cfg_size(cfg_of(s)->frame_timeout_ms);
        cg_slog(s, CG_LOG_INFO, "closing (%d %s)", code, s->close_why);
    } else if (how != CLOSE_NOW || (s->flags & F_CLOSE_SENT)) {
        return;                    /* already closing; only escalation counts */
    } else {
        s->close_code = code;
        snprintf(s->close_why, sizeof s->close_why, "%s", why ? why : "");
    }
    if (how != CLOSE_FLUSH)
        cg_outq_cancel_tickets(&s->outq);
    if (how == CLOSE_NOW) {
        (void)cg_outq_discard(&s->outq);
        s->flags |= F_CLOSE_SENT;
        s->ops->close(s->t, s->close_code, s->close_why);
    } else {
        /* Even with nothing queued: the transport learns from
         * cg_session_wants_close() in its writable callback. */
        s->flags |= F_WRITE_ASKED;
        s->ops->want_write(s->t);
    }
    arm_timer(s);
}

/* ------------------------------------------------------------------------ */
/* Input                                                                     */
/* ------------------------------------------------------------------------ */

static void
current_limits(const cg_session *s, struct stomp_limits *lim)
{
    const struct cg_config *cfg = cfg_of(s);
    size_t frame = cfg_size(cfg->max_frame_bytes), line = cfg_size(cfg->max_header_line);
    size_t headers = cfg_size(cfg->max_headers), unauth = cfg_size(cfg->unauth_max_frame_bytes);

    if (!(s->flags & F_AUTH_LIMITS)) {
        /* Redis's unauthenticated caps: a peer that has not proven who it
         * is cannot make us buffer a full-size frame. */
        if (unauth > 0 && unauth < frame)
            frame = unauth;
        if (line > frame)
            line = frame;
    }
    lim->max_frame_bytes = frame;
    lim->max_headers = headers < SESSION_HEADERS_MAX ? headers : SESSION_HEADERS_MAX;
    lim->max_header_line = line;
    lim->max_header_bytes = frame;   /* no separate option: the frame bounds it */
}

static void
apply_limits(cg_session *s)
{
    struct stomp_limits lim;

    current_limits(s, &lim);
    stomp_parser_set_limits(&s->parser, &lim);
}

static void
parse_fail(cg_session *s, int err)
{
    struct stomp_limits lim;
    char msg[DETAIL_MAX];
    int limit = err == STOMP_E_FRAME_TOO_LARGE || err == STOMP_E_TOO_MANY_HEADERS ||
                err == STOMP_E_HEADER_LINE_TOO_LONG || err == STOMP_E_HEADERS_TOO_LARGE;

    current_limits(s, &lim);
    if (err == STOMP_E_FRAME_TOO_LARGE && !(s->flags & F_AUTH_LIMITS) &&
        lim.max_frame_bytes < cfg_size(cfg_of(s)->max_frame_bytes))
        snprintf(msg, sizeof msg, "frame exceeds %zu bytes before CONNECT "
                 "(unauth_max_frame_bytes)", lim.max_frame_bytes);
    else
        (void)stomp_strerror_limit(err, &lim, msg, sizeof msg);
    session_fail(s, limit ? CG_E_LIMIT : CG_E_PROTO, msg);
}

static int
input_append(cg_session *s, const char *data, size_t len)
{
    size_t unparsed = s->in_len - s->in_off, need, cap;
    char *p;

    if (input_paused(s) &&
        unparsed + len > cfg_size(cfg_of(s)->max_frame_bytes) + SESSION_PAUSED_SLACK)
        return CG_E_LIMIT;
    /* Reuse the consumed prefix before growing. */
    if (s->in_off > 0 && (s->in_off >= SESSION_COMPACT_AT || s->in_cap - s->in_len < len)) {
        memmove(s->in, s->in + s->in_off, unparsed);
        s->in_len = unparsed;
        s->in_off = 0;
    }
    need = s->in_len + len;
    if (need > s->in_cap) {
        cap = s->in_cap ? s->in_cap : 512;
        while (cap < need)
            cap *= 2;
        if ((p = cg_realloc(s->in, cap)) == NULL)
            return CG_E_NOMEM;
        s->in = p;
        s->in_cap = cap;
    }
    memcpy(s->in + s->in_len, data, len);
    s->in_len += len;
    return 0;
}

static int
can_dispatch(const cg_session *s)
{
    return s->state != ST_CLOSING && !(s->paused & (PAUSE_AUTH | PAUSE_INFLIGHT));
}

static void
process_input(cg_session *s)
{
    struct stomp_header hdrs[SESSION_HEADERS_MAX];
    struct stomp_frame f;
    int progressed = 0;
    ssize_t n;

    if (s->flags & F_IN_INPUT)
        return;                    /* the outer loop goes on by itself */
    s->flags |= F_IN_INPUT;
    while (can_dispatch(s) && s->in_off < s->in_len) {
        f.headers = hdrs;
        n = stomp_parse(&s->parser, s->in + s->in_off, s->in_len - s->in_off, &f);
        if (n == STOMP_AGAIN)
            break;
        if (n < 0) {
            parse_fail(s, (int)n);
            break;
        }
        s->in_off += (size_t)n;
        progressed = 1;
        if (f.command != STOMP_CMD_HEARTBEAT)
            dispatch(s, &f);
    }
    s->flags &= (uint16_t)~F_IN_INPUT;

    if (s->state == ST_CLOSING || s->in_off == s->in_len) {
        input_free(s);             /* idle sessions hold no input buffer */
        s->frame_dl = 0;
    } else if (!can_dispatch(s)) {
        s->frame_dl = 0;           /* complete frames may wait; no timeout */
    } else {
        if (s->in_off >= SESSION_COMPACT_AT) {
            memmove(s->in, s->in + s->in_off, s->in_len - s->in_off);
            s->in_len -= s->in_off;
            s->in_off = 0;
        }
        /* A partial frame sits in the buffer: it has frame_timeout_ms from
         * the moment it started (or from the last frame that completed). */
        if (progressed || s->frame_dl == 0)
            s->frame_dl = now_ms(s) + cfg_size(cfg_of(s)->frame_timeout_ms);
    }
    arm_timer(s);
}

/* ------------------------------------------------------------------------ */
/* Authentication and attach                                                 */
/* ------------------------------------------------------------------------ */

static void
connected(cg_session *s)
{
    struct kv h[5];
    char hb[48], sid[24];
    struct cg_buf *b = NULL;
    int rc;

    s->state = ST_CONNECTED;
    s->connect_dl = 0;
    s->flags |= F_AUTH_LIMITS;
    apply_limits(s);
    stomp_parser_set_version(&s->parser, (enum stomp_version)s->version);

    snprintf(hb, sizeof hb, "%" PRIu32 ",%" PRIu32, s->hb_sx, s->hb_sy);
    snprintf(sid, sizeof sid, "%" PRIu64, s->id);
    h[0] = (struct kv){ "version", s->version == STOMP_V1_2 ? STOMP_STR("1.2")
                                   : s->version == STOMP_V1_1 ? STOMP_STR("1.1")
                                                              : STOMP_STR("1.0") };
    h[1] = (struct kv){ "heart-beat", { hb, strlen(hb) } };
    h[2] = (struct kv){ "server", STOMP_STR("chatgate/" CG_VERSION) };
    h[3] = (struct kv){ "session", { sid, strlen(sid) } };
    h[4] = (struct kv){ "user-name", { s->name, strlen(s->name) } };
    rc = render_raw(out_version(s), STOMP_CMD_CONNECTED, h, 5, NULL, &b);
    if (rc == 0)
        rc = cg_outq_push_raw(&s->outq, b);
    if (rc < 0) {
        session_fail(s, CG_E_NOMEM, "out of memory");
        return;
    }
    s->last_read = s->last_write = now_ms(s);
    cg_slog(s, CG_LOG_INFO, "connected: STOMP %d.%d, heart-beat out %" PRIu32
            " ms, in %" PRIu32 " ms", s->version / 10, s->version % 10,
            s->hb_out, s->hb_in);
    cg_session__after_enqueue(s);
    if (s->state == ST_CONNECTED)
        cg_session__resume_input(s, PAUSE_AUTH);
}

static void
on_attached(uint64_t sid, int err, void *data)
{
    cg_session *s = cg_session_lookup(data, sid);

    if (s == NULL || s->state != ST_ATTACHING)
        return;
    if (err == CG_E_CLOSED)
        begin_close(s, WS_CLOSE_GOING_AWAY, "server shutting down", CLOSE_CANCEL);
    else if (err < 0)
        session_fail(s, CG_E_STORE, "could not subscribe to the user's channel");
    else
        connected(s);
}

/* The loop time at which a token valid until expires_ms (wall clock, as
 * auth.c reads it from the token's record) runs out, or 0 when none is
 * known (never the case for a token auth.c accepted: it refuses an expired
 * one). Converted once: a later step of the wall clock does not move it. */
static uint64_t
expiry_deadline(const cg_session *s, int64_t expires_ms)
{
    int64_t left;
    uint64_t due;

    if (expires_ms <= 0)
        return 0;
    left = expires_ms - cg_now_ms();
    due = now_ms(s) + (left > 0 ? (uint64_t)left : 0);
    return due > 0 ? due : 1;
}

static void
on_auth(int err, const struct cg_principal *who, const char *token, void *data)
{
    struct auth_req *req = data;
    cg_session *s = cg_session_lookup(req->srv, req->sid);
    int rc;

    (void)token;
    cg_free(req);
    if (s == NULL || s->state != ST_AUTHENTICATING)
        return;
    token_forget(s);
    /* auth.c counts the failures it finds (auth_failures); the session
     * counts only those it finds itself (no token, malformed token). */
    if (err == CG_E_AUTH) {
        session_fail(s, CG_E_AUTH, "invalid or expired token");
        return;
    }
    if (err == 0 && (who == NULL || who->uid == 0)) {
        s->srv->metrics.auth_failures++;
        session_fail(s, CG_E_AUTH, "invalid token");
        return;
    }
    if (err == CG_E_CLOSED) {
        begin_close(s, WS_CLOSE_GOING_AWAY, "server shutting down", CLOSE_CANCEL);
        return;
    }
    if (err < 0) {
        session_fail(s, CG_E_STORE, "token check failed: store unavailable");
        return;
    }
    s->uid = who->uid;
    snprintf(s->name, sizeof s->name, "%s", who->name);
    snprintf(s->token_hash, sizeof s->token_hash, "%s", who->token_hash);
    s->expire_dl = expiry_deadline(s, who->expires_ms);
    s->state = ST_ATTACHING;
    s->flags |= F_ATTACHED;
    rc = s->srv->registry ? cg_registry_attach(s->srv->registry, s->id, s->uid,
                                                on_attached, s->srv)
                          : CG_E_CLOSED;
    if (rc < 0) {
        s->flags &= (uint16_t)~F_ATTACHED;
        session_fail(s, rc == CG_E_NOMEM ? rc : CG_E_STORE,
                     "could not subscribe to the user's channel");
    }
    /* else on_attached() may already have run */
}

/* ------------------------------------------------------------------------ */
/* Timer                                                                     */
/* ------------------------------------------------------------------------ */

static uint64_t
next_deadline(const cg_session *s)
{
    uint64_t due = 0;

#define CONSIDER(x)                                       \
    do {                                                  \
        uint64_t x_ = (x);                                \
        if (x_ != 0 && (due == 0 || x_ < due))            \
            due = x_;                                     \
    } while (0)

    if (s->flags & F_GONE)
        return 0;
    if (s->state == ST_CLOSING) {
        if (!(s->flags & F_CLOSE_SENT))
            CONSIDER(s->close_dl);
        return due;
    }
    if (s->flags & F_PARSE_PENDING)
        CONSIDER(now_ms(s) > 0 ? now_ms(s) : 1);
    CONSIDER(s->connect_dl);
    CONSIDER(s->expire_dl);
    if (!input_paused(s))
        CONSIDER(s->frame_dl);
    if (s->hb_in && !(s->flags & F_READ_STOPPED))
        CONSIDER(s->last_read + 2 * (uint64_t)s->hb_in);
    if (s->hb_out && !(s->flags & F_EOL_DUE))
        CONSIDER(s->last_write + s->hb_out);
    CONSIDER(cg_outq_soft_deadline(&s->outq));
#undef CONSIDER
    return due;
}

static void on_timer(uv_timer_t *h);

/* Keep the one timer armed for the nearest deadline. A deadline that
 * moved later does not re-arm: the timer fires early and re-arms. */
static void
arm_timer(cg_session *s)
{
    uint64_t due = next_deadline(s), now;

    if (due == 0) {
        if (s->timer_due != 0) {
            uv_timer_stop(&s->timer);
            s->timer_due = 0;
        }
        return;
    }
    if (s->timer_due != 0 && s->timer_due <= due)
        return;
    now = now_ms(s);
    uv_timer_start(&s->timer, on_timer, due > now ? due - now : 0, 0);
    s->timer_due = due;
}

static void
on_timer(uv_timer_t *h)
{
    cg_session *s = h->data;
    uint64_t now = uv_now(h->loop);
    const struct cg_config *cfg = cfg_of(s);
    enum cg_outq_limit lim;
    char msg[DETAIL_MAX];

    s->timer_due = 0;
    if (s->flags & F_GONE)
        return;
    cg_session_ref(s);
    if (s->state == ST_CLOSING) {
        if (!(s->flags & F_CLOSE_SENT) && s->close_dl && now >= s->close_dl) {
            cg_slog(s, CG_LOG_INFO, "close flush not done within %lld ms "
                    "(frame_timeout_ms): closing now", (long long)cfg->frame_timeout_ms);
            begin_close(s, s->close_code, s->close_why, CLOSE_NOW);
        }
    } else if (s->connect_dl && now >= s->connect_dl) {
        snprintf(msg, sizeof msg, s->state == ST_AWAIT_CONNECT
                 ? "no CONNECT within %lld ms (connect_timeout_ms)"
                 : "CONNECT not completed within %lld ms (connect_timeout_ms)",
                 (long long)cfg->connect_timeout_ms);
        session_fail(s, CG_E_LIMIT, msg);
    } else if (s->expire_dl && now >= s->expire_dl) {
        session_fail(s, CG_E_EXPIRED, "the login token of this session expired; "
                     "log in again and reconnect with the new token");
    } else if (s->hb_in && !(s->flags & F_READ_STOPPED) &&
               now - s->last_read >= 2 * (uint64_t)s->hb_in) {
        snprintf(msg, sizeof msg, "no data from the client within %" PRIu64
                 " ms (2 x heart-beat %" PRIu32 " ms)", 2 * (uint64_t)s->hb_in, s->hb_in);
        session_fail(s, CG_E_LIMIT, msg);
    } else if (s->frame_dl && !input_paused(s) && now >= s->frame_dl) {
        snprintf(msg, sizeof msg, "frame not completed within %lld ms (frame_timeout_ms)",
                 (long long)cfg->frame_timeout_ms);
        session_fail(s, CG_E_LIMIT, msg);
    } else if ((lim = cg_outq_check(&s->outq, now)) != CG_OUTQ_OK) {
        output_cap_close(s, lim);
    } else {
        if (s->hb_out && !(s->flags & F_EOL_DUE) && now - s->last_write >= s->hb_out) {
            s->flags |= F_EOL_DUE;
            want_write(s);
        }
        if (s->flags & F_PARSE_PENDING) {
            s->flags &= (uint16_t)~F_PARSE_PENDING;
            process_input(s);
        }
    }
    arm_timer(s);
    cg_session_unref(s);
}

static void
destroy(cg_session *s)
{
    cg_outq_cleanup(&s->outq);
    cg_subs_cleanup(&s->subs);
    tx_abort_all(s);
    input_free(s);
    token_forget(s);
    cg_free(s);
}

static void
on_timer_closed(uv_handle_t *h)
{
    cg_session *s = h->data;

    s->flags |= F_TIMER_CLOSED;
    if (s->refs == 0)
        destroy(s);
}

/* ------------------------------------------------------------------------ */
/* Public API                                                                */
/* ------------------------------------------------------------------------ */

cg_session *
cg_session_create(struct cg_server *srv, const struct cg_transport_ops *ops,
                  void *t, const struct cg_session_open *open)
{
    const struct cg_config *cfg = srv->cfg;
    cg_session *s;
    const char *peer;

    if (srv->registry == NULL || (s = cg_calloc(1, sizeof *s)) == NULL)
        return NULL;
    s->srv = srv;
    s->ops = ops;
    s->t = t;
    s->refs = 1;                   /* the transport's */
    if (open != NULL) {
        s->ws_version = (uint8_t)(open->ws_version >= 10 && open->ws_version <= 12
                                  ? open->ws_version : 0);
        if (open->token != NULL && open->token_len > 0) {
            /* An overlong handshake token is kept as is: it fails the
             * well-formedness check at CONNECT with a clear 401. */
            size_t n = open->token_len < SESSION_TOKEN_MAX ? open->token_len
                                                          : SESSION_TOKEN_MAX;

            if ((s->token = cg_malloc(n + 1)) == NULL)
                goto fail;
            memcpy(s->token, open->token, n);
            s->token[n] = '\0';
            s->token_len = n;
        }
    }
    peer = ops->peer ? ops->peer(t) : NULL;
    snprintf(s->peer, sizeof s->peer, "%s", peer ? peer : "-");
    if ((s->id = cg_registry_add(srv->registry, s)) == 0)
        goto fail;

    stomp_parser_init(&s->parser, NULL);
    apply_limits(s);
    cg_outq_init(&s->outq, cfg_size(cfg->out_max_bytes), cfg_size(cfg->out_soft_bytes),
                 (uint64_t)cfg_size(cfg->out_soft_seconds) * 1000);
    cg_subs_init(&s->subs);
    cg_chat_conn_init(&s->chat, cfg);
    uv_timer_init(srv->loop, &s->timer);   /* cannot fail */
    s->timer.data = s;
    s->last_read = s->last_write = now_ms(s);
    if (cfg->connect_timeout_ms > 0)
        s->connect_dl = now_ms(s) + (uint64_t)cfg->connect_timeout_ms;
    srv->metrics.connections[ops->kind]++;
    srv->metrics.connections_total[ops->kind]++;
    cg_slog(s, CG_LOG_INFO, "open (subprotocol %s, token %s)",
            s->ws_version == 12 ? "v12.stomp" : s->ws_version == 11 ? "v11.stomp"
            : s->ws_version == 10 ? "v10.stomp" : "none",
            s->token ? "from handshake" : "not yet");
    arm_timer(s);
    return s;

fail:
    token_forget(s);
    cg_free(s);
    return NULL;
}

int
cg_session_on_bytes(cg_session *s, const char *data, size_t len)
{
    int rc;

    if ((s->flags & F_GONE) || s->state == ST_CLOSING)
        return CG_E_CLOSED;
    s->last_read = now_ms(s);
    s->srv->metrics.bytes_in += len;
    if (len == 0)
        return 0;
    cg_session_ref(s);
    rc = input_append(s, data, len);
    if (rc == CG_E_LIMIT) {
        char msg[DETAIL_MAX];

        snprintf(msg, sizeof msg, "input over %zu bytes while reading is paused "
                 "(max_frame_bytes + %d)", cfg_size(cfg_of(s)->max_frame_bytes),
                 SESSION_PAUSED_SLACK);
        session_fail(s, CG_E_LIMIT, msg);
    } else if (rc < 0) {
        session_fail(s, rc, "out of memory");
    } else {
        process_input(s);
    }
    rc = s->state == ST_CLOSING ? CG_E_CLOSED : 0;
    cg_session_unref(s);
    return rc;
}

int
cg_session_pop_frame(cg_session *s, struct cg_wbuf *wb)
{
    struct cg_outq_render r;
    int n;

    if (s->flags & F_GONE)
        return 0;
    r = cg_session__render_ctx(s);
    n = cg_outq_pop(&s->outq, wb, &r);
    if (n < 0)
        return n;
    if (n == 0 && (s->flags & F_EOL_DUE) && s->state == ST_CONNECTED) {
        if (cg_wbuf_append(wb, "\n", 1) < 0)
            return CG_E_NOMEM;
        n = 1;
    } else if (n > 0) {
        s->srv->metrics.frames_out++;
    }
    if (n > 0) {
        s->flags &= (uint16_t)~F_EOL_DUE;    /* any byte written is a heart-beat */
        s->srv->metrics.bytes_out += (uint64_t)n;
        s->last_write = now_ms(s);
    } else {
        s->flags &= (uint16_t)~F_WRITE_ASKED;   /* ran dry: ask again next time */
    }
    /* The init stream continues once the socket has drained enough. */
    if (s->init.waiting)
        cg_session__init_drained(s);
    if (n == 0)
        arm_timer(s);
    return n;
}

size_t
cg_session_queued_bytes(const cg_session *s)
{
    return cg_outq_bytes(&s->outq);
}

int
cg_session_wants_close(const cg_session *s, int *code, const char **why)
{
    if (s->state != ST_CLOSING || (s->flags & F_GONE))
        return 0;
    if (!(s->flags & F_CLOSE_SENT) && !cg_outq_idle(&s->outq))
        return 0;
    if (code != NULL)
        *code = s->close_code;
    if (why != NULL)
        *why = s->close_why;
    return 1;
}

void
cg_session_close(cg_session *s, int code, const char *reason)
{
    begin_close(s, code, reason, CLOSE_CANCEL);
}

void
cg_session_drain(cg_session *s, int code, const char *reason)
{
    begin_close(s, code, reason, CLOSE_FLUSH);
}

void
cg_session_on_closed(cg_session *s)
{
    struct cg_registry *reg = s->srv->registry;

    if (s->flags & F_GONE)
        return;
    if (s->state != ST_CLOSING) {
        s->state = ST_CLOSING;
        s->close_code = WS_CLOSE_ABNORMAL;
        snprintf(s->close_why, sizeof s->close_why, "connection lost");
        tx_abort_all(s);
        cg_session__init_stop(s);
    }
    s->flags |= F_GONE;
    if (reg != NULL) {
        cg_registry_remove(reg, s->id);       /* lookups fail from now on */
        if (s->flags & F_ATTACHED)
            cg_registry_detach(reg, s->id, s->uid);
    }
    s->flags &= (uint16_t)~F_ATTACHED;
    s->srv->metrics.connections[s->ops->kind]--;
    cg_outq_cancel_tickets(&s->outq);
    (void)cg_outq_discard(&s->outq);          /* release shared bodies now */
    if (!(s->flags & F_IN_INPUT))
        input_free(s);
    token_forget(s);
    cg_slog(s, CG_LOG_INFO, "closed: %s (%d)", s->close_why, s->close_code);
    uv_timer_stop(&s->timer);
    s->timer_due = 0;
    uv_close((uv_handle_t *)&s->timer, on_timer_closed);
    cg_session_unref(s);                      /* the transport's reference */
}

uint64_t
cg_session_id(const cg_session *s)
{
    return s->id;
}

uint64_t
cg_session_uid(const cg_session *s)
{
    return s->state >= ST_CONNECTED ? s->uid : 0;
}

const char *
cg_session_token_hash(const cg_session *s)
{
    return s->token_hash;
}

cg_session *
cg_session_lookup(struct cg_server *srv, uint64_t id)
{
    return srv != NULL && srv->registry != NULL ? cg_registry_get(srv->registry, id)
                                                : NULL;
}

void
cg_session_ref(cg_session *s)
{
    s->refs++;
}

void
cg_session_unref(cg_session *s)
{
    assert(s->refs > 0);
    if (--s->refs == 0 && (s->flags & F_TIMER_CLOSED))
        destroy(s);
}

void
cg_session_resync(cg_session *s)
{
    if (s->state != ST_CONNECTED || cg_subs_by_topic(&s->subs, CG_TOPIC_RECIVE) == NULL)
        return;
    cg_slog(s, CG_LOG_INFO, "store is back: re-reading the pending inbox");
    if (cg_session__init_start(s) == CG_E_NOMEM)
        session_fail(s, CG_E_NOMEM, "out of memory");
}

const char *
cg_session_log_ctx(const cg_session *s, char *buf, size_t cap)
{
    const char *tr = s->ops && s->ops->name ? s->ops->name : "-";

    if (s->name[0])
        snprintf(buf, cap, "s#%" PRIu64 " u=%s %s %s", s->id, s->name, s->peer, tr);
    else
        snprintf(buf, cap, "s#%" PRIu64 " %s %s", s->id, s->peer, tr);
    return buf;
}

/* ------------------------------------------------------------------------ */
/* Test-only introspection (session_test.h)                                  */
/* ------------------------------------------------------------------------ */

uint32_t
cg_session__inflight(const cg_session *s)
{
    return s->inflight;
}

size_t
cg_session__input_capacity(const cg_session *s)
{
    return s->in_cap;
}

size_t
cg_session__input_unparsed(const cg_session *s)
{
    return s->in_len - s->in_off;
}

int
cg_session__read_paused(const cg_session *s)
{
    return (s->flags & F_READ_STOPPED) != 0;
}

size_t
cg_session__sizeof(void)
{
    return sizeof(struct cg_session);
}
