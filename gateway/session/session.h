/* session.h - STOMP semantics over any transport (STYLE.md 6).
 *
 * A transport (plain WebSocket, each SockJS transport, a test's fake)
 * implements cg_transport_ops, creates a session when a connection (or a
 * SockJS session) opens, feeds it bytes, pulls frames when it may write, and
 * tells it when the connection is gone. The session never sees a wsi, a URL
 * or SockJS framing.
 *
 * Lifetime (STYLE.md 4): the transport owns the open connection; the session
 * is a separate heap object. cg_session_close() only requests a close: the
 * session stops reading, queues its last frame (ERROR or RECEIPT) and asks
 * for a write; when cg_session_pop_frame() has handed out everything,
 * cg_session_wants_close() says so and the transport closes. After the
 * transport calls cg_session_on_closed() it must not touch the session
 * again; the session frees itself once its timers are closed and its last
 * reference is dropped. Asynchronous callbacks hold session ids, never
 * pointers, and find the session again with cg_session_lookup(). */
#ifndef CHATGATE_SESSION_H
#define CHATGATE_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "chat/chat.h"
#include "core/buf.h"
#include "core/metrics.h"
#include "session/close_codes.h"

struct cg_server;

typedef struct cg_session cg_session;

struct cg_transport_ops {
    const char            *name;    /* "ws", "sockjs-websocket", "sockjs-xhr", ... */
    enum cg_transport_kind kind;
    /* Ask to be called back (on the transport's own schedule) to pull
     * frames with cg_session_pop_frame(). Idempotent. */
    void (*want_write)(void *t);
    /* Stop (paused = 1) or resume (0) delivering bytes. */
    void (*pause_read)(void *t, int paused);
    /* Close now-ish with a close code (close_codes.h) and reason; deferred,
     * the transport calls cg_session_on_closed() later. Used for closes that
     * cannot wait for a flush (output cap, shutdown, logout). */
    void (*close)(void *t, int code, const char *why);
    /* "10.0.0.1:51234" for logs. */
    const char *(*peer)(void *t);
};

/* The protocol a session speaks over its transport. */
enum cg_session_proto {
    CG_PROTO_STOMP = 0,   /* STOMP frames (WebSocket, SockJS) */
    CG_PROTO_LONGLINK,    /* long-link packets (PROTOCOL.md section 9) */
};

/* What the transport learned before the session existed. */
struct cg_session_open {
    const char *token;        /* from srect/token query or Bearer; may be NULL */
    size_t      token_len;
    int         ws_version;   /* STOMP version from the negotiated
                                 subprotocol: 10, 11, 12; 0 = none offered */
    enum cg_session_proto proto; /* STOMP unless set */
};

/* Whether a transport may open a new session for client address addr
 * (cg_request_client_addr's form): 0, or the HTTP status to refuse it with
 * and a one-line reason in *why: 503 while the gateway's heap is over
 * memory_budget_bytes, 429 when addr already has max_addr_connections
 * sessions. PROTOCOL.md section 2 and 7. */
int cg_session_admit(struct cg_server *srv, const char *addr, const char **why);

/* Create a session for a new connection. Returns NULL on allocation
 * failure (the transport then refuses the connection). Logs at info. */
cg_session *cg_session_create(struct cg_server *srv,
                              const struct cg_transport_ops *ops, void *t,
                              const struct cg_session_open *open);

/* Bytes from the peer (a WebSocket message, part of one, or a SockJS
 * message). Copied into the session's bounded input buffer and parsed as
 * far as possible. Returns 0, or CG_E_CLOSED once the session is closing
 * (the transport may drop further input). */
int cg_session_on_bytes(cg_session *s, const char *data, size_t len);

/* Append the next complete outgoing STOMP frame (or a heart-beat EOL), or
 * long-link packet, to wb. Returns the number of bytes appended, 0 when nothing is ready, or
 * CG_E_NOMEM. Call repeatedly to batch several frames into one write. */
int cg_session_pop_frame(cg_session *s, struct cg_wbuf *wb);

/* Bytes queued and not yet popped. */
size_t cg_session_queued_bytes(const cg_session *s);

/* 1 when the session is closing and every frame it wanted to send has been
 * popped: the transport should now close with *code / *why. */
int cg_session_wants_close(const cg_session *s, int *code, const char **why);

/* Long link: append to wb the close packet that ends the connection,
 * {"code":code,"reason":why} (why NULL: the session's own reason, whole),
 * for the transport to write last, after cg_session_wants_close() said so
 * or when its close op is called. Returns its length or CG_E_NOMEM. */
int cg_session_close_packet(const cg_session *s, int code, const char *why,
                            struct cg_wbuf *wb);

/* Request a close (see the lifetime comment above). code is one of
 * close_codes.h (CG_CLOSE_GOING_AWAY, CG_CLOSE_POLICY, ...). Idempotent. */
void cg_session_close(cg_session *s, enum cg_close_code code, const char *reason);

/* Like cg_session_close(), but answers the session still owes (requests
 * waiting for Redis, e.g. a SEND whose 200 is on its way) go out before the
 * close: the graceful stop, so that a sender hears about what was stored.
 * Bounded like every close flush (frame_timeout_ms). Idempotent. */
void cg_session_drain(cg_session *s, enum cg_close_code code, const char *reason);

/* The transport's connection is gone. The session must not call ops again. */
void cg_session_on_closed(cg_session *s);

uint64_t cg_session_id(const cg_session *s);
uint64_t cg_session_uid(const cg_session *s);            /* 0 before CONNECTED */
const char *cg_session_token_hash(const cg_session *s);  /* hex, "" before auth */

/* Find a live session by id; NULL once it has closed. */
cg_session *cg_session_lookup(struct cg_server *srv, uint64_t id);

void cg_session_ref(cg_session *s);
void cg_session_unref(cg_session *s);

/* Fan-out from the registry (a push that arrived on the user's channel).
 * topic is CG_TOPIC_RECIVE (id, time and redelivered describe the chat
 * message) or CG_TOPIC_DELIVERED. body is borrowed; the session takes its
 * own reference. Delivered only if the session subscribed to the topic. */
void cg_session_deliver(cg_session *s, enum cg_chat_topic topic,
                        struct cg_buf *body, uint64_t id, int64_t time_ms,
                        int redelivered);

/* Redis pub/sub was down for a while: pushes published meanwhile never
 * reached this node. Stream the pending inbox again (as init does, marked
 * redelivered where it was pushed before) to a connected session that has
 * a recive subscription; the client dedupes by chatID. */
void cg_session_resync(cg_session *s);

/* Context string for logs: "s#42 u=wususu 10.0.0.1:51234 ws". */
const char *cg_session_log_ctx(const cg_session *s, char *buf, size_t cap);

#define cg_slog(s, lvl, ...)                                              \
    do {                                                                  \
        if (cg_log_enabled(lvl)) {                                        \
            char cg_slog_ctx_[160];                                       \
            cg_log_emit((lvl), cg_session_log_ctx((s), cg_slog_ctx_,      \
                        sizeof cg_slog_ctx_), __VA_ARGS__);               \
        }                                                                 \
    } while (0)

#endif
