/* sockjs_http.c - the HTTP transports of SockJS: the receivers (xhr,
 * xhr_streaming, eventsource, htmlfile, jsonp) that carry frames to the
 * client, and the senders (xhr_send, jsonp_send) that carry its messages
 * in.
 *
 * Owns: a request (struct sj_req) from the moment sockjs_route.c hands it
 * a session URL until its transaction completes or its connection closes -
 * its body, its writes, its end - and lws's HTTP events for it
 * (cg_sockjs_http_on_body/_body_done/_writable/_closed). The SockJS
 * session a receiver attaches to is sockjs_session.c's.
 *
 *   sj_req (receiver):  attach -> [headers] -> [prelude] -> frames ->
 *                       last frame (poll: the first one; stream: close
 *                       frame or sockjs_stream_bytes) -> detach ->
 *                       transaction completed
 *   sj_req (sender):    body (<= SJ_SEND_MAX) -> decode -> session bytes ->
 *                       204 -> done
 *
 * xhr_send to an unknown id is 404.
 *
 * Reading cannot be paused on HTTP transports (a client's next xhr_send is
 * already on its way): while the session does not read, what arrives
 * waits in its input buffer, which session.c bounds (max_frame_bytes plus
 * a slack that holds one whole SJ_SEND_MAX body); past it the session
 * fails with a limit error like any other.
 *
 * An idle receiver (a held poll, a quiet stream) has reading turned off:
 * lws 4.1 does not read an HTTP/1 connection in the middle of a
 * transaction, so a peer that closed it would leave POLLIN signalled on
 * every turn of the loop (a busy loop); with reading off, a vanished peer
 * is noticed when the next frame or heartbeat fails to write. See
 * req_idle(). A chunked request body (any Transfer-Encoding) is refused
 * with 411: lws 4.1 cannot read one. A request whose length is refused
 * (411; a Content-Length that is not one decimal number: 400; over
 * SJ_SEND_MAX: 413), and a send without Content-Length, are answered with
 * "Connection: close" and the connection closed after the answer
 * (close_after): lws frames bodies by an atoll() of Content-Length (or up
 * to 100 MB when there is none) and parses what it did not take as the
 * body as the next request (request.h, cg_request_body_framing), so
 * those bytes must never be read as a request.
 *
 * Writes. Every write happens in a WRITEABLE callback, one lws_write per
 * callback (headers, then prelude, then each frame). Streaming responses
 * use chunked encoding on HTTP/1.1 (we frame the chunks: lws 4.1 only
 * chunks its own compressed output), end with the connection on HTTP/1.0
 * and with LWS_WRITE_HTTP_FINAL on HTTP/2. */
#include "fmacros.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <sys/socket.h>
#include <sys/types.h>

#include "core/common.h"
#include "core/config.h"
#include "core/context.h"
#include "core/log.h"
#include "http/linger.h"
#include "http/request.h"
#include "session/session.h"
#include "transport/sockjs_frame.h"
#include "transport/sockjs_internal.h"
#include "transport/transport.h"

/* Chunk header "%08zx\r\n": a fixed width, so it can be written in front
 * of a payload of unknown length (leading zeros are valid chunk sizes). */
#define SJ_CHUNK_HDR 10

/* sockjs-client's xhr-streaming needs 2 KiB before the first frame, or
 * some browsers buffer the response (spec: 'h' * 2048 + '\n'). */
#define SJ_PRELUDE_XHR 2048

/* The htmlfile page is padded past 1 KiB for the same reason. */
#define SJ_HTMLFILE_MIN 1024

static const char CT_JS[] = "application/javascript; charset=UTF-8";
static const char SESSION_FORBIDDEN[] =
    "Forbidden: this session belongs to another client.";
/* Exactly this (sockjs-protocol-0.3.3.py): EventSource is UTF-8 anyway. */
static const char CT_SSE[] = "text/event-stream";
static const char CT_HTML[] = "text/html; charset=UTF-8";

/* ------------------------------------------------------------------------ */
/* Reading on and off                                                        */
/* ------------------------------------------------------------------------ */

