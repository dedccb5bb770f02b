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
 * Where things live. This file is the session's spine: the public API
 * (create, pop, close, lifetime), the frames the session writes whole
 * (CONNECTED, RECEIPT, ERROR), queueing and the output cap, and errors and
 * closing. The rest of the session is split by what it does
 * (session_internal.h has the struct and every call between the files):
 *   session_connect.c   CONNECT: version and heart-beats, the token check,
 *                       the attach, CONNECTED
 *   session_dispatch.c  the frame dispatch table and the handlers of SEND,
 *                       SUBSCRIBE, UNSUBSCRIBE, ACK, NACK, DISCONNECT
 *   session_chat.c      chat requests and their tickets, the init stream
 *   session_tx.c        BEGIN/COMMIT/ABORT and the frames a transaction holds
 *   session_input.c     bytes in, the input buffer, parser limits, pausing
 *   session_timer.c     the one timer and every deadline it enforces
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
 * Errors. A frame handler (session_dispatch.c) returns 0 or an error code
 * with a one-line detail; cg_session__fail() is the only place that turns
 * an error into an ERROR frame followed by a close (STYLE.md 3).
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
 * Choices where STOMP or PROTOCOL.md leave room (session_connect.c and
 * session_dispatch.c list theirs):
 *   - Close codes (close_codes.h, the one table of them): 1000 after
 *     DISCONNECT, 1002 protocol errors, 1008 auth, forbidden, limits and
 *     timeouts, 1011 store or memory failure, 1013 output cap (come back
 *     later; nothing is lost), 1001/1008 as given by cg_session_close()
 *     (shutdown, logout).
 *   - A closing session gets frame_timeout_ms to flush its last frames,
 *     then ops->close() cuts it.
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
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "chat/chat.h"
#include "core/buf.h"
#include "core/common.h"
#include "core/config.h"
#include "core/context.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/utf8.h"
#include "session/outq.h"
#include "session/registry.h"
#include "session/session.h"
#include "session/session_internal.h"
#include "session/subs.h"
#include "stomp/stomp.h"

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */
/* ------------------------------------------------------------------------ */

void
cg_session__token_forget(cg_session *s)
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

int
cg_session__render_raw(enum stomp_version v, enum stomp_command cmd,
                       const struct kv *h, size_t nh, const struct stomp_str *body,
                       struct cg_buf **out)
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

/* Peer bytes to echo in a frame: v itself when it is UTF-8, else a copy in
 * *heap (the caller frees it) with U+FFFD for each byte that is not. Every
 * frame leaves in a text WebSocket message or a SockJS JSON string, and a
 * browser closes a text message that is not UTF-8 with 1007. Returns 0 or
 * CG_E_NOMEM. */
static int
utf8_view(const struct stomp_str *v, struct stomp_str *out, char **heap)
{
    size_t cap;

    *heap = NULL;
    *out = *v;
    if (cg_utf8_valid(v->ptr, v->len))
        return 0;
    if (v->len > (SIZE_MAX - 1) / 3 || (*heap = cg_malloc(cap = 3 * v->len + 1)) == NULL)
        return CG_E_NOMEM;
    out->ptr = *heap;
    out->len = cg_utf8_sanitize(*heap, cap, v->ptr, v->len);
    return 0;
}

int
cg_session__queue_receipt(cg_session *s, const struct stomp_str *id)
{
    struct kv h[] = { { "receipt-id", { NULL, 0 } } };
    struct cg_buf *b = NULL;
    char *heap;
    int rc;

    if (utf8_view(id, &h[0].value, &heap) < 0)
        return CG_E_NOMEM;
    rc = cg_session__render_raw(out_version(s), STOMP_CMD_RECEIPT, h, 1, NULL, &b);
    cg_free(heap);
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
    out->topic = sub->topic;
    return 0;
}

