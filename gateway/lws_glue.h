/* lws_glue.h - what server.c's thin lws callback hands off to.
 *
 * Every connection's lws per-session data is a struct cg_pss: a tag and a
 * pointer to the heap object that owns the connection's state (lws frees
 * the pss itself right after CLOSED, and asynchronous work may outlive it,
 * so nothing of value lives inside the pss). */
#ifndef CG_LWS_GLUE_H
#define CG_LWS_GLUE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <libwebsockets.h>

#include "chatgate/server.h"

enum cg_pss_kind {
    CG_PSS_NONE = 0,
    CG_PSS_HTTP,      /* struct cg_http_req (http_api.c) */
    CG_PSS_WS,        /* struct cg_ws_conn (transport_ws.c) */
    CG_PSS_SOCKJS_WS, /* a SockJS websocket, framed or raw (transport_sockjs.c) */
    CG_PSS_SOCKJS_HTTP, /* a SockJS HTTP request: info, xhr, xhr_send,
                           xhr_streaming, eventsource, ... (transport_sockjs.c) */
};

struct cg_pss {
    enum cg_pss_kind kind;
    void            *obj;
};

static inline struct cg_server *
cg_server_of(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}

/* transport_ws.c: STOMP over a plain WebSocket ({base}/client). */
/* Subprotocol choice (PROTOCOL.md: "highest offered wins"): remember the
 * vhost's STOMP protocol entries once after the vhost exists, and call
 * cg_ws_prefer_highest() from LWS_CALLBACK_HTTP_CONFIRM_UPGRADE. */
void cg_ws_protocols_init(struct cg_server *srv);
/* Close a WebSocket with a close frame (code, why) and the peer's answer,
 * started from lws's own timer: Debian's lws 4.1.6 is a _DEBUG build whose
 * libuv path closes twice after a callback returns -1, which loses the
 * close frame. Returns 0; the callback then returns 0 and writes nothing
 * more. */
int  cg_ws_close_politely(struct lws *wsi, int code, const char *why);
void cg_ws_prefer_highest(struct cg_server *srv, struct lws *wsi);
int  cg_ws_filter(struct cg_server *srv, struct lws *wsi, struct cg_pss *pss);
int  cg_ws_on_open(struct cg_server *srv, struct lws *wsi, struct cg_pss *pss);
int  cg_ws_on_data(struct cg_pss *pss, const void *in, size_t len);
int  cg_ws_on_writable(struct cg_pss *pss);
void cg_ws_on_closed(struct cg_pss *pss);

/* transport_sockjs.c: the SockJS 0.3.3 server at {base}/socketServer.
 * path is relative to that prefix ("" or "/info", "/000/abcd/xhr", ...).
 * The WebSocket entry points mirror transport_ws.c's; the HTTP ones own
 * the request from cg_sockjs_http_on_request() on (pss->kind is then
 * CG_PSS_SOCKJS_HTTP). cg_sockjs_create()/destroy() hold the table of
 * SockJS sessions, which outlive single HTTP requests. */
struct cg_sockjs;
int  cg_sockjs_create(struct cg_server *srv, struct cg_sockjs **out);
void cg_sockjs_destroy(struct cg_sockjs *sj);
int  cg_sockjs_ws_filter(struct cg_server *srv, struct lws *wsi,
                         const char *path, size_t len);
int  cg_sockjs_ws_on_open(struct cg_server *srv, struct lws *wsi,
                          struct cg_pss *pss, const char *path, size_t len);
int  cg_sockjs_ws_on_data(struct cg_pss *pss, const void *in, size_t len);
int  cg_sockjs_ws_on_writable(struct cg_pss *pss);
void cg_sockjs_ws_on_closed(struct cg_pss *pss);
int  cg_sockjs_http_on_request(struct cg_server *srv, struct lws *wsi,
                               struct cg_pss *pss, const char *path, size_t len);
int  cg_sockjs_http_on_body(struct cg_pss *pss, const void *in, size_t len);
int  cg_sockjs_http_on_body_done(struct cg_pss *pss);
int  cg_sockjs_http_on_writable(struct cg_pss *pss);
void cg_sockjs_http_on_closed(struct cg_pss *pss);

#define CG_SOCKJS_PREFIX     "/socketServer"
#define CG_SOCKJS_PREFIX_LEN (sizeof CG_SOCKJS_PREFIX - 1)

/* 1 if path (relative to the base path) is under the SockJS prefix. */
static inline int
cg_is_sockjs_path(const char *path, size_t len)
{
    return len >= CG_SOCKJS_PREFIX_LEN &&
           memcmp(path, CG_SOCKJS_PREFIX, CG_SOCKJS_PREFIX_LEN) == 0 &&
           (len == CG_SOCKJS_PREFIX_LEN || path[CG_SOCKJS_PREFIX_LEN] == '/');
}

/* http_api.c: everything that is not a WebSocket. */
int  cg_http_on_request(struct cg_server *srv, struct lws *wsi, struct cg_pss *pss);
int  cg_http_on_body(struct cg_pss *pss, const void *in, size_t len);
int  cg_http_on_body_done(struct cg_pss *pss);
int  cg_http_on_writable(struct cg_pss *pss);
void cg_http_on_closed(struct cg_pss *pss);

/* origins.c: the Origin allow-list of PROTOCOL.md section 2. */
struct cg_origins;
int  cg_origins_create(const char *list, const char *listen, struct cg_origins **out);
void cg_origins_destroy(struct cg_origins *o);
/* 1 if the Origin header value (origin, len) is admitted; host is the
 * request's Host header (same-origin requests are admitted by default). */
int  cg_origins_allowed(const struct cg_origins *o, const char *origin, size_t len,
                        const char *host, size_t host_len);

/* Token from the handshake: srect= or token= query argument, or
 * "Authorization: Bearer". Copies at most cap-1 bytes into buf and returns
 * the length, 0 when there is none, -1 when one is present but too long. */
int cg_request_token(struct lws *wsi, char *buf, size_t cap);

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

/* Path of the request relative to the configured base path, or NULL when
 * the request is outside it. *len receives the length. */
const char *cg_request_path(struct cg_server *srv, struct lws *wsi,
                            char *buf, size_t cap, size_t *len);

#endif