/* A receiver waits with nothing to write. lws 4.1 does not read an HTTP/1
 * connection in the middle of a transaction (LRS_DOING_TRANSACTION), so a
 * peer that closes it meanwhile would leave POLLIN signalled on every turn
 * of the loop: a busy loop until our next write fails. While idle, POLLIN
 * is off; a peer that went away is noticed when the next frame or
 * heartbeat fails to write. lws also services no POLLOUT on a connection
 * whose reading is off, so it is turned on again before every write
 * request (sj_req_want_write) and before the transaction completes. */
static void
req_idle(struct sj_req *r)
{
    if (r->wsi != NULL && !r->rx_off && !lws_partial_buffered(r->wsi)) {
        lws_rx_flow_control(r->wsi, 0);
        r->rx_off = 1;
    }
}

void
sj_req_want_write(struct sj_req *r)
{
    if (r->wsi == NULL)
        return;
    if (r->rx_off) {
        lws_rx_flow_control(r->wsi, 1);
        r->rx_off = 0;
    }
    lws_callback_on_writable(r->wsi);
}

/* ------------------------------------------------------------------------ */
/* HTTP requests: receivers                                                  */
/* ------------------------------------------------------------------------ */

/* Wrap one SockJS frame for r's transport (into r->out, after the
 * reserved chunk header). */
static int
wrap_frame(struct sj_req *r, const char *f, size_t n)
{
    struct cg_wbuf *o = &r->out;
    int rc = 0;

    switch (r->route) {
    case CG_SJ_EVENTSOURCE:
        rc = sj_append_str(o, "data: ") || cg_wbuf_append(o, f, n) ||
             sj_append_str(o, "\r\n\r\n");
        break;
    case CG_SJ_HTMLFILE:
        rc = sj_append_str(o, "<script>\np(") ||
             sj_append_quoted(o, f, n, CG_SJ_QUOTE_HTML) ||
             sj_append_str(o, ");\n</script>\r\n");
        break;
    case CG_SJ_JSONP:
        rc = sj_append_str(o, r->callback) || sj_append_str(o, "(") ||
             sj_append_quoted(o, f, n, 0) || sj_append_str(o, ");\r\n");
        break;
    default:                          /* xhr, xhr_streaming */
        rc = cg_wbuf_append(o, f, n) || cg_wbuf_append(o, "\n", 1);
        break;
    }
    return rc ? CG_E_NOMEM : 0;
}

/* The next frame for receiver r, appended to fb. Returns 1 (a frame;
 * *last = 1 when the response must end after it), 0 (nothing yet) or < 0. */
static int
take_frame(struct sj_req *r, struct cg_wbuf *fb, int *last)
{
    struct sj_sess *ss = r->sess;
    int n, more;

    *last = 0;
    if (r->oneshot != NULL) {
        *last = 1;
        return sj_append_str(fb, r->oneshot) < 0 ? CG_E_NOMEM : 1;
    }
    if (ss == NULL)
        return 0;
    if (!ss->opened) {
        ss->opened = 1;
        return sj_append_str(fb, FRAME_OPEN) < 0 ? CG_E_NOMEM : 1;
    }
    if (ss->s != NULL) {
        n = sj_pop_batch(r->sj, ss->s, fb, &more);
        if (n < 0)
            return n;
        if (!more && cg_session_wants_close(ss->s, NULL, NULL))
            sj_sess_end_stomp(ss, FRAME_GO_AWAY);   /* close frame next */
        if (n > 0)
            return 1;
    }
    if (ss->s == NULL) {
        *last = 1;
        return sj_append_str(fb, ss->close_frame ? ss->close_frame : FRAME_GO_AWAY) < 0
               ? CG_E_NOMEM : 1;
    }
    if (ss->hb_due) {
        ss->hb_due = 0;
        return sj_append_str(fb, FRAME_HEARTBEAT) < 0 ? CG_E_NOMEM : 1;
    }
    return 0;
}

/* The stream's prelude: what some browsers need before they hand the
 * first bytes of a response to the page. */
