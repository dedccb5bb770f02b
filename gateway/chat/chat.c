/* chat.c - the /socket/chat/... destinations (PROTOCOL.md section 4): decode
 * and validate request bodies, rate limit sends, run one Lua script per
 * request through the store, and render every answer as the JSON body its
 * status topic carries.
 *
 * One function per operation:
 *
 *   cg_chat_send    decode -> token bucket -> EVALSHA send   -> send/status
 *                   (with msgid_unique_per_sender: claim on the sender's
 *                   keys first, then send)
 *   cg_chat_recive  decode -> EVALSHA recive                 -> recive/status
 *   cg_chat_fetch   EVALSHA fetch (init: pending, sync: history) -> items
 *
 * The done callback fires exactly once, and never inside the request
 * function (libuv's rule, STYLE.md 3): a request refused before Redis (400,
 * 413, 429, 503 "store not ready") has its answer rendered at once and
 * handed to the store's loop (cg_store_defer()), which delivers it on the
 * next turn; otherwise the answer comes from the store's reply callback.
 * The deferral rides in the request's own struct creq, so it costs a
 * refused request one allocation and an accepted one nothing.
 *
 * Lifetime. Every request waiting for Redis or for its deferred answer is a
 * struct creq on the chat's list. cg_chat_destroy() answers each with
 * CG_E_CLOSED at once and marks it orphaned (creq->chat = NULL); when the
 * store later calls back (at the latest from cg_store_close) the orphan is
 * only freed. So chat and store may be torn down in either order.
 *
 * Key schema (store.h): every key of a request is the target user's
 * "{u:<uid>}:<suffix>" built with cg_store_key(); the push channel is
 * cg_store_channel(). Script KEYS/ARGV are listed at the top of each
 * gateway/store/lua/<name>.lua and mirrored by the *_KEYS tables below.
 *
 * Sends and confirmations are operations of gateway/store/lua/chat.lua, which
 * the store runs in batches (store.h); fetches are calls of fetch.lua.
 *
 * A msgID names one message of its sender for one receiver: the send's own
 * check (m:<msgID> with the content's digest, in the receiver's keys)
 * answers a retry with the first id and another content with 409. With
 * msgid_unique_per_sender it names one message of the sender whatever the
 * receiver, and a send is two operations, one after the other: the claim
 * of its msgID on the sender's keys ({u:S}:sent, sharded by the sender),
 * then, if the claim answers 200, the send on the receiver's keys (sharded
 * by the receiver). The claim costs every send one more Redis round trip
 * (and fsync) and about as much script time as the send itself
 * (bench/RESULTS.md), so it is an option.
 * They touch two users' hash tags, which on Redis Cluster are two slots, so
 * they cannot be one script call; the claim runs first so that of two sends
 * with one msgID to two receivers only one is ever stored. A sender's
 * claims share one connection and answer in order, so the sends after
 * them are queued in that order too: one sender's messages to one receiver
 * keep their order. Between the two the request keeps its own copy of the
 * body pieces (struct send_data).
 *
 * The MESSAGE body is assembled by chat.lua from three pieces made here;
 * the content is JSON-escaped exactly once, by jw_str(), so what the
 * receiver parses equals what the sender sent. */
#include "fmacros.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "chat/chat.h"
#include "chat/chat_internal.h"
#include "core/buf.h"
#include "core/common.h"
#include "core/config.h"
#include "core/json_scan.h"
#include "core/log.h"
#include "core/metrics.h"
#include "store/store.h"

/* Hard cap of one fetch (fetch.lua clamps to the same). */
#define FETCH_LIMIT_MAX 1000

static const char REASON_STORE[] = "store unavailable, retry";

/* Key suffixes, in the KEYS order of each script. */
static const char *const CLAIM_KEYS[]  = { "sent", "sent.old" };
static const char *const SEND_KEYS[]   = { "user", "msg", "pending", "seq", "psend" };
static const char *const RECIVE_KEYS[] = { "msg", "pending", "user", "psend" };
static const char *const FETCH_KEYS[]  = { "pending", "user", "seq", "msg" };
#define NCLAIM_KEYS  (sizeof CLAIM_KEYS / sizeof CLAIM_KEYS[0])
#define NSEND_KEYS   (sizeof SEND_KEYS / sizeof SEND_KEYS[0])
#define NRECIVE_KEYS (sizeof RECIVE_KEYS / sizeof RECIVE_KEYS[0])
#define NFETCH_KEYS  (sizeof FETCH_KEYS / sizeof FETCH_KEYS[0])
#define MAX_KEYS     NSEND_KEYS

/* ---- types ----------------------------------------------------------- */

