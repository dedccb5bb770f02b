/* outq.c - the bounded outbound frame queue of one session.
 *
 * What it does. A session answers requests, forwards chat messages and sends
 * heart-beats; everything it wants to send waits here, in order, until the
 * transport may write and pulls frames one at a time with cg_outq_pop().
 *
 * Sharing (STYLE.md 4.7). A chat message that fans out to many sessions is
 * one reference-counted cg_buf body; each session's entry holds a reference
 * and ~40 bytes of its own (next, body, id, subscription key, size, kind,
 * flags). The MESSAGE headers (destination, subscription, message-id, ...)
 * are rendered at pop time with the stomp writer, measured first so the
 * frame goes straight into the transport's write buffer with one reserve.
 * Frames that belong to this session only (CONNECTED, RECEIPT, ERROR) are
 * rendered when queued and kept whole (RAW). Heart-beat EOLs are not queued:
 * they may go between any two frames, so the session emits them itself when
 * the queue has nothing ready (even behind a pending ticket).
 *
 * Ordering with tickets. A request that waits for Redis appends a TICKET in
 * request order; its answer, whenever it arrives, turns the ticket into a
 * MESSAGE (or several: cg_outq_push_message with pos inserts after it).
 * cg_outq_pop() stops at the first ticket still pending, so a RECEIPT queued
 * behind it leaves only after the answer, and answers leave in request
 * order even when Redis replies out of order (it does not, but chat.c may
 * answer some requests synchronously).
 *
 * Entry life cycle:
 *
 *     push_raw / push_message ---------------------------------> READY
 *     push_ticket --> TICKET --fill------------------------------> READY
 *                       |  \--fill (no subscription) / drop ----> DROPPED
 *                       \--cancel_tickets--> TICKET+CANCELLED
 *                                 | popped past: moved to limbo (LIMBO)
 *                                 \--fill--> DROPPED (stays where it is)
 *     READY   --pop--> rendered into the write buffer, freed
 *     DROPPED --pop--> freed
 *     limbo entries are freed by cg_outq_cleanup() only
 *
 * Why tickets are never freed while pending: the asynchronous answer holds
 * the ticket's address next to the session id (STYLE.md 4.3). The answer
 * first looks the session up by id; if the session is gone, it never touches
 * the ticket. If the session is alive, the ticket is still allocated,
 * because a pending or cancelled ticket is freed only by cg_outq_cleanup(),
 * which the session calls after it has left the registry.
 *
 * Limits (STYLE.md 4.8, Redis client-output-buffer-limit). bytes counts the
 * rendered size of every ready entry. Over max_bytes is acted on at once;
 * over soft_bytes must last soft_ms. The queue only reports; the session
 * logs, counts and closes (its messages stay pending in Redis).
 *
 * Invariants: bytes == sum of size over ready entries on the queue;
 * pending == tickets on the queue that are neither filled nor cancelled;
 * limbo holds only cancelled tickets (filled or not). */
#include "fmacros.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "chat/chat.h"
#include "core/common.h"
#include "longlink/longlink.h"
#include "session/outq.h"
#include "session/outq_internal.h"

#define CT_JSON "application/json;charset=UTF-8"

/* ------------------------------------------------------------------------ */
/* Entries                                                                   */
/* ------------------------------------------------------------------------ */

void
cg_outq_init(struct cg_outq *q, size_t max_bytes, size_t soft_bytes,
             uint64_t soft_ms)
{
    memset(q, 0, sizeof *q);
    q->max_bytes = max_bytes;
    q->soft_bytes = soft_bytes;
    q->soft_ms = soft_ms;
}

static void
entry_free(struct cg_outq_entry *e)
{
    cg_buf_unref(e->body);
    cg_free(e);
}

static void
free_list(struct cg_outq_entry *e)
{
    while (e != NULL) {
        struct cg_outq_entry *next = e->next;

        entry_free(e);
        e = next;
    }
}

void
cg_outq_cleanup(struct cg_outq *q)
{
    free_list(q->head);
    free_list(q->limbo);
    q->head = q->tail = q->limbo = NULL;
    q->bytes = q->entries = q->chat = q->pending = 0;
    q->soft_since = 0;
}

static struct cg_outq_entry *
entry_new(enum cg_outq_kind kind)
{
    struct cg_outq_entry *e = cg_calloc(1, sizeof *e);

    if (e != NULL)
        e->kind = (uint8_t)kind;
    return e;
}