static int
prelude(struct sj_req *r)
{
    struct cg_wbuf *o = &r->out;

    switch (r->route) {
    case CG_SJ_XHR_STREAMING:
        if (cg_wbuf_reserve(o, SJ_PRELUDE_XHR + 1) < 0)
            return CG_E_NOMEM;
        memset(cg_wbuf_data(o) + o->len, 'h', SJ_PRELUDE_XHR);
        o->len += SJ_PRELUDE_XHR;
        return cg_wbuf_append(o, "\n", 1);
    case CG_SJ_EVENTSOURCE:
        return cg_wbuf_append(o, "\r\n", 2);
    case CG_SJ_HTMLFILE: {
        size_t at = o->len;
        char head[1024 + CG_SOCKJS_CALLBACK_MAX];
        int n = snprintf(head, sizeof head,
            "<!doctype html>\n"
            "<html><head>\n"
            "  <meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n"
            "  <meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n"
            "</head><body><h2>Don't panic!</h2>\n"
            "  <script>\n"
            "    document.domain = document.domain;\n"
            "    var c = parent.%s;\n"
            "    c.start();\n"
            "    function p(d) {c.message(d);};\n"
            "    window.onload = function() {c.stop();};\n"
            "  </script>\n", r->callback);

        if (n < 0 || (size_t)n >= sizeof head ||
            cg_wbuf_append(o, head, (size_t)n) < 0)
            return CG_E_NOMEM;
        while (o->len - at < SJ_HTMLFILE_MIN)
            if (cg_wbuf_append(o, " ", 1) < 0)
                return CG_E_NOMEM;
        return cg_wbuf_append(o, "\r\n\r\n", 4);
    }
    default:
        return 0;
    }
}

/* Frame r->out (payload after SJ_CHUNK_HDR reserved bytes) as one chunk
 * when chunked; returns the offset of the bytes to write. */
static size_t
seal_chunk(struct sj_req *r)
{
    size_t n = r->out.len - SJ_CHUNK_HDR;
    char hdr[SJ_CHUNK_HDR + 1];

    if (r->framing != SJ_FR_CHUNKED)
        return SJ_CHUNK_HDR;
    snprintf(hdr, sizeof hdr, "%08zx\r\n", n);
    memcpy(cg_wbuf_data(&r->out), hdr, SJ_CHUNK_HDR);
    if (cg_wbuf_append(&r->out, "\r\n", 2) < 0 ||
        (r->ending && cg_wbuf_append(&r->out, "0\r\n\r\n", 5) < 0))
        return (size_t)-1;
    return 0;
}

