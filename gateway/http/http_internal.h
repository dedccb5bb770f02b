/* http_internal.h - what http_api.c lends the backend API's handlers
 * (backend_api.c): a request's answer, its lifetime and what it carries.
 * Not for use outside gateway/http/. */
#ifndef CG_HTTP_INTERNAL_H
#define CG_HTTP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "http/http_api.h"
#include "http/request.h"

/* Answer r with obj (takes the reference; NULL answers 500) or with
 * {"error":why}. Only the first answer counts. */
void cg_http__respond_json(struct cg_http_req *r, unsigned status, json_t *obj);
void cg_http__respond_error(struct cg_http_req *r, unsigned status, const char *why);
/* One more reference to r, for an asynchronous step; give it back with
 * cg_http__unref() once that step answered (or failed to start). */
struct cg_http_req *cg_http__hold(struct cg_http_req *r);
void cg_http__unref(struct cg_http_req *r);

struct cg_server *cg_http__srv(const struct cg_http_req *r);
struct lws *cg_http__wsi(const struct cg_http_req *r);   /* NULL once gone */
enum cg_http_method cg_http__method(const struct cg_http_req *r);
const char *cg_http__path(const struct cg_http_req *r);  /* under the base path */
const char *cg_http__addr(const struct cg_http_req *r);  /* the client address */
/* The request body (NULL and *len 0 when there is none). */
const char *cg_http__body(const struct cg_http_req *r, size_t *len);
/* The Retry-After of a 429 answer. */
void cg_http__retry_after(struct cg_http_req *r, int64_t seconds);

#endif
