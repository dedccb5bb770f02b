/* session_chat.c - the chat side of a session: what SENDs to
 * /socket/chat/ destinations start, and the chat messages a session
 * receives.
 *
 * What it does. session_dispatch.c checks STOMP frames; a SEND to a
 * /socket/chat/ destination (and an ACK of a chat message) comes here
 * (cg_session__chat_send, cg_session__chat_confirm) and becomes a request
 * to chat.c: send and recive hold a ticket in the outbound queue until
 * Redis answers; init is a stream of batches paced by the socket's drain;
 * sync is one batch that takes its ticket's place. Pushes from the
 * registry (cg_session_deliver) queue chat messages on the recive
 * subscription. Status answers go to the first subscription of their
 * topic.
 *
 * Tickets. A request that waits for Redis queues a ticket (outq.c) at
 * request time; its answer fills the ticket; the queue does not pop past a
 * pending ticket, so answers and RECEIPTs leave in request order. Each
 * ticket counts in s->inflight; at max_inflight reading pauses, and it
 * resumes below half (natural backpressure). Asynchronous answers carry
 * (session id, ticket), never a bare session pointer (STYLE.md 4.3): the
 * callback looks the session up by id and drops the answer when it has
 * gone (the message stays pending in Redis). The ticket is safe to use
 * once the session is found, because tickets are freed only after the
 * session has left the registry (outq.c explains).
 *
 * The init stream:
 *
 *              init (recive subscribed)        batch answered, more
 *     idle ---------------------------> fetching ------------------+
 *      ^  ^                               |  ^                      |
 *      |  |  last batch: init/status 200  |  | queue below low      v
 *      |  +-------------------------------+  | water (pop_frame) waiting
 *      |                                     +----------------------+
 *      +-- failure (store, memory: 503), last recive subscription
 *          UNSUBSCRIBEd (400), DISCONNECT or close (nothing sent)
 *
 *   Each batch is at most init_batch messages and must fit under the
 *   output cap; the next one is fetched only once the queue is below the
 *   low-water mark, so memory stays flat for an inbox of any size. init is
 *   a stream, not a ticket: its RECEIPT means "started", and a request
 *   after it is not blocked by it. A fetch is tagged with init.gen; an
 *   answer for a stream since stopped is ignored (its messages stay
 *   pending and come again, marked redelivered).
 *
 * Choices where PROTOCOL.md leaves room:
 *   - A second init while one runs is coalesced into it: the running
 *     stream already walks the whole pending inbox oldest first, and
 *     messages stored since arrive live; one init/status ends both.
 *   - Every init or sync ends with one init/status: 200 with count and
 *     syncKey (and more, for sync), or, when it does not reach its end
 *     (refused, store or memory failure, or cut short because the recive
 *     subscription it delivers to was UNSUBSCRIBEd: 400), the status body
 *     {"code","status":"失败","content"} - on /user/queue/init/status, so a
 *     client waiting for the end stops waiting, and on /user/queue/status,
 *     where every failed request is reported. A cut-short sync never
 *     reports messages it could not deliver: the device's syncKey stays.
 *   - A status answer goes to the first subscription of its topic, a chat
 *     message to the first recive subscription: once per session, even if
 *     it subscribed by name and by uid. No subscription: dropped (debug).
 *
 * Owns nothing of its own: its state (tickets in the outbound queue, the
 * init fields, the send rate bucket) lives in struct cg_session
 * (session_internal.h), created and destroyed by session.c. */
#include "fmacros.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "chat/chat.h"
#include "core/buf.h"
#include "core/common.h"
#include "core/config.h"
#include "core/context.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/utf8.h"
#include "session/outq.h"
#include "session/session.h"
#include "session/session_internal.h"
#include "session/subs.h"
#include "stomp/stomp.h"

/* ------------------------------------------------------------------------ */
/* Limits and helpers                                                        */
/* ------------------------------------------------------------------------ */

/* The init stream fetches its next batch only while the queued output is
 * below this (or out_max_bytes / 4 if smaller), so memory stays flat for an
 * inbox of any size. */
