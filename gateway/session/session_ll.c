/* session_ll.c - the long link: a session that speaks packets
 * (PROTOCOL.md section 9, liblonglink) instead of STOMP frames.
 *
 * What it does. A long-link transport creates its session with
 * CG_PROTO_LONGLINK; session_input.c then parses packets instead of frames
 * and hands each to cg_session__ll_dispatch() here, which turns it into
 * the same calls a STOMP frame makes: auth into the token check of
 * session_connect.c (cg_session__auth_start), send, confirm, init and sync
 * into session_chat.c's cg_session__chat_op(), the one place that says
 * what they mean for both protocols. Nothing is translated into STOMP text.
 *
 * Answers find the request they answer through the outbound queue: while a
 * packet is dispatched, s->req_tag and s->req_op name it, and every ticket
 * or answer queued meanwhile records them (outq.h); outq.c renders each
 * entry as a packet (its operation from the answer's topic, its sequence
 * the request's). A long-link session has implicit subscriptions, made
 * when it is authenticated, to every topic the long link has an operation
 * for: chat messages, send, confirm and init/sync answers, delivered
 * notices. It has none to /user/queue/status: every failure of a request
 * comes in that request's own answer.
 *
 *   AWAIT_CONNECT --auth--> AUTHENTICATING --> ATTACHING --> CONNECTED
 *        | heartbeat: answered          (session_connect.c)    | auth_answer
 *        | anything else: close 1008 "401 unauthorized"        v
 *        v                                             send, confirm, init,
 *     CLOSING <-- a server operation, a second auth,   sync, heartbeat
 *                 a framing error: close 1002
 *
 * Heart-beats: the client sends (heartbeat, or any packet) at least every
 * agreed interval, which auth_answer announces: heartbeat_ms, or longer if
 * the auth asked (up to heartbeat_max_ms); silence for twice that closes
 * the session (session_timer.c, as for STOMP's incoming heart-beats). The
 * server sends nothing unasked: a heartbeat is answered, that is all.
 *
 * Closing. No ERROR frame: cg_session__fail() keeps the reason whole
 * (s->close_detail) and the transport writes the close packet
 * (cg_session_close_packet) as the last thing on the connection.
 *
 * Owns no state of its own beyond the fields of struct cg_session it sets
 * (req_tag, req_op, auth_tag). */
#include "fmacros.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "chat/auth.h"
#include "chat/chat.h"
#include "core/buf.h"
#include "core/common.h"
#include "core/config.h"
#include "core/context.h"
#include "core/json_scan.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/utf8.h"
#include "longlink/longlink.h"
#include "session/outq.h"
#include "session/session.h"
#include "session/session_internal.h"
#include "session/subs.h"

/* ------------------------------------------------------------------------ */
/* Packets written whole                                                     */
/* ------------------------------------------------------------------------ */

/* s[0..) made safe inside a JSON string, into out[0..cap): not UTF-8 ->
 * U+FFFD, '"', '\' and control bytes -> '?'. Our reasons and usernames
 * need no more. Returns the length. */
static size_t
json_safe(const char *src, char *out, size_t cap)
{
    size_t i, n = cg_utf8_sanitize(out, cap, src, strlen(src));

    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)out[i];

        if (ch < 0x20 || ch == 0x7f || ch == '"' || ch == '\\')
            out[i] = '?';
    }
    return n;
}

/* Queue packet (op, seq, body[0..len)) as a whole entry. 0 or CG_E_NOMEM. */
static int
queue_packet(cg_session *s, uint32_t op, uint32_t seq, const char *body, size_t len)
{
    struct cg_buf *b;
    ssize_t n = ll_encode(NULL, 0, op, seq, body, len);

    if (n < 0 || (b = cg_buf_create(NULL, (size_t)n)) == NULL)
        return CG_E_NOMEM;
    (void)ll_encode(b->data, b->len, op, seq, body, len);
    return cg_outq_push_raw(&s->outq, b);
}

