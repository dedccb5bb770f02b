/* transport_ws.c - STOMP over a plain WebSocket ({base}/client).
 *
 * Turns lws events into session calls and back (STYLE.md 6); no STOMP
 * knowledge lives here. One struct cg_ws_conn per connection, on the heap:
 *
 *   FILTER_PROTOCOL_CONNECTION  Origin and handshake-token checks (the
 *                               route table chose this transport);
 *                               refusals answer 403/401 and close
 *   ESTABLISHED                 cg_session_create()
 *   RECEIVE                     cg_session_on_bytes()
 *   SERVER_WRITEABLE            pop frames into one buffer, ONE lws_write
 *   CLOSED                      cg_session_on_closed(), free the conn
 *
 * Closing: the session asks through ops->close() or by reporting
 * cg_session_wants_close() after its last frame. Both end in
 * close_politely(): lws_close_reason() and an immediate asynchronous kill
 * from lws's own timer, which sends the close frame and waits briefly for
 * the peer's. Returning -1 from the callback instead would lose the close
 * frame: Debian's lws 4.1.6 is a _DEBUG build whose libuv path closes a
 * second time right after a callback returns -1 ("uv repeat test"). If the
 * peer never lets us write, PENDING_TIMEOUT_CLOSE_SEND ends it. */
#include "fmacros.h"

#include <string.h>
#include <strings.h>

#include "chat/auth.h"
#include "core/common.h"
#include "core/config.h"
#include "core/log.h"
#include "http/request.h"
#include "session/close_codes.h"
#include "session/session.h"
#include "transport/transport.h"

/* Largest batch of frames written in one lws_write. Bigger batches mean
 * fewer syscalls under load; the socket's own buffer bounds what helps. */
#define WS_WRITE_BATCH (64 * 1024)

struct cg_ws_conn {
    struct lws     *wsi;
    cg_session     *s;
    struct cg_wbuf  out;           /* LWS_PRE headroom; freed when idle */
    int             close_code;    /* != 0: close at the next writable */
    int             close_started; /* close_politely() ran */
    char            close_why[64];
    char            peer[64];
};

/* ---- transport ops --------------------------------------------------- */

static void
ws_want_write(void *t)
{
    struct cg_ws_conn *c = t;
    lws_callback_on_writable(c->wsi);
}

static void
ws_pause_read(void *t, int paused)
{
    struct cg_ws_conn *c = t;
    lws_rx_flow_control(c->wsi, !paused);
}

static void
ws_close(void *t, int code, const char *why)
{
    struct cg_ws_conn *c = t;

    if (c->close_code == 0) {
        c->close_code = code ? code : CG_CLOSE_NORMAL;
        snprintf(c->close_why, sizeof c->close_why, "%s", why ? why : "");
    }
    lws_callback_on_writable(c->wsi);
    /* If the peer never lets us write, do not wait for it forever. */
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, 2);
}

int
cg_ws_close_politely(struct lws *wsi, int code, const char *why)
{
    size_t n = why ? strlen(why) : 0;

    if (n > 123)                      /* RFC 6455: control payload <= 125 */
        n = 123;
    /* Reading may be paused; the peer's close frame must get through. */
    lws_rx_flow_control(wsi, 1);
    lws_close_reason(wsi, (enum lws_close_status)code, (unsigned char *)why, n);
    /* KEEPALIVE_IDLE is the one timeout reason lws does not treat as a
     * dead socket, so the close handshake still happens. */
    lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_KEEPALIVE_IDLE, LWS_TO_KILL_ASYNC);
    return 0;
}

static int
close_politely(struct cg_ws_conn *c, int code, const char *why)
{
    c->close_started = 1;
    return cg_ws_close_politely(c->wsi, code, why);
}

static const char *
ws_peer(void *t)
{
    return ((struct cg_ws_conn *)t)->peer;
}

static const struct cg_transport_ops ws_ops = {
    .name       = "ws",
    .kind       = CG_TR_WS,
    .want_write = ws_want_write,
    .pause_read = ws_pause_read,
    .close      = ws_close,
    .peer       = ws_peer,
};