struct cg_chat {
    const struct cg_config *cfg;
    struct cg_store        *store;
    struct cg_metrics      *m;
    struct creq            *reqs;      /* waiting for Redis */
    struct jw               pieces;    /* send's body pieces, reused */
    char                    max_pending[24], max_per_sender[24], history_max[24];
};

/* Content digest: the first DIGEST_BYTES of its SHA-1, in hex. 64 bits
 * tell a retry from another message with the same msgID; only the sender's
 * own messages are compared, so a forged collision gains nothing. */
#define DIGEST_BYTES 8

/* What send_submit() needs. By default it lives on send_start()'s stack
 * and pieces is the chat's render buffer (the store copies the arguments
 * as it queues them); only a send waiting for its claim keeps a copy of
 * its own, in the request. */
struct send_data {
    uint64_t    sender, reciver;
    int         want_delivered;
    char        digest[2 * DIGEST_BYTES + 1];
    size_t      p1, p2, len;           /* pieces[0..p1), [p1..p2), [p2..len) */
    const char *pieces;                /* chat->pieces, or own */
    char        own[];
};

struct creq {
    struct cg_store_defer later;       /* first member: on_later() converts
                                          it back */
    struct cg_buf     *answer;         /* a refused request's answer, due */
    enum cg_chat_topic topic;          /* ... on this topic */
    struct creq       *prev, *next;
    cg_chat           *chat;           /* NULL once orphaned */
    enum cg_chat_op    op;
    uint64_t           sid;
    void              *ticket;
    void              *data;
    cg_chat_done_cb    done;           /* send, recive */
    cg_chat_fetch_cb   fetch_cb;       /* init, sync */
    uint64_t           start_us;
    char               msgid[CG_CHAT_MSGID_MAX + 1];
    size_t             msgid_len;
    uint64_t           from, to;       /* a send's users, for the log */
    struct send_data  *send;           /* a send between claim and send */
};

/* ---- requests -------------------------------------------------------- */

static uint64_t
mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static struct creq *
creq_new(cg_chat *chat, enum cg_chat_op op, uint64_t sid, void *ticket, void *data)
{
    struct creq *q = cg_calloc(1, sizeof *q);

    if (q == NULL)
        return NULL;
    q->chat = chat;
    q->op = op;
    q->sid = sid;
    q->ticket = ticket;
    q->data = data;
    q->start_us = mono_us();
    return q;
}

static void
creq_free(struct creq *q)
{
    cg_free(q->send);
    cg_free(q);
}

static void
creq_link(struct creq *q)
{
    cg_chat *chat = q->chat;

    q->prev = NULL;
    q->next = chat->reqs;
    if (chat->reqs)
        chat->reqs->prev = q;
    chat->reqs = q;
}

/* Take q off its chat's list; returns the chat, or NULL for an orphan. */
static cg_chat *
creq_unlink(struct creq *q)
{
    cg_chat *chat = q->chat;

    if (chat == NULL)
        return NULL;
    if (q->prev)
        q->prev->next = q->next;
    else
        chat->reqs = q->next;
    if (q->next)
        q->next->prev = q->prev;
    q->prev = q->next = NULL;
    return chat;
}

static enum cg_send_result
send_result(int code)
{
    switch (code) {
    case 200: return CG_SEND_200;
    case 400: return CG_SEND_400;
    case 404: return CG_SEND_404;
    case 409: return CG_SEND_409;
    case 413: return CG_SEND_413;
    case 429: return CG_SEND_429;
    case 507: return CG_SEND_507;
    default:  return CG_SEND_503;
    }
}

/* Call done with a rendered status; err CG_E_NOMEM if it cannot render. */
static void
answer(cg_chat_done_cb done, uint64_t sid, void *ticket, void *data,
       enum cg_chat_topic topic, struct cg_buf *body)
{
    done(sid, ticket, body ? 0 : CG_E_NOMEM, topic, body, data);
}

/* The next loop turn (or cg_store_close()) for an answer_later() request. */
static void
on_later(struct cg_store_defer *d, int err)
{
    struct creq *q = (struct creq *)d;     /* later is its first member */
    cg_chat *chat = creq_unlink(q);
    struct cg_buf *body = q->answer;

    q->answer = NULL;
    if (chat == NULL || err < 0) {
        cg_buf_unref(body);
        if (chat != NULL)              /* else answered by cg_chat_destroy */
            q->done(q->sid, q->ticket, err, q->topic, NULL, q->data);
    } else {
        q->done(q->sid, q->ticket, 0, q->topic, body, q->data);   /* takes body */
    }
    creq_free(q);
}