/* Complete the transaction: lws frees the pss, so let go of it first. */
static int
req_complete(struct sj_req *r)
{
    struct lws *wsi = r->wsi;
    struct cg_pss *pss = r->pss;

    if (r->rx_off)
        lws_rx_flow_control(wsi, 1);  /* read the next request */
    sj_req_detach_sess(r, 0);
    if (pss != NULL) {
        pss->obj = NULL;
        pss->kind = CG_PSS_NONE;
    }
    r->wsi = NULL;
    r->pss = NULL;
    cg_wbuf_cleanup(&r->out);
    cg_wbuf_cleanup(&r->body);
    cg_free(r);
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* WRITEABLE for a streaming receiver: headers, prelude, then frames. */
static int
stream_writable(struct sj_req *r)
{
    const struct cg_config *cfg = cfg_of(r->sj);
    struct cg_wbuf *fb = &r->sj->frame;
    size_t off;
    int rc, last;

    if (!r->hdr_sent) {
        if (sj_write_headers(r, -1) < 0)
            return -1;
        r->hdr_sent = 1;
        lws_callback_on_writable(r->wsi);
        return 0;
    }
    cg_wbuf_reset(&r->out);
    if (cg_wbuf_append(&r->out, "          ", SJ_CHUNK_HDR) < 0)
        return -1;
    if (!r->prelude_sent) {
        if (prelude(r) < 0)
            return -1;
        r->prelude_sent = 1;
    } else {
        cg_wbuf_reset(fb);
        rc = take_frame(r, fb, &last);
        if (rc < 0)
            return -1;
        if (rc == 0) {
            req_idle(r);              /* the session or the timer will ask */
            return 0;
        }
        if (wrap_frame(r, cg_wbuf_data(fb), fb->len) < 0)
            return -1;
        r->sent += r->out.len - SJ_CHUNK_HDR;
        if (last || r->sent >= (uint64_t)cfg->sockjs_stream_bytes) {
            r->ending = 1;
            sj_req_detach_sess(r, 0);    /* the next receiver may attach */
        } else if (r->sess != NULL) {
            r->sess->hb_at = now_ms(r->sj) + (uint64_t)cfg->sockjs_heartbeat_ms;
            sj_sess_arm(r->sess);
        }
    }
    if ((off = seal_chunk(r)) == (size_t)-1)
        return -1;
    if (lws_write(r->wsi, (unsigned char *)cg_wbuf_data(&r->out) + off,
                  r->out.len - off,
                  r->ending ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) <
        (int)(r->out.len - off))
        return -1;
    if (r->ending)
        return req_complete(r);
    lws_callback_on_writable(r->wsi);   /* more may be ready */
    return 0;
}

/* A polling receiver with nothing sent yet: take a frame, if any, and turn
 * it into a complete response. */
static void
poll_take(struct sj_req *r)
{
    struct cg_wbuf *fb = &r->sj->frame;
    int rc, last;

    cg_wbuf_reset(fb);
    rc = take_frame(r, fb, &last);
    if (rc == 0) {
        req_idle(r);
        return;
    }
    sj_req_detach_sess(r, 0);            /* one frame per poll */
    if (rc < 0) {
        sj_respond_text(r, 500, "out of memory");
        return;
    }
    cg_wbuf_reset(&r->out);
    if (wrap_frame(r, cg_wbuf_data(fb), fb->len) < 0) {
        sj_respond_text(r, 500, "out of memory");
        return;
    }
    r->receiver = 0;
    r->ready = 1;
}

/* ------------------------------------------------------------------------ */
/* Starting receivers and senders                                            */
/* ------------------------------------------------------------------------ */

static enum sj_framing
framing_of(struct lws *wsi)
{
    char v[16];

    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_COLON_PATH) > 0)
        return SJ_FR_H2;
    if (lws_hdr_copy(wsi, v, sizeof v, WSI_TOKEN_HTTP) > 7 &&
        strncmp(v, "HTTP/1.0", 8) == 0)
        return SJ_FR_CLOSE;
    return SJ_FR_CHUNKED;
}

/* 1 when receiver r's connection is known to be gone: its peer closed it
 * (EOF) or it failed. An idle receiver has reading off (req_idle) and lws
 * 4.1 does not read mid-transaction, so no CLOSED_HTTP comes until a write
 * fails; a peek at the socket tells now. Bytes waiting (a pipelined
 * request, or a TLS alert), and HTTP/2 streams, count as alive. */
static int
receiver_vanished(struct sj_req *r)
{
    lws_sockfd_type fd;
    ssize_t n;
    char c;

    if (r->wsi == NULL)
        return 1;
    /* An HTTP/2 stream shares its socket: the socket cannot tell. */
    if (r->framing == SJ_FR_H2)
        return 0;
    fd = lws_get_socket_fd(r->wsi);
    if (fd < 0)
        return 0;
    n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0)
        return 1;
    return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