/* SockJS's raw /websocket is exactly this transport at another URL. */
static const struct cg_transport_ops ws_raw_sockjs_ops = {
    .name       = "sockjs-raw-websocket",
    .kind       = CG_TR_SOCKJS_RAW_WS,
    .want_write = ws_want_write,
    .pause_read = ws_pause_read,
    .close      = ws_close,
    .peer       = ws_peer,
};

/* ---- handshake ------------------------------------------------------- */

/* lws closes the connection when the filter returns non-zero; the short
 * answer goes out first. */
int
cg_ws_refuse(struct lws *wsi, unsigned int status, const char *why)
{
    char ctx[64];

    cg_request_client_addr(cg_server_of(wsi), wsi, ctx, sizeof ctx);
    cg_log_ctx(CG_LOG_INFO, ctx, "websocket upgrade refused: %u %s", status, why);
    lws_return_http_status(wsi, status, why);
    return -1;
}

int
cg_ws_refuse_method(struct lws *wsi)
{
    unsigned char buf[LWS_PRE + 256], *start = buf + LWS_PRE, *p = start,
                  *end = buf + sizeof buf - 1;
    char ctx[64];

    cg_request_client_addr(cg_server_of(wsi), wsi, ctx, sizeof ctx);
    cg_log_ctx(CG_LOG_INFO, ctx, "websocket upgrade refused: 405 method is not GET");
    if (lws_add_http_header_status(wsi, HTTP_STATUS_METHOD_NOT_ALLOWED, &p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"allow:",
                                    (const unsigned char *)"GET", 3, &p, end) ||
        lws_add_http_header_content_length(wsi, 0, &p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"connection:",
                                    (const unsigned char *)"close", 5, &p, end))
        return -1;
    if (lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;                    /* closed either way */
    return -1;
}

/* 1 when the comma-separated Connection header holds the token "upgrade". */
static int
connection_has_upgrade(struct lws *wsi)
{
    char v[256];
    int n = lws_hdr_copy(wsi, v, sizeof v, WSI_TOKEN_CONNECTION);

    if (n < 0)
        return 1;                     /* too long to judge: lws decides */
    for (char *save = NULL, *t = strtok_r(v, ", \t", &save); t;
         t = strtok_r(NULL, ", \t", &save))
        if (strcasecmp(t, "upgrade") == 0)
            return 1;
    return 0;
}

void
cg_ws_answer_bad_connection(struct lws *wsi)
{
    static const char msg[] = "\"Connection\" must be \"Upgrade\".";
    unsigned char buf[LWS_PRE + 512], *start = buf + LWS_PRE, *p = start,
                  *end = buf + sizeof buf - 1;
    char ctx[64], up[16];

    /* Only an h1 WebSocket upgrade: lws serves other upgrades as plain
     * HTTP, and HTTP/2 has no Connection header. */
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_COLON_PATH) > 0 ||
        lws_hdr_copy(wsi, up, sizeof up, WSI_TOKEN_UPGRADE) <= 0 ||
        strcasecmp(up, "websocket") != 0 || connection_has_upgrade(wsi))
        return;
    cg_request_client_addr(cg_server_of(wsi), wsi, ctx, sizeof ctx);
    cg_log_ctx(CG_LOG_INFO, ctx, "websocket upgrade refused: 400 no \"upgrade\" in "
               "Connection");
    if (lws_add_http_header_status(wsi, HTTP_STATUS_BAD_REQUEST, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
                                     (const unsigned char *)"text/plain; charset=UTF-8",
                                     25, &p, end) ||
        lws_add_http_header_content_length(wsi, sizeof msg - 1, &p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"connection:",
                                    (const unsigned char *)"close", 5, &p, end) ||
        lws_finalize_http_header(wsi, &p, end))
        return;
    if ((size_t)(end - p) < sizeof msg)
        return;
    memcpy(p, msg, sizeof msg - 1);
    p += sizeof msg - 1;
    /* headers and body in one write: lws closes right after */
    (void)lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS);
}