int
cg_session__ll_close_packet(const cg_session *s, int code, const char *why,
                            struct cg_wbuf *wb)
{
    char reason[DETAIL_MAX], body[DETAIL_MAX + 48];
    unsigned char hdr[LL_HEADER_LEN];
    int n;

    if (why == NULL)
        why = s->close_detail != NULL ? s->close_detail : s->close_why;
    else if (s->close_detail != NULL && strncmp(s->close_detail, why, strlen(why)) == 0)
        why = s->close_detail;     /* the transport was given the cut one */
    json_safe(why, reason, sizeof reason);
    n = snprintf(body, sizeof body, "{\"code\":%d,\"reason\":\"%s\"}", code, reason);
    if (n < 0 || (size_t)n >= sizeof body)
        n = snprintf(body, sizeof body, "{\"code\":%d,\"reason\":\"\"}", code);
    (void)ll_encode_header(hdr, LL_OP_CLOSE, 0, (size_t)n);
    if (cg_wbuf_append(wb, hdr, sizeof hdr) < 0 || cg_wbuf_append(wb, body, (size_t)n) < 0)
        return CG_E_NOMEM;
    return (int)sizeof hdr + n;
}

/* ------------------------------------------------------------------------ */
/* Authenticated                                                             */
/* ------------------------------------------------------------------------ */

/* The topics a long-link session gets without asking, each a subscription
 * the session code finds as it finds a STOMP one. The ids and destinations
 * only name them in logs. */
static const struct {
    const char        *id;
    enum cg_chat_topic topic;
} implicit_subs[] = {
    { "ll-push", CG_TOPIC_RECIVE },
    { "ll-send-status", CG_TOPIC_SEND_STATUS },
    { "ll-confirm-status", CG_TOPIC_RECIVE_STATUS },
    { "ll-init-status", CG_TOPIC_INIT_STATUS },
    { "ll-delivered", CG_TOPIC_DELIVERED },
};

void
cg_session__ll_connected(cg_session *s)
{
    char name[3 * (CG_NAME_MAX + 1)], body[256];
    uint32_t key;
    size_t i;
    int n;

    for (i = 0; i < sizeof implicit_subs / sizeof implicit_subs[0]; i++) {
        struct stomp_str id = { implicit_subs[i].id, strlen(implicit_subs[i].id) };

        if (cg_subs_add(&s->subs, id, id, implicit_subs[i].topic, CG_SUB_ACK_AUTO,
                        SIZE_MAX, &key) < 0) {
            cg_session__fail(s, CG_E_NOMEM, "out of memory");
            return;
        }
    }
    /* The client sends at least every hb_in (agreed at auth); silence for
     * twice that ends the session. The server sends nothing unasked. */
    s->hb_out = 0;
    json_safe(s->name, name, sizeof name);
    n = snprintf(body, sizeof body,
                 "{\"code\":200,\"uid\":%" PRIu64 ",\"username\":\"%s\",\"heartbeatMs\":%" PRIu32 "}",
                 s->uid, name, s->hb_in);
    if (n < 0 || (size_t)n >= sizeof body ||
        queue_packet(s, LL_OP_AUTH_ANSWER, s->auth_tag, body, (size_t)n) < 0) {
        cg_session__fail(s, CG_E_NOMEM, "out of memory");
        return;
    }
    s->last_read = s->last_write = now_ms(s);
    cg_slog(s, CG_LOG_INFO, "connected: long link, client heartbeat %" PRIu32 " ms",
            s->hb_in);
    cg_session__after_enqueue(s);
    if (s->state == ST_CONNECTED)
        cg_session__resume_input(s, PAUSE_AUTH);
}

/* ------------------------------------------------------------------------ */
/* Dispatch                                                                  */
/* ------------------------------------------------------------------------ */

/* auth {"token":T} or {"token":T,"heartbeatMs":H}: the token check
 * STOMP's CONNECT makes. The client's heartbeat is the interval it
 * promises to send at; the one agreed is the larger of it and
 * heartbeat_ms, held to heartbeat_max_ms (a phone may ask for minutes, as
 * with STOMP's heart-beat header). */