/* Link e after pos (NULL: at the tail). */
static void
link_after(struct cg_outq *q, struct cg_outq_entry *pos, struct cg_outq_entry *e)
{
    if (pos == NULL)
        pos = q->tail;
    if (pos == NULL) {
        e->next = NULL;
        q->head = q->tail = e;
    } else {
        e->next = pos->next;
        pos->next = e;
        if (q->tail == pos)
            q->tail = e;
    }
    q->entries++;
}

static struct cg_outq_entry *
unlink_head(struct cg_outq *q)
{
    struct cg_outq_entry *e = q->head;

    q->head = e->next;
    if (q->head == NULL)
        q->tail = NULL;
    e->next = NULL;
    q->entries--;
    return e;
}

/* The ready entry leaves the queue: uncount it. */
static void
account_gone(struct cg_outq *q, const struct cg_outq_entry *e)
{
    q->bytes -= e->size;
    if (e->kind == CG_OUTQ_MESSAGE && (e->flags & CG_OUTQ_F_CHAT))
        q->chat--;
}

int
cg_outq_push_raw(struct cg_outq *q, struct cg_buf *frame)
{
    struct cg_outq_entry *e = entry_new(CG_OUTQ_RAW);

    if (e == NULL) {
        cg_buf_unref(frame);
        return CG_E_NOMEM;
    }
    e->body = frame;
    e->size = frame->len;
    link_after(q, NULL, e);
    cg_outq__account_ready(q, e);
    return 0;
}

struct cg_outq_entry *
cg_outq_push_ticket(struct cg_outq *q, uint32_t tag, uint8_t req)
{
    struct cg_outq_entry *e = entry_new(CG_OUTQ_TICKET);

    if (e == NULL)
        return NULL;
    e->tag = tag;
    e->req = req;
    link_after(q, NULL, e);
    q->pending++;
    return e;
}

/* ------------------------------------------------------------------------ */
/* MESSAGE rendering                                                         */
/* ------------------------------------------------------------------------ */

/* message-id: "<uid>-<id>" for chat messages, so an ACK names the message
 * it confirms without any per-session table; "st-<seq>" for status answers,
 * which no ACK can confirm. */
static size_t
format_message_id(const struct cg_outq_entry *e, uint64_t uid, char *buf,
                  size_t cap)
{
    int n;

    if (e->flags & CG_OUTQ_F_CHAT)
        n = snprintf(buf, cap, "%" PRIu64 "-%" PRIu64, uid, e->id);
    else
        n = snprintf(buf, cap, "st-%" PRIu64, e->id);
    return n > 0 ? (size_t)n : 0;
}

/* The long-link operation of an entry for topic: chat messages are pushes
 * (push_again when redelivered), answers the answer of their request. 0
 * for a topic the long link has no operation for (/user/queue/status: a
 * long-link client gets every failure in its request's own answer). */
static uint32_t
packet_op(const struct cg_outq_entry *e, int topic)
{
    switch (topic) {
    case CG_TOPIC_RECIVE:
        return e->flags & CG_OUTQ_F_REDELIVERED ? LL_OP_PUSH_AGAIN : LL_OP_PUSH;
    case CG_TOPIC_SEND_STATUS:   return LL_OP_SEND_STATUS;
    case CG_TOPIC_RECIVE_STATUS: return LL_OP_CONFIRM_STATUS;
    case CG_TOPIC_INIT_STATUS:
        return e->req == CG_CHAT_SYNC ? LL_OP_SYNC_END : LL_OP_INIT_END;
    case CG_TOPIC_DELIVERED:     return LL_OP_DELIVERED;
    default:                     return 0;
    }
}

static int
render_packet(const struct cg_outq_entry *e, const struct cg_outq_target *tg,
              char *buf, size_t cap, size_t *len)
{
    uint32_t op = packet_op(e, tg->topic);
    uint32_t seq = op == LL_OP_PUSH || op == LL_OP_PUSH_AGAIN ||
                   op == LL_OP_DELIVERED ? 0 : e->tag;
    ssize_t n;

    if (op == 0)
        return CG_E_INVAL;
    n = ll_encode(buf, cap, op, seq, e->body->data, e->body->len);
    if (n < 0)
        return CG_E_INVAL;
    *len = (size_t)n;
    return 0;
}

