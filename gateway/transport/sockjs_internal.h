/* sockjs_internal.h - what the four files of the SockJS 0.3.3 server at
 * {base}/socketServer share; nothing outside them includes it (their entry
 * points are in transport.h).
 *
 * The server in four files, each owning one thing:
 *
 *   sockjs_route.c    an HTTP request under the prefix: which SockJS URL
 *                     it is and what it may do there (greeting, info,
 *                     OPTIONS, 404 and 405, the Origin check), CORS and
 *                     cache headers, refused body framing; it hands
 *                     session URLs to sockjs_http.c
 *   sockjs_http.c     the HTTP transports: receivers (xhr, xhr_streaming,
 *                     eventsource, htmlfile, jsonp) and senders (xhr_send,
 *                     jsonp_send), a request's writes and its end
 *   sockjs_session.c  the SockJS sessions of the HTTP transports, which
 *                     outlive requests: their table, their timer, the one
 *                     cg_session each holds and its transport ops; the
 *                     a[...] batches every transport writes
 *   sockjs_ws.c       the framed WebSocket /{server}/{session}/websocket
 *                     (the raw /websocket is transport_ws.c's)
 *
 * session.c and chat.c know nothing of SockJS; the pure framing (URL
 * parsing, JSON quoting, payload decoding) is sockjs_frame.c.
 *
 * Ownership and lifetime (STYLE.md 4). lws owns each connection's pss and
 * frees it after CLOSED / CLOSED_HTTP and when an HTTP transaction
 * completes, so requests and WebSocket conns are heap objects the pss
 * points to, detached from the pss before lws_http_transaction_completed().
 * A request is freed when its transaction completes or its connection
 * closes; before that it is unlinked from its session (the session's
 * pointers to requests are cleared synchronously, never across a turn of
 * the loop). A session's timer is embedded in it: the session is freed in
 * the timer's close callback, so the timer can never outlive it; a
 * WebSocket conn's heartbeat timer likewise. The cg_session is handed
 * back only through cg_session_on_closed(), never from inside a session
 * call: ops->close() marks the SockJS session and its timer ends the
 * cg_session on the next turn. */
#ifndef CG_TRANSPORT_SOCKJS_INTERNAL_H
#define CG_TRANSPORT_SOCKJS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "core/buf.h"
#include "core/config.h"
#include "chat/auth.h"
#include "core/context.h"
#include "http/request.h"
#include "session/close_codes.h"
#include "session/session.h"
#include "transport/sockjs_frame.h"

/* ------------------------------------------------------------------------ */
/* Limits and constants                                                      */
/* ------------------------------------------------------------------------ */

/* Frames popped into one a[...] before it is written. Bigger batches mean
 * fewer writes (and fewer polls) under load; the socket buffer bounds what
 * helps, as in transport_ws.c. */
#define SJ_WRITE_BATCH (64 * 1024)

/* Largest xhr_send / jsonp_send body (413 beyond it). sockjs-client sends
 * everything queued while its previous send was in flight as one array,
 * so this is well above one STOMP frame; it equals session.c's input
 * slack while reading is paused, so one whole body can always be taken. */
#define SJ_SEND_MAX (1024 * 1024)

/* A connection whose last frame cannot be written is cut after this long
 * (the peer is not reading). */
#define SJ_KILL_SECS 2

static const char FRAME_OPEN[] = "o";
static const char FRAME_HEARTBEAT[] = "h";
/* The close frames (close_codes.h): each number is checked against the
 * enum, since a literal cannot be made from it. */
static const char FRAME_GO_AWAY[] = CG_SOCKJS_CLOSE_FRAME(3000, "Go away!");
static const char FRAME_ANOTHER[] =
    CG_SOCKJS_CLOSE_FRAME(2010, "Another connection still open");
static const char FRAME_INTERRUPTED[] =
    CG_SOCKJS_CLOSE_FRAME(1002, "Connection interrupted");
_Static_assert(CG_CLOSE_SOCKJS_GO_AWAY == 3000, "FRAME_GO_AWAY");
_Static_assert(CG_CLOSE_SOCKJS_ANOTHER == 2010, "FRAME_ANOTHER");
_Static_assert(CG_CLOSE_SOCKJS_INTERRUPTED == 1002, "FRAME_INTERRUPTED");

static const char CT_TEXT[] = "text/plain; charset=UTF-8";