static int
on_auth_packet(cg_session *s, const struct ll_packet *pk, struct frame_ctx *c)
{
    const struct cg_config *cfg = cfg_of(s);
    struct cg_jscan_field f[] = {
        { "token", CG_JSCAN_STRING, 0, NULL, 0, 0 },
        { "heartbeatMs", CG_JSCAN_UINT, 0, NULL, 0, 0 },
    };
    uint64_t hb = cfg->heartbeat_ms > 0 ? (uint64_t)cfg->heartbeat_ms : 0;

    if (cg_jscan_object(pk->body, pk->body_len, f, 2) < 0 || !f[0].seen) {
        s->srv->metrics.auth_failures++;
        return fail(c, CG_E_AUTH, "auth body is not {\"token\":T}");
    }
    if (f[0].len == 0 || f[0].len > SESSION_TOKEN_MAX) {
        s->srv->metrics.auth_failures++;
        return fail(c, CG_E_AUTH, "invalid token");
    }
    cg_session__token_forget(s);
    if ((s->token = cg_strndup(f[0].str, f[0].len)) == NULL)
        return fail(c, CG_E_NOMEM, "out of memory");
    s->token_len = f[0].len;
    s->auth_tag = pk->seq;
    if (hb > 0 && f[1].seen && f[1].num > hb)
        hb = f[1].num;
    if (cfg->heartbeat_max_ms > 0 && hb > (uint64_t)cfg->heartbeat_max_ms)
        hb = (uint64_t)cfg->heartbeat_max_ms;
    /* Not enforced before the session is attached: reading is paused. */
    s->hb_in = (uint32_t)(hb < UINT32_MAX ? hb : UINT32_MAX);
    return cg_session__auth_start(s, c);
}

static enum cg_chat_op
chat_op_of(uint32_t op)
{
    switch (op) {
    case LL_OP_SEND:    return CG_CHAT_SEND;
    case LL_OP_CONFIRM: return CG_CHAT_RECIVE;
    case LL_OP_INIT:    return CG_CHAT_INIT;
    case LL_OP_SYNC:    return CG_CHAT_SYNC;
    default:            return CG_CHAT_UNKNOWN;
    }
}

void
cg_session__ll_dispatch(cg_session *s, const struct ll_packet *pk)
{
    const char *name = ll_op_name(pk->op);
    enum cg_chat_op op;
    struct frame_ctx c;
    int rc = 0;

    memset(&c, 0, sizeof c);
    s->srv->metrics.frames_in++;
    cg_slog(s, CG_LOG_DEBUG, "<< %s #%" PRIu32 " (%zu body bytes)", name, pk->seq,
            pk->body_len);
    if (ll_op_dir(pk->op) != LL_DIR_CLIENT) {
        rc = fail(&c, CG_E_PROTO, "%s is sent by the server only", name);
    } else if (pk->op == LL_OP_HEARTBEAT) {
        if ((rc = queue_packet(s, LL_OP_HEARTBEAT_ANSWER, pk->seq, NULL, 0)) < 0)
            fail(&c, rc, "out of memory");
        else
            cg_session__after_enqueue(s);
    } else if (s->state == ST_AWAIT_CONNECT) {
        if (pk->op == LL_OP_AUTH)
            rc = on_auth_packet(s, pk, &c);
        else
            rc = fail(&c, CG_E_AUTH, "%s before auth", name);
    } else if (pk->op == LL_OP_AUTH) {
        rc = fail(&c, CG_E_PROTO, "auth again on an authenticated connection");
    } else if ((op = chat_op_of(pk->op)) != CG_CHAT_UNKNOWN) {
        s->req_tag = pk->seq;
        s->req_op = (uint8_t)op;
        rc = cg_session__chat_op(s, op, (struct stomp_str){ pk->body, pk->body_len });
        s->req_tag = 0;
        s->req_op = 0;
        if (rc < 0)
            fail(&c, rc, rc == CG_E_NOMEM ? "out of memory" : "store unavailable");
    }
    if (rc < 0)
        cg_session__fail(s, rc, c.detail);
}
