/* outq.h - the bounded outbound frame queue of one session (private to
 * the session part; see the design comment in outq.c).
 *
 * Entries are kept in request order. A MESSAGE entry holds a reference to a
 * shared cg_buf body plus a few bytes of per-session information; its
 * headers are rendered only when the transport pulls it (cg_outq_pop). A
 * TICKET is a placeholder for an answer that is still on its way from Redis:
 * nothing behind it leaves until it is filled (or cancelled), which is how
 * answers and RECEIPTs go out in request order. */
#ifndef CG_OUTQ_H
#define CG_OUTQ_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "stomp/stomp.h"

enum cg_outq_kind {
    CG_OUTQ_RAW = 0,     /* body is a complete pre-rendered frame */
    CG_OUTQ_MESSAGE,     /* MESSAGE: headers rendered at pop time */
    CG_OUTQ_TICKET,      /* placeholder awaiting its answer */
    CG_OUTQ_DROPPED,     /* answered but nothing to send; freed when reached */
};

/* Entry flags. */
#define CG_OUTQ_F_CHAT        0x01u  /* chat message: message-id <uid>-<id> */
#define CG_OUTQ_F_REDELIVERED 0x02u  /* adds redelivered:true */
#define CG_OUTQ_F_CANCELLED   0x04u  /* ticket whose answer is no longer wanted */
#define CG_OUTQ_F_LIMBO       0x08u  /* cancelled ticket moved off the queue */

struct cg_outq_entry {
    struct cg_outq_entry *next;
    struct cg_buf        *body;     /* RAW: the frame; MESSAGE: shared body */
    uint64_t              id;       /* MESSAGE: chat id (F_CHAT) or status seq */
    uint32_t              sub_key;  /* MESSAGE: the subscription it goes to */
    uint32_t              size;     /* bytes counted in cg_outq.bytes */
    uint32_t              tag;      /* the client's tag of the request this
                                       answers (the long link's sequence);
                                       0 for none */
    uint8_t               kind;     /* enum cg_outq_kind */
    uint8_t               flags;    /* CG_OUTQ_F_* */
    uint8_t               req;      /* enum cg_chat_op of that request;
                                       0 for none */
};

/* Where a MESSAGE goes, looked up by subscription key each time it is
 * measured or rendered (the subscription may be gone by then). */
struct cg_outq_target {
    struct stomp_str dest;       /* the subscription's destination */
    struct stomp_str sub_id;     /* its id */
    int              client_ack; /* ack mode is client or client-individual */
    int              topic;      /* its enum cg_chat_topic */
};

/* How queued entries are written. */
enum cg_outq_proto {
    CG_OUTQ_STOMP = 0,           /* a MESSAGE frame per entry */
    CG_OUTQ_LONGLINK,            /* a long-link packet per entry
                                    (PROTOCOL.md section 9) */
};

/* How MESSAGE headers are rendered for this session. resolve returns 0 and
 * fills *out, or < 0 when no subscription has that key any more. */
struct cg_outq_render {
    enum stomp_version version;
    uint64_t           uid;      /* message-id prefix of chat messages */
    int (*resolve)(void *ctx, uint32_t sub_key, struct cg_outq_target *out);
    void              *ctx;
    enum cg_outq_proto proto;    /* STOMP unless set */
    uint32_t           tag;      /* what cg_outq_push_message() records as the
                                    entry's tag and req: the request being */
    uint8_t            req;      /* answered, if any (a filled ticket keeps
                                    its own, set when it was pushed) */
};

/* Result of cg_outq_check(). */
enum cg_outq_limit {
    CG_OUTQ_OK = 0,
    CG_OUTQ_OVER_HARD,           /* bytes > max_bytes: act at once */
    CG_OUTQ_OVER_SOFT,           /* bytes > soft_bytes for soft_ms or longer */
};

struct cg_outq {
    struct cg_outq_entry *head, *tail;
    struct cg_outq_entry *limbo;  /* cancelled tickets popped off the queue,
                                     kept until cleanup: their async answer
                                     may still arrive and find them */
    size_t   bytes;               /* rendered size of the ready entries */
    size_t   entries;             /* entries on the queue (not in limbo) */
    size_t   chat;                /* chat MESSAGE entries on the queue */
    size_t   pending;             /* tickets not yet filled nor cancelled */
    size_t   max_bytes;           /* hard limit (out_max_bytes) */
    size_t   soft_bytes;          /* soft limit (out_soft_bytes) ... */
    uint64_t soft_ms;             /* ... tolerated for this long */
    uint64_t soft_since;          /* loop time the soft limit was crossed; 0 = below */
};

/* Start an empty queue; no allocation. */
void cg_outq_init(struct cg_outq *q, size_t max_bytes, size_t soft_bytes,
                  uint64_t soft_ms);

