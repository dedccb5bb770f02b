/* request.c - what the HTTP API and the transports read from a request:
 * its method, the client's address, its token, and how its body is framed
 * (request.h). */
#include "fmacros.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "chat/auth.h"
#include "core/common.h"
#include "core/config.h"
#include "core/proxies.h"
#include "http/http_body.h"
#include "http/request.h"

enum cg_http_method
cg_request_method(struct lws *wsi)
{
    if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI))    return CG_M_POST;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI))     return CG_M_GET;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_OPTIONS_URI)) return CG_M_OPTIONS;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI))    return CG_M_HEAD;
    return CG_M_OTHER;
}

void
cg_request_client_addr(struct cg_server *srv, struct lws *wsi, char *buf, size_t cap)
{
    char peer[64], xff[512];
    int n;

    lws_get_peer_simple(wsi, peer, sizeof peer);
    if (srv->proxies == NULL || !cg_proxies_trusted(srv->proxies, peer)) {
        snprintf(buf, cap, "%s", peer);
        return;
    }
    /* An over-long header (-1) counts as absent: the proxy is still the
     * peer we can name. */
    n = lws_hdr_copy(wsi, xff, sizeof xff, WSI_TOKEN_X_FORWARDED_FOR);
    cg_proxies_client_addr(srv->proxies, peer, xff, n > 0 ? (size_t)n : 0, buf, cap);
}

enum cg_body_framing
cg_request_body_framing(struct lws *wsi, uint64_t *len)
{
    char clen[32];
    int n;

    *len = 0;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0)
        return CG_BODY_CHUNKED;
    /* -1: longer than any 64-bit number; repeated headers come joined
     * with ',' and fail the parse. */
    n = lws_hdr_copy(wsi, clen, sizeof clen, WSI_TOKEN_HTTP_CONTENT_LENGTH);
    if (n == 0)
        return CG_BODY_NONE;
    if (n < 0 || cg_http_parse_content_length(clen, (size_t)n, len) < 0)
        return CG_BODY_BAD;
    return CG_BODY_LENGTH;
}

int
cg_request_token(struct lws *wsi, char *buf, size_t cap)
{
    static const char *const args[] = { "srect=", "token=" };
    /* "Bearer " and a token of CG_TOKEN_MAX bytes (an app's JWT). */
    char tmp[CG_TOKEN_MAX + 16];
    const char *v;
    int n;

    for (size_t i = 0; i < sizeof args / sizeof *args; i++) {
        v = lws_get_urlarg_by_name(wsi, args[i], tmp, (int)sizeof tmp);
        if (v != NULL && *v) {
            n = (int)strlen(v);
            if ((size_t)n >= cap)
                return -1;
            memcpy(buf, v, (size_t)n + 1);
            explicit_bzero(tmp, sizeof tmp);
            return n;
        }
    }
    n = lws_hdr_copy(wsi, tmp, (int)sizeof tmp, WSI_TOKEN_HTTP_AUTHORIZATION);
    if (n > 7 && strncasecmp(tmp, "Bearer ", 7) == 0) {
        v = tmp + 7;
        while (*v == ' ')
            v++;
        n = (int)strlen(v);
        if ((size_t)n >= cap)
            return -1;
        memcpy(buf, v, (size_t)n + 1);
        explicit_bzero(tmp, sizeof tmp);
        return n;
    }
    explicit_bzero(tmp, sizeof tmp);
    return n < 0 ? -1 : 0;
}

int
cg_request_bearer(struct lws *wsi, char *buf, size_t cap)
{
    char tmp[512];
    const char *v;
    int n;

    n = lws_hdr_copy(wsi, tmp, (int)sizeof tmp, WSI_TOKEN_HTTP_AUTHORIZATION);
    if (n < 0) {
        explicit_bzero(tmp, sizeof tmp);
        return -1;
    }
    if (n <= 7 || strncasecmp(tmp, "Bearer ", 7) != 0) {
        explicit_bzero(tmp, sizeof tmp);
        return 0;
    }
    for (v = tmp + 7; *v == ' '; v++)
        ;
    n = (int)strlen(v);
    if ((size_t)n >= cap) {
        explicit_bzero(tmp, sizeof tmp);
        return -1;
    }
    memcpy(buf, v, (size_t)n + 1);
    explicit_bzero(tmp, sizeof tmp);
    return n;
}

/* ---- the body clock (request.h) ----------------------------------------- */

/* Checked at least this often while a body is being read. */
#define BODY_CLOCK_TICK_MS 1000

/* When the body of c must be complete, by the rules of request.h. */
static int64_t
body_due_ms(const struct cg_body_clock *c, const struct cg_config *cfg)
{
    int64_t due = c->start_ms + cfg->http_request_timeout_ms;

    if (cfg->http_body_min_rate > 0) {
        int64_t extra = (int64_t)(c->got > (uint64_t)INT32_MAX ? INT32_MAX : c->got),
                by_rate = c->start_ms + cfg->http_body_grace_ms +
                          extra * 1000 / cfg->http_body_min_rate;

        if (by_rate < due)
            due = by_rate;
    }
    return due;
}

static void
body_clock_arm(struct cg_body_clock *c, struct lws *wsi, int64_t now)
{
    int64_t wait = body_due_ms(c, cg_server_of(wsi)->cfg) - now;

    if (wait > BODY_CLOCK_TICK_MS)
        wait = BODY_CLOCK_TICK_MS;
    if (wait < 1)
        wait = 1;
    lws_set_timer_usecs(wsi, (lws_usec_t)wait * 1000);
}

void
cg_body_clock_start(struct cg_body_clock *c, struct lws *wsi)
{
    c->start_ms = cg_now_ms();
    c->got = 0;
    body_clock_arm(c, wsi, c->start_ms);
}

void
cg_body_clock_add(struct cg_body_clock *c, size_t n)
{
    c->got += n;
}

void
cg_body_clock_stop(struct cg_body_clock *c, struct lws *wsi)
{
    if (c->start_ms == 0)
        return;
    c->start_ms = 0;
    if (wsi != NULL)
        lws_set_timer_usecs(wsi, LWS_SET_TIMER_USEC_CANCEL);
}

const char *
cg_body_clock_check(struct cg_body_clock *c, struct lws *wsi)
{
    const struct cg_config *cfg = cg_server_of(wsi)->cfg;
    int64_t now = cg_now_ms();
    const char *why;

    if (c->start_ms == 0)
        return NULL;
    if (now < body_due_ms(c, cfg)) {
        body_clock_arm(c, wsi, now);
        return NULL;
    }
    why = now >= c->start_ms + cfg->http_request_timeout_ms
              ? "request not complete in time" : "request body too slow";
    cg_body_clock_stop(c, wsi);
    return why;
}