/* A receiving request (xhr, xhr_streaming, eventsource, htmlfile, jsonp). */
void
sj_route_receiver(struct cg_sockjs *sj, struct sj_req *r,
                  const struct cg_sockjs_path *sp)
{
    struct sj_sess *ss = sj_table_find(sj, sp->session.ptr, sp->session.len);

    /* Another principal's session (a leaked id): refused, and the session
     * is not touched - not even its receiver slot. */
    if (ss != NULL && !sj_sess_admits(ss, &r->cred, r->peer)) {
        cg_log_ctx(CG_LOG_INFO, r->peer, "SockJS request refused: 403 the session "
                   "was opened with another credential");
        sj_respond_text(r, 403, SESSION_FORBIDDEN);
        return;
    }
    if (r->route == CG_SJ_HTMLFILE || r->route == CG_SJ_JSONP) {
        char cb[CG_SOCKJS_CALLBACK_MAX + 8];
        const char *v = lws_get_urlarg_by_name(r->wsi, "c=", cb, (int)sizeof cb);

        if (v == NULL)
            v = lws_get_urlarg_by_name(r->wsi, "callback=", cb, (int)sizeof cb);
        if (v == NULL || !cg_sockjs_callback_valid(v, strlen(v))) {
            sj_respond_text(r, 500, "\"callback\" parameter required");
            return;
        }
        snprintf(r->callback, sizeof r->callback, "%s", v);
        r->nosniff = 1;
    }
    r->ctype = r->route == CG_SJ_EVENTSOURCE ? CT_SSE
             : r->route == CG_SJ_HTMLFILE    ? CT_HTML : CT_JS;
    r->status = 200;
    r->receiver = 1;
    r->streaming = r->route == CG_SJ_XHR_STREAMING || r->route == CG_SJ_EVENTSOURCE ||
                   r->route == CG_SJ_HTMLFILE;
    r->framing = framing_of(r->wsi);

    if (ss == NULL) {
        const char *why;
        int status;

        if (sj->srv->stopping) {
            r->oneshot = FRAME_GO_AWAY;       /* no new sessions now */
        } else if ((status = cg_session_admit(sj->srv, r->peer, &why)) != 0) {
            sj_respond_text(r, status, why);  /* too many, or no memory to spare */
            return;
        } else if ((ss = sj_sess_create(sj, r, sp->session)) == NULL) {
            sj_respond_text(r, 500, "cannot open a session: out of memory");
            return;
        }
    }
    if (ss != NULL && ss->recv != NULL && receiver_vanished(ss->recv)) {
        /* The client aborted its previous receiver: that is the end of the
         * session (spec "Handling close": c[1002]), not "another
         * connection"; lws closes the dead connection. */
        struct sj_req *old = ss->recv;

        sj_req_detach_sess(old, 1);
        if (old->wsi != NULL)
            lws_set_timeout(old->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
    }
    if (ss != NULL && ss->recv != NULL)
        r->oneshot = FRAME_ANOTHER;
    else if (ss != NULL)
        sj_req_attach(r, ss);
    /* Frames may take a while: lws's request timer is not ours to keep. */
    lws_set_timeout(r->wsi, NO_PENDING_TIMEOUT, 0);
    lws_callback_on_writable(r->wsi);
}

/* The body of xhr_send / jsonp_send has arrived. */
void
sj_route_sender(struct cg_sockjs *sj, struct sj_req *r)
{
    struct sj_sess *ss;
    char *data = cg_wbuf_data(&r->body), ctype[64];
    size_t n = 0;
    long dlen;
    int rc;

    if (r->body_over) {
        sj_refuse_framing(r, 413, "Payload too large.");
        return;
    }
    ss = sj_table_find(sj, r->key, r->keylen);
    if (ss == NULL) {
        sj_respond_text(r, 404, "Not found");
        return;
    }
    if (!sj_sess_admits(ss, &r->cred, r->peer)) {
        cg_log_ctx(CG_LOG_INFO, r->peer, "SockJS send refused: 403 the session "
                   "was opened with another credential");
        sj_respond_text(r, 403, SESSION_FORBIDDEN);
        return;
    }
    if (r->body.len == 0) {
        sj_respond_text(r, 500, cg_sockjs_decode_strerror(CG_SJ_E_EMPTY));
        return;
    }
    if (r->route == CG_SJ_JSONP_SEND &&
        lws_hdr_copy(r->wsi, ctype, sizeof ctype, WSI_TOKEN_HTTP_CONTENT_TYPE) > 0 &&
        strncasecmp(ctype, "application/x-www-form-urlencoded", 33) == 0) {
        dlen = cg_sockjs_form_d(data, r->body.len, data);
        if (dlen < 0) {
            sj_respond_text(r, 500, cg_sockjs_decode_strerror((int)dlen));
            return;
        }
        r->body.len = (size_t)dlen;
    }
    rc = cg_sockjs_decode(data, r->body.len, 0, data, &n, NULL, NULL);
    if (rc < 0) {
        sj_respond_text(r, 500, cg_sockjs_decode_strerror(rc));
        return;
    }
    if (r->route == CG_SJ_JSONP_SEND) {
        /* Konqueror mishandles 204: jsonp_send answers "ok". */
        sj_respond(r, 200, CT_TEXT, "ok", 2);
    } else {
        sj_respond(r, 204, CT_TEXT, NULL, 0);
    }
    if (ss->s == NULL || n == 0)
        return;                       /* a closed session drops the data */
    (void)cg_session_on_bytes(ss->s, data, n);
}

/* The connection is gone: a receiver still attached broke off. */
static void
req_free(struct sj_req *r)
{
    sj_req_detach_sess(r, 1);
    cg_wbuf_cleanup(&r->out);
    cg_wbuf_cleanup(&r->body);
    cg_free(r);
}

/* ------------------------------------------------------------------------ */
/* lws events                                                                */
/* ------------------------------------------------------------------------ */

/* A chunked request body (RFC 9112 7.1), decoded strictly: hex sizes of
 * at most 16 digits, no chunk extensions, no trailers, CRLF exactly, and
 * at most SJ_SEND_MAX bytes of data in all. lws 4.1 hands the raw bytes
 * over as the body of a POST without Content-Length. */
enum { CH_SIZE = 0, CH_SIZE_LF, CH_DATA, CH_DATA_CR, CH_DATA_LF, CH_END_CR,
       CH_END_LF, CH_DONE };

/* Returns 1 when the last chunk has arrived, 0 for more, CG_SJ_CH_BAD on
 * broken framing, CG_SJ_CH_BIG over SJ_SEND_MAX, or < 0 out of memory. */
#define CG_SJ_CH_BAD (-100)
#define CG_SJ_CH_BIG (-101)
static int
chunk_feed(struct sj_req *r, const unsigned char *in, size_t len)
{
    size_t i = 0;

    while (i < len) {
        unsigned char c = in[i];

        switch (r->ch_state) {
        case CH_SIZE: {
            int v = c >= '0' && c <= '9' ? c - '0'
                  : c >= 'a' && c <= 'f' ? c - 'a' + 10
                  : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;

            i++;
            if (v >= 0) {
                if (++r->ch_digits > 16)
                    return CG_SJ_CH_BAD;
                r->ch_left = r->ch_left * 16 + (uint32_t)v;
                if (r->ch_left > SJ_SEND_MAX)
                    return CG_SJ_CH_BIG;
            } else if (c == '\r' && r->ch_digits > 0) {
                r->ch_state = CH_SIZE_LF;
            } else {
                return CG_SJ_CH_BAD;
            }
            break;
        }
        case CH_SIZE_LF:
            i++;
            if (c != '\n')
                return CG_SJ_CH_BAD;
            r->ch_state = r->ch_left == 0 ? CH_END_CR : CH_DATA;
            break;
        case CH_DATA: {
            size_t n = len - i < r->ch_left ? len - i : r->ch_left;

            if (r->body.len + n > SJ_SEND_MAX)
                return CG_SJ_CH_BIG;
            if (cg_wbuf_append(&r->body, in + i, n) < 0)
                return CG_E_NOMEM;
            i += n;
            r->ch_left -= (uint32_t)n;
            if (r->ch_left == 0)
                r->ch_state = CH_DATA_CR;
            break;
        }
        case CH_DATA_CR:
        case CH_END_CR:
            i++;
            if (c != '\r')
                return CG_SJ_CH_BAD;
            r->ch_state = r->ch_state == CH_DATA_CR ? CH_DATA_LF : CH_END_LF;
            break;
        case CH_DATA_LF:
            i++;
            if (c != '\n')
                return CG_SJ_CH_BAD;
            r->ch_state = CH_SIZE;
            r->ch_digits = 0;
            r->ch_left = 0;
            break;
        case CH_END_LF:
            if (c != '\n')
                return CG_SJ_CH_BAD;
            r->ch_state = CH_DONE;
            return 1;
        default:
            return 1;                 /* what follows is dropped: we close */
        }
    }
    return 0;
}

static int
on_chunked_body(struct sj_req *r, const void *in, size_t len)
{
    int rc = chunk_feed(r, in, len);

    if (rc == 1) {
        sj_route_sender(r->sj, r);
    } else if (rc == CG_SJ_CH_BAD) {
        sj_refuse_framing(r, 400, "Bad chunked request body.");
    } else if (rc == CG_SJ_CH_BIG) {
        sj_refuse_framing(r, 413, "Payload too large.");
    } else if (rc < 0) {
        return -1;
    }
    return 0;
}

int
cg_sockjs_http_on_body(struct cg_pss *pss, const void *in, size_t len)
{
    struct sj_req *r = pss->obj;

    if (pss->kind != CG_PSS_SOCKJS_HTTP || r == NULL || r->ready || r->receiver)
        return 0;
    cg_body_clock_add(&r->clock, len);
    if (r->chunked)
        return on_chunked_body(r, in, len);
    if (r->body_over || r->body.len + len > SJ_SEND_MAX) {
        r->body_over = 1;
        return 0;
    }
    return cg_wbuf_append(&r->body, in, len) < 0 ? -1 : 0;
}

int
cg_sockjs_http_on_body_done(struct cg_pss *pss)
{
    struct sj_req *r = pss->obj;

    if (pss->kind != CG_PSS_SOCKJS_HTTP || r == NULL || r->ready || r->receiver ||
        r->wsi == NULL)
        return 0;
    if (r->route != CG_SJ_XHR_SEND && r->route != CG_SJ_JSONP_SEND)
        return 0;
    cg_body_clock_stop(&r->clock, r->wsi);
    if (r->chunked) {
        /* lws's idea of the body's end, before the last chunk came. */
        sj_refuse_framing(r, 400, "Bad chunked request body.");
        return 0;
    }
    sj_route_sender(r->sj, r);
    return 0;
}

/* LWS_CALLBACK_TIMER: the body clock of a send (request.h). Too late or
 * too slow: 408, and the connection closes after the answer. */
int
cg_sockjs_http_on_timer(struct cg_pss *pss)
{
    struct sj_req *r = pss->obj;
    const char *why;

    if (pss->kind != CG_PSS_SOCKJS_HTTP || r == NULL || r->ready || r->receiver ||
        r->wsi == NULL)
        return 0;
    if ((why = cg_body_clock_check(&r->clock, r->wsi)) != NULL)
        sj_refuse_framing(r, 408, why);
    return 0;
}

static int answered(struct sj_req *r);

int
cg_sockjs_http_on_writable(struct cg_pss *pss)
{
    struct sj_req *r = pss->obj;

    if (pss->kind != CG_PSS_SOCKJS_HTTP || r == NULL || r->wsi == NULL)
        return 0;
    if (r->receiver && r->streaming)
        return stream_writable(r);
    if (r->receiver)
        poll_take(r);
    if (!r->ready)
        return 0;
    if (r->flushing)
        return answered(r);
    if (!r->hdr_sent) {
        if (sj_write_headers(r, (long long)r->out.len) < 0)
            return -1;
        r->hdr_sent = 1;
        if (r->out.len > 0) {
            lws_callback_on_writable(r->wsi);
            return 0;
        }
    } else if (lws_write(r->wsi, (unsigned char *)cg_wbuf_data(&r->out), r->out.len,
                         LWS_WRITE_HTTP_FINAL) < (int)r->out.len) {
        return -1;
    }
    return answered(r);
}

/* r's answer is written. A connection to close lingers (linger.h) once lws
 * has handed the whole answer to the kernel; CLOSED_HTTP then frees r. */
static int
answered(struct sj_req *r)
{
    if (!r->close_after)
        return req_complete(r);
    if (lws_partial_buffered(r->wsi)) {
        r->flushing = 1;              /* lws sends the rest first */
        lws_callback_on_writable(r->wsi);
        return 0;
    }
    if (cg_linger_start(r->sj->srv->linger, lws_get_socket_fd(r->wsi)) < 0)
        cg_log(CG_LOG_DEBUG, "lingering close refused: closing at once");
    return -1;
}

void
cg_sockjs_http_on_closed(struct cg_pss *pss)
{
    struct sj_req *r = pss->obj;

    if (pss->kind != CG_PSS_SOCKJS_HTTP || r == NULL)
        return;
    pss->obj = NULL;
    pss->kind = CG_PSS_NONE;
    cg_body_clock_stop(&r->clock, r->wsi);
    r->wsi = NULL;
    r->pss = NULL;
    req_free(r);
}
