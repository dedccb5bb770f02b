/* session_internal.h - what the session_*.c files share; private to them
 * (session.h is the session's API for everybody else).
 *
 * One session, eight files:
 *   session.c           the spine: the public API and the lifetime, the
 *                       frames written whole (CONNECTED, RECEIPT, ERROR),
 *                       queueing and the output cap, ERROR and closing
 *   session_connect.c   CONNECT: version and heart-beat negotiation, the
 *                       token check, the attach, CONNECTED
 *   session_dispatch.c  the frame dispatch table and the handlers of SEND,
 *                       SUBSCRIBE, UNSUBSCRIBE, ACK, NACK, DISCONNECT
 *   session_chat.c      the chat side: requests to chat.c and their
 *                       tickets, the init stream, sync batches, pushes
 *   session_tx.c        transactions: BEGIN/COMMIT/ABORT and the frames held
 *   session_input.c     bytes in: the input buffer, parser limits, pausing,
 *                       the parse loop that feeds the dispatch table
 *   session_timer.c     the one timer and its deadlines (connect, token
 *                       expiry, frame, heart-beats, soft output limit, close)
 *   session_ll.c        the long link: packets in (auth, send, confirm,
 *                       init, sync, heartbeat) to the same calls STOMP
 *                       frames make, and the packets it writes whole
 * All work on the whole struct cg_session; each keeps the fields it owns
 * consistent (session_connect.c: version, hb_*, uid, name, token_hash,
 * expire_dl; session_chat.c: inflight, status_seq, init, chat;
 * session_tx.c: txs, ntx, tx_bytes; session_input.c: in*, parser, paused;
 * session_timer.c: timer_due). The functions below are the only calls
 * between the files; all of them must be called on the loop thread, from
 * within one turn (they never keep s beyond the call). */
#ifndef CG_SESSION_INTERNAL_H
#define CG_SESSION_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <uv.h>

#include "chat/auth.h"
#include "chat/chat.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/context.h"
#include "core/log.h"
#include "session/close_codes.h"
#include "session/outq.h"
#include "session/session.h"
#include "session/subs.h"
#include "longlink/longlink.h"
#include "stomp/stomp.h"

/* A detail line of an ERROR frame or a status answer. */
#define DETAIL_MAX 256

/* Longest token accepted from anywhere: the gateway's own are 43 chars,
 * an app's JWT up to CG_TOKEN_MAX (PROTOCOL.md section 1.5). */
#define SESSION_TOKEN_MAX CG_TOKEN_MAX

enum session_state {
    ST_AWAIT_CONNECT = 0,
    ST_AUTHENTICATING,
    ST_ATTACHING,
    ST_CONNECTED,
    ST_CLOSING,
};

/* Why reading is paused (any bit set: paused). */
#define PAUSE_AUTH      0x01u   /* CONNECT seen; waiting for auth + attach */
#define PAUSE_INFLIGHT  0x02u   /* max_inflight requests await Redis */
#define PAUSE_CLOSING   0x04u   /* for good */

/* Flags. */
#define F_GONE          0x0001u /* transport called on_closed: no more ops */
#define F_CLOSE_SENT    0x0002u /* ops->close() called */
#define F_ATTACHED      0x0004u /* registry attach called: detach at the end */
#define F_TIMER_CLOSED  0x0008u /* the timer's close_cb ran */
#define F_READ_STOPPED  0x0010u /* transport told to pause reading */
#define F_PARSE_PENDING 0x0020u /* buffered input waits for the timer */
#define F_IN_INPUT      0x0040u /* inside process_input(): views are live */
#define F_WRITE_ASKED   0x0080u /* want_write sent, pop has not run dry */
#define F_EOL_DUE       0x0100u /* a heart-beat EOL should go out */
#define F_AUTH_LIMITS   0x0200u /* parser has the post-CONNECT limits */

struct tx;    /* an open transaction (session_tx.c) */
struct sync_wait; /* a sync waiting for its turn (session_chat.c) */