struct cg_outq_render
cg_session__render_ctx(cg_session *s)
{
    return (struct cg_outq_render){
        .version = out_version(s), .uid = s->uid, .resolve = resolve_sub, .ctx = s,
        .proto = s->proto == CG_PROTO_LONGLINK ? CG_OUTQ_LONGLINK : CG_OUTQ_STOMP,
        .tag = s->req_tag, .req = s->req_op,
    };
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
    cg_session__begin_close(s, CG_CLOSE_TRY_LATER, "output queue over limit", CLOSE_NOW);
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
    char clean[3 * DETAIL_MAX], *heap = NULL;
    struct stomp_str body;
    struct cg_buf *b = NULL;
    size_t nh = 0;
    int code, rc;

    if (s->state == ST_CLOSING || (s->flags & F_GONE))
        return;                    /* one ERROR at most */
    /* A detail may quote the peer: echo it as UTF-8 (utf8_view). */
    body.ptr = clean;
    body.len = cg_utf8_sanitize(clean, sizeof clean, detail, strlen(detail));
    detail = clean;
    switch (err) {
    case CG_E_AUTH:      msg = "401 unauthorized";          code = CG_CLOSE_POLICY;   break;
    case CG_E_EXPIRED:   msg = "401 token expired: log in again"; code = CG_CLOSE_POLICY; break;
    case CG_E_FORBIDDEN: msg = "403 forbidden destination"; code = CG_CLOSE_POLICY;   break;
    case CG_E_STORE:     msg = "503 service unavailable";   code = CG_CLOSE_INTERNAL; break;
    case CG_E_NOMEM:     msg = "500 internal error";        code = CG_CLOSE_INTERNAL; break;
    case CG_E_LIMIT:     msg = detail;                      code = CG_CLOSE_POLICY;   break;
    default:             msg = detail;                      code = CG_CLOSE_PROTOCOL; break;
    }
    s->srv->metrics.stomp_errors++;
    cg_slog(s, CG_LOG_INFO, "ERROR %s: %s", msg == detail ? cg_strerror(err) : msg, detail);
    if (s->proto == CG_PROTO_LONGLINK) {
        /* No ERROR frame: the close packet carries the reason, whole. */
        cg_free(s->close_detail);
        s->close_detail = cg_strndup(msg, strlen(msg));
        cg_session__begin_close(s, code, msg, CLOSE_CANCEL);
        return;
    }

    if (s->version == 0)
        h[nh++] = (struct kv){ "version", STOMP_STR("1.0,1.1,1.2") };
    h[nh++] = (struct kv){ "message", { msg, strlen(msg) } };
    h[nh++] = (struct kv){ "content-type", STOMP_STR("text/plain") };
    if (s->cur_receipt != NULL) {
        h[nh].name = "receipt-id";
        if (utf8_view(s->cur_receipt, &h[nh].value, &heap) == 0)
            nh++;                  /* out of memory: the ERROR goes without it */
    }
    rc = cg_session__render_raw(out_version(s), STOMP_CMD_ERROR, h, nh, &body, &b);
    cg_free(heap);
    if (rc == CG_E_INVAL) {
        /* Our own words always fit; a detail or receipt quoting the peer
         * may not (a CR in 1.1, say): send the bare error. */
        nh = s->version == 0;
        h[nh++] = (struct kv){ "message", STOMP_STR("protocol error") };
        (void)cg_session__render_raw(out_version(s), STOMP_CMD_ERROR, h, nh, NULL, &b);
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
/* Destruction                                                               */
/* ------------------------------------------------------------------------ */

static void
destroy(cg_session *s)
{
    cg_session__sync_drop(s);
    cg_outq_cleanup(&s->outq);
    cg_subs_cleanup(&s->subs);
    cg_session__tx_abort_all(s);
    cg_session__input_free(s);
    cg_session__token_forget(s);
    cg_free(s->close_detail);
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

int
cg_session_admit(struct cg_server *srv, const char *addr, const char **why)
{
    const struct cg_config *cfg = srv->cfg;

    if (cfg->memory_budget_bytes > 0 && cg_heap_bytes() > cfg->memory_budget_bytes) {
        *why = "server busy: memory budget exceeded (memory_budget_bytes)";
        return 503;
    }
    if (srv->registry != NULL &&
        cg_registry_addr_count(srv->registry, addr) >= cfg_size(cfg->max_addr_connections)) {
        *why = "too many connections from this address (max_addr_connections)";
        return 429;
    }
    return 0;
}

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
    if (cg_registry_addr_take(srv->registry, s->peer) < 0) {
        cg_registry_remove(srv->registry, s->id);
        goto fail;
    }

    s->proto = (uint8_t)(open != NULL ? open->proto : CG_PROTO_STOMP);
    stomp_parser_init(&s->parser, NULL);
    ll_parser_init(&s->llp, NULL);
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
    if (s->proto == CG_PROTO_LONGLINK)
        cg_slog(s, CG_LOG_INFO, "open (long link)");
    else
        cg_slog(s, CG_LOG_INFO, "open (subprotocol %s, token %s)",
                s->ws_version == 12 ? "v12.stomp" : s->ws_version == 11 ? "v11.stomp"
                : s->ws_version == 10 ? "v10.stomp" : "none",
                s->token ? "from handshake" : "not yet");
    cg_session__arm_timer(s);
    return s;

fail:
    cg_session__token_forget(s);
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

int
cg_session_close_packet(const cg_session *s, int code, const char *why,
                        struct cg_wbuf *wb)
{
    return cg_session__ll_close_packet(s, code, why, wb);
}

void
cg_session_close(cg_session *s, enum cg_close_code code, const char *reason)
{
    cg_session__begin_close(s, code, reason, CLOSE_CANCEL);
}

void
cg_session_drain(cg_session *s, enum cg_close_code code, const char *reason)
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
        s->close_code = CG_CLOSE_ABNORMAL;
        snprintf(s->close_why, sizeof s->close_why, "connection lost");
        cg_session__tx_abort_all(s);
        cg_session__init_stop(s);
    }
    s->flags |= F_GONE;
    if (reg != NULL) {
        cg_registry_remove(reg, s->id);       /* lookups fail from now on */
        cg_registry_addr_give(reg, s->peer);
        if (s->flags & F_ATTACHED)
            cg_registry_detach(reg, s->id, s->uid);
    }
    s->flags &= (uint16_t)~F_ATTACHED;
    s->srv->metrics.connections[s->ops->kind]--;
    cg_outq_cancel_tickets(&s->outq);
    (void)cg_outq_discard(&s->outq);          /* release shared bodies now */
    if (!(s->flags & F_IN_INPUT))
        cg_session__input_free(s);
    cg_session__token_forget(s);
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
    cg_slog(s, CG_LOG_INFO, "re-reading the pending inbox (the store is back, or an operator asked)");
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
