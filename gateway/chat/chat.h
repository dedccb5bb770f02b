/* chat.h - the /socket/chat/... destinations (PROTOCOL.md section 4):
 * validate, rate limit, build store requests, render results as the JSON
 * bodies the status topics carry.
 *
 * chat.c knows nothing of sessions or transports. Callers identify
 * themselves with a cg_chat_caller (copied) and get every answer through a
 * callback that carries the session id back (STYLE.md 4.3): the session may
 * be gone by then, and the callback must look it up. */
#ifndef CHATGATE_CHAT_H
#define CHATGATE_CHAT_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

struct cg_config;
struct cg_metrics;
struct cg_store;

typedef struct cg_chat cg_chat;

enum cg_chat_op {
    CG_CHAT_UNKNOWN = 0,   /* not a /socket/chat/ destination we know */
    CG_CHAT_SEND,          /* /socket/chat/send */
    CG_CHAT_RECIVE,        /* /socket/chat/recive */
    CG_CHAT_INIT,          /* /socket/chat/init */
    CG_CHAT_SYNC,          /* /socket/chat/sync */
};

/* Where an answer goes (the session maps each to its subscription). */
enum cg_chat_topic {
    CG_TOPIC_STATUS = 0,       /* /user/queue/status */
    CG_TOPIC_SEND_STATUS,      /* /user/queue/send/status */
    CG_TOPIC_RECIVE_STATUS,    /* /user/queue/recive/status */
    CG_TOPIC_INIT_STATUS,      /* /user/queue/init/status (ext) */
    CG_TOPIC_DELIVERED,        /* /user/queue/delivered (ext) */
    CG_TOPIC_RECIVE,           /* /user/{name|uid}/recive: chat messages */
    CG_TOPIC_MAX,
};

/* Who is asking. Strings are copied by the callee. */
struct cg_chat_caller {
    uint64_t    sid;     /* session id, for cg_session_lookup() later */
    uint64_t    uid;
    const char *name;    /* username, NUL-terminated */
    int         want_delivered; /* send: the sender wants a delivered notice
                                   when the receiver confirms (it subscribes
                                   to /user/queue/delivered); each costs a
                                   PUBLISH, so only then */
};

/* Per-connection chat state, embedded in the session: the send token
 * bucket (send_rate per second, send_burst deep). */
struct cg_chat_conn {
    double   tokens;
    uint64_t last_ms;    /* monotonic time of the last refill */
};

void cg_chat_conn_init(struct cg_chat_conn *c, const struct cg_config *cfg);

/* One answer. topic says where it goes; body (a JSON object) is a new
 * reference the callee must unref. ticket is the caller's, passed through.
 * err is 0 normally, CG_E_CLOSED when the chat module is shutting down (then
 * body is NULL; cg_chat_destroy() and cg_store_close() both do this), or
 * CG_E_NOMEM when the answer could not be rendered (body NULL). Called
 * exactly once per accepted request, and never before the request function
 * returned (libuv's rule, STYLE.md 3): a request refused at once (400, 413,
 * 429, 503) is answered on the next loop turn. */
typedef void (*cg_chat_done_cb)(uint64_t sid, void *ticket, int err,
                                enum cg_chat_topic topic, struct cg_buf *body,
                                void *data);

/* One message read back by init/sync. */
struct cg_chat_item {
    uint64_t       id;
    int64_t        time_ms;
    int            redelivered;  /* pushed before, or read by an earlier init */
    struct cg_buf *body;         /* the MESSAGE body JSON (borrowed) */
};

/* Result of a fetch. items are borrowed for the duration of the call.
 * err: 0, or CG_E_STORE / CG_E_CLOSED (then n == 0). more: the store holds
 * further messages after the last one. position: the user's newest id (the
 * end of its stream) when the batch was read. */
typedef void (*cg_chat_fetch_cb)(uint64_t sid, void *ticket, int err,
                                 const struct cg_chat_item *items, size_t n,
                                 int more, uint64_t position, void *data);

/* store is required (CG_E_INVAL without one): refused requests are
 * answered on its loop. */
int  cg_chat_create(const struct cg_config *cfg, struct cg_store *store,
                    struct cg_metrics *metrics, cg_chat **out);
void cg_chat_destroy(cg_chat *chat);

/* Map a SEND destination to its operation. */
enum cg_chat_op cg_chat_route(const char *dest, size_t len);

/* /socket/chat/send: validate body (JSON), take a token from conn's bucket,
 * run the send script, answer on CG_TOPIC_SEND_STATUS. Returns 0 (done will
 * be called) or, without calling done, CG_E_NOMEM or CG_E_CLOSED (the store
 * is closing). */