struct cg_session {
    struct cg_server              *srv;
    const struct cg_transport_ops *ops;
    void                          *t;
    uint64_t                       id;
    uint64_t                       uid;         /* 0 until authenticated */
    uint32_t                       refs;
    uint32_t                       inflight;    /* pending tickets */
    uint16_t                       flags;       /* F_* */
    uint8_t                        state;       /* enum session_state */
    uint8_t                        version;     /* negotiated stomp_version; 0 before */
    uint8_t                        ws_version;  /* from the subprotocol; 0 = none */
    uint8_t                        paused;      /* PAUSE_* */
    uint8_t                        proto;       /* enum cg_session_proto */
    uint8_t                        req_op;      /* enum cg_chat_op of the request
                                                   being handled (long link), 0 */
    uint32_t                       req_tag;     /* its sequence, 0 (long link) */
    uint32_t                       auth_tag;    /* sequence of the auth packet */
    uint16_t                       ntx;
    int                            close_code;

    /* Input. Frames are views into in[in_off..in_len): they stay valid
     * until the next stomp_parse() or compaction, and handlers copy out
     * what they keep (sqlite JsonParse style). */
    struct stomp_parser            parser;
    struct ll_parser               llp;         /* the long link's instead */
    char                          *in;
    size_t                         in_len, in_off, in_cap;

    struct cg_outq                 outq;
    struct cg_subs                 subs;
    struct tx                     *txs;
    size_t                         tx_bytes;    /* held by txs (max_tx_bytes) */
    uint64_t                       status_seq;  /* message-id of status answers */
    const struct stomp_str        *cur_receipt; /* receipt of the frame being
                                                   dispatched (a view), for ERROR */

    /* Timing, in loop milliseconds (uv_now); a deadline of 0 is unset. */
    uv_timer_t                     timer;
    uint64_t                       timer_due;
    uint64_t                       last_read, last_write;
    uint64_t                       connect_dl, frame_dl, close_dl;
    uint64_t                       expire_dl;   /* the login token runs out */
    uint32_t                       hb_out, hb_in;  /* agreed intervals; 0 = off */
    uint32_t                       hb_sx, hb_sy;   /* what CONNECTED announces */

    /* The init stream (session_chat.c: a stream, not a ticket). */
    struct {
        uint64_t after_id;
        uint64_t position;     /* the user's newest id, as last read */
        uint64_t count;
        uint32_t gen;          /* tags fetches; a stale answer is ignored */
        uint32_t tag;          /* long link: the init packet's sequence */
        uint8_t  active, fetching, waiting;
    } init;

    /* Syncs (session_chat.c): one fetch in Redis at a time; the others
     * wait here, each holding its answer's ticket, in request order. */
    struct sync_wait              *sync_head, *sync_tail;
    uint16_t                       sync_waiting;
    uint8_t                        sync_busy;

    struct cg_chat_conn            chat;
    char                          *token;       /* until the check answers */
    size_t                         token_len;
    char                           name[CG_NAME_MAX + 1];
    char                           token_hash[CG_TOKEN_HASH_LEN + 1];
    char                           peer[48];
    char                           close_why[64];
    char                          *close_detail; /* long link: the close
                                                    packet's whole reason
                                                    (close_why is cut at 63) */
};


static inline uint64_t
now_ms(const cg_session *s)
{
    return uv_now(s->srv->loop);
}

static inline const struct cg_config *
cfg_of(const cg_session *s)
{
    return s->srv->cfg;
}

static inline size_t
cfg_size(int64_t v)
{
    return v > 0 ? (size_t)v : 0;
}

/* 0 once the transport is gone or was told to close: no more ops calls. */
static inline int
ops_usable(const cg_session *s)
{
    return !(s->flags & (F_GONE | F_CLOSE_SENT));
}

/* What cg_session__tx_add() holds back: a SEND or an ACK. */
enum { TX_SEND, TX_ACK };

/* The well-known headers, collected once per frame (first wins). */
enum hdr_idx {
    H_DESTINATION, H_ID, H_RECEIPT, H_TRANSACTION, H_MESSAGE_ID,
    H_SUBSCRIPTION, H_ACK, H_ACCEPT_VERSION, H_HEART_BEAT, H_PASSCODE,
    H_TOKEN, H_COUNT
};

/* One frame being dispatched: the well-known headers (views into the
 * frame) and the one-line detail of a handler's error. */
struct frame_ctx {
    const struct stomp_frame *f;
    const struct stomp_str   *h[H_COUNT];
    char                      detail[DETAIL_MAX];
};

/* How cg_session__begin_close() treats what is still queued. */
enum close_how {
    CLOSE_FLUSH,    /* send everything, answers still awaited included */
    CLOSE_CANCEL,   /* send what is ready; drop answers still awaited */
    CLOSE_NOW,      /* drop everything; ops->close() at once */
};