/* Answer q with body (taken on success) on topic on the next loop turn:
 * never from inside the request function that refused it. Returns 0, or
 * CG_E_CLOSED once the store is closing (q and body stay the caller's). */
static int
answer_later(struct creq *q, enum cg_chat_topic topic, struct cg_buf *body)
{
    q->topic = topic;
    q->answer = body;
    if (cg_store_defer(q->chat->store, &q->later, on_later) < 0) {
        q->answer = NULL;
        return CG_E_CLOSED;
    }
    creq_link(q);
    return 0;
}

static int
build_keys(uint64_t uid, const char *const *suffix, size_t n,
           char keys[][CG_STORE_KEY_MAX], const char **argv, size_t *lens)
{
    for (size_t i = 0; i < n; i++) {
        int len = cg_store_key(keys[i], CG_STORE_KEY_MAX, uid, suffix[i]);
        if (len < 0)
            return len;
        argv[i] = keys[i];
        lens[i] = (size_t)len;
    }
    return 0;
}

/* The first n elements of an array reply, as integers; -1 if the reply
 * has another shape (the caller then answers 503). */
static int
reply_ints(const struct cg_store_reply *r, size_t n, long long *out)
{
    if (cg_store_reply_type(r) != CG_STORE_REPLY_ARRAY || cg_store_reply_count(r) < n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const struct cg_store_reply *e = cg_store_reply_element(r, i);

        if (cg_store_reply_type(e) != CG_STORE_REPLY_INTEGER)
            return -1;
        out[i] = cg_store_reply_integer(e);
    }
    return 0;
}

/* ---- send ------------------------------------------------------------ */

/* Whose msgID a 409 is about. */
enum reuse {
    REUSE_OTHER_SENDER = 0,  /* still pending for R from another sender */
    REUSE_OWN_CONTENT,       /* the sender's own, for R with other content */
    REUSE_OWN_CLAIM,         /* the sender's own, claimed for another
                                receiver or content (msgid_unique_per_sender) */
};

static const char *
send_reason(int code, enum reuse own, const struct cg_config *cfg, char *buf, size_t cap)
{
    switch (code) {
    case 404: return "unknown receiver";
    case 409:
        if (own == REUSE_OWN_CLAIM)
            return "msgID already used by you for another message (another receiver "
                   "or other content); make a new msgID and send again";
        if (own == REUSE_OWN_CONTENT)
            return "msgID already used by you for another message to this receiver "
                   "(other content); make a new msgID and send again";
        return "msgID already used for this receiver by another sender; "
               "make a new msgID and send again";
    case 429:
        snprintf(buf, cap, "too many unconfirmed messages from you to this user "
                 "(max_pending_per_sender %lld); send again once they confirm some",
                 (long long)cfg->max_pending_per_sender);
        return buf;
    case 507:
        snprintf(buf, cap, "receiver's pending inbox is full (max_pending %lld)",
                 (long long)cfg->max_pending);
        return buf;
    default:  return REASON_STORE;
    }
}

/* Answer a send that reached Redis (q already unlinked). */
static void
send_answer(cg_chat *chat, struct creq *q, int code, enum reuse own, long long id,
            long long time)
{
    struct cg_buf *body;
    char rbuf[160];

    if (code == 200)
        body = cg_chat_render_send_ok(q->msgid, q->msgid_len, (uint64_t)id, time);
    else
        body = cg_chat_render_status(code, q->msgid, q->msgid_len,
                                     send_reason(code, own, chat->cfg, rbuf, sizeof rbuf));
    if (chat->m) {
        chat->m->sends[send_result(code)]++;
        if (code == 200)
            cg_hist_observe(&chat->m->send_ack_ms,
                            (double)(mono_us() - q->start_us) / 1000.0);
    }
    if (code != 200)
        cg_log(CG_LOG_DEBUG, "chat: send from uid %llu to uid %llu answered %d",
               (unsigned long long)q->from, (unsigned long long)q->to, code);
    answer(q->done, q->sid, q->ticket, q->data, CG_TOPIC_SEND_STATUS, body);
}

static void
on_send_reply(const struct cg_store_reply *r, int err, void *data)
{
    struct creq *q = data;
    cg_chat *chat = creq_unlink(q);
    long long v[3] = { 0, 0, 0 };
    int code;

    if (chat == NULL)
        goto out;                      /* answered by cg_chat_destroy */
    if (err == CG_E_CLOSED) {
        q->done(q->sid, q->ticket, CG_E_CLOSED, CG_TOPIC_SEND_STATUS, NULL, q->data);
        goto out;
    }
    if (err < 0 || reply_ints(r, 3, v) < 0 ||
        (v[0] != 200 && v[0] != 404 && v[0] != 409 && v[0] != 429 && v[0] != 507)) {
        if (err == 0)
            cg_log(CG_LOG_WARN, "chat: unexpected reply of the send script (type %d); "
                   "answering 503", r ? (int)cg_store_reply_type(r) : -1);
        code = 503;
    } else {
        code = (int)v[0];
    }
    send_answer(chat, q, code, code == 409 && v[1] == 1 ? REUSE_OWN_CONTENT : REUSE_OTHER_SENDER,
                v[1], v[2]);
out:
    creq_free(q);
}

