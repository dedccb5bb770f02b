/* sockjs_ws.c - SockJS's framed WebSocket, /{server}/{session}/websocket.
 *
 * Owns: one struct sj_ws per connection, from the upgrade's filter to
 * CLOSED, with its cg_session, its heartbeat timer and the message being
 * reassembled. The raw /websocket is not here: it is transport_ws.c's
 * plain transport at another URL.
 *
 * It mirrors transport_ws.c: the session is created at ESTABLISHED and
 * ends at CLOSED. It sends "o" first, each batch of popped frames as one
 * a[...] message (sj_pop_batch), "h" after sockjs_heartbeat_ms without a
 * write, and c[3000,"Go away!"] before it closes (1000); a message that is
 * not a JSON string or array of strings closes it (1002), and so does one
 * over SJ_WS_MSG_MAX (1009). One message per WRITEABLE callback. */
#include "fmacros.h"

#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "chat/auth.h"
#include "core/common.h"
#include "core/config.h"
#include "core/context.h"
#include "core/log.h"
#include "http/request.h"
#include "session/close_codes.h"
#include "session/session.h"
#include "transport/sockjs_frame.h"
#include "transport/sockjs_internal.h"
#include "transport/transport.h"

/* Largest message on the framed WebSocket (closed with 1009 beyond it):
 * the same reasoning and the same bound as SJ_SEND_MAX. */
#define SJ_WS_MSG_MAX (1024 * 1024)

/* One SockJS WebSocket connection (framed; the raw /websocket is the plain
 * transport of transport_ws.c at another URL). */
struct sj_ws {
    struct cg_sockjs *sj;
    struct lws       *wsi;
    cg_session       *s;
    struct cg_wbuf    out;            /* LWS_PRE headroom; freed when idle */
    struct cg_wbuf    in;             /* framed: the message being reassembled */
    uv_timer_t        hb;             /* framed: heartbeat */
    unsigned          open_sent : 1;  /* framed: "o" went out */
    unsigned          hb_due : 1;
    unsigned          go_away : 1;    /* framed: send the close frame, then close */
    unsigned          c_sent : 1;     /* framed: the close frame went out */
    unsigned          closing : 1;    /* the WebSocket close has started */
    char              peer[64];
};

static void
ws_want_write(void *t)
{
    lws_callback_on_writable(((struct sj_ws *)t)->wsi);
}

static void
ws_pause_read(void *t, int paused)
{
    lws_rx_flow_control(((struct sj_ws *)t)->wsi, !paused);
}

static void
ws_close(void *t, int code, const char *why)
{
    struct sj_ws *c = t;

    (void)code;                       /* SockJS speaks its own close frame: */
    (void)why;
    c->go_away = 1;                   /* c[3000,"Go away!"], then close */
    lws_callback_on_writable(c->wsi);
    /* If the peer never lets us write, do not wait for it forever. */
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, SJ_KILL_SECS);
}

static const char *
ws_peer(void *t)
{
    return ((struct sj_ws *)t)->peer;
}

static const struct cg_transport_ops ops_ws = {
    .name = "sockjs-websocket", .kind = CG_TR_SOCKJS_WS,
    .want_write = ws_want_write, .pause_read = ws_pause_read,
    .close = ws_close, .peer = ws_peer,
};

static void
on_ws_hb(uv_timer_t *t)
{
    struct sj_ws *c = t->data;

    c->hb_due = 1;
    lws_callback_on_writable(c->wsi);
}

static void
ws_hb_restart(struct sj_ws *c)
{
    uint64_t ms = (uint64_t)cfg_of(c->sj)->sockjs_heartbeat_ms;

    c->hb_due = 0;
    uv_timer_start(&c->hb, on_ws_hb, ms, ms);
}

