/* transport.h - the two transports that carry STOMP sessions: a plain
 * WebSocket ({base}/client) and SockJS 0.3.3 ({base}/socketServer), and
 * the Origin allow-list both check. server.c hands them lws's events. */
#ifndef CG_TRANSPORT_H
#define CG_TRANSPORT_H

#include <stddef.h>

#include "http/request.h"

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

/* sockjs_*.c: the SockJS 0.3.3 server at {base}/socketServer
 * (sockjs_internal.h says which file owns what). path is relative to that
 * prefix ("" or "/info", "/000/abcd/xhr", ...). The WebSocket entry points
 * (sockjs_ws.c) mirror transport_ws.c's; the HTTP ones own the request
 * from cg_sockjs_http_on_request() (sockjs_route.c) on, pss->kind being
 * CG_PSS_SOCKJS_HTTP. cg_sockjs_create()/destroy() (sockjs_session.c) hold
 * the table of SockJS sessions, which outlive single HTTP requests. */
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

/* origins.c: the Origin allow-list of PROTOCOL.md section 2. */
struct cg_origins;
int  cg_origins_create(const char *list, const char *listen, struct cg_origins **out);
void cg_origins_destroy(struct cg_origins *o);
/* 1 if the Origin header value (origin, len) is admitted; host is the
 * request's Host header (same-origin requests are admitted by default). */
int  cg_origins_allowed(const struct cg_origins *o, const char *origin, size_t len,
                        const char *host, size_t host_len);

#endif