static inline int
fail(struct frame_ctx *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Record a handler's error detail; returns err for "return fail(...)". */
static inline int
fail(struct frame_ctx *c, int err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->detail, sizeof c->detail, fmt, ap);
    va_end(ap);
    return err;
}

/* Peer bytes for a detail or log line: escaped, quoted, at most 64 bytes. */
static inline const char *
repr(const struct stomp_str *v, char *out, size_t cap)
{
    return cg_log_repr(v->ptr, v->len, 64, out, cap);
}

/* Strict unsigned decimal (hiredis string2ll style): no sign, no spaces,
 * no overflow. 0, or -1 when p[0..len) is not one. */
static inline int
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

/* The version frames are written in: 1.0 until one is agreed. */
static inline enum stomp_version
out_version(const cg_session *s)
{
    return s->version ? (enum stomp_version)s->version : STOMP_V1_0;
}

/* A header of a frame the session writes whole. */
struct kv {
    const char      *name;
    struct stomp_str value;
};

/* ---- session.c, for the other session_*.c ------------------------------ */

/* Wipe and free the token (after its check, or at the end). */
void cg_session__token_forget(cg_session *s);

/* Render a whole frame: cmd, the nh headers h, then body (NULL: none), in
 * version v; measured, allocated once, written. Returns 0 and *out, or
 * CG_E_NOMEM, or CG_E_INVAL when the headers cannot be carried in v. */
int cg_session__render_raw(enum stomp_version v, enum stomp_command cmd,
                           const struct kv *h, size_t nh,
                           const struct stomp_str *body, struct cg_buf **out);

/* Queue RECEIPT receipt-id:<id>. 0, CG_E_NOMEM or CG_E_PROTO. */
int cg_session__queue_receipt(cg_session *s, const struct stomp_str *id);

/* Ask the transport for a writable callback (once, until pop runs dry). */
void cg_session__want_write(cg_session *s);

/* The output queue crossed limit lim: log, count, and close at once (1013). */
void cg_session__output_cap_close(cg_session *s, enum cg_outq_limit lim);

/* The one place an error code becomes an ERROR frame and a close. */
void cg_session__fail(cg_session *s, int err, const char *detail);

/* Request a close (code, why); how says what of the queue still goes out. */
void cg_session__begin_close(cg_session *s, int code, const char *why, enum close_how how);

/* How this session renders MESSAGE headers (version, message-id prefix,
 * subscription lookup), for the cg_outq_* calls that take one. */
struct cg_outq_render cg_session__render_ctx(cg_session *s);

/* Something was queued: enforce the output limits (crossing one closes
 * the session at once: check s->state afterwards when it matters), then
 * ask the transport to write. */
void cg_session__after_enqueue(cg_session *s);

/* ---- session_connect.c, for session_dispatch.c ------------------------- */

/* The CONNECT and STOMP handler of the dispatch table. */
int cg_session__on_connect(cg_session *s, struct frame_ctx *c);

/* ---- session_dispatch.c, for session_input.c --------------------------- */

/* Check frame f against the dispatch table and run its handler (a view into
 * the input buffer: called only from cg_session__process_input()). */
void cg_session__dispatch(cg_session *s, const struct stomp_frame *f);

/* ---- session_chat.c, for session.c and session_dispatch.c -------------- */

/* A SEND to dest (not in a transaction, or at its COMMIT): a /socket/chat/
 * operation, or 404 on /user/queue/status for any other destination.
 * Returns 0 (the answer comes on a status topic), or CG_E_NOMEM or
 * CG_E_STORE for session_fail(). */
int cg_session__chat_send(cg_session *s, struct stomp_str dest, struct stomp_str body);

/* An ACK of chat message id (0: not one of ours, nothing to do) confirms
 * it as /socket/chat/recive would. Returns like cg_session__chat_send(). */
int cg_session__chat_confirm(cg_session *s, uint64_t id);

/* Start the init stream (/socket/chat/init, and a resync): every pending
 * message, oldest first, then init/status. A second init while one runs
 * is coalesced into it. Returns 0 (answers or failures come on the status
 * topics) or CG_E_NOMEM. */
int cg_session__init_start(cg_session *s);

