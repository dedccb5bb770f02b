/* transport.h - the two transports that carry STOMP sessions: a plain
 * WebSocket ({base}/client) and SockJS 0.3.3 ({base}/socketServer), and
 * the Origin allow-list both check. server.c hands them lws's events, and
 * each new request or upgrade with the route its table found for it
 * (server/routes.c): no function here reads a request's path. */
#ifndef CG_TRANSPORT_H
#define CG_TRANSPORT_H

#include <stddef.h>

#include "core/origins.h"
#include "http/request.h"

struct cg_sockjs_path;

/* transport_ws.c: STOMP over a plain WebSocket ({base}/client). */
/* Subprotocol choice (PROTOCOL.md: "highest offered wins"): remember the
 * vhost's STOMP protocol entries once after the vhost exists, and call
 * cg_ws_prefer_highest() from LWS_CALLBACK_HTTP_CONFIRM_UPGRADE. */
void cg_ws_protocols_init(struct cg_server *srv);
/* Undo cg_ws_prefer_highest(): first thing in the filter callback of every
 * upgrade, whichever endpoint it is for. */
void cg_ws_protocols_restore(struct cg_server *srv);
/* Refuse an upgrade with an HTTP status (logged); the filter callback
 * returns what this returns, and lws closes the connection after the
 * short answer. */
int  cg_ws_refuse(struct lws *wsi, unsigned int status, const char *why);
/* Refuse an upgrade whose method is not GET: 405 with "Allow: GET"
 * (RFC 6455 4.1; the SockJS spec); returns what cg_ws_refuse() does. */
int  cg_ws_refuse_method(struct lws *wsi);
/* Called at CONFIRM_UPGRADE (which must admit: see server.c): when the
 * Connection header of the upgrade lacks "upgrade", lws closes the
 * connection without a word; answer 400 first. */
void cg_ws_answer_bad_connection(struct lws *wsi);
/* Close a WebSocket with a close frame (code, why) and the peer's answer,
 * started from lws's own timer: Debian's lws 4.1.6 is a _DEBUG build whose
 * libuv path closes twice after a callback returns -1, which loses the
 * close frame. Returns 0; the callback then returns 0 and writes nothing
 * more. */
int  cg_ws_close_politely(struct lws *wsi, int code, const char *why);
void cg_ws_prefer_highest(struct cg_server *srv, struct lws *wsi);
/* The filter callback of an upgrade the route table gave this transport:
 * {base}/client, or SockJS's raw /websocket (sockjs_raw = 1). Checks the
 * Origin and a handshake token; when it admits, pss->kind says which of
 * the two ESTABLISHED opens (CG_PSS_WS, CG_PSS_SOCKJS_RAW_WS). */
int  cg_ws_filter(struct cg_server *srv, struct lws *wsi, struct cg_pss *pss,
                  int sockjs_raw);
int  cg_ws_on_open(struct cg_server *srv, struct lws *wsi, struct cg_pss *pss);
int  cg_ws_on_data(struct cg_pss *pss, const void *in, size_t len);
int  cg_ws_on_writable(struct cg_pss *pss);
void cg_ws_on_closed(struct cg_pss *pss);

/* sockjs_*.c: the SockJS 0.3.3 server at {base}/socketServer
 * (sockjs_internal.h says which file owns what). sp is the path under
 * that prefix ("" or "/info", "/000/abcd/xhr", ...) as the route table
 * parsed it. The WebSocket entry points (sockjs_ws.c) mirror
 * transport_ws.c's: the filter refuses anything but a session's
 * /websocket and, when it admits, sets pss->kind to CG_PSS_SOCKJS_WS. The
 * HTTP ones own the request from cg_sockjs_http_on_request()
 * (sockjs_route.c) on, pss->kind being CG_PSS_SOCKJS_HTTP.
 * cg_sockjs_create()/destroy() (sockjs_session.c) hold the table of
 * SockJS sessions, which outlive single HTTP requests. */
struct cg_sockjs;
int  cg_sockjs_create(struct cg_server *srv, struct cg_sockjs **out);
void cg_sockjs_destroy(struct cg_sockjs *sj);
int  cg_sockjs_ws_filter(struct cg_server *srv, struct lws *wsi, struct cg_pss *pss,
                         const struct cg_sockjs_path *sp);
int  cg_sockjs_ws_on_open(struct cg_server *srv, struct lws *wsi, struct cg_pss *pss);
int  cg_sockjs_ws_on_data(struct cg_pss *pss, const void *in, size_t len);
int  cg_sockjs_ws_on_writable(struct cg_pss *pss);
void cg_sockjs_ws_on_closed(struct cg_pss *pss);
int  cg_sockjs_http_on_request(struct cg_server *srv, struct lws *wsi,
                               struct cg_pss *pss, enum cg_http_method method,
                               const struct cg_sockjs_path *sp);
int  cg_sockjs_http_on_body(struct cg_pss *pss, const void *in, size_t len);
int  cg_sockjs_http_on_body_done(struct cg_pss *pss);
int  cg_sockjs_http_on_writable(struct cg_pss *pss);
void cg_sockjs_http_on_closed(struct cg_pss *pss);
int  cg_sockjs_http_on_timer(struct cg_pss *pss);

/* transport_ll.c: the native long link over TCP (PROTOCOL.md section 9).
 * server.c creates the transport when longlink_listen is set, hands it
 * every accepted descriptor (cg_longlink_accept, the listener's on_fd
 * callback: it owns fd from then on), and destroys it at stop once the
 * sessions are drained (connections still open are cut; the object is
 * freed once their handles have closed). */
struct cg_longlink;
int  cg_longlink_create(struct cg_server *srv, struct cg_longlink **out);
void cg_longlink_accept(void *data, int fd);
void cg_longlink_destroy(struct cg_longlink *ll);

#endif
