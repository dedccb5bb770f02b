/* sockjs_route.c - what an HTTP request under {base}/socketServer is, and
 * what it may do there.
 *
 * Owns: the start of every SockJS HTTP request (cg_sockjs_http_on_request):
 * its method, its Origin (the allow-list of PROTOCOL.md section 2 and the
 * CORS headers that follow from it), its body framing, and the answers
 * that need no session - the greeting, /info, OPTIONS, 404 and 405 - and
 * the status line and headers of every SockJS answer (sj_respond,
 * sj_write_headers). Session URLs go on to sockjs_http.c. The URL comes
 * parsed: the route table (server/routes.c) ran cg_sockjs_parse_path()
 * (sockjs_frame.c) on it.
 *
 *   URL (relative to the prefix)     handled by
 *   "" "/"                           greeting, "Welcome to SockJS!\n"
 *   /info                            GET (+ OPTIONS): capabilities, CORS
 *   /websocket                       raw WebSocket: STOMP bytes, no framing
 *                                    (transport_ws.c); here a plain GET: 400
 *   /{server}/{session}/websocket    framed WebSocket (sockjs_ws.c); here a
 *                                    plain GET: 400
 *   /{server}/{session}/xhr ...      HTTP transports (sockjs_http.c)
 *   /iframe*.html, anything else     404
 *
 * No iframe page: sockjs-client 1.x needs /iframe.html only for its
 * iframe-* transports (browsers without CORS XHR, IE 9 and older), and the
 * page would load sockjs.js from a CDN into this origin, where the token
 * lives. Every browser the web client supports has WebSocket or CORS XHR.
 * jsonp and htmlfile exist behind sockjs_jsonp (off by default) for the
 * same old browsers; they echo a callback name, so it is checked strictly
 * and their answers carry X-Content-Type-Options: nosniff. */
#include "fmacros.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/common.h"
#include "core/config.h"
#include "core/context.h"
#include "core/log.h"
#include "http/request.h"
#include "transport/sockjs_frame.h"
#include "transport/sockjs_internal.h"
#include "transport/transport.h"

#define ONE_YEAR_S 31536000

static const char CT_JSON[] = "application/json; charset=UTF-8";

/* ------------------------------------------------------------------------ */
/* Answers                                                                   */
/* ------------------------------------------------------------------------ */

/* A complete response with a known body; written at the next WRITEABLE. */
void
sj_respond(struct sj_req *r, unsigned status, const char *ctype, const char *body,
           size_t len)
{
    r->status = status;
    r->ctype = ctype;
    r->receiver = 0;
    r->streaming = 0;
    r->ready = 1;
    cg_wbuf_reset(&r->out);
    if (len > 0 && cg_wbuf_append(&r->out, body, len) < 0) {
        r->status = 500;
        r->out.len = 0;
    }
    sj_req_want_write(r);
}

void
sj_respond_text(struct sj_req *r, unsigned status, const char *text)
{
    sj_respond(r, status, CT_TEXT, text, strlen(text));
}

static void
respond_405(struct sj_req *r, const char *allow)
{
    r->allow = allow;
    sj_respond(r, 405, NULL, NULL, 0);
}

static int
add_hdr(struct lws *wsi, const char *name, const char *value,
        unsigned char **p, unsigned char *end)
{
    return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                       (const unsigned char *)value,
                                       (int)strlen(value), p, end);
}

/* Write the status line and headers. content_length < 0: a streaming
 * response (chunked on HTTP/1.1, to the connection's end on 1.0). */