#define SESSION_INIT_LOW_WATER (64 * 1024)

/* Worst-case MESSAGE body overhead beyond the content (ids, names, time,
 * JSON punctuation), used to size init batches under the output cap. */
#define SESSION_ITEM_OVERHEAD 512

/* Peer bytes for a status body (JSON-escaped later by chat.c): bytes that
 * are not UTF-8 become U+FFFD (the answer goes out in a text frame, which
 * a browser closes with 1007 otherwise), control bytes become '?'; at most
 * cap - 1 bytes, cut between characters. */
static const char *
printable(struct stomp_str v, char *out, size_t cap)
{
    size_t i, n = cg_utf8_sanitize(out, cap, v.ptr, v.len);

    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)out[i];

        if (ch < 0x20 || ch == 0x7f)
            out[i] = '?';
    }
    return out;
}

/* A session asks for delivered notices of the messages it sends by
 * subscribing to /user/queue/delivered (chat.h: each costs Redis a
 * PUBLISH). */
static struct cg_chat_caller
caller_of(const cg_session *s)
{
    return (struct cg_chat_caller){
        s->id, s->uid, s->name,
        cg_subs_by_topic(&s->subs, CG_TOPIC_DELIVERED) != NULL,
    };
}

static size_t
init_low_water(const cg_session *s)
{
    size_t quarter = cfg_size(cfg_of(s)->out_max_bytes) / 4;

    return quarter > 0 && quarter < SESSION_INIT_LOW_WATER ? quarter
                                                           : SESSION_INIT_LOW_WATER;
}

/* ------------------------------------------------------------------------ */
/* Queueing answers                                                          */
/* ------------------------------------------------------------------------ */

/* Queue a status-style answer (not a chat message) at the tail, on the
 * first subscription of topic; dropped when there is none. Returns 0 or
 * CG_E_NOMEM. body is borrowed. */
static int
queue_answer(cg_session *s, enum cg_chat_topic topic, struct cg_buf *body)
{
    const struct cg_sub *sub = cg_subs_by_topic(&s->subs, topic);
    struct cg_outq_render r = cg_session__render_ctx(s);
    int rc;

    if (sub == NULL) {
        cg_slog(s, CG_LOG_DEBUG, "answer dropped: not subscribed to topic %d", (int)topic);
        return 0;
    }
    rc = cg_outq_push_message(&s->outq, NULL, sub->key, body, ++s->status_seq, 0, &r);
    if (rc == CG_E_NOMEM)
        return rc;
    cg_session__after_enqueue(s);
    return 0;
}

