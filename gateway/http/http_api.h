/* http_api.h - the REST API, health checks, metrics and the web client's
 * files: every HTTP request that is neither a WebSocket nor SockJS
 * (server.c's route table sends it here). */
#ifndef CG_HTTP_API_H
#define CG_HTTP_API_H

#include <stddef.h>

#include "http/request.h"

/* http_api.c: everything that is not a WebSocket. */
/* A new request whose path (relative to the base path, NULL when outside
 * it or too long) is not SockJS's. */
int  cg_http_on_request(struct cg_server *srv, struct lws *wsi, struct cg_pss *pss,
                        const char *path, size_t plen);
int  cg_http_on_body(struct cg_pss *pss, const void *in, size_t len);
int  cg_http_on_body_done(struct cg_pss *pss);
int  cg_http_on_writable(struct cg_pss *pss);
void cg_http_on_closed(struct cg_pss *pss);

#endif
