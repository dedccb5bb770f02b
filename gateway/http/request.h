/* request.h - the lws connection glue shared by the HTTP API and the
 * transports: the per-session data every connection carries, and the
 * helpers that read a request's path, client address, token and body
 * framing. Which part owns a request is decided by the route table
 * (server/routes.c), once; the owners never look at its path again.
 *
 * Every connection's lws per-session data is a struct cg_pss: a tag and a
 * pointer to the heap object that owns the connection's state (lws frees
 * the pss itself right after CLOSED, and asynchronous work may outlive it,
 * so nothing of value lives inside the pss). */
#ifndef CG_HTTP_REQUEST_H
#define CG_HTTP_REQUEST_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <libwebsockets.h>

#include "core/context.h"

enum cg_pss_kind {
    CG_PSS_NONE = 0,
    CG_PSS_HTTP,      /* struct cg_http_req (http_api.c) */
    CG_PSS_WS,        /* struct cg_ws_conn (transport_ws.c): {base}/client */
    CG_PSS_SOCKJS_RAW_WS, /* struct cg_ws_conn too: SockJS's raw /websocket */
    CG_PSS_SOCKJS_WS, /* struct sj_ws: the framed SockJS websocket (sockjs_ws.c) */
    CG_PSS_SOCKJS_HTTP, /* a SockJS HTTP request: info, xhr, xhr_send,
                           xhr_streaming, eventsource, ... (struct sj_req,
                           sockjs_route.c and sockjs_http.c) */
};

/* A WebSocket's pss gets its kind when the upgrade is admitted (the filter
 * callback) and its obj at ESTABLISHED, from the owner the kind names. */
struct cg_pss {
    enum cg_pss_kind kind;
    void            *obj;
};

/* A request's method, as the route table and the owners compare it. lws
 * knows a request by the header token of its method. */
enum cg_http_method { CG_M_OTHER = 0, CG_M_GET, CG_M_POST, CG_M_OPTIONS, CG_M_HEAD };
enum cg_http_method cg_request_method(struct lws *wsi);

static inline struct cg_server *
cg_server_of(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}

/* Token from the handshake: srect= or token= query argument, or
 * "Authorization: Bearer". Copies at most cap-1 bytes into buf and returns
 * the length, 0 when there is none, -1 when one is present but too long. */
int cg_request_token(struct lws *wsi, char *buf, size_t cap);

/* The credentials of "Authorization: Bearer <x>" alone (never the query
 * string: the backend API's keys must not land in access logs). Returns
 * its length, 0 when there is none, -1 when it does not fit in cap. */
int cg_request_bearer(struct lws *wsi, char *buf, size_t cap);

/* The client's address for logs and per-address limits: the direct peer,
 * or, when the peer is one of trusted_proxies, the right-most untrusted
 * X-Forwarded-For entry (proxies.h has the exact rule). Writes a
 * NUL-terminated string into buf (cap bytes; 64 is enough). */
void cg_request_client_addr(struct cg_server *srv, struct lws *wsi, char *buf,
                            size_t cap);

/* How the body of an HTTP request is framed, read from its headers before
 * lws reads any of the body. lws 4.1 takes the length from an atoll() of
 * Content-Length ("abc" is 0, "-1" is huge), reads up to 100 MB as the body
 * of a POST without one, cannot decode Transfer-Encoding, and parses
 * whatever it did not take as this body as the next request: a request
 * framed CG_BODY_BAD or CG_BODY_CHUNKED, or a POST framed CG_BODY_NONE,
 * must be answered and its connection closed, never kept alive. */
enum cg_body_framing {
    CG_BODY_NONE,       /* no Content-Length, no Transfer-Encoding */
    CG_BODY_LENGTH,     /* one valid Content-Length: *len */
    CG_BODY_BAD,        /* a Content-Length that is not one decimal number
                           (repeated headers, signs, spaces, overflow...) */
    CG_BODY_CHUNKED,    /* any Transfer-Encoding */
};
enum cg_body_framing cg_request_body_framing(struct lws *wsi, uint64_t *len);

/* The clock of a request body being read (issue 13, finding 4). lws cuts
 * a request head after its own 10 s, but renews its timeout with every
 * body byte, so a body trickled a byte at a time held a connection
 * forever. From the moment the head has arrived (cg_body_clock_start),
 * the body must be complete
 *   - within http_request_timeout_ms, and
 *   - within http_body_grace_ms plus one second per http_body_min_rate
 *     bytes received so far (Apache mod_reqtimeout's MinRate; 0 turns
 *     this rule off);
 * else the owner answers 408 with Connection: close. The check runs on an
 * lws timer of the connection (LWS_CALLBACK_TIMER) at least once a second
 * while the body is being read. */
struct cg_body_clock {
    int64_t  start_ms;          /* the head arrived; 0: not running */
    uint64_t got;               /* body bytes so far */
};

void cg_body_clock_start(struct cg_body_clock *c, struct lws *wsi);
void cg_body_clock_add(struct cg_body_clock *c, size_t n);
void cg_body_clock_stop(struct cg_body_clock *c, struct lws *wsi);

/* On LWS_CALLBACK_TIMER. Returns NULL while the body is in time (the timer
 * is armed again), else why the request is cut (the clock is stopped). */
const char *cg_body_clock_check(struct cg_body_clock *c, struct lws *wsi);

#endif