/* Token bucket of one connection: send_rate per second, send_burst deep. */
static int
bucket_take(const struct cg_config *cfg, struct cg_chat_conn *c)
{
    uint64_t now = cg_mono_ms();
    double burst = (double)cfg->send_burst;

    if (c == NULL || cfg->send_rate <= 0)
        return 1;                      /* no limit configured */
    if (now > c->last_ms) {
        c->tokens += (double)(now - c->last_ms) * (double)cfg->send_rate / 1000.0;
        if (c->tokens > burst)
            c->tokens = burst;
        c->last_ms = now;
    }
    if (c->tokens < 1.0)
        return 0;
    c->tokens -= 1.0;
    return 1;
}

void
cg_chat_conn_init(struct cg_chat_conn *c, const struct cg_config *cfg)
{
    c->tokens = cfg->send_burst > 0 ? (double)cfg->send_burst : 1.0;
    c->last_ms = cg_mono_ms();
}

/* Queue the send operation of q (after its claim, if any). Returns 0 (the
 * reply will answer), or 503 when the store refused it. */
static int
send_submit(cg_chat *chat, struct creq *q, const struct send_data *d)
{
    char keys[NSEND_KEYS][CG_STORE_KEY_MAX], sender[24], chan[32];
    const char *argv[NSEND_KEYS + 12];
    size_t lens[NSEND_KEYS + 12];
    size_t k = NSEND_KEYS;
    int rc, chan_len;

    if (build_keys(d->reciver, SEND_KEYS, NSEND_KEYS, keys, argv, lens) < 0 ||
        (chan_len = cg_store_channel(chan, sizeof chan, d->reciver)) < 0)
        return 503;
#define ARG(s, n) (argv[k] = (s), lens[k] = (n), k++)
    ARG("send", 4);
    ARG(sender, cg_u64_str(sender, d->sender));
    ARG(q->msgid, q->msgid_len);
    ARG(chat->max_pending, strlen(chat->max_pending));
    ARG(chat->max_per_sender, strlen(chat->max_per_sender));
    ARG(chat->history_max, strlen(chat->history_max));
    ARG(chan, (size_t)chan_len);
    ARG(d->pieces, d->p1);
    ARG(d->pieces + d->p1, d->p2 - d->p1);
    ARG(d->pieces + d->p2, d->len - d->p2);
    ARG(d->want_delivered ? "1" : "0", 1);
    ARG(d->digest, 2 * DIGEST_BYTES);
#undef ARG
    /* Sharded by the receiver: its sends, confirmations and fetches share
     * one connection and stay in order (store.h). */
    rc = cg_store_chat_op(chat->store, d->reciver, (int)NSEND_KEYS, (int)k, argv, lens,
                          on_send_reply, q);
    return rc < 0 ? 503 : 0;
}

static void
on_claim_reply(const struct cg_store_reply *r, int err, void *data)
{
    struct creq *q = data;
    cg_chat *chat = q->chat;
    long long v[1];
    int code;

    if (chat == NULL) {                /* answered by cg_chat_destroy */
        creq_free(q);
        return;
    }
    if (err == CG_E_CLOSED) {
        creq_unlink(q);
        q->done(q->sid, q->ticket, CG_E_CLOSED, CG_TOPIC_SEND_STATUS, NULL, q->data);
        creq_free(q);
        return;
    }
    if (err < 0 || reply_ints(r, 1, v) < 0 || (v[0] != 200 && v[0] != 409)) {
        if (err == 0)
            cg_log(CG_LOG_WARN, "chat: unexpected reply of the claim script (type %d); "
                   "answering 503", r ? (int)cg_store_reply_type(r) : -1);
        code = 503;
    } else {
        code = (int)v[0];
    }
    if (code == 200 && (code = send_submit(chat, q, q->send)) == 0)
        return;                        /* on_send_reply answers; still linked */
    creq_unlink(q);
    send_answer(chat, q, code, REUSE_OWN_CLAIM, 0, 0);
    creq_free(q);
}