static int
ws_version_of(struct lws *wsi)
{
    const struct lws_protocols *p = lws_get_protocol(wsi);

    if (p == NULL || p->name == NULL)
        return 0;
    if (strcmp(p->name, "v12.stomp") == 0) return 12;
    if (strcmp(p->name, "v11.stomp") == 0) return 11;
    if (strcmp(p->name, "v10.stomp") == 0) return 10;
    return 0;
}

static const char *const stomp_subprotocols[CG_WS_NPROTO] = {
    "v12.stomp", "v11.stomp", "v10.stomp"
};

void
cg_ws_protocols_init(struct cg_server *srv)
{
    for (int i = 0; i < CG_WS_NPROTO; i++)
        srv->ws_protocols[i] = (struct lws_protocols *)
            lws_vhost_name_to_protocol(srv->vhost, stomp_subprotocols[i]);
}

void
cg_ws_protocols_restore(struct cg_server *srv)
{
    for (int i = 0; i < CG_WS_NPROTO; i++)
        if (srv->ws_protocols[i])
            srv->ws_protocols[i]->name = stomp_subprotocols[i];
}

/* lws binds the FIRST offered subprotocol it knows, but PROTOCOL.md wants
 * the highest offered. lws's protocol selection runs right after this
 * callback, synchronously, on this thread: hide the names of the versions
 * below the best one offered until the filter callback restores them. */
void
cg_ws_prefer_highest(struct cg_server *srv, struct lws *wsi)
{
    char list[256];
    int n, best = CG_WS_NPROTO;

    cg_ws_protocols_restore(srv);
    n = lws_hdr_copy(wsi, list, sizeof list, WSI_TOKEN_PROTOCOL);
    if (n <= 0)
        return;
    for (char *save = NULL, *t = strtok_r(list, ", \t", &save); t;
         t = strtok_r(NULL, ", \t", &save))
        for (int i = 0; i < best; i++)
            if (strcmp(t, stomp_subprotocols[i]) == 0)
                best = i;
    for (int i = best + 1; i < CG_WS_NPROTO; i++)
        if (srv->ws_protocols[i])
            srv->ws_protocols[i]->name = "";   /* matches no offered token */
}

int
cg_ws_filter(struct cg_server *srv, struct lws *wsi, struct cg_pss *pss, int sockjs_raw)
{
    char origin[256], host[256], token[CG_TOKEN_MAX + 1], addr[64];
    const char *why;
    int olen, hlen, tlen, status;

    olen = lws_hdr_copy(wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN);
    if (olen < 0)
        return cg_ws_refuse(wsi, HTTP_STATUS_FORBIDDEN, "origin not allowed");
    if (olen > 0) {
        hlen = lws_hdr_copy(wsi, host, sizeof host, WSI_TOKEN_HOST);
        if (!cg_origins_allowed(srv->origins, origin, (size_t)olen,
                                host, hlen > 0 ? (size_t)hlen : 0))
            return cg_ws_refuse(wsi, HTTP_STATUS_FORBIDDEN, "origin not allowed");
    }
    /* Too many sessions from this address, or the memory budget spent. */
    cg_request_client_addr(srv, wsi, addr, sizeof addr);
    if ((status = cg_session_admit(srv, addr, &why)) != 0)
        return cg_ws_refuse(wsi, (unsigned)status, why);

    /* The token may also come later, in CONNECT; but a token given here
     * that is known to be bad is refused now, as PROTOCOL.md asks. */
    tlen = cg_request_token(wsi, token, sizeof token);
    if (tlen < 0 ||
        (tlen > 0 && cg_auth_token_peek(srv->auth, token, (size_t)tlen) < 0)) {
        srv->metrics.auth_failures++;
        return cg_ws_refuse(wsi, HTTP_STATUS_UNAUTHORIZED, "invalid or expired token");
    }
    /* ESTABLISHED comes to this transport by the kind. */
    pss->kind = sockjs_raw ? CG_PSS_SOCKJS_RAW_WS : CG_PSS_WS;
    pss->obj = NULL;
    return 0;
}

/* ---- connection events ----------------------------------------------- */