int
cg_sockjs_ws_filter(struct cg_server *srv, struct lws *wsi, struct cg_pss *pss,
                    const struct cg_sockjs_path *sp)
{
    char origin[256], host[256], addr[64];
    const char *why;
    int olen, hlen, status;

    /* The route table gives the raw /websocket to transport_ws.c; any
     * other SockJS URL takes no upgrade. */
    if (sp->route != CG_SJ_WEBSOCKET)
        return cg_ws_refuse(wsi, HTTP_STATUS_NOT_FOUND, "no websocket endpoint here");
    olen = lws_hdr_copy(wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN);
    if (olen < 0)
        return cg_ws_refuse(wsi, HTTP_STATUS_FORBIDDEN, "origin not allowed");
    if (olen > 0) {
        hlen = lws_hdr_copy(wsi, host, sizeof host, WSI_TOKEN_HOST);
        if (!cg_origins_allowed(srv->origins, origin, (size_t)olen,
                                host, hlen > 0 ? (size_t)hlen : 0))
            return cg_ws_refuse(wsi, HTTP_STATUS_FORBIDDEN, "origin not allowed");
    }
    /* An HTTP session of the same id was opened by someone: only the
     * same credential may use its id (sockjs_session.c, sj_sess_admits). */
    {
        struct sj_sess *ss = sj_table_find(srv->sockjs, sp->session.ptr,
                                           sp->session.len);
        struct sj_cred cred;
        char peer[64];

        if (ss != NULL) {
            sj_cred_read(wsi, &cred);
            cg_request_client_addr(srv, wsi, peer, sizeof peer);
            if (!sj_sess_admits(ss, &cred, peer))
                return cg_ws_refuse(wsi, HTTP_STATUS_FORBIDDEN,
                              "session opened with another credential");
        }
    }
    /* Too many sessions from this address, or the memory budget spent. */
    cg_request_client_addr(srv, wsi, addr, sizeof addr);
    if ((status = cg_session_admit(srv, addr, &why)) != 0)
        return cg_ws_refuse(wsi, (unsigned)status, why);
    /* The token is checked at CONNECT: a SockJS client cannot read a 401
     * from a refused upgrade, it would only fall back to another
     * transport. CONNECT answers ERROR, then c[3000,"Go away!"]. */
    pss->kind = CG_PSS_SOCKJS_WS;     /* ESTABLISHED comes here by the kind */
    pss->obj = NULL;
    return 0;
}

int
cg_sockjs_ws_on_open(struct cg_server *srv, struct lws *wsi, struct cg_pss *pss)
{
    struct cg_session_open open = { 0 };
    struct sj_ws *c;
    char token[CG_TOKEN_MAX + 1];
    int tlen;

    if ((c = cg_calloc(1, sizeof *c)) == NULL)
        return -1;
    c->sj = srv->sockjs;
    c->wsi = wsi;
    cg_wbuf_init(&c->out, LWS_PRE);
    cg_wbuf_init(&c->in, 0);
    cg_request_client_addr(srv, wsi, c->peer, sizeof c->peer);
    tlen = cg_request_token(wsi, token, sizeof token);
    if (tlen > 0) {
        open.token = token;
        open.token_len = (size_t)tlen;
    }
    /* sockjs-client offers no STOMP subprotocol: CONNECT decides. */
    c->s = cg_session_create(srv, &ops_ws, c, &open);
    explicit_bzero(token, sizeof token);
    if (c->s == NULL) {
        cg_free(c);
        return -1;
    }
    uv_timer_init(srv->loop, &c->hb);        /* cannot fail */
    c->hb.data = c;
    ws_hb_restart(c);
    lws_callback_on_writable(wsi);           /* the open frame */
    pss->obj = c;
    return 0;
}

int
cg_sockjs_ws_on_data(struct cg_pss *pss, const void *in, size_t len)
{
    struct sj_ws *c = pss->kind == CG_PSS_SOCKJS_WS ? pss->obj : NULL;
    size_t n = 0;
    int rc;

    if (c == NULL || c->s == NULL)
        return -1;
    if (c->closing)
        return 0;                     /* only the peer's close frame matters now */
    /* A message is one JSON payload; reassemble it first. */
    if (c->in.len + len > SJ_WS_MSG_MAX) {
        cg_log_ctx(CG_LOG_INFO, c->peer, "SockJS websocket message over %d bytes: "
                   "closed", SJ_WS_MSG_MAX);
        c->closing = 1;
        cg_ws_close_politely(c->wsi, CG_CLOSE_TOO_BIG,
                             "message too big");
        return 0;
    }
    if (cg_wbuf_append(&c->in, in, len) < 0)
        return -1;
    if (!lws_is_final_fragment(c->wsi) || lws_remaining_packet_payload(c->wsi) > 0)
        return 0;
    if (c->in.len == 0)
        return 0;                     /* empty messages are ignored (spec) */
    rc = cg_sockjs_decode(cg_wbuf_data(&c->in), c->in.len, CG_SJ_DECODE_SINGLE,
                          cg_wbuf_data(&c->in), &n, NULL, NULL);
    c->in.len = 0;
    if (c->in.cap > 64 * 1024) {      /* keep a small buffer, drop a big one */
        cg_wbuf_cleanup(&c->in);
        cg_wbuf_init(&c->in, 0);
    }
    if (rc < 0) {
        cg_log_ctx(CG_LOG_INFO, c->peer, "SockJS websocket message: %s closed",
                   cg_sockjs_decode_strerror(rc));
        c->closing = 1;
        cg_ws_close_politely(c->wsi, CG_CLOSE_PROTOCOL,
                             "Broken JSON encoding.");
        return 0;
    }
    if (n > 0)
        (void)cg_session_on_bytes(c->s, cg_wbuf_data(&c->in), n);
    return 0;
}