/* ------------------------------------------------------------------------ */
/* Types                                                                     */
/* ------------------------------------------------------------------------ */

struct sj_req;

/* Who a request says it is (finding 3 of issue 13): the SHA-256 of the
 * token it carries (srect=, token= or Bearer: cg_request_token()), ""
 * when it carries none; bad when it carries one too long to read. A
 * session remembers the credential of the request that created it, and
 * only requests with the same one reach it (sj_sess_admits()). */
struct sj_cred {
    char     hash[CG_TOKEN_HASH_LEN + 1];
    unsigned bad : 1;
};

/* One HTTP-based SockJS session (the state diagram is in sockjs_session.c). */
struct sj_sess {
    struct cg_sockjs *sj;
    struct sj_sess   *next;         /* bucket chain */
    cg_session       *s;            /* NULL once the STOMP session ended */
    struct sj_req    *recv;         /* the attached receiver, or NULL */
    uv_timer_t        timer;        /* heartbeat / reap / deferred work */
    uint64_t          hb_at;        /* receiver attached: heartbeat due then */
    uint64_t          reap_at;      /* no receiver: reaped then */
    const char       *close_frame;  /* CLOSED: what receivers get */
    unsigned          opened : 1;   /* "o" handed to a receiver */
    unsigned          close_due : 1;/* ops->close(): end the cg_session */
    unsigned          check_due : 1;/* look at the idle session's queue */
    unsigned          hb_due : 1;   /* a heartbeat is owed to the receiver */
    unsigned          gone : 1;     /* reaped: timer closing, memory next */
    enum cg_transport_kind kind;    /* of the first receiver (metrics) */
    char              peer[64];     /* address of the first request */
    struct sj_cred    cred;         /* credential of the first request */
    size_t            keylen;
    char              key[CG_SOCKJS_ID_MAX + 1];   /* the session id */
};

enum sj_cache { SJ_CACHE_NO = 0, SJ_CACHE_YEAR };
enum sj_cors { SJ_CORS_NONE = 0, SJ_CORS_STAR, SJ_CORS_ORIGIN };
enum sj_framing { SJ_FR_CHUNKED = 0, SJ_FR_CLOSE, SJ_FR_H2 };

/* One HTTP request under the SockJS prefix. */
struct sj_req {
    struct cg_sockjs    *sj;
    struct lws          *wsi;       /* NULL once the connection is gone */
    struct cg_pss       *pss;       /* lws's per-session data while attached */
    struct sj_sess      *sess;      /* receiver: the session attached to */
    enum cg_sockjs_route route;
    enum cg_http_method  method;    /* HEAD and the rest: 405 everywhere
                                       (SockJS clients never send them) */
    /* the response */
    unsigned             status;
    const char          *ctype;     /* NULL: no Content-Type (405) */
    const char          *allow;     /* Allow (405) / Allow-Methods (OPTIONS) */
    const char          *oneshot;   /* receiver not attached: its one frame */
    enum sj_cache        cache;
    enum sj_cors         cors;
    enum sj_framing      framing;   /* streaming responses */
    unsigned             receiver : 1;  /* frames flow to this request */
    unsigned             streaming : 1; /* ... several of them */
    unsigned             ready : 1;     /* status and body are final */
    unsigned             hdr_sent : 1;
    unsigned             prelude_sent : 1;
    unsigned             ending : 1;    /* the write in out is the last */
    unsigned             body_over : 1; /* more than SJ_SEND_MAX arrived */
    unsigned             nosniff : 1;
    unsigned             close_after : 1; /* untrusted framing: close after the answer */
    unsigned             flushing : 1;    /* answered; lws still sends the rest */
    unsigned             rx_off : 1;      /* idle receiver: POLLIN off (see req_idle) */
    unsigned             chunked : 1;     /* sender: we decode a chunked body */
    uint8_t              ch_state;        /* its decoder (sockjs_http.c) */
    uint8_t              ch_digits;
    uint32_t             ch_left;
    uint64_t             sent;          /* streamed frame bytes */
    struct cg_wbuf       out;           /* the next write; LWS_PRE headroom */
    struct cg_wbuf       body;          /* sender: the request body */
    struct cg_body_clock clock;         /* sender: while it is read (408) */
    char                 origin[256];   /* reflected when allowed */
    char                 acrh[256];     /* Access-Control-Request-Headers */
    char                 callback[CG_SOCKJS_CALLBACK_MAX + 1];
    char                 peer[64];
    struct sj_cred       cred;          /* session URLs only */
    size_t               keylen;
    char                 key[CG_SOCKJS_ID_MAX + 1];   /* session id */
};

