/* session_internal.h - what session.c and session_chat.c share; private to
 * the two (session.h is the session's API for everybody else).
 *
 * One session, two files: session.c is the STOMP side (state machine,
 * frame dispatch, subscriptions, transactions, heart-beats, the timer,
 * closing, the transport calls), session_chat.c the chat side (requests to
 * chat.c and their tickets, the init stream, sync batches, pushes). Both
 * work on the whole struct cg_session; each keeps the fields it owns
 * consistent (session_chat.c: inflight, status_seq, init, chat). The
 * functions below are the only calls between the two, each way; all of
 * them must be called on the loop thread, from within one turn (they
 * never keep s beyond the call). */
#ifndef CG_SESSION_INTERNAL_H
#define CG_SESSION_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "chatgate/auth.h"
#include "chatgate/chat.h"
#include "chatgate/config.h"
#include "chatgate/server.h"
#include "chatgate/session.h"
#include "outq.h"
#include "stomp/stomp.h"
#include "subs.h"

/* A detail line of an ERROR frame or a status answer. */
#define DETAIL_MAX 256

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

struct tx;    /* an open transaction (session.c) */

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
    uint16_t                       ntx;
    int                            close_code;

    /* Input. Frames are views into in[in_off..in_len): they stay valid
     * until the next stomp_parse() or compaction, and handlers copy out
     * what they keep (sqlite JsonParse style). */
    struct stomp_parser            parser;
    char                          *in;
    size_t                         in_len, in_off, in_cap;

    struct cg_outq                 outq;
    struct cg_subs                 subs;
    struct tx                     *txs;
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
        uint64_t count;
        uint32_t gen;          /* tags fetches; a stale answer is ignored */
        uint8_t  active, fetching, waiting;
    } init;

    struct cg_chat_conn            chat;
    char                          *token;       /* until the check answers */
    size_t                         token_len;
    char                           name[CG_NAME_MAX + 1];
    char                           token_hash[CG_TOKEN_HASH_LEN + 1];
    char                           peer[48];
    char                           close_why[64];
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

/* ---- session.c, for session_chat.c ------------------------------------- */

/* How this session renders MESSAGE headers (version, message-id prefix,
 * subscription lookup), for the cg_outq_* calls that take one. */
struct cg_outq_render cg_session__render_ctx(cg_session *s);

/* Something was queued: enforce the output limits (crossing one closes
 * the session at once: check s->state afterwards when it matters), then
 * ask the transport to write. */
void cg_session__after_enqueue(cg_session *s);

/* Stop or resume reading for reason why (PAUSE_*); reading resumes once
 * no reason is left, and frames buffered meanwhile are parsed from the
 * timer, never from inside the caller. */
void cg_session__pause_input(cg_session *s, unsigned why);
void cg_session__resume_input(cg_session *s, unsigned why);

/* ---- session_chat.c, for session.c -------------------------------------- */

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

/* The socket drained some output: a stream waiting for the low-water mark
 * fetches its next batch. Cheap to call when nothing waits. */
void cg_session__init_drained(cg_session *s);

/* An UNSUBSCRIBE removed a subscription: a running init whose last recive
 * subscription went away ends now, with its init/status (400), rather than
 * at its next batch (which may wait for a drain) or never. */
void cg_session__chat_unsubscribed(cg_session *s);

#endif
