/* session_dispatch.c - the frame dispatch table, and the handlers of the
 * frames a connected session sends: SEND, SUBSCRIBE, UNSUBSCRIBE, ACK,
 * NACK and DISCONNECT.
 *
 * What it does. session_input.c parses the peer's bytes and hands each
 * frame to cg_session__dispatch(). rules[] maps each command to {states
 * that accept it, required headers per version, handler}.
 * cg_session__dispatch() collects the well-known headers once (first
 * wins), checks state and required headers once, calls the handler, and
 * queues the RECEIPT when the handler succeeded: the shared checks live in
 * one place (Redis processCommand), never in the handlers. A handler
 * returns 0 or an error code with a one-line detail (fail());
 * cg_session__fail() (session.c) is the only place that turns an error
 * into an ERROR frame followed by a close (STYLE.md 3).
 *
 * The handlers of CONNECT and STOMP are in session_connect.c, those of
 * BEGIN, COMMIT and ABORT in session_tx.c. SEND goes to session_chat.c
 * (or into its transaction), SUBSCRIBE and UNSUBSCRIBE to the subscription
 * table (subs.c).
 *
 * Choices where STOMP or PROTOCOL.md leave room:
 *   - message-id (and the 1.2 ack header) of a chat message is
 *     "<uid>-<id>"; ACK of it on a client/client-individual recive
 *     subscription confirms that one message (client mode is not
 *     cumulative); NACK leaves it pending; ACK of anything else is ignored.
 *   - UNSUBSCRIBE of an unknown id is ignored in every version.
 *
 * Owns nothing: a frame and its headers are views into the input buffer
 * (session_input.c), valid during the call; what a handler keeps, its
 * owner copies (subs.c, session_tx.c). */
#include "fmacros.h"

#include <inttypes.h>
#include <string.h>

#include "chat/chat.h"
#include "core/common.h"
#include "core/config.h"
#include "core/context.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/utf8.h"
#include "session/session.h"
#include "session/session_internal.h"
#include "session/subs.h"
#include "stomp/stomp.h"

/* ------------------------------------------------------------------------ */
/* Headers and states                                                        */
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

static int
str_eq(struct stomp_str a, struct stomp_str b)
{
    return a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0;
}

/* ------------------------------------------------------------------------ */
/* Frame handlers                                                            */
/* ------------------------------------------------------------------------ */

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

    if (c->h[H_ACK] != NULL && cg_subs_parse_ack(*c->h[H_ACK], &ack) < 0)
        return fail(c, CG_E_PROTO, "invalid ack mode %s (auto, client or client-individual)",
                    repr(c->h[H_ACK], r, sizeof r));
    /* The id comes back in every MESSAGE of the subscription, exactly as
     * sent (the writer escapes it for the version, and the parser let no
     * byte in that the version cannot escape). Bytes that are not UTF-8
     * would make those frames invalid text for a WebSocket client (1007),
     * and replacing them would break the client's match by id: refused.
     * Only a binary WebSocket message can carry them (lws checks text
     * ones, SockJS decodes to UTF-8). */
    if (!cg_utf8_valid(id->ptr, id->len))
        return fail(c, CG_E_PROTO, "subscription id is not valid UTF-8");
    if (cg_subs_classify(*dest, s->uid, s->name, &topic) < 0)
        return fail(c, CG_E_FORBIDDEN, "destination %s is not yours",
                    repr(dest, r, sizeof r));
    rc = cg_subs_add(&s->subs, *id, *dest, topic, ack,
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
    if (cg_subs_remove(&s->subs, *id) < 0)
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
        const struct cg_sub *sub = cg_subs_by_id(&s->subs, *subv);

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
    if (c->h[H_RECEIPT] != NULL && cg_session__queue_receipt(s, c->h[H_RECEIPT]) < 0)
        cg_slog(s, CG_LOG_WARN, "DISCONNECT receipt lost: out of memory");
    cg_session__begin_close(s, CG_CLOSE_NORMAL, "client disconnected", CLOSE_FLUSH);
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
    [STOMP_CMD_CONNECT]     = { SM(ST_AWAIT_CONNECT), R_NO_RECEIPT, REQ_ALL(0), cg_session__on_connect },
    [STOMP_CMD_STOMP]       = { SM(ST_AWAIT_CONNECT), R_NO_RECEIPT, REQ_ALL(0), cg_session__on_connect },
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
        s->state != ST_CLOSING && (rc = cg_session__queue_receipt(s, c.h[H_RECEIPT])) < 0) {
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