int
sj_write_headers(struct sj_req *r, long long content_length)
{
    unsigned char buf[LWS_PRE + 2048], *start = buf + LWS_PRE, *p = start,
                  *end = buf + sizeof buf - 1;
    struct lws *wsi = r->wsi;
    int rc;

    if (content_length >= 0) {
        rc = lws_add_http_common_headers(wsi, r->status, r->ctype,
                                         (lws_filepos_t)content_length, &p, end);
    } else if (r->framing == SJ_FR_CHUNKED) {
        rc = lws_add_http_header_status(wsi, r->status, &p, end) ||
             lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
                                          (const unsigned char *)r->ctype,
                                          (int)strlen(r->ctype), &p, end) ||
             add_hdr(wsi, "transfer-encoding:", "chunked", &p, end);
    } else {
        /* HTTP/1.0 (lws adds "connection: close") and HTTP/2. */
        rc = lws_add_http_common_headers(wsi, r->status, r->ctype,
                                         LWS_ILLEGAL_HTTP_CONTENT_LEN, &p, end);
    }
    if (rc)
        return -1;
    if (r->cache == SJ_CACHE_YEAR) {
        char expires[64];
        time_t t = time(NULL) + ONE_YEAR_S;
        struct tm tm;

        gmtime_r(&t, &tm);
        strftime(expires, sizeof expires, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        if (add_hdr(wsi, "cache-control:", "public, max-age=31536000", &p, end) ||
            add_hdr(wsi, "expires:", expires, &p, end) ||
            add_hdr(wsi, "access-control-max-age:", "31536000", &p, end))
            return -1;
    } else if (add_hdr(wsi, "cache-control:",
                       "no-store, no-cache, must-revalidate, max-age=0", &p, end)) {
        return -1;
    }
    if (r->cors == SJ_CORS_STAR &&
        add_hdr(wsi, "access-control-allow-origin:", "*", &p, end))
        return -1;
    if (r->cors == SJ_CORS_ORIGIN &&
        (add_hdr(wsi, "access-control-allow-origin:", r->origin, &p, end) ||
         add_hdr(wsi, "access-control-allow-credentials:", "true", &p, end) ||
         add_hdr(wsi, "vary:", "Origin", &p, end)))
        return -1;
    if (r->allow != NULL) {
        if (r->method == CG_M_OPTIONS && r->status < 300) {
            if (add_hdr(wsi, "access-control-allow-methods:", r->allow, &p, end) ||
                (r->acrh[0] &&
                 add_hdr(wsi, "access-control-allow-headers:", r->acrh, &p, end)))
                return -1;
        } else if (add_hdr(wsi, "allow:", r->allow, &p, end)) {
            return -1;
        }
    }
    if (r->nosniff && add_hdr(wsi, "x-content-type-options:", "nosniff", &p, end))
        return -1;
    if (r->close_after && add_hdr(wsi, "connection:", "close", &p, end))
        return -1;
    return lws_finalize_write_http_header(wsi, start, &p, end) ? -1 : 0;
}

/* ------------------------------------------------------------------------ */
/* Routing                                                                   */
/* ------------------------------------------------------------------------ */

/* CORS and the Origin allow-list (PROTOCOL.md 2). Returns 1 when the
 * request's Origin is admitted (none is admitted), 0 when it is not; an
 * admitted origin is reflected with credentials - "null" too, when the
 * allow-list admits it (allowed_origins "*"), as sockjs-node does:
 * sockjs-client sends XHRs with credentials, and browsers refuse "*" with
 * them. No Origin gets "*" without credentials. An origin that is not
 * admitted is never reflected. */
static int
cors_check(struct cg_sockjs *sj, struct sj_req *r)
{
    char host[256];
    int olen, hlen;

    olen = lws_hdr_copy(r->wsi, r->origin, sizeof r->origin, WSI_TOKEN_ORIGIN);
    if (olen == 0) {
        r->cors = SJ_CORS_STAR;
        return 1;
    }
    if (olen < 0) {
        r->origin[0] = '\0';
        r->cors = SJ_CORS_NONE;
        return 0;
    }
    hlen = lws_hdr_copy(r->wsi, host, sizeof host, WSI_TOKEN_HOST);
    if (!cg_origins_allowed(sj->srv->origins, r->origin, (size_t)olen, host,
                            hlen > 0 ? (size_t)hlen : 0)) {
        r->cors = SJ_CORS_NONE;
        return 0;
    }
    r->cors = SJ_CORS_ORIGIN;
    return 1;
}