/* Free every entry, pending tickets and limbo included. The caller
 * guarantees that no asynchronous answer can reach a ticket any more (the
 * session is no longer found by id). */
void cg_outq_cleanup(struct cg_outq *q);

/* Append a complete frame. Takes ownership of the reference to frame, also
 * on failure. Returns 0 or CG_E_NOMEM. */
int cg_outq_push_raw(struct cg_outq *q, struct cg_buf *frame);

/* Queue a MESSAGE with body (borrowed: the queue takes its own reference)
 * for subscription key. With pos == NULL or *pos == NULL it is appended;
 * otherwise it is inserted right after *pos, and *pos then points at the
 * new entry (to queue several answers in a ticket's place, in order).
 * Returns 0, CG_E_NOTFOUND when the subscription is gone (nothing queued),
 * or CG_E_NOMEM. */
int cg_outq_push_message(struct cg_outq *q, struct cg_outq_entry **pos,
                         uint32_t sub_key, struct cg_buf *body, uint64_t id,
                         unsigned flags, const struct cg_outq_render *r);

/* Append a placeholder for an answer that will come later; it records the
 * request's tag and req (its answer keeps them). Returns NULL on
 * allocation failure. The entry stays allocated until it is filled or
 * dropped and then popped, or until cg_outq_cleanup(). */
struct cg_outq_entry *cg_outq_push_ticket(struct cg_outq *q, uint32_t tag,
                                          uint8_t req);

/* 1 if the ticket was cancelled (its answer is unwanted; fill still
 * releases it correctly). */
static inline int cg_outq_ticket_cancelled(const struct cg_outq_entry *t)
{
    return (t->flags & CG_OUTQ_F_CANCELLED) != 0;
}

/* Turn ticket t into a MESSAGE (as cg_outq_push_message) in its place.
 * Returns 0, or CG_E_NOTFOUND when the subscription is gone or the ticket
 * was cancelled (then t becomes a dropped entry). body is borrowed. Never
 * allocates. */
int cg_outq_fill(struct cg_outq *q, struct cg_outq_entry *t, uint32_t sub_key,
                 struct cg_buf *body, uint64_t id, unsigned flags,
                 const struct cg_outq_render *r);

/* The ticket will get no answer worth sending (the request failed to start,
 * or its answer goes nowhere): it stops blocking the queue. */
void cg_outq_drop(struct cg_outq *q, struct cg_outq_entry *t);

/* Cancel every pending ticket: they stop blocking the queue; their answers,
 * when they come, are dropped. */
void cg_outq_cancel_tickets(struct cg_outq *q);

/* Drop every entry that is ready to send (closing without a flush); pending
 * and cancelled tickets stay allocated. Returns how many chat messages were
 * dropped. */
size_t cg_outq_discard(struct cg_outq *q);

/* Render the next frame into wb. Returns its length (> 0), 0 when nothing is
 * ready (empty, or the head is a pending ticket), or CG_E_NOMEM (the entry
 * stays queued). Skips dropped entries and messages whose subscription is
 * gone. */
int cg_outq_pop(struct cg_outq *q, struct cg_wbuf *wb,
                const struct cg_outq_render *r);

/* 1 when no entry will ever produce output: the queue holds nothing but
 * cancelled or dropped entries. */
int cg_outq_idle(const struct cg_outq *q);

/* 1 when the head entry can be popped now. */
int cg_outq_ready(const struct cg_outq *q);

static inline size_t cg_outq_bytes(const struct cg_outq *q) { return q->bytes; }
static inline size_t cg_outq_pending(const struct cg_outq *q) { return q->pending; }
static inline size_t cg_outq_chat(const struct cg_outq *q) { return q->chat; }

/* Compare the queue with its limits at loop time now (ms) and track how
 * long the soft limit has been exceeded. */
enum cg_outq_limit cg_outq_check(struct cg_outq *q, uint64_t now);

/* Loop time at which the soft limit will have lasted soft_ms, or 0 when the
 * queue is below it. */
uint64_t cg_outq_soft_deadline(const struct cg_outq *q);

/* Measure (cap 0) or write entry e for target tg as r->proto says: a
 * MESSAGE frame, or a long-link packet (its operation from tg->topic and
 * the entry's req and flags, its sequence the entry's tag, 0 for chat
 * messages and delivered notices). Exposed for tests of the rendering.
 * Returns 0 (STOMP_OK) or < 0 when e cannot be carried; *len receives the
 * length. */
int cg_outq_render_message(const struct cg_outq_entry *e,
                           const struct cg_outq_target *tg,
                           const struct cg_outq_render *r, char *buf,
                           size_t cap, size_t *len);

#endif