int
cg_ws_on_open(struct cg_server *srv, struct lws *wsi, struct cg_pss *pss)
{
    struct cg_ws_conn *c;
    struct cg_session_open open = { 0 };
    char token[CG_TOKEN_MAX + 1];
    int tlen, raw;

    /* The kind the filter set when it admitted the upgrade. */
    if (pss == NULL || (pss->kind != CG_PSS_WS && pss->kind != CG_PSS_SOCKJS_RAW_WS))
        return -1;
    raw = pss->kind == CG_PSS_SOCKJS_RAW_WS;
    if ((c = cg_calloc(1, sizeof *c)) == NULL)
        return -1;
    c->wsi = wsi;
    cg_wbuf_init(&c->out, LWS_PRE);
    cg_request_client_addr(srv, wsi, c->peer, sizeof c->peer);
    /* Headers are still readable at ESTABLISHED in lws 4.1. */
    tlen = cg_request_token(wsi, token, sizeof token);
    if (tlen > 0) {
        open.token = token;
        open.token_len = (size_t)tlen;
    }
    open.ws_version = ws_version_of(wsi);
    c->s = cg_session_create(srv, raw ? &ws_raw_sockjs_ops : &ws_ops, c, &open);
    explicit_bzero(token, sizeof token);
    if (c->s == NULL) {
        cg_free(c);
        return -1;
    }
    pss->obj = c;
    return 0;
}

int
cg_ws_on_data(struct cg_pss *pss, const void *in, size_t len)
{
    struct cg_ws_conn *c = pss ? pss->obj : NULL;

    if (c == NULL || c->s == NULL)
        return -1;
    (void)cg_session_on_bytes(c->s, in, len);
    return 0;
}

int
cg_ws_on_writable(struct cg_pss *pss)
{
    struct cg_ws_conn *c = pss ? pss->obj : NULL;
    const char *why = NULL;
    int n, code = 0, more = 0;

    if (c == NULL || c->s == NULL)
        return -1;
    if (c->close_started)
        return 0;
    if (c->close_code) {
        if (lws_partial_buffered(c->wsi)) {
            lws_callback_on_writable(c->wsi);   /* close frame after the rest */
            return 0;
        }
        return close_politely(c, c->close_code, c->close_why);
    }

    cg_wbuf_reset(&c->out);
    for (;;) {
        if (c->out.len >= WS_WRITE_BATCH) {
            more = 1;                 /* batch full: come back for the rest */
            break;
        }
        n = cg_session_pop_frame(c->s, &c->out);
        if (n < 0)
            return -1;
        if (n == 0)
            break;                    /* nothing ready; the session will ask */
    }
    if (c->out.len > 0 &&
        lws_write(c->wsi, (unsigned char *)cg_wbuf_data(&c->out), c->out.len,
                  LWS_WRITE_TEXT) < (int)c->out.len)
        return -1;
    if (cg_session_wants_close(c->s, &code, &why)) {
        /* lws closes a connection whose output is still buffered without a
         * close frame (it flushes, then kills the socket): the peer would
         * see 1006 instead of our code. Close once the buffer is out. */
        if (lws_partial_buffered(c->wsi)) {
            c->close_code = code ? code : CG_CLOSE_NORMAL;
            snprintf(c->close_why, sizeof c->close_why, "%s", why ? why : "");
            lws_callback_on_writable(c->wsi);
            lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, 5);
            return 0;
        }
        return close_politely(c, code, why);
    }
    if (more)
        lws_callback_on_writable(c->wsi);
    else {
        cg_wbuf_cleanup(&c->out);     /* idle connections hold no buffer */
        cg_wbuf_init(&c->out, LWS_PRE);
    }
    return 0;
}

void
cg_ws_on_closed(struct cg_pss *pss)
{
    struct cg_ws_conn *c = pss ? pss->obj : NULL;

    if (c == NULL)
        return;
    pss->obj = NULL;
    if (c->s)
        cg_session_on_closed(c->s);
    cg_wbuf_cleanup(&c->out);
    cg_free(c);
}