int
cg_outq_render_message(const struct cg_outq_entry *e,
                       const struct cg_outq_target *tg,
                       const struct cg_outq_render *r, char *buf, size_t cap,
                       size_t *len)
{
    struct stomp_writer w;
    char mid[48];
    struct stomp_str mids;

    if (r->proto == CG_OUTQ_LONGLINK)
        return render_packet(e, tg, buf, cap, len);
    mids.ptr = mid;
    mids.len = format_message_id(e, r->uid, mid, sizeof mid);

    stomp_writer_init(&w, buf, cap, r->version);
    stomp_writer_command(&w, STOMP_CMD_MESSAGE);
    stomp_writer_header(&w, STOMP_STR("destination"), tg->dest);
    stomp_writer_header(&w, STOMP_STR("subscription"), tg->sub_id);
    stomp_writer_header(&w, STOMP_STR("message-id"), mids);
    stomp_writer_header(&w, STOMP_STR("content-type"), STOMP_STR(CT_JSON));
    if (e->flags & CG_OUTQ_F_REDELIVERED)
        stomp_writer_header(&w, STOMP_STR("redelivered"), STOMP_STR("true"));
    /* STOMP 1.2: a MESSAGE on a client-ack subscription names what the
     * ACK must quote. We reuse the message-id, which is unique already. */
    if (r->version >= STOMP_V1_2 && tg->client_ack)
        stomp_writer_header(&w, STOMP_STR("ack"), mids);
    stomp_writer_body(&w, (struct stomp_str){ e->body->data, e->body->len });
    return stomp_writer_finish(&w, len);
}

/* Measure e for target key; 0 or CG_E_NOTFOUND. */
static int
measure(struct cg_outq_entry *e, const struct cg_outq_render *r)
{
    struct cg_outq_target tg;
    size_t n;

    if (r->resolve(r->ctx, e->sub_key, &tg) < 0)
        return CG_E_NOTFOUND;
    if (cg_outq_render_message(e, &tg, r, NULL, 0, &n) != STOMP_OK ||
        n > UINT32_MAX)
        return CG_E_NOTFOUND;      /* cannot be carried: treat as undeliverable */
    e->size = (uint32_t)n;
    return 0;
}

int
cg_outq_push_message(struct cg_outq *q, struct cg_outq_entry **pos,
                     uint32_t sub_key, struct cg_buf *body, uint64_t id,
                     unsigned flags, const struct cg_outq_render *r)
{
    struct cg_outq_entry *e = entry_new(CG_OUTQ_MESSAGE);
    int rc;

    if (e == NULL)
        return CG_E_NOMEM;
    e->sub_key = sub_key;
    e->id = id;
    e->flags = (uint8_t)(flags & (CG_OUTQ_F_CHAT | CG_OUTQ_F_REDELIVERED));
    e->tag = r->tag;
    e->req = r->req;
    e->body = body;                /* borrowed until measured */
    if ((rc = measure(e, r)) < 0) {
        cg_free(e);
        return rc;
    }
    cg_buf_ref(body);
    link_after(q, pos != NULL ? *pos : NULL, e);
    cg_outq__account_ready(q, e);
    if (pos != NULL)
        *pos = e;
    return 0;
}

int
cg_outq_fill(struct cg_outq *q, struct cg_outq_entry *t, uint32_t sub_key,
             struct cg_buf *body, uint64_t id, unsigned flags,
             const struct cg_outq_render *r)
{
    cg_outq__ticket_done(q, t);
    if (t->flags & CG_OUTQ_F_CANCELLED) {
        t->kind = CG_OUTQ_DROPPED;
        return CG_E_NOTFOUND;
    }
    t->kind = CG_OUTQ_MESSAGE;
    t->sub_key = sub_key;
    t->id = id;
    t->flags = (uint8_t)(flags & (CG_OUTQ_F_CHAT | CG_OUTQ_F_REDELIVERED));
    t->body = body;
    if (measure(t, r) < 0) {
        t->body = NULL;
        t->kind = CG_OUTQ_DROPPED;
        t->size = 0;
        return CG_E_NOTFOUND;
    }
    cg_buf_ref(body);
    cg_outq__account_ready(q, t);
    return 0;
}

void
cg_outq_drop(struct cg_outq *q, struct cg_outq_entry *t)
{
    cg_outq__ticket_done(q, t);
    t->kind = CG_OUTQ_DROPPED;
}

void
cg_outq_cancel_tickets(struct cg_outq *q)
{
    struct cg_outq_entry *e;

    for (e = q->head; e != NULL && q->pending > 0; e = e->next) {
        if (e->kind == CG_OUTQ_TICKET && !(e->flags & CG_OUTQ_F_CANCELLED)) {
            e->flags |= CG_OUTQ_F_CANCELLED;
            q->pending--;
        }
    }
}