struct cg_sockjs {
    struct cg_server *srv;
    struct sj_sess  **buckets;        /* session table, chained */
    size_t            nbuckets;       /* a power of two */
    size_t            count;
    struct cg_wbuf    scratch;        /* one popped STOMP frame */
    struct cg_wbuf    frame;          /* one SockJS frame being built */
};

static inline const struct cg_config *
cfg_of(const struct cg_sockjs *sj)
{
    return sj->srv->cfg;
}

static inline uint64_t
now_ms(const struct cg_sockjs *sj)
{
    return uv_now(sj->srv->loop);
}

/* ------------------------------------------------------------------------ */
/* Calls between the files                                                   */
/* ------------------------------------------------------------------------ */

/* sockjs_route.c: a request's answer. */
/* A complete response with a known body; written at the next WRITEABLE. */
void sj_respond(struct sj_req *r, unsigned status, const char *ctype,
                const char *body, size_t len);
void sj_respond_text(struct sj_req *r, unsigned status, const char *text);
/* Refuse r with status and close the connection after the answer: its
 * body framing cannot be trusted (sockjs_http.c has why). */
void sj_refuse_framing(struct sj_req *r, unsigned status, const char *text);
/* Write the status line and headers. content_length < 0: a streaming
 * response (chunked on HTTP/1.1, to the connection's end on 1.0). */
int  sj_write_headers(struct sj_req *r, long long content_length);

/* sockjs_http.c: the transports behind a session URL. */
/* Turn reading on again if it was off, and ask for WRITEABLE. */
void sj_req_want_write(struct sj_req *r);
/* A receiving request (xhr, xhr_streaming, eventsource, htmlfile, jsonp). */
void sj_route_receiver(struct cg_sockjs *sj, struct sj_req *r,
                       const struct cg_sockjs_path *sp);
/* The body of xhr_send / jsonp_send has arrived. */
void sj_route_sender(struct cg_sockjs *sj, struct sj_req *r);

/* sockjs_session.c: the session table, sessions, and the a[...] batch. */
struct sj_sess *sj_table_find(const struct cg_sockjs *sj, const char *key, size_t n);
/* A new session for receiver r's id key, with its cg_session; NULL when
 * out of memory. */
struct sj_sess *sj_sess_create(struct cg_sockjs *sj, struct sj_req *r,
                               struct stomp_str key);
/* Read the credential a request carries (struct sj_cred). */
void sj_cred_read(struct lws *wsi, struct sj_cred *c);
/* 1 when a request with credential c from client address peer may use
 * session ss: the same token hash as the request that created it, or,
 * for a session created without a token, no token and the same address. */
int  sj_sess_admits(const struct sj_sess *ss, const struct sj_cred *c,
                    const char *peer);
/* Re-arm the session's timer for the nearest thing due. */
void sj_sess_arm(struct sj_sess *ss);
/* The STOMP session is over: hand it back and remember what receivers get
 * from now on (frame). Never called from inside a session call. */
void sj_sess_end_stomp(struct sj_sess *ss, const char *frame);
/* Attach receiver r to ss, or unlink r from its session. aborted: the
 * connection broke while r was the session's receiver (spec "Handling
 * close": the session ends). */
void sj_req_attach(struct sj_req *r, struct sj_sess *ss);
void sj_req_detach_sess(struct sj_req *r, int aborted);
/* Pop what the session has ready, up to SJ_WRITE_BATCH, as one a[...]
 * frame appended to fb: each STOMP frame (or heart-beat EOL) is one JSON
 * string. Returns the number of frames (0: nothing ready; fb unchanged),
 * *more = 1 when the batch filled before the session ran dry, or < 0. */
int  sj_pop_batch(struct cg_sockjs *sj, cg_session *s, struct cg_wbuf *fb, int *more);
/* Append the JSON string literal of in[0..n) to wb (cg_sockjs_quote()
 * flags), or the C string s. */
int  sj_append_quoted(struct cg_wbuf *wb, const char *in, size_t n, unsigned flags);
int  sj_append_str(struct cg_wbuf *wb, const char *s);

#endif