static void
route_info(struct sj_req *r)
{
    char body[128];
    uint32_t entropy = 0;
    int n;

    lws_get_random(lws_get_context(r->wsi), &entropy, sizeof entropy);
    n = snprintf(body, sizeof body,
                 "{\"websocket\":true,\"cookie_needed\":false,"
                 "\"origins\":[\"*:*\"],\"entropy\":%u}", (unsigned)entropy);
    sj_respond(r, 200, CT_JSON, body, (size_t)n);
}

static void
route_options(struct sj_req *r, const char *methods)
{
    int n = lws_hdr_copy(r->wsi, r->acrh, sizeof r->acrh,
                         WSI_TOKEN_HTTP_AC_REQUEST_HEADERS);

    if (n <= 0)
        r->acrh[0] = '\0';
    r->allow = methods;
    r->cache = SJ_CACHE_YEAR;
    sj_respond(r, 204, NULL, NULL, 0);
}

/* Refuse r with status and close the connection after the answer: its
 * framing cannot be trusted (sockjs_http.c's top comment has why). */
void
sj_refuse_framing(struct sj_req *r, unsigned status, const char *text)
{
    cg_log_ctx(CG_LOG_INFO, r->peer, "SockJS request refused (%u %s): closing the "
               "connection after the answer", status, text);
    r->close_after = 1;
    sj_respond_text(r, status, text);
}

/* 1 when r is a send whose body we can decode ourselves: HTTP/1.1 with
 * "Transfer-Encoding: chunked" alone and no Content-Length (both at once
 * is how requests are smuggled: refused). */