/* A ticket that may still be answered: it must outlive the queue walk. */
static int
is_held(const struct cg_outq_entry *e)
{
    return e->kind == CG_OUTQ_TICKET;
}

static void
to_limbo(struct cg_outq *q, struct cg_outq_entry *e)
{
    e->flags |= CG_OUTQ_F_LIMBO;
    e->next = q->limbo;
    q->limbo = e;
}

size_t
cg_outq_discard(struct cg_outq *q)
{
    struct cg_outq_entry *e = q->head, *keep = NULL, *keep_tail = NULL;
    size_t chat = q->chat, kept = 0;

    while (e != NULL) {
        struct cg_outq_entry *next = e->next;

        if (is_held(e)) {
            e->next = NULL;
            if (keep_tail)
                keep_tail->next = e;
            else
                keep = e;
            keep_tail = e;
            kept++;
        } else {
            entry_free(e);
        }
        e = next;
    }
    q->head = keep;
    q->tail = keep_tail;
    q->entries = kept;
    q->bytes = 0;
    q->chat = 0;
    q->soft_since = 0;
    return chat;
}

/* ------------------------------------------------------------------------ */
/* Popping                                                                   */
/* ------------------------------------------------------------------------ */

int
cg_outq_pop(struct cg_outq *q, struct cg_wbuf *wb, const struct cg_outq_render *r)
{
    struct cg_outq_entry *e;
    struct cg_outq_target tg;
    size_t n;

    while ((e = q->head) != NULL) {
        switch ((enum cg_outq_kind)e->kind) {
        case CG_OUTQ_TICKET:
            if (!(e->flags & CG_OUTQ_F_CANCELLED))
                return 0;                       /* answer still on its way */
            to_limbo(q, unlink_head(q));
            continue;
        case CG_OUTQ_DROPPED:
            entry_free(unlink_head(q));
            continue;
        case CG_OUTQ_RAW:
            if (cg_wbuf_append(wb, e->body->data, e->body->len) < 0)
                return CG_E_NOMEM;
            n = e->body->len;
            break;
        case CG_OUTQ_MESSAGE:
            if (r->resolve(r->ctx, e->sub_key, &tg) < 0 ||
                cg_outq_render_message(e, &tg, r, NULL, 0, &n) != STOMP_OK) {
                /* Unsubscribed since it was queued: STOMP says no more
                 * MESSAGEs for it. A chat message stays pending in Redis. */
                account_gone(q, e);
                entry_free(unlink_head(q));
                continue;
            }
            if (cg_wbuf_reserve(wb, n) < 0)
                return CG_E_NOMEM;
            /* Measured just above with the same inputs: cannot fail. */
            (void)cg_outq_render_message(e, &tg, r, cg_wbuf_data(wb) + wb->len,
                                         n, &n);
            wb->len += n;
            break;
        default:
            entry_free(unlink_head(q));         /* not reached */
            continue;
        }
        account_gone(q, e);
        entry_free(unlink_head(q));
        return n > INT32_MAX ? INT32_MAX : (int)n;
    }
    return 0;
}

int
cg_outq_idle(const struct cg_outq *q)
{
    return q->bytes == 0 && q->pending == 0;
}

int
cg_outq_ready(const struct cg_outq *q)
{
    const struct cg_outq_entry *e;

    for (e = q->head; e != NULL; e = e->next) {
        if (e->kind == CG_OUTQ_DROPPED)
            continue;
        if (e->kind == CG_OUTQ_TICKET) {
            if (e->flags & CG_OUTQ_F_CANCELLED)
                continue;
            return 0;
        }
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Limits                                                                    */
/* ------------------------------------------------------------------------ */

enum cg_outq_limit
cg_outq_check(struct cg_outq *q, uint64_t now)
{
    if (q->max_bytes > 0 && q->bytes > q->max_bytes)
        return CG_OUTQ_OVER_HARD;
    if (q->soft_bytes == 0 || q->bytes <= q->soft_bytes) {
        q->soft_since = 0;
        return CG_OUTQ_OK;
    }
    if (q->soft_since == 0)
        q->soft_since = now > 0 ? now : 1;    /* 0 means "below" */
    if (now >= q->soft_since && now - q->soft_since >= q->soft_ms)
        return CG_OUTQ_OVER_SOFT;
    return CG_OUTQ_OK;
}

uint64_t
cg_outq_soft_deadline(const struct cg_outq *q)
{
    return q->soft_since ? q->soft_since + q->soft_ms : 0;
}