/* A status answer decided here, at once: {"code":..,"status":..,"content":..}. */
static int
answer_now(cg_session *s, enum cg_chat_topic topic, int code, const char *content)
{
    struct cg_buf *b = cg_chat_render_status(code, NULL, 0, content);
    int rc;

    if (b == NULL)
        return CG_E_NOMEM;
    rc = queue_answer(s, topic, b);
    cg_buf_unref(b);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Tickets: requests that wait for Redis                                     */
/* ------------------------------------------------------------------------ */

static struct cg_outq_entry *
ticket_open(cg_session *s)
{
    struct cg_outq_entry *t = cg_outq_push_ticket(&s->outq, s->req_tag, s->req_op);

    if (t == NULL)
        return NULL;
    s->inflight++;
    if (s->inflight >= cfg_size(cfg_of(s)->max_inflight))
        cg_session__pause_input(s, PAUSE_INFLIGHT);    /* natural backpressure */
    return t;
}

/* The ticket got its answer, or never will. */
static void
ticket_closed(cg_session *s)
{
    assert(s->inflight > 0);
    s->inflight--;
    if ((s->paused & PAUSE_INFLIGHT) &&
        s->inflight <= cfg_size(cfg_of(s)->max_inflight) / 2)
        cg_session__resume_input(s, PAUSE_INFLIGHT);
}

/* The request could not be started: its callback will not run. */
static void
ticket_abandon(cg_session *s, struct cg_outq_entry *t)
{
    cg_outq_drop(&s->outq, t);
    ticket_closed(s);
}

/* Fill ticket t with body on the first subscription of topic (or drop it
 * when there is none, or when err says there is no body). */
static void
ticket_answer(cg_session *s, struct cg_outq_entry *t, int err,
              enum cg_chat_topic topic, struct cg_buf *body)
{
    const struct cg_sub *sub = NULL;
    struct cg_outq_render r = cg_session__render_ctx(s);

    if (!cg_outq_ticket_cancelled(t) && err == 0 && body != NULL)
        sub = cg_subs_by_topic(&s->subs, topic);
    if (sub != NULL) {
        (void)cg_outq_fill(&s->outq, t, sub->key, body, ++s->status_seq, 0, &r);
    } else {
        if (!cg_outq_ticket_cancelled(t))
            cg_slog(s, CG_LOG_DEBUG, "answer dropped: %s",
                    err ? cg_strerror(err) : "not subscribed to its topic");
        cg_outq_drop(&s->outq, t);
    }
    ticket_closed(s);
    cg_session__after_enqueue(s);
}

static void
on_chat_done(uint64_t sid, void *ticket, int err, enum cg_chat_topic topic,
             struct cg_buf *body, void *data)
{
    struct cg_server *srv = data;
    cg_session *s = cg_session_lookup(srv, sid);

    /* Gone: the ticket went with it; the message stays pending. */
    if (s != NULL)
        ticket_answer(s, ticket, err, topic, body);
    cg_buf_unref(body);
}

/* ------------------------------------------------------------------------ */
/* Chat requests                                                             */
/* ------------------------------------------------------------------------ */

/* send or recive (by msgID in body, or by message id for an ACK). */
static int
start_chat(cg_session *s, enum cg_chat_op op, struct stomp_str body, uint64_t by_id)
{
    struct cg_chat_caller who = caller_of(s);
    struct cg_outq_entry *t;
    int rc;

    if (s->srv->chat == NULL)
        return answer_now(s, op == CG_CHAT_SEND ? CG_TOPIC_SEND_STATUS
                                                : CG_TOPIC_RECIVE_STATUS,
                          503, "store unavailable");
    if ((t = ticket_open(s)) == NULL)
        return CG_E_NOMEM;
    if (op == CG_CHAT_SEND)
        rc = cg_chat_send(s->srv->chat, &s->chat, &who, body.ptr, body.len,
                          on_chat_done, t, s->srv);
    else
        rc = cg_chat_recive(s->srv->chat, &who, body.ptr, body.len, by_id,
                            on_chat_done, t, s->srv);
    if (rc < 0) {
        ticket_abandon(s, t);
        return rc == CG_E_NOMEM ? rc : CG_E_STORE;
    }
    return 0;
}

/* An init or sync that will not end with 200 (refused, failed, or cut
 * short): {"code","status":"失败","content"} goes to /user/queue/status,
 * where every failed request is reported (the Mimi page and the web client
 * act on it there), and to /user/queue/init/status, so that a client
 * waiting for the end of its init or sync stops waiting. In ticket t's
 * place when the request holds one (sync answers keep request order; t is
 * closed here), else at the tail. Returns 0 or CG_E_NOMEM (what could not
 * be rendered or queued is lost; the request changed nothing in Redis
 * that a later init or sync would not see). */
static int
batch_failed(cg_session *s, struct cg_outq_entry *t, int code, const char *why)
{
    static const enum cg_chat_topic topics[] = { CG_TOPIC_STATUS, CG_TOPIC_INIT_STATUS };
    struct cg_buf *b = cg_chat_render_status(code, NULL, 0, why);
    struct cg_outq_render r = cg_session__render_ctx(s);
    struct cg_outq_entry *pos = t;
    int rc = b == NULL ? CG_E_NOMEM : 0;
    size_t i;

    if (t != NULL && cg_outq_ticket_cancelled(t)) {  /* closing: nobody listens */
        ticket_answer(s, t, CG_E_CLOSED, CG_TOPIC_INIT_STATUS, NULL);
        cg_buf_unref(b);
        return 0;
    }
    for (i = 0; i < sizeof topics / sizeof topics[0] && b != NULL; i++) {
        const struct cg_sub *sub = cg_subs_by_topic(&s->subs, topics[i]);

        if (sub == NULL)
            continue;
        if (t != NULL && t->kind == CG_OUTQ_TICKET)   /* the first takes its place */
            (void)cg_outq_fill(&s->outq, t, sub->key, b, ++s->status_seq, 0, &r);
        else if (cg_outq_push_message(&s->outq, t != NULL ? &pos : NULL, sub->key, b,
                                      ++s->status_seq, 0, &r) == CG_E_NOMEM)
            rc = CG_E_NOMEM;
    }
    if (t != NULL) {
        if (t->kind == CG_OUTQ_TICKET)
            cg_outq_drop(&s->outq, t);
        ticket_closed(s);
    }
    cg_buf_unref(b);
    cg_session__after_enqueue(s);
    return rc;
}

/* init and sync deliver to the recive subscription: without one they are
 * refused (400). Returns 1 when there is one, else 0 or CG_E_NOMEM. */
static int
need_recive_sub(cg_session *s)
{
    char msg[DETAIL_MAX];

    if (cg_subs_by_topic(&s->subs, CG_TOPIC_RECIVE) != NULL)
        return 1;
    snprintf(msg, sizeof msg, "subscribe to /user/%s/recive first", s->name);
    return batch_failed(s, NULL, 400, msg);
}

/* A chat message queued for the session: count it. */
static void
count_delivery(cg_session *s, const struct cg_chat_item *it)
{
    s->srv->metrics.deliveries++;
    if (it->redelivered)
        s->srv->metrics.redeliveries++;
}

static unsigned
item_flags(const struct cg_chat_item *it)
{
    return CG_OUTQ_F_CHAT | (it->redelivered ? CG_OUTQ_F_REDELIVERED : 0);
}

/* Queue one fetched chat message on the recive subscription, at *pos (or
 * the tail). Returns 0, CG_E_NOTFOUND (no subscription) or CG_E_NOMEM. */
static int
queue_item(cg_session *s, struct cg_outq_entry **pos, const struct cg_sub *sub,
           const struct cg_chat_item *it)
{
    struct cg_outq_render r = cg_session__render_ctx(s);
    int rc;

    rc = cg_outq_push_message(&s->outq, pos, sub->key, it->body, it->id,
                              item_flags(it), &r);
    if (rc == 0)
        count_delivery(s, it);
    return rc;
}

/* ---- init: a stream, paced by the socket's drain ----------------------- */

static size_t
init_batch_limit(const cg_session *s)
{
    const struct cg_config *cfg = cfg_of(s);
    size_t batch = cfg_size(cfg->init_batch), item, room, n;
    size_t max = cfg_size(cfg->out_max_bytes), used;

    if (batch == 0)
        batch = 1;
    if (max == 0)
        return batch;
    /* A whole batch must fit under the hard cap on top of what is queued. */
    item = cfg_size(cfg->max_content_bytes) + SESSION_ITEM_OVERHEAD;
    used = cg_outq_bytes(&s->outq) + init_low_water(s);
    room = max > used ? max - used : 0;
    n = room / item;
    return n < 1 ? 1 : n < batch ? n : batch;
}

static void init_fetched(uint64_t sid, void *ticket, int err,
                         const struct cg_chat_item *items, size_t n, int more,
                         uint64_t position, void *data);

static int
init_fetch(cg_session *s)
{
    struct cg_chat_caller who = caller_of(s);
    int rc;

    s->init.fetching = 1;
    s->init.waiting = 0;
    rc = cg_chat_fetch(s->srv->chat, &who, 0, s->init.after_id,
                       init_batch_limit(s), init_fetched,
                       (void *)(uintptr_t)s->init.gen, s->srv);
    if (rc < 0)
        s->init.fetching = 0;
    return rc;
}

void
cg_session__init_stop(cg_session *s)
{
    s->init.active = s->init.fetching = s->init.waiting = 0;
    s->init.gen++;                 /* an answer in flight is now stale */
}

/* The stream ends before the end of the inbox: stop it and say why
 * (batch_failed). What it did not deliver stays pending. */
static void
init_abort(cg_session *s, int code, const char *msg)
{
    cg_session__init_stop(s);
    if (batch_failed(s, NULL, code, msg) < 0)
        cg_slog(s, CG_LOG_WARN, "%s; the answer was lost: out of memory", msg);
}

/* The stream failed half-way (store, memory): 503. */
static void
init_fail(cg_session *s, const char *why)
{
    char msg[DETAIL_MAX];

    snprintf(msg, sizeof msg, "init failed: %s", why);
    init_abort(s, 503, msg);
}

/* The client removed its (last) recive subscription while init ran. */
#define INIT_CUT_MSG "init stopped: no recive subscription left (UNSUBSCRIBE); " \
                     "the messages not delivered stay pending"

static void
init_next(cg_session *s)
{
    int rc;

    if (cg_outq_bytes(&s->outq) >= init_low_water(s)) {
        s->init.waiting = 1;       /* cg_session_pop_frame() resumes us */
        return;
    }
    if ((rc = init_fetch(s)) < 0)
        init_fail(s, cg_strerror(rc));
}

void
cg_session__init_drained(cg_session *s)
{
    int rc;

    if (s->init.waiting && s->state == ST_CONNECTED &&
        cg_outq_bytes(&s->outq) < init_low_water(s) && (rc = init_fetch(s)) < 0) {
        s->req_tag = s->init.tag;
        s->req_op = CG_CHAT_INIT;
        init_fail(s, cg_strerror(rc));
        s->req_tag = 0;
        s->req_op = 0;
    }
}

static void init_fetched_in(cg_session *s, void *ticket, int err,
                            const struct cg_chat_item *items, size_t n, int more,
                            uint64_t position);

/* What the stream queues answers the init that started it: its long-link
 * sequence (0 for a resync nobody asked for) goes with it. */
static void
init_fetched(uint64_t sid, void *ticket, int err,
             const struct cg_chat_item *items, size_t n, int more,
             uint64_t position, void *data)
{
    cg_session *s = cg_session_lookup(data, sid);

    if (s == NULL)
        return;
    s->req_tag = s->init.tag;
    s->req_op = CG_CHAT_INIT;
    init_fetched_in(s, ticket, err, items, n, more, position);
    s->req_tag = 0;
    s->req_op = 0;
}

static void
init_fetched_in(cg_session *s, void *ticket, int err,
                const struct cg_chat_item *items, size_t n, int more, uint64_t position)
{
    const struct cg_sub *sub;
    struct cg_buf *end;
    size_t i;

    if (s->state != ST_CONNECTED || !s->init.active ||
        (uint32_t)(uintptr_t)ticket != s->init.gen)
        return;                    /* a stream since stopped */
    s->init.fetching = 0;
    if (err < 0) {
        init_fail(s, cg_strerror(err));
        return;
    }
    /* cg_session__chat_unsubscribed() stops the stream at once; this only
     * guards the invariant. */
    if ((sub = cg_subs_by_topic(&s->subs, CG_TOPIC_RECIVE)) == NULL) {
        init_abort(s, 400, INIT_CUT_MSG);
        return;
    }
    for (i = 0; i < n; i++) {
        if (queue_item(s, NULL, sub, &items[i]) < 0) {
            init_fail(s, "out of memory");
            return;
        }
        s->init.count++;
        s->init.after_id = items[i].id;
    }
    if (position > s->init.position)
        s->init.position = position;
    cg_session__after_enqueue(s);  /* may close: output cap */
    if (s->state != ST_CONNECTED)
        return;
    if (more && n > 0) {
        init_next(s);
        return;
    }
    cg_session__init_stop(s);
    /* The syncKey is where the user's stream stood at the last read (never
     * before the last message delivered): a device syncs on from there
     * instead of from 0 (PROTOCOL.md section 4). */
    end = cg_chat_render_init_status(s->init.count,
                                     s->init.position > s->init.after_id
                                         ? s->init.position : s->init.after_id, -1);
    if (end == NULL || queue_answer(s, CG_TOPIC_INIT_STATUS, end) < 0)
        cg_slog(s, CG_LOG_WARN, "init status lost: out of memory");
    cg_buf_unref(end);
    cg_slog(s, CG_LOG_DEBUG, "init done: %" PRIu64 " messages", s->init.count);
}

int
cg_session__init_start(cg_session *s)
{
    int rc;

    if ((rc = need_recive_sub(s)) <= 0)
        return rc;
    if (s->init.active) {
        cg_slog(s, CG_LOG_DEBUG, "init already running: coalesced");
        return 0;
    }
    if (s->srv->chat == NULL)
        return batch_failed(s, NULL, 503, "init failed: store unavailable");
    cg_session__init_stop(s);      /* fresh generation */
    s->init.active = 1;
    s->init.tag = s->req_tag;
    s->init.after_id = 0;
    s->init.position = 0;
    s->init.count = 0;
    if ((rc = init_fetch(s)) < 0) {
        cg_session__init_stop(s);
        return rc == CG_E_NOMEM ? rc : batch_failed(s, NULL, 503,
                                                    "init failed: store unavailable");
    }
    return 0;
}

void
cg_session__chat_unsubscribed(cg_session *s)
{
    if (s->init.active && cg_subs_by_topic(&s->subs, CG_TOPIC_RECIVE) == NULL) {
        cg_slog(s, CG_LOG_DEBUG, "init stopped after %" PRIu64 " messages: "
                "recive unsubscribed", s->init.count);
        init_abort(s, 400, INIT_CUT_MSG);
    }
}

/* ---- sync: one batch, answered in request order ------------------------ */

/* The client removed its recive subscription between sync and its answer:
 * nothing can be delivered, and a 200 would move the device's syncKey past
 * messages it never got. */
#define SYNC_CUT_MSG "sync stopped: no recive subscription left (UNSUBSCRIBE); " \
                     "sync again from the same syncKey"

static void
sync_failed(cg_session *s, struct cg_outq_entry *t, int code, const char *msg)
{
    if (batch_failed(s, t, code, msg) < 0)
        cg_slog(s, CG_LOG_WARN, "%s; the answer was lost: out of memory", msg);
}

/* A sync waiting for the one before it (see start_sync). */
struct sync_wait {
    struct sync_wait     *next;
    struct cg_outq_entry *t;       /* its answer's place; t->id is its key */
};

/* Syncs of one session that may wait for their turn; past it a sync is
 * answered 429 at once. */
#define SYNC_WAIT_MAX 16

static void sync_answer(cg_session *s, struct cg_outq_entry *t, int err,
                        const struct cg_chat_item *items, size_t n, int more);
static void sync_next(cg_session *s);

static void
sync_fetched(uint64_t sid, void *ticket, int err,
             const struct cg_chat_item *items, size_t n, int more,
             uint64_t position, void *data)
{
    cg_session *s = cg_session_lookup(data, sid);
    struct cg_outq_entry *t = ticket;

    /* A sync's key is the last id it returned (the history's ids are
     * consecutive): the position is init's. */
    (void)position;
    if (s == NULL)
        return;
    s->sync_busy = 0;
    sync_answer(s, t, err, items, n, more);
    sync_next(s);
}

static void
sync_answer(cg_session *s, struct cg_outq_entry *t, int err,
            const struct cg_chat_item *items, size_t n, int more)
{
    struct cg_outq_entry *pos = t;
    struct cg_outq_render r;
    const struct cg_sub *sub;
    struct cg_buf *end;
    uint64_t key, count = 0;
    size_t i;
    if (cg_outq_ticket_cancelled(t)) {
        ticket_answer(s, t, CG_E_CLOSED, CG_TOPIC_INIT_STATUS, NULL);
        return;
    }
    if (err < 0) {
        sync_failed(s, t, 503, "sync failed: store unavailable");
        return;
    }
    if ((sub = cg_subs_by_topic(&s->subs, CG_TOPIC_RECIVE)) == NULL) {
        sync_failed(s, t, 400, SYNC_CUT_MSG);
        return;
    }
    key = t->id;                   /* the request's syncKey (start_sync) */
    r = cg_session__render_ctx(s);
    for (i = 0; i < n; i++) {
        if (i == 0) {
            /* The first message takes the ticket's place... */
            if (cg_outq_fill(&s->outq, t, sub->key, items[0].body, items[0].id,
                             item_flags(&items[0]), &r) == 0)
                count_delivery(s, &items[0]);
            ticket_closed(s);
        } else if (queue_item(s, &pos, sub, &items[i]) < 0) {
            more = 1;              /* out of memory: the rest comes next sync */
            break;
        }
        key = items[i].id > key ? items[i].id : key;
        count++;
    }
    /* ... and the rest, then init/status, follow it in order. The key and
     * count describe what was queued, never more. */
    end = cg_chat_render_init_status(count, key, more ? 1 : 0);
    r.tag = t->tag;                /* the end answers the sync, as t does */
    r.req = t->req;
    if (n == 0) {
        ticket_answer(s, t, end ? 0 : CG_E_NOMEM, CG_TOPIC_INIT_STATUS, end);
    } else {
        sub = cg_subs_by_topic(&s->subs, CG_TOPIC_INIT_STATUS);
        if (end != NULL && sub != NULL)
            (void)cg_outq_push_message(&s->outq, &pos, sub->key, end,
                                       ++s->status_seq, 0, &r);
        cg_session__after_enqueue(s);
    }
    cg_buf_unref(end);
}

/* Fetch the sync of ticket t (its key in t->id): the session's one sync in
 * Redis from now on. Returns 0 or the error of cg_chat_fetch(). */
static int
sync_submit(cg_session *s, struct cg_outq_entry *t)
{
    struct cg_chat_caller who = caller_of(s);
    int rc = cg_chat_fetch(s->srv->chat, &who, 1, t->id,
                           cfg_size(cfg_of(s)->sync_batch), sync_fetched, t, s->srv);

    if (rc == 0)
        s->sync_busy = 1;
    return rc;
}

/* The sync in Redis is answered: start the next waiting one, if any. */
static void
sync_next(cg_session *s)
{
    struct sync_wait *w;
    struct cg_outq_entry *t;

    while (!s->sync_busy && (w = s->sync_head) != NULL) {
        s->sync_head = w->next;
        if (s->sync_head == NULL)
            s->sync_tail = NULL;
        s->sync_waiting--;
        t = w->t;
        cg_free(w);
        if (cg_outq_ticket_cancelled(t)) {
            ticket_answer(s, t, CG_E_CLOSED, CG_TOPIC_INIT_STATUS, NULL);
        } else if (cg_subs_by_topic(&s->subs, CG_TOPIC_RECIVE) == NULL) {
            sync_failed(s, t, 400, SYNC_CUT_MSG);
        } else if (s->srv->chat == NULL || sync_submit(s, t) < 0) {
            sync_failed(s, t, 503, "sync failed: store unavailable");
        }
    }
}

void
cg_session__sync_drop(cg_session *s)
{
    struct sync_wait *w;

    while ((w = s->sync_head) != NULL) {
        s->sync_head = w->next;
        cg_free(w);
    }
    s->sync_tail = NULL;
    s->sync_waiting = 0;
}

static int
start_sync(cg_session *s, struct stomp_str body)
{
    struct cg_outq_entry *t;
    uint64_t key = 0;
    int rc;

    if ((rc = need_recive_sub(s)) <= 0)
        return rc;
    if (cg_chat_parse_sync(body.ptr, body.len, &key) < 0)
        return batch_failed(s, NULL, 400, "invalid sync body: expected {\"syncKey\":K}");
    if (s->srv->chat == NULL)
        return batch_failed(s, NULL, 503, "sync failed: store unavailable");
    if ((t = ticket_open(s)) == NULL)
        return CG_E_NOMEM;
    t->id = key;                   /* remembered for an empty answer */
    /* One sync of a session in Redis at a time: a client that pipelines
     * hundreds of syncs (each answer up to sync_batch messages) must not
     * have hundreds of megabyte-sized replies in Redis at once, which
     * stalls Redis for every other user. The others wait, in order, with
     * their tickets; later frames (an UNSUBSCRIBE, say) are read as usual. */
    if (s->sync_busy) {
        struct sync_wait *w;

        if (s->sync_waiting >= SYNC_WAIT_MAX)
            return batch_failed(s, t, 429, "too many syncs at once: send the next "
                                "after the init/status of the last");
        if ((w = cg_calloc(1, sizeof *w)) == NULL) {
            ticket_abandon(s, t);
            return CG_E_NOMEM;
        }
        w->t = t;
        if (s->sync_tail != NULL)
            s->sync_tail->next = w;
        else
            s->sync_head = w;
        s->sync_tail = w;
        s->sync_waiting++;
        return 0;
    }
    rc = sync_submit(s, t);
    if (rc == CG_E_NOMEM)
        ticket_abandon(s, t);
    else if (rc < 0)
        rc = batch_failed(s, t, 503, "sync failed: store unavailable");
    return rc;
}

/* ---- SEND routing ------------------------------------------------------ */

int
cg_session__chat_op(cg_session *s, enum cg_chat_op op, struct stomp_str body)
{
    switch (op) {
    case CG_CHAT_SEND:   return start_chat(s, CG_CHAT_SEND, body, 0);
    case CG_CHAT_RECIVE: return start_chat(s, CG_CHAT_RECIVE, body, 0);
    case CG_CHAT_INIT:   return cg_session__init_start(s);
    case CG_CHAT_SYNC:   return start_sync(s, body);
    default:             return CG_E_INVAL;
    }
}

int
cg_session__chat_send(cg_session *s, struct stomp_str dest, struct stomp_str body)
{
    char d[160], msg[DETAIL_MAX];
    enum cg_chat_op op = cg_chat_route(dest.ptr, dest.len);

    if (op != CG_CHAT_UNKNOWN)
        return cg_session__chat_op(s, op, body);
    snprintf(msg, sizeof msg, "unknown destination %s", printable(dest, d, sizeof d));
    return answer_now(s, CG_TOPIC_STATUS, 404, msg);
}

int
cg_session__chat_confirm(cg_session *s, uint64_t id)
{
    if (id == 0)
        return 0;
    return start_chat(s, CG_CHAT_RECIVE, (struct stomp_str){ "", 0 }, id);
}

/* ------------------------------------------------------------------------ */
/* Pushes from the registry                                                  */
/* ------------------------------------------------------------------------ */

void
cg_session_deliver(cg_session *s, enum cg_chat_topic topic, struct cg_buf *body,
                   uint64_t id, int64_t time_ms, int redelivered)
{
    const struct cg_sub *sub;
    struct cg_chat_item it = { id, time_ms, redelivered, body };
    struct cg_outq_render r;
    int rc;

    if (s->state != ST_CONNECTED || !ops_usable(s))
        return;
    if ((sub = cg_subs_by_topic(&s->subs, topic)) == NULL) {
        cg_slog(s, CG_LOG_DEBUG, "push for topic %d dropped: not subscribed", (int)topic);
        return;
    }
    if (topic == CG_TOPIC_RECIVE) {
        rc = queue_item(s, NULL, sub, &it);
    } else {
        r = cg_session__render_ctx(s);
        rc = cg_outq_push_message(&s->outq, NULL, sub->key, body, ++s->status_seq, 0, &r);
    }
    if (rc == CG_E_NOMEM)
        cg_slog(s, CG_LOG_WARN, "push dropped: out of memory (it stays pending)");
    cg_session__after_enqueue(s);
}
