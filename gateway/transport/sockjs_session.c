/* sockjs_session.c - the SockJS sessions of the HTTP transports, and the
 * a[...] batch every SockJS transport writes.
 *
 * Owns: the session table (struct cg_sockjs: chained buckets keyed by the
 * session id), each SockJS session (struct sj_sess) with its timer and the
 * one cg_session it holds, the transport ops that cg_session calls, and
 * which receiving request is attached to it (sj_req_attach/_detach_sess).
 * cg_sockjs_create()/destroy() make and empty the table.
 *
 * A SockJS session outlives the requests that carry it, so it is its own
 * object (struct sj_sess) in a table keyed by the session id, holding the
 * one cg_session of that id. Requests (struct sj_req, sockjs_http.c) are
 * receivers (xhr, xhr_streaming, eventsource, htmlfile, jsonp: they carry
 * frames to the client) or senders (xhr_send, jsonp_send: they carry the
 * client's messages in). At most one receiver is attached to a session at
 * a time; while none is, nothing is popped: frames wait in the session's
 * own bounded outbound queue and the next receiver takes them all as one
 * a[...].
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
 * A second receiver while one is attached gets c[2010,"Another connection
 * still open"] and ends (unless the attached one's client has closed its
 * connection: sockjs_http.c then detaches it as broken off first); a receiver on a CLOSED session gets the close
 * frame (c[3000,"Go away!"], or c[1002,"Connection interrupted"] after a
 * receiver's connection broke mid-response). */
#include "fmacros.h"

#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "chat/auth.h"
#include "core/common.h"
#include "core/config.h"
#include "core/context.h"
#include "core/log.h"
#include "core/metrics.h"
#include "http/request.h"
#include "session/close_codes.h"
#include "session/session.h"
#include "transport/sockjs_frame.h"
#include "transport/sockjs_internal.h"
#include "transport/transport.h"

/* While no receiver is attached and the session has output queued, the
 * queue is checked against sockjs_max_queue_bytes this often. */
#define SJ_QUEUE_CHECK_MS 250

/* Bucket count of the session table at start; it doubles when the table
 * holds more sessions than buckets. */
#define SJ_TABLE_MIN 64

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

struct sj_sess *
sj_table_find(const struct cg_sockjs *sj, const char *key, size_t n)
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
int
sj_append_quoted(struct cg_wbuf *wb, const char *in, size_t n, unsigned flags)
{
    size_t q = cg_sockjs_quote(in, n, flags, NULL);
    int rc;

    if ((rc = cg_wbuf_reserve(wb, q)) < 0)
        return rc;
    cg_sockjs_quote(in, n, flags, cg_wbuf_data(wb) + wb->len);
    wb->len += q;
    return 0;
}

int
sj_append_str(struct cg_wbuf *wb, const char *s)
{
    return cg_wbuf_append(wb, s, strlen(s));
}

/* Pop what the session has ready, up to SJ_WRITE_BATCH, as one a[...]
 * frame appended to fb: each STOMP frame (or heart-beat EOL) is one JSON
 * string. Returns the number of frames (0: nothing ready; fb unchanged),
 * *more = 1 when the batch filled before the session ran dry, or < 0. */
