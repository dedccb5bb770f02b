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
 * transport only through cg_transport_ops.
 *
 * Where things live. This file is the STOMP side: the state machine, the
 * frame dispatch table and its handlers, subscriptions, RECEIPTs, ERROR
 * and closing, CONNECT and the token check, and the public API. The rest
 * of the session is split by what it does (session_internal.h has the
 * struct and every call between the files):
 *   session_chat.c   chat requests and their tickets, the init stream
 *   session_tx.c     BEGIN/COMMIT/ABORT and the frames a transaction holds
 *   session_input.c  bytes in, the input buffer, parser limits, pausing
 *   session_timer.c  the one timer and every deadline it enforces
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
 * required headers per version, handler}. cg_session__dispatch() collects the
 * well-known headers once (first wins), checks state and required headers
 * once, calls the handler, and queues the RECEIPT when the handler
 * succeeded: the shared checks live in one place (Redis processCommand),
 * never in the handlers. A handler returns 0 or an error code with a
 * one-line detail; cg_session__fail() is the only place that turns an error
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
 * Owns: the outbound queue, the subscription table, the token until the
 * token check answers, and the session's memory and timer handle (created
 * here, closed and freed here). The input buffer (session_input.c), open
 * transactions (session_tx.c) and the timer's deadlines (session_timer.c)
 * are owned by their files, but freed from here on close and destroy.
 *
 * Lifetime (STYLE.md 4): the transport holds the first reference; a close
 * is only requested (cg_session__begin_close) and the transport closes when
 * cg_session_wants_close() says so, or at once after ops->close(). After
 * cg_session_on_closed() the session leaves the registry, closes its timer
 * and drops the transport's reference; memory is released once the timer's
 * close_cb has run and no reference is left. */
#include "fmacros.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "chat/auth.h"
#include "chat/chat.h"
#include "core/buf.h"
#include "core/common.h"
#include "core/config.h"
#include "core/context.h"
#include "core/log.h"
#include "core/metrics.h"
#include "session/outq.h"
#include "session/registry.h"
#include "session/session.h"
#include "session/session_internal.h"
#include "session/session_test.h"
#include "session/subs.h"
#include "stomp/stomp.h"

#ifndef CG_VERSION
#define CG_VERSION "dev"
#endif

/* ------------------------------------------------------------------------ */
/* Limits and constants                                                      */
/* ------------------------------------------------------------------------ */

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

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */
/* ------------------------------------------------------------------------ */

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

/* ------------------------------------------------------------------------ */
/* Transport calls                                                           */
/* ------------------------------------------------------------------------ */

void
cg_session__want_write(cg_session *s)
{
    if (!ops_usable(s) || (s->flags & F_WRITE_ASKED))
        return;
    s->flags |= F_WRITE_ASKED;
    s->ops->want_write(s->t);
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

void
cg_session__output_cap_close(cg_session *s, enum cg_outq_limit lim)
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
    cg_session__begin_close(s, WS_CLOSE_TRY_LATER, "output queue over limit", CLOSE_NOW);
}

void
cg_session__after_enqueue(cg_session *s)
{
    enum cg_outq_limit lim;

    if (!ops_usable(s))
        return;
    lim = cg_outq_check(&s->outq, now_ms(s));
    if (lim != CG_OUTQ_OK) {
        cg_session__output_cap_close(s, lim);
        return;
    }
    /* Ready frames need a write; so does a closing session that has just
     * run out of things to wait for (the transport then sees
     * cg_session_wants_close()). */
    if (cg_outq_ready(&s->outq) ||
        (s->state == ST_CLOSING && cg_outq_idle(&s->outq)))
        cg_session__want_write(s);
    cg_session__arm_timer(s);
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
    return 0;
}

static int
on_send(cg_session *s, struct frame_ctx *c)
{
    int rc;

    if (c->h[H_TRANSACTION] != NULL)
        return cg_session__tx_add(s, c, TX_SEND, 0);
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
        return cg_session__tx_add(s, c, TX_ACK, id);
    rc = cg_session__chat_confirm(s, id);
    return rc < 0 ? fail(c, rc, "%s", cg_strerror(rc)) : 0;
}

/* NACK leaves the message pending: the next init redelivers it. */
static int
on_nack(cg_session *s, struct frame_ctx *c)
{
    char r[80];

    if (c->h[H_TRANSACTION] != NULL && cg_session__tx_find(s, c->h[H_TRANSACTION]) == NULL)
        return fail(c, CG_E_PROTO, "unknown transaction %s",
                    repr(c->h[H_TRANSACTION], r, sizeof r));
    return 0;
}