/* The first DIGEST_BYTES of SHA-1(content), as hex, into out. */
static int
content_digest(const char *content, size_t len, char out[2 * DIGEST_BYTES + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    if (EVP_Digest(content, len, md, &mdlen, EVP_sha1(), NULL) != 1 || mdlen < DIGEST_BYTES)
        return CG_E_NOMEM;
    for (size_t i = 0; i < DIGEST_BYTES; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[2 * DIGEST_BYTES] = '\0';
    return 0;
}

/* Render the body pieces and queue the send, or, with
 * msgid_unique_per_sender, keep them in q and queue the claim first.
 * Returns 0 (a reply goes on), 503 when the store refused at once, or
 * CG_E_NOMEM. */
static int
send_start(cg_chat *chat, const struct cg_chat_caller *who,
           const struct cg_chat_send_req *in, struct creq *q)
{
    char keys[NCLAIM_KEYS][CG_STORE_KEY_MAX], val[24 + 1 + 2 * DIGEST_BYTES + 1];
    const char *argv[NCLAIM_KEYS + 3];
    size_t lens[NCLAIM_KEYS + 3];
    struct jw *w = &chat->pieces;
    struct send_data d, *kept;
    size_t k = NCLAIM_KEYS, vlen;
    int rc;

    /* {"id":ID ,"chatID":"..","sender":"..","reciver":" NAME
     * ","content":"..","time": TIME ,"senderId":S,"reciverId":R} */
    w->len = 0;
    w->err = 0;
    jw_lit(w, ",\"chatID\":");
    jw_str(w, in->msgid, in->msgid_len);
    jw_lit(w, ",\"sender\":");
    jw_str(w, who->name ? who->name : "", who->name ? strlen(who->name) : 0);
    jw_lit(w, ",\"reciver\":\"");
    d.p1 = w->len;
    jw_lit(w, "\",\"content\":");
    jw_str(w, in->content, in->content_len);
    jw_lit(w, ",\"time\":");
    d.p2 = w->len;
    jw_lit(w, ",\"senderId\":");
    jw_u64(w, who->uid);
    jw_lit(w, ",\"reciverId\":");
    jw_u64(w, in->reciver);
    jw_lit(w, "}");
    if (w->err || content_digest(in->content, in->content_len, d.digest) < 0)
        return CG_E_NOMEM;
    d.sender = who->uid;
    d.reciver = in->reciver;
    d.want_delivered = who->want_delivered;
    d.len = w->len;
    d.pieces = w->p;
    q->from = who->uid;
    q->to = in->reciver;
    if (!chat->cfg->msgid_unique_per_sender)
        return send_submit(chat, q, &d);   /* a msgID is unique per receiver */

    /* The send waits for its claim: the pieces go with the request. */
    if ((kept = cg_malloc(sizeof *kept + d.len)) == NULL)
        return CG_E_NOMEM;
    *kept = d;
    memcpy(kept->own, d.pieces, d.len);
    kept->pieces = kept->own;
    q->send = kept;                    /* freed with q */

    vlen = cg_u64_str(val, in->reciver);
    val[vlen++] = ':';
    memcpy(val + vlen, d.digest, 2 * DIGEST_BYTES);
    vlen += 2 * DIGEST_BYTES;
    argv[k] = "claim";
    lens[k++] = 5;
    argv[k] = q->msgid;
    lens[k++] = q->msgid_len;
    argv[k] = val;
    lens[k++] = vlen;
    if (build_keys(who->uid, CLAIM_KEYS, NCLAIM_KEYS, keys, argv, lens) < 0)
        return 503;
    /* Sharded by the sender: its claims answer in the order they were
     * made, so its sends are queued in that order. */
    rc = cg_store_chat_op(chat->store, who->uid, (int)NCLAIM_KEYS, (int)k, argv, lens,
                          on_claim_reply, q);
    if (rc == CG_E_NOMEM)
        return rc;
    return rc < 0 ? 503 : 0;
}


int
cg_chat_send(cg_chat *chat, struct cg_chat_conn *conn, const struct cg_chat_caller *who,
             const char *body, size_t len, cg_chat_done_cb done, void *ticket, void *data)
{
    struct cg_chat_send_req in;
    struct creq *q = NULL;
    struct cg_buf *out;
    const char *reason;
    char rbuf[96];
    int code, rc;

    code = cg_chat_decode_send(body, len, chat->cfg, &in);
    reason = in.reason;
    /* Over the memory budget no new message is taken in; confirmations
     * still are (they free memory), and so is everything already queued. */
    if (code == 200 && chat->cfg->memory_budget_bytes > 0 &&
        cg_heap_bytes() > chat->cfg->memory_budget_bytes) {
        code = 503;
        reason = "server busy: memory budget exceeded (memory_budget_bytes); try again later";
    } else if (code == 200 && !bucket_take(chat->cfg, conn)) {
        code = 429;
        snprintf(rbuf, sizeof rbuf, "rate limit: over %lld sends per second "
                 "(send_rate, burst send_burst %lld)", (long long)chat->cfg->send_rate,
                 (long long)chat->cfg->send_burst);
        reason = rbuf;
        if (chat->m)
            chat->m->rate_limited++;
    }
    if ((q = creq_new(chat, CG_CHAT_SEND, who->sid, ticket, data)) == NULL) {
        cg_chat_send_req_cleanup(&in);
        return CG_E_NOMEM;
    }
    q->done = done;
    memcpy(q->msgid, in.msgid, in.msgid_len + 1);
    q->msgid_len = in.msgid_len;
    if (code == 200) {
        code = send_start(chat, who, &in, q);
        if (code == 0) {
            creq_link(q);
            cg_chat_send_req_cleanup(&in);
            return 0;
        }
        if (code < 0) {
            creq_free(q);
            cg_chat_send_req_cleanup(&in);
            return code;
        }
        reason = REASON_STORE;
    }
    /* Refused before Redis: answered on the next loop turn. */
    out = cg_chat_render_status(code, in.msgid_len ? in.msgid : NULL, in.msgid_len, reason);
    cg_chat_send_req_cleanup(&in);
    if (out == NULL) {
        creq_free(q);
        return CG_E_NOMEM;
    }
    if ((rc = answer_later(q, CG_TOPIC_SEND_STATUS, out)) < 0) {
        cg_buf_unref(out);
        creq_free(q);
        return rc;
    }
    if (chat->m)
        chat->m->sends[send_result(code)]++;
    cg_log(CG_LOG_DEBUG, "chat: send from uid %llu answered %d: %s",
           (unsigned long long)who->uid, code, reason);
    return 0;
}

/* ---- recive ---------------------------------------------------------- */

static void
on_recive_reply(const struct cg_store_reply *r, int err, void *data)
{
    struct creq *q = data;
    cg_chat *chat = creq_unlink(q);
    long long v[5];
    const char *msgid = q->msgid_len ? q->msgid : NULL, *found;
    size_t msgid_len = q->msgid_len, found_len;
    int code;

    if (chat == NULL)
        goto out;
    if (err == CG_E_CLOSED) {
        q->done(q->sid, q->ticket, CG_E_CLOSED, CG_TOPIC_RECIVE_STATUS, NULL, q->data);
        goto out;
    }
    /* [code, sender, id, stored time, 1 if the first confirmation, msgID] */
    found = cg_store_reply_type(cg_store_reply_element(r, 5)) == CG_STORE_REPLY_STRING
          ? cg_store_reply_str(cg_store_reply_element(r, 5), &found_len) : NULL;
    if (err < 0 || reply_ints(r, 5, v) < 0 || found == NULL ||
        (v[0] != 200 && v[0] != 404)) {
        if (err == 0)
            cg_log(CG_LOG_WARN, "chat: unexpected reply of the recive script; answering 503");
        code = 503;
    } else {
        code = (int)v[0];
        if (msgid == NULL && found_len > 0 && found_len <= CG_CHAT_MSGID_MAX) {
            /* Confirmed by id: name the message by what the store found. */
            memcpy(q->msgid, found, found_len);
            q->msgid[found_len] = '\0';
            msgid = q->msgid;
            msgid_len = found_len;
        }
    }
    if (code == 200 && chat->m) {
        chat->m->confirmations++;
        if (v[4] == 1)                 /* first confirmation only */
            cg_hist_observe(&chat->m->confirm_ms, (double)(cg_now_ms() - v[3]));
    }
    answer(q->done, q->sid, q->ticket, q->data, CG_TOPIC_RECIVE_STATUS,
           cg_chat_render_status(code, msgid, msgid_len,
                                 code == 200 ? "ok" :
                                 code == 404 ? "no such message for this user" : REASON_STORE));
out:
    creq_free(q);
}

static int
recive_submit(cg_chat *chat, const struct cg_chat_caller *who, uint64_t by_id,
              struct creq *q)
{
    char keys[NRECIVE_KEYS][CG_STORE_KEY_MAX], idbuf[24], uid[24];
    const char *argv[NRECIVE_KEYS + 5];
    size_t lens[NRECIVE_KEYS + 5];
    size_t k = NRECIVE_KEYS;
    int rc;

    if (build_keys(who->uid, RECIVE_KEYS, NRECIVE_KEYS, keys, argv, lens) < 0)
        return 503;
    argv[k] = "recive";
    lens[k++] = 6;
    if (by_id) {
        argv[k] = "id";
        lens[k++] = 2;
        argv[k] = idbuf;
        lens[k++] = cg_u64_str(idbuf, by_id);
    } else {
        argv[k] = "msgid";
        lens[k++] = 5;
        argv[k] = q->msgid;
        lens[k++] = q->msgid_len;
    }
    argv[k] = uid;
    lens[k++] = cg_u64_str(uid, who->uid);
    argv[k] = CG_STORE_CHANNEL_PREFIX;
    lens[k++] = sizeof(CG_STORE_CHANNEL_PREFIX) - 1;
    rc = cg_store_chat_op(chat->store, who->uid, (int)NRECIVE_KEYS, (int)k, argv, lens,
                          on_recive_reply, q);
    return rc == CG_E_NOMEM ? rc : rc < 0 ? 503 : 0;
}

int
cg_chat_recive(cg_chat *chat, const struct cg_chat_caller *who,
               const char *body, size_t len, uint64_t by_id,
               cg_chat_done_cb done, void *ticket, void *data)
{
    struct cg_chat_recive_req in;
    struct creq *q;
    struct cg_buf *out;
    int code = 200, rc;

    memset(&in, 0, sizeof in);
    if (!by_id)
        code = cg_chat_decode_recive(body, len, &in);
    if ((q = creq_new(chat, CG_CHAT_RECIVE, who->sid, ticket, data)) == NULL)
        return CG_E_NOMEM;
    q->done = done;
    memcpy(q->msgid, in.msgid, in.msgid_len + 1);
    q->msgid_len = in.msgid_len;
    if (code == 200) {
        code = recive_submit(chat, who, by_id, q);
        if (code == 0) {
            creq_link(q);
            return 0;
        }
        if (code < 0) {
            creq_free(q);
            return code;
        }
        in.reason = REASON_STORE;
    }
    /* Refused before Redis: answered on the next loop turn. */
    if ((out = cg_chat_render_status(code, in.msgid_len ? in.msgid : NULL, in.msgid_len,
                                     in.reason)) == NULL) {
        creq_free(q);
        return CG_E_NOMEM;
    }
    if ((rc = answer_later(q, CG_TOPIC_RECIVE_STATUS, out)) < 0) {
        cg_buf_unref(out);
        creq_free(q);
        return rc;
    }
    return 0;
}

/* ---- init / sync ----------------------------------------------------- */

static void
on_fetch_reply(const struct cg_store_reply *r, int err, void *data)
{
    struct creq *q = data;
    cg_chat *chat = creq_unlink(q);
    struct cg_chat_item *items = NULL;
    size_t count = cg_store_reply_count(r), n = 0, i;
    uint64_t position = 0;
    int more = 0;

    if (chat == NULL)
        goto out;
    /* [more, position, then id, time, redelivered, body for each message] */
    if (err == 0 && (cg_store_reply_type(r) != CG_STORE_REPLY_ARRAY || count < 2 ||
                     (count - 2) % 4 != 0 ||
                     cg_store_reply_type(cg_store_reply_element(r, 0)) !=
                         CG_STORE_REPLY_INTEGER ||
                     cg_store_reply_type(cg_store_reply_element(r, 1)) !=
                         CG_STORE_REPLY_INTEGER)) {
        const char *why = cg_store_reply_type(r) == CG_STORE_REPLY_ERROR
                        ? cg_store_reply_str(r, NULL) : NULL;

        cg_log(CG_LOG_WARN, "chat: unexpected reply of the fetch script%s%s",
               why ? ": " : "", why ? why : "");
        err = CG_E_STORE;
    }
    if (err < 0) {
        q->fetch_cb(q->sid, q->ticket, err, NULL, 0, 0, 0, q->data);
        goto out;
    }
    more = cg_store_reply_integer(cg_store_reply_element(r, 0)) != 0;
    position = (uint64_t)cg_store_reply_integer(cg_store_reply_element(r, 1));
    n = (count - 2) / 4;
    if (n > 0 && (items = cg_calloc(n, sizeof *items)) == NULL) {
        q->fetch_cb(q->sid, q->ticket, CG_E_NOMEM, NULL, 0, 0, 0, q->data);
        goto out;
    }
    for (i = 0; i < n; i++) {
        const struct cg_store_reply *e[4];
        const char *body;
        size_t body_len;

        for (size_t k = 0; k < 4; k++)
            e[k] = cg_store_reply_element(r, 2 + 4 * i + k);
        if (cg_store_reply_type(e[0]) != CG_STORE_REPLY_INTEGER ||
            cg_store_reply_type(e[1]) != CG_STORE_REPLY_INTEGER ||
            cg_store_reply_type(e[2]) != CG_STORE_REPLY_INTEGER ||
            cg_store_reply_type(e[3]) != CG_STORE_REPLY_STRING) {
            err = CG_E_STORE;
            break;
        }
        items[i].id = (uint64_t)cg_store_reply_integer(e[0]);
        items[i].time_ms = cg_store_reply_integer(e[1]);
        items[i].redelivered = cg_store_reply_integer(e[2]) != 0;
        body = cg_store_reply_str(e[3], &body_len);
        if ((items[i].body = cg_buf_create(body, body_len)) == NULL) {
            err = CG_E_NOMEM;
            break;
        }
    }
    if (err < 0)
        q->fetch_cb(q->sid, q->ticket, err, NULL, 0, 0, 0, q->data);
    else
        q->fetch_cb(q->sid, q->ticket, 0, items, n, more, position, q->data);
    for (i = 0; i < n; i++)
        cg_buf_unref(items[i].body);
    cg_free(items);
out:
    creq_free(q);
}

int
cg_chat_fetch(cg_chat *chat, const struct cg_chat_caller *who, int sync,
              uint64_t after_id, size_t limit,
              cg_chat_fetch_cb cb, void *ticket, void *data)
{
    char keys[NFETCH_KEYS][CG_STORE_KEY_MAX], after[24], lim[24];
    const char *argv[NFETCH_KEYS + 3];
    size_t lens[NFETCH_KEYS + 3];
    size_t k = NFETCH_KEYS;
    struct creq *q;
    int rc;

    if (limit == 0)
        return CG_E_INVAL;
    if (limit > FETCH_LIMIT_MAX)
        limit = FETCH_LIMIT_MAX;
    if ((rc = build_keys(who->uid, FETCH_KEYS, NFETCH_KEYS, keys, argv, lens)) < 0)
        return rc;
    snprintf(after, sizeof after, "%llu", (unsigned long long)after_id);
    snprintf(lim, sizeof lim, "%zu", limit);
    argv[k] = sync ? "sync" : "init";
    lens[k++] = 4;
    argv[k] = after;
    lens[k++] = strlen(after);
    argv[k] = lim;
    lens[k++] = strlen(lim);
    if ((q = creq_new(chat, sync ? CG_CHAT_SYNC : CG_CHAT_INIT, who->sid, ticket, data)) == NULL)
        return CG_E_NOMEM;
    q->fetch_cb = cb;
    rc = cg_store_eval_keyed(chat->store, who->uid, CG_SCRIPT_FETCH, (int)NFETCH_KEYS,
                             (int)k, argv, lens, on_fetch_reply, q);
    if (rc < 0) {
        creq_free(q);
        return rc;
    }
    creq_link(q);
    return 0;
}

/* ---- create / destroy ------------------------------------------------ */

int
cg_chat_create(const struct cg_config *cfg, struct cg_store *store,
               struct cg_metrics *metrics, cg_chat **out)
{
    cg_chat *chat;

    *out = NULL;
    if (store == NULL)
        return CG_E_INVAL;             /* answers need its loop (answer_later) */
    if ((chat = cg_calloc(1, sizeof *chat)) == NULL)
        return CG_E_NOMEM;
    chat->cfg = cfg;
    chat->store = store;
    chat->m = metrics;
    snprintf(chat->max_pending, sizeof chat->max_pending, "%lld", (long long)cfg->max_pending);
    snprintf(chat->max_per_sender, sizeof chat->max_per_sender, "%lld",
             (long long)cfg->max_pending_per_sender);
    snprintf(chat->history_max, sizeof chat->history_max, "%lld", (long long)cfg->history_max);
    *out = chat;
    return 0;
}

void
cg_chat_destroy(cg_chat *chat)
{
    struct creq *q;

    if (chat == NULL)
        return;
    /* Answer everything still waiting for Redis now; the store's later
     * callback only frees the orphan. */
    while ((q = chat->reqs) != NULL) {
        creq_unlink(q);
        q->chat = NULL;
        if (q->op == CG_CHAT_SEND || q->op == CG_CHAT_RECIVE)
            q->done(q->sid, q->ticket, CG_E_CLOSED,
                    q->op == CG_CHAT_SEND ? CG_TOPIC_SEND_STATUS : CG_TOPIC_RECIVE_STATUS,
                    NULL, q->data);
        else
            q->fetch_cb(q->sid, q->ticket, CG_E_CLOSED, NULL, 0, 0, 0, q->data);
    }
    cg_free(chat->pieces.p);
    cg_free(chat);
}