/* Stop the init stream without a word (DISCONNECT, close): a fetch in
 * flight is ignored when it answers; what was not sent stays pending. */
void cg_session__init_stop(cg_session *s);
/* Free the syncs still waiting for their turn (their tickets go with the
 * outbound queue). */
void cg_session__sync_drop(cg_session *s);

/* The socket drained some output: a stream waiting for the low-water mark
 * fetches its next batch. Cheap to call when nothing waits. */
void cg_session__init_drained(cg_session *s);

/* An UNSUBSCRIBE removed a subscription: a running init whose last recive
 * subscription went away ends now, with its init/status (400), rather than
 * at its next batch (which may wait for a drain) or never. */
void cg_session__chat_unsubscribed(cg_session *s);

/* ---- session_tx.c, for session.c and session_dispatch.c ---------------- */

/* The open transaction named name (a pointer to its link, for unlinking),
 * or NULL. */
struct tx **cg_session__tx_find(cg_session *s, const struct stomp_str *name);

/* Hold a SEND (kind TX_SEND) or an ACK of ack_id (TX_ACK) of transaction
 * c->h[H_TRANSACTION] until COMMIT. 0, or an error with c->detail set. */
int cg_session__tx_add(cg_session *s, struct frame_ctx *c, int kind, uint64_t ack_id);

/* Drop every open transaction and what it holds. */
void cg_session__tx_abort_all(cg_session *s);

/* The BEGIN, COMMIT and ABORT handlers of the dispatch table. */
int cg_session__on_begin(cg_session *s, struct frame_ctx *c);
int cg_session__on_commit(cg_session *s, struct frame_ctx *c);
int cg_session__on_abort(cg_session *s, struct frame_ctx *c);

/* ---- session_input.c, for the other session_*.c ------------------------ */

/* Stop or resume reading for reason why (PAUSE_*); reading resumes once
 * no reason is left, and frames buffered meanwhile are parsed from the
 * timer, never from inside the caller. */
void cg_session__pause_input(cg_session *s, unsigned why);
void cg_session__resume_input(cg_session *s, unsigned why);

/* Free the input buffer (idle sessions hold none). */
void cg_session__input_free(cg_session *s);

/* Nonzero while reading is paused for any reason (PAUSE_*). */
int cg_session__input_paused(const cg_session *s);

/* Set the parser's limits: the tighter ones until F_AUTH_LIMITS is set. */
void cg_session__apply_limits(cg_session *s);

/* Parse and dispatch what is buffered, as far as the session can take it;
 * re-entrant calls (from a handler) return at once. */
void cg_session__process_input(cg_session *s);

/* ---- session_connect.c, for session_ll.c ------------------------------- */

/* The token check of s->token (CONNECT's, or the auth packet's): pauses
 * reading and asks auth.c; its answer attaches the session and ends in
 * CONNECTED (or, for the long link, cg_session__ll_connected()). Returns 0,
 * or an error with c->detail set (the caller fails the session). */
int cg_session__auth_start(cg_session *s, struct frame_ctx *c);

/* ---- session_chat.c, for session_ll.c ---------------------------------- */

/* Start chat operation op (send, recive by msgID, init, sync) with body:
 * what a SEND to its /socket/chat/ destination does. Answers carry
 * s->req_tag and s->req_op. Returns like cg_session__chat_send(). */
int cg_session__chat_op(cg_session *s, enum cg_chat_op op, struct stomp_str body);

/* ---- session_ll.c, for session.c, session_input.c, session_connect.c --- */

/* Dispatch one packet from the client (a view into the input buffer). */
void cg_session__ll_dispatch(cg_session *s, const struct ll_packet *pk);

/* The long-link session is authenticated and attached: implicit
 * subscriptions to every answer and push, the auth_answer, reading
 * resumes. */
void cg_session__ll_connected(cg_session *s);

/* cg_session_close_packet(): {"code","reason"}, the reason made safe for
 * a JSON string. */
int cg_session__ll_close_packet(const cg_session *s, int code, const char *why,
                                struct cg_wbuf *wb);

/* A parse error of the packet stream: the close it earns. */
void cg_session__ll_parse_fail(cg_session *s, int err);

/* ---- session_timer.c, for session.c and session_input.c ---------------- */

/* Keep the session's one timer armed for its nearest deadline. */
void cg_session__arm_timer(cg_session *s);

#endif