int cg_chat_send(cg_chat *chat, struct cg_chat_conn *conn,
                 const struct cg_chat_caller *who, const char *body, size_t len,
                 cg_chat_done_cb done, void *ticket, void *data);

/* /socket/chat/recive: confirm one message; answers on
 * CG_TOPIC_RECIVE_STATUS. by_id != 0 confirms by message id instead of
 * msgID (STOMP ACK of a MESSAGE), body is then ignored. Returns as
 * cg_chat_send(). */
int cg_chat_recive(cg_chat *chat, const struct cg_chat_caller *who,
                   const char *body, size_t len, uint64_t by_id,
                   cg_chat_done_cb done, void *ticket, void *data);

/* Parse the body of /socket/chat/sync ({"syncKey":K}; empty body = 0).
 * Returns 0 or CG_E_INVAL. */
int cg_chat_parse_sync(const char *body, size_t len, uint64_t *key_out);

/* Read up to limit messages with id > after_id: from the pending inbox
 * (sync == 0, init) or the history (sync != 0). Init marks what it read as
 * delivered once, so a later read reports it redelivered. limit is clamped
 * to 1000. Returns 0 (cb fires exactly once, possibly with CG_E_STORE or
 * CG_E_CLOSED) or, without calling cb: CG_E_STORE (store not ready),
 * CG_E_CLOSED, CG_E_INVAL (limit 0) or CG_E_NOMEM. */
int cg_chat_fetch(cg_chat *chat, const struct cg_chat_caller *who, int sync,
                  uint64_t after_id, size_t limit,
                  cg_chat_fetch_cb cb, void *ticket, void *data);

/* Render a status body. code 200 uses "成功", others "失败". msgid may be
 * NULL (omitted). Returns a new buffer or NULL on allocation failure. */
struct cg_buf *cg_chat_render_status(int code, const char *msgid, size_t msgid_len,
                                     const char *content);

/* {"code":200,"count":N,"syncKey":K[,"more":bool]} for init/sync ends;
 * more < 0 omits the field (init). */
struct cg_buf *cg_chat_render_init_status(uint64_t count, uint64_t sync_key, int more);

/* The send/status body of a stored message:
 * {"msgID":"..","code":200,"status":"成功","content":"ok","id":N,"time":T}.
 * Returns a new buffer or NULL on allocation failure. */
struct cg_buf *cg_chat_render_send_ok(const char *msgid, size_t msgid_len,
                                      uint64_t id, int64_t time_ms);

/* ---- pure decoding (no store, no allocation kept) ---------------------
 * The validation steps of send and recive, exposed for the fuzz target and
 * the tests. They return a PROTOCOL.md status code: 200 when the body is
 * valid, 400 or 413 otherwise with *reason set. */

#define CG_CHAT_MSGID_MIN 8
#define CG_CHAT_MSGID_MAX 64

struct cg_chat_send_req {
    char        msgid[CG_CHAT_MSGID_MAX + 1]; /* valid msgID, or "" if none
                                                 could be read */
    size_t      msgid_len;
    uint64_t    reciver;        /* receiver uid (> 0) */
    const char *content;        /* UTF-8, may hold NUL; borrowed from doc,
                                   or from the body itself */
    size_t      content_len;    /* bytes */
    const char *reason;         /* why the body was refused (code != 200) */
    char        reason_buf[96];
    void       *doc;            /* the parsed document (json_t *), owned */
};

/* Decode and validate a /socket/chat/send body: a JSON object with msgID
 * (8-64 of [A-Za-z0-9_-]), reciverId or its alias receiverId (a positive
 * integer, as a JSON number or a decimal string; if both are given they
 * must agree; any senderId is ignored) and content (a string of at most
 * cfg->max_content_bytes UTF-8 bytes). Duplicate keys are refused.
 * Returns 200, 400 (malformed) or 413 (content too large, or not UTF-8:
 * raw invalid UTF-8 or an escaped lone surrogate anywhere in the body).
 * out->content may point into body: keep body until done with out.
 * Always call cg_chat_send_req_cleanup() afterwards. */
int  cg_chat_decode_send(const char *body, size_t len, const struct cg_config *cfg,
                         struct cg_chat_send_req *out);
void cg_chat_send_req_cleanup(struct cg_chat_send_req *req);

struct cg_chat_recive_req {
    char        msgid[CG_CHAT_MSGID_MAX + 1];
    size_t      msgid_len;
    const char *reason;         /* code != 200 */
};

/* Decode a /socket/chat/recive body {"msgID":"..."}: 200 or 400. Nothing
 * to clean up. */
int cg_chat_decode_recive(const char *body, size_t len, struct cg_chat_recive_req *out);

#endif