static int
sender_chunked_ok(struct sj_req *r)
{
    char te[32], v[16];

    if (r->route != CG_SJ_XHR_SEND && r->route != CG_SJ_JSONP_SEND)
        return 0;
    if (r->method != CG_M_POST ||
        lws_hdr_total_length(r->wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 ||
        lws_hdr_copy(r->wsi, te, sizeof te, WSI_TOKEN_HTTP_TRANSFER_ENCODING) != 7 ||
        strcasecmp(te, "chunked") != 0)
        return 0;
    return lws_hdr_copy(r->wsi, v, sizeof v, WSI_TOKEN_HTTP) == 8 &&
           strcmp(v, "HTTP/1.1") == 0;
}

/* Check r's framing before lws reads any of its body. Returns 1 when r
 * was refused; else 0 with *framing and *len. */
static int
framing_refused(struct sj_req *r, enum cg_body_framing *framing, uint64_t *len)
{
    *framing = cg_request_body_framing(r->wsi, len);
    if (*framing == CG_BODY_CHUNKED && sender_chunked_ok(r)) {
        /* sockjs_http.c decodes it; lws's framing of what follows cannot
         * be trusted, so the connection closes after the answer. */
        r->chunked = 1;
        r->close_after = 1;
        return 0;
    }
    if (*framing == CG_BODY_CHUNKED) {
        /* Browsers' XHR always sends Content-Length. */
        sj_refuse_framing(r, 411, "Content-Length required: chunked request "
                          "bodies are not supported.");
        return 1;
    }
    if (*framing == CG_BODY_BAD) {
        sj_refuse_framing(r, 400, "Bad Content-Length.");
        return 1;
    }
    if (*len > SJ_SEND_MAX) {
        sj_refuse_framing(r, 413, "Payload too large.");
        return 1;
    }
    return 0;
}

int
cg_sockjs_http_on_request(struct cg_server *srv, struct lws *wsi, struct cg_pss *pss,
                          enum cg_http_method method, const struct cg_sockjs_path *sp)
{
    struct cg_sockjs *sj = srv->sockjs;
    enum cg_body_framing framing;
    struct sj_req *r;
    uint64_t blen;
    int admitted;

    if ((r = cg_calloc(1, sizeof *r)) == NULL)
        return -1;
    r->sj = sj;
    r->wsi = wsi;
    r->pss = pss;
    cg_wbuf_init(&r->out, LWS_PRE);
    cg_wbuf_init(&r->body, 0);
    cg_request_client_addr(srv, wsi, r->peer, sizeof r->peer);
    pss->kind = CG_PSS_SOCKJS_HTTP;
    pss->obj = r;
    r->method = method;
    r->route = sp->route;
    if (sp->session.len > 0)                   /* <= CG_SOCKJS_ID_MAX */
        memcpy(r->key, sp->session.ptr, sp->session.len);
    r->keylen = sp->session.len;
    if (r->keylen > 0)
        sj_cred_read(wsi, &r->cred);
    admitted = cors_check(sj, r);
    if (framing_refused(r, &framing, &blen))
        return 0;

    switch (sp->route) {
    case CG_SJ_GREETING:
        if (r->method != CG_M_GET)
            respond_405(r, "GET");
        else
            sj_respond_text(r, 200, "Welcome to SockJS!\n");
        return 0;
    case CG_SJ_INFO:
        if (r->method == CG_M_OPTIONS)
            route_options(r, "OPTIONS, GET");
        else if (r->method == CG_M_GET)
            route_info(r);
        else
            respond_405(r, "OPTIONS, GET");
        return 0;
    case CG_SJ_RAW_WEBSOCKET:
    case CG_SJ_WEBSOCKET:
        /* An upgrade never gets here (the route table gives it to
         * transport_ws.c or sockjs_ws.c); a plain request does. */
        if (r->method != CG_M_GET)
            respond_405(r, "GET");
        else
            sj_respond_text(r, 400, "Can \"Upgrade\" only to \"WebSocket\".");
        return 0;
    case CG_SJ_HTMLFILE:
    case CG_SJ_JSONP:
    case CG_SJ_JSONP_SEND:
        if (!cfg_of(sj)->sockjs_jsonp) {
            sj_respond_text(r, 404, "Not found");
            return 0;
        }
        break;
    case CG_SJ_NOT_FOUND:
        sj_respond_text(r, 404, "Not found");
        return 0;
    default:
        break;
    }

    /* Session transports. */
    if (r->method == CG_M_OPTIONS &&
        (sp->route == CG_SJ_XHR || sp->route == CG_SJ_XHR_SEND ||
         sp->route == CG_SJ_XHR_STREAMING)) {
        route_options(r, "OPTIONS, POST");
        return 0;
    }
    {
        int post = sp->route == CG_SJ_XHR || sp->route == CG_SJ_XHR_SEND ||
                   sp->route == CG_SJ_XHR_STREAMING || sp->route == CG_SJ_JSONP_SEND;

        if (r->method != (post ? CG_M_POST : CG_M_GET)) {
            respond_405(r, post ? (sp->route == CG_SJ_JSONP_SEND ? "POST" : "OPTIONS, POST")
                                : "GET");
            return 0;
        }
    }
    if (!admitted) {
        /* A listed-but-wrong Origin (PROTOCOL.md 2); a missing one is fine. */
        char ctx[96];

        snprintf(ctx, sizeof ctx, "sockjs %s", r->peer);
        cg_log_ctx(CG_LOG_INFO, ctx, "SockJS request refused: 403 origin not allowed");
        sj_respond_text(r, 403, "Origin not allowed");
        return 0;
    }
    if (sp->route == CG_SJ_XHR_SEND || sp->route == CG_SJ_JSONP_SEND) {
        /* The body comes with HTTP_BODY and lws announces its end with
         * BODY_COMPLETION (also for an explicit Content-Length: 0). */
        if (framing != CG_BODY_NONE) {
            cg_body_clock_start(&r->clock, wsi);    /* request.h: 408 */
            return 0;
        }
        /* No body, but lws would read what follows as one. */
        r->close_after = 1;
        sj_route_sender(sj, r);
        return 0;
    }
    sj_route_receiver(sj, r, sp);
    return 0;
}

