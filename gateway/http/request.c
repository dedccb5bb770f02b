/* request.c - what the HTTP API and the transports read from a request:
 * its path under the base path, the client's address, its token, and how
 * its body is framed (request.h). */
#include "fmacros.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/config.h"
#include "core/proxies.h"
#include "http/http_body.h"
#include "http/request.h"

const char *
cg_request_path(struct cg_server *srv, struct lws *wsi, char *buf, size_t cap,
                size_t *len)
{
    const char *base = srv->cfg->base_path;
    size_t blen = strlen(base);
    char *uri = NULL;
    int ulen = 0;

    if (lws_http_get_uri_and_method(wsi, &uri, &ulen) < 0 || uri == NULL ||
        ulen <= 0 || (size_t)ulen >= cap)
        return NULL;
    memcpy(buf, uri, (size_t)ulen);
    buf[ulen] = '\0';
    if (strncmp(buf, base, blen) != 0)
        return NULL;
    if (buf[blen] == '\0') {          /* "{base}" alone is "{base}/" */
        *len = 1;
        return "/";
    }
    if (buf[blen] != '/')
        return NULL;                  /* "/Mimix" is not under "/Mimi" */
    *len = (size_t)ulen - blen;
    return buf + blen;
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
    char tmp[256];
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