static int
ws_write(struct sj_ws *c, const char *data, size_t n)
{
    cg_wbuf_reset(&c->out);
    if (cg_wbuf_append(&c->out, data, n) < 0)
        return -1;
    if (lws_write(c->wsi, (unsigned char *)cg_wbuf_data(&c->out), n,
                  LWS_WRITE_TEXT) < (int)n)
        return -1;
    return 0;
}

/* Framed: o, then a[...] batches and h, then c[3000,"Go away!"] and the
 * close. One message per callback. */
static int
framed_writable(struct sj_ws *c)
{
    struct cg_wbuf *fb = &c->sj->frame;
    int n, more;

    if (c->closing)
        return 0;
    if (c->c_sent) {
        c->closing = 1;
        return cg_ws_close_politely(c->wsi, CG_CLOSE_NORMAL, "Go away!");
    }
    if (!c->open_sent) {
        c->open_sent = 1;
        if (ws_write(c, FRAME_OPEN, 1) < 0)
            return -1;
        ws_hb_restart(c);
        lws_callback_on_writable(c->wsi);
        return 0;
    }
    if (c->go_away) {
        c->c_sent = 1;
        if (ws_write(c, FRAME_GO_AWAY, sizeof FRAME_GO_AWAY - 1) < 0)
            return -1;
        lws_callback_on_writable(c->wsi);
        return 0;
    }
    cg_wbuf_reset(fb);
    n = sj_pop_batch(c->sj, c->s, fb, &more);
    if (n < 0)
        return -1;
    if (n > 0) {
        if (ws_write(c, cg_wbuf_data(fb), fb->len) < 0)
            return -1;
        ws_hb_restart(c);
    }
    if (!more && cg_session_wants_close(c->s, NULL, NULL)) {
        c->go_away = 1;
        lws_callback_on_writable(c->wsi);
        return 0;
    }
    if (more) {
        lws_callback_on_writable(c->wsi);
    } else if (n == 0 && c->hb_due) {
        if (ws_write(c, FRAME_HEARTBEAT, 1) < 0)
            return -1;
        ws_hb_restart(c);
    }
    return 0;
}

int
cg_sockjs_ws_on_writable(struct cg_pss *pss)
{
    struct sj_ws *c = pss->kind == CG_PSS_SOCKJS_WS ? pss->obj : NULL;
    int rc;

    if (c == NULL || c->s == NULL)
        return -1;
    rc = framed_writable(c);
    if (rc == 0 && c->out.cap > SJ_WRITE_BATCH) {
        cg_wbuf_cleanup(&c->out);     /* idle connections hold no big buffer */
        cg_wbuf_init(&c->out, LWS_PRE);
    }
    return rc;
}

static void
on_ws_hb_closed(uv_handle_t *h)
{
    cg_free(h->data);
}

void
cg_sockjs_ws_on_closed(struct cg_pss *pss)
{
    struct sj_ws *c = pss->kind == CG_PSS_SOCKJS_WS ? pss->obj : NULL;

    if (c == NULL)
        return;
    pss->obj = NULL;
    pss->kind = CG_PSS_NONE;
    if (c->s)
        cg_session_on_closed(c->s);
    c->s = NULL;
    cg_wbuf_cleanup(&c->out);
    cg_wbuf_cleanup(&c->in);
    uv_timer_stop(&c->hb);
    uv_close((uv_handle_t *)&c->hb, on_ws_hb_closed);
}