/* DISCONNECT: open transactions are aborted, an init stream stops (its
 * messages stay pending), reading stops; the RECEIPT is queued behind every
 * outstanding answer, and the transport closes (1000) once it has left. */
static int
on_disconnect(cg_session *s, struct frame_ctx *c)
{
    cg_session__tx_abort_all(s);
    cg_session__init_stop(s);
    if (c->h[H_RECEIPT] != NULL && queue_receipt(s, c->h[H_RECEIPT]) < 0)
        cg_slog(s, CG_LOG_WARN, "DISCONNECT receipt lost: out of memory");
    cg_session__begin_close(s, WS_CLOSE_NORMAL, "client disconnected", CLOSE_FLUSH);
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
    [STOMP_CMD_BEGIN]       = { SM(ST_CONNECTED), 0, REQ_ALL(HB(H_TRANSACTION)), cg_session__on_begin },
    [STOMP_CMD_COMMIT]      = { SM(ST_CONNECTED), 0, REQ_ALL(HB(H_TRANSACTION)), cg_session__on_commit },
    [STOMP_CMD_ABORT]       = { SM(ST_CONNECTED), 0, REQ_ALL(HB(H_TRANSACTION)), cg_session__on_abort },
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

void
cg_session__dispatch(cg_session *s, const struct stomp_frame *f)
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
    cg_session__fail(s, rc, c.detail);
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
void
cg_session__fail(cg_session *s, int err, const char *detail)
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
    cg_session__begin_close(s, code, msg, CLOSE_CANCEL);
}

void
cg_session__begin_close(cg_session *s, int code, const char *why, enum close_how how)
{
    if (s->flags & F_GONE)
        return;
    if (s->state != ST_CLOSING) {
        s->state = ST_CLOSING;
        s->close_code = code;
        snprintf(s->close_why, sizeof s->close_why, "%s", why ? why : "");
        cg_session__pause_input(s, PAUSE_CLOSING);
        cg_session__tx_abort_all(s);
        cg_session__init_stop(s);
        if (!(s->flags & F_IN_INPUT))
            cg_session__input_free(s);         /* else cg_session__process_input() frees it */
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
    cg_session__arm_timer(s);
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
    cg_session__apply_limits(s);
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
        cg_session__fail(s, CG_E_NOMEM, "out of memory");
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
        cg_session__begin_close(s, WS_CLOSE_GOING_AWAY, "server shutting down", CLOSE_CANCEL);
    else if (err < 0)
        cg_session__fail(s, CG_E_STORE, "could not subscribe to the user's channel");
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
        cg_session__fail(s, CG_E_AUTH, "invalid or expired token");
        return;
    }
    if (err == 0 && (who == NULL || who->uid == 0)) {
        s->srv->metrics.auth_failures++;
        cg_session__fail(s, CG_E_AUTH, "invalid token");
        return;
    }
    if (err == CG_E_CLOSED) {
        cg_session__begin_close(s, WS_CLOSE_GOING_AWAY, "server shutting down", CLOSE_CANCEL);
        return;
    }
    if (err < 0) {
        cg_session__fail(s, CG_E_STORE, "token check failed: store unavailable");
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
        cg_session__fail(s, rc == CG_E_NOMEM ? rc : CG_E_STORE,
                     "could not subscribe to the user's channel");
    }
    /* else on_attached() may already have run */
}

static void
destroy(cg_session *s)
{
    cg_outq_cleanup(&s->outq);
    cg_subs_cleanup(&s->subs);
    cg_session__tx_abort_all(s);
    cg_session__input_free(s);
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
    cg_session__apply_limits(s);
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
    cg_session__arm_timer(s);
    return s;

fail:
    token_forget(s);
    cg_free(s);
    return NULL;
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
        cg_session__arm_timer(s);
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
    cg_session__begin_close(s, code, reason, CLOSE_CANCEL);
}

void
cg_session_drain(cg_session *s, int code, const char *reason)
{
    cg_session__begin_close(s, code, reason, CLOSE_FLUSH);
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
        cg_session__tx_abort_all(s);
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
        cg_session__input_free(s);
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
        cg_session__fail(s, CG_E_NOMEM, "out of memory");
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
