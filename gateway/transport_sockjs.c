/* transport_sockjs.c - entry points of the SockJS transport (issue #4).
 * Until it lands every SockJS URL answers 404. */
#include "fmacros.h"

#include "chatgate/common.h"
#include "lws_glue.h"

struct cg_sockjs { int unused; };

int cg_sockjs_create(struct cg_server *srv, struct cg_sockjs **out)
{ (void)srv; *out = cg_calloc(1, sizeof **out); return *out ? 0 : CG_E_NOMEM; }
void cg_sockjs_destroy(struct cg_sockjs *sj) { cg_free(sj); }
int cg_sockjs_ws_filter(struct cg_server *srv, struct lws *wsi, const char *path, size_t len)
{ (void)srv; (void)path; (void)len; lws_return_http_status(wsi, 404, NULL); return -1; }
int cg_sockjs_ws_on_open(struct cg_server *srv, struct lws *wsi, struct cg_pss *pss, const char *path, size_t len)
{ (void)srv; (void)wsi; (void)pss; (void)path; (void)len; return -1; }
int cg_sockjs_ws_on_data(struct cg_pss *pss, const void *in, size_t len) { (void)pss; (void)in; (void)len; return -1; }
int cg_sockjs_ws_on_writable(struct cg_pss *pss) { (void)pss; return -1; }
void cg_sockjs_ws_on_closed(struct cg_pss *pss) { (void)pss; }
int cg_sockjs_http_on_request(struct cg_server *srv, struct lws *wsi, struct cg_pss *pss, const char *path, size_t len)
{ (void)srv; (void)pss; (void)path; (void)len; lws_return_http_status(wsi, 404, NULL); return lws_http_transaction_completed(wsi) ? -1 : 0; }
int cg_sockjs_http_on_body(struct cg_pss *pss, const void *in, size_t len) { (void)pss; (void)in; (void)len; return 0; }
int cg_sockjs_http_on_body_done(struct cg_pss *pss) { (void)pss; return 0; }
int cg_sockjs_http_on_writable(struct cg_pss *pss) { (void)pss; return 0; }
void cg_sockjs_http_on_closed(struct cg_pss *pss) { (void)pss; }