int
sj_pop_batch(struct cg_sockjs *sj, cg_session *s, struct cg_wbuf *fb, int *more)
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
            sj_append_quoted(fb, cg_wbuf_data(&sj->scratch), sj->scratch.len, 0) < 0)
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
        sj_req_want_write(ss->recv);
    } else {
        /* Nobody to write to: the timer checks whether the session has
         * finished (a close whose last frame was popped earlier) and
         * bounds what waits for the next receiver. */
        ss->check_due = 1;
        sj_sess_arm(ss);
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
    sj_sess_arm(ss);
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

/* Session ids are credentials of a sort (they travel in URLs): only debug
 * lines name them. */
static void
sess_log(const struct sj_sess *ss, enum cg_log_level lvl, const char *what)
{
    char ctx[CG_SOCKJS_ID_MAX + 96], id[64];

    if (!cg_log_enabled(lvl))
        return;
    if (lvl == CG_LOG_DEBUG) {
        cg_log_repr(ss->key, ss->keylen, 32, id, sizeof id);
        snprintf(ctx, sizeof ctx, "sockjs %s %s", id, ss->peer);
    } else {
        snprintf(ctx, sizeof ctx, "sockjs %s", ss->peer);
    }
    cg_log_ctx(lvl, ctx, "%s (%zu SockJS sessions in the table)", what, ss->sj->count);
}

static void
on_sess_timer_closed(uv_handle_t *h)
{
    cg_free(h->data);
}

/* The STOMP session is over: hand it back and remember what receivers get
 * from now on. Never called from inside a session call. */
void
sj_sess_end_stomp(struct sj_sess *ss, const char *frame)
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
        sj_req_want_write(ss->recv);
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
        sj_sess_end_stomp(ss, FRAME_GO_AWAY);
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
        sj_sess_end_stomp(ss, FRAME_GO_AWAY);
    }
    if (ss->s != NULL && ss->recv == NULL) {
        size_t queued = cg_session_queued_bytes(ss->s);

        if (cg_session_wants_close(ss->s, NULL, NULL)) {
            sj_sess_end_stomp(ss, FRAME_GO_AWAY);
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
            sj_sess_end_stomp(ss, FRAME_GO_AWAY);
        }
    }
    if (ss->recv != NULL) {
        if (now >= ss->hb_at) {
            ss->hb_due = 1;
            ss->hb_at = now + (uint64_t)cfg->sockjs_heartbeat_ms;
            sj_req_want_write(ss->recv);
        }
    } else if (now >= ss->reap_at) {
        sess_reap(ss);
        return;
    }
    sj_sess_arm(ss);
}

/* Re-arm the timer for the nearest thing due. */
void
sj_sess_arm(struct sj_sess *ss)
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

struct sj_sess *
sj_sess_create(struct cg_sockjs *sj, struct sj_req *r, struct stomp_str key)
{
    struct cg_session_open open = { 0 };
    struct sj_sess *ss;
    char token[CG_TOKEN_MAX + 1];
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
    ss->cred = r->cred;
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
    sess_log(ss, CG_LOG_DEBUG, "SockJS session id");
    return ss;
}

/* ------------------------------------------------------------------------ */
/* Who may use a session                                                     */
/* ------------------------------------------------------------------------ */

void
sj_cred_read(struct lws *wsi, struct sj_cred *c)
{
    char token[CG_TOKEN_MAX + 1];
    int tlen = cg_request_token(wsi, token, sizeof token);

    memset(c, 0, sizeof *c);
    if (tlen < 0)
        c->bad = 1;
    else if (tlen > 0)
        cg_auth_token_hash(token, (size_t)tlen, c->hash);
    explicit_bzero(token, sizeof token);
}

/* Compare two hex hashes without an early exit. */
static int
hash_equal(const char *a, const char *b)
{
    unsigned char d = 0;

    for (size_t i = 0; i < CG_TOKEN_HASH_LEN; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

int
sj_sess_admits(const struct sj_sess *ss, const struct sj_cred *c, const char *peer)
{
    if (c->bad || ss->cred.bad)
        return 0;
    if (ss->cred.hash[0] != '\0')
        return c->hash[0] != '\0' && hash_equal(ss->cred.hash, c->hash);
    return c->hash[0] == '\0' && strcmp(ss->peer, peer) == 0;
}

/* ------------------------------------------------------------------------ */
/* Receivers                                                                 */
/* ------------------------------------------------------------------------ */

/* Unlink r from its session. aborted: the connection broke while r was
 * the session's receiver (spec "Handling close": the session ends). */
void
sj_req_detach_sess(struct sj_req *r, int aborted)
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
        sj_sess_end_stomp(ss, FRAME_INTERRUPTED);
    }
    sj_sess_arm(ss);
}

void
sj_req_attach(struct sj_req *r, struct sj_sess *ss)
{
    uint64_t now = now_ms(r->sj);

    ss->recv = r;
    r->sess = ss;
    ss->hb_due = 0;
    ss->hb_at = now + (uint64_t)cfg_of(r->sj)->sockjs_heartbeat_ms;
    sj_sess_arm(ss);
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
                sj_sess_end_stomp(ss, FRAME_GO_AWAY);
            }
            sess_reap(ss);
        }
    }
    cg_free(sj->buckets);
    cg_wbuf_cleanup(&sj->scratch);
    cg_wbuf_cleanup(&sj->frame);
    cg_free(sj);
}
