/* conn.c - one client connection of the load generator: TCP, the RFC 6455
 * client side (handshake, masked frames, fragmentation, ping/pong/close)
 * and STOMP on top (libstomp's incremental parser and writer).
 *
 *   IDLE -> TCP --connected--> UPGRADE --101 + valid Accept--> CONNECT
 *        --CONNECTED--> SUBSCRIBE --RECEIPT "lg-ready"--> READY
 *   any error or the peer's close: CLOSING -> CLOSED (on_closed once)
 *
 * Input. One shared read buffer for every connection (reads are handled
 * synchronously). A WebSocket frame that is complete in it is handled in
 * place; only a frame cut by the read boundary is copied (rbuf). A text
 * message's payload goes straight to stomp_parse() when nothing is
 * buffered; only an incomplete STOMP frame is copied (sbuf). The gateway
 * batches several STOMP frames per WebSocket message; RabbitMQ sends one
 * per message; both are handled the same way.
 *
 * Output. lg_conn_send_frame() appends a masked WebSocket frame to the
 * connection's out buffer and puts the connection on the context's dirty
 * list. A uv_check handle (after the loop's I/O phase) flushes every dirty
 * connection once: uv_try_write, and uv_write of the rest from a second
 * buffer when the socket is full. So everything one loop iteration
 * produces for a connection leaves in one syscall, as in the gateway.
 *
 * Masking uses a fresh 32-bit key per frame from a xorshift PRNG (the
 * RFC wants an unpredictable key; the generator only needs valid framing),
 * applied 8 bytes at a time while copying into the out buffer. */
#include "fmacros.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "lg.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define READ_BUF       (256 * 1024)
#define MAX_WS_FRAME   (16u * 1024 * 1024)   /* refuse absurd frames */
#define MAX_HEADERS    64

static char *read_buf;                        /* shared by all connections */
static char *scratch;                         /* one STOMP frame being built */
static size_t scratch_cap;

static const char WS_GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* ------------------------------------------------------------------------ */
/* Buffers                                                                   */
/* ------------------------------------------------------------------------ */

static int
reserve(char **p, size_t *cap, size_t len, size_t more)
{
    size_t want = len + more, n;
    char *q;

    if (want <= *cap)
        return 0;
    n = *cap ? *cap : 1024;
    while (n < want)
        n *= 2;
    if ((q = realloc(*p, n)) == NULL)
        return -1;
    *p = q;
    *cap = n;
    return 0;
}

static int
append(char **p, size_t *len, size_t *cap, const void *d, size_t n)
{
    if (reserve(p, cap, *len, n) < 0)
        return -1;
    memcpy(*p + *len, d, n);
    *len += n;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Closing                                                                   */
/* ------------------------------------------------------------------------ */

static void
on_tcp_closed(uv_handle_t *h)
{
    struct lg_conn *c = h->data;

    c->state = LG_C_CLOSED;
    if (c->ctx->ev->on_closed)
        c->ctx->ev->on_closed(c, NULL);
}

static void
conn_fail(struct lg_conn *c, const char *why)
{
    struct lg_ctx *ctx = c->ctx;

    if (c->state >= LG_C_CLOSING)
        return;
    ctx->conn_errors++;
    if (ctx->first_error[0] == '\0')
        snprintf(ctx->first_error, sizeof ctx->first_error, "%s", why);
    if (ctx->verbose)
        fprintf(stderr, "loadgen: connection closed: %s\n", why);
    lg_conn_close(c);
}

void
lg_conn_close(struct lg_conn *c)
{
    if (c->state >= LG_C_CLOSING || c->state == LG_C_IDLE)
        return;
    c->state = LG_C_CLOSING;
    uv_close((uv_handle_t *)&c->tcp, on_tcp_closed);
}

void
lg_conn_release(struct lg_conn *c)
{
    free(c->rbuf);
    free(c->mbuf);
    free(c->sbuf);
    free(c->out);
    free(c->wbuf);
    c->rbuf = c->mbuf = c->sbuf = c->out = c->wbuf = NULL;
    c->rcap = c->mcap = c->scap = c->ocap = c->wcap = 0;
}

/* ------------------------------------------------------------------------ */
/* Output                                                                    */
/* ------------------------------------------------------------------------ */

static void flush(struct lg_conn *c);

static void
mark_dirty(struct lg_conn *c)
{
    if (c->dirty)
        return;
    c->dirty = 1;
    c->next_dirty = c->ctx->dirty;
    c->ctx->dirty = c;
}

static void
on_written(uv_write_t *w, int status)
{
    struct lg_conn *c = w->data;

    c->writing = 0;
    if (status < 0) {
        if (status != UV_ECANCELED)
            conn_fail(c, uv_strerror(status));
        return;
    }
    if (c->olen > 0)
        mark_dirty(c);
}

static void
flush(struct lg_conn *c)
{
    uv_buf_t b;
    int n;
    char *tp;
    size_t tc;

    if (c->writing || c->olen == 0 || c->state >= LG_C_CLOSING)
        return;
    b = uv_buf_init(c->out, (unsigned)c->olen);
    n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == (int)c->olen) {
        c->ctx->bytes_out += (uint64_t)n;
        c->olen = 0;
        return;
    }
    if (n < 0 && n != UV_EAGAIN) {
        conn_fail(c, uv_strerror(n));
        return;
    }
    if (n < 0)
        n = 0;
    c->ctx->bytes_out += (uint64_t)n;
    /* Swap: the rest goes from wbuf; new frames go to the other buffer. */
    tp = c->wbuf;
    tc = c->wcap;
    c->wbuf = c->out;
    c->wcap = c->ocap;
    c->out = tp;
    c->ocap = tc;
    b = uv_buf_init(c->wbuf + n, (unsigned)(c->olen - (size_t)n));
    c->ctx->bytes_out += c->olen - (size_t)n;
    c->olen = 0;
    c->writing = 1;
    c->wreq.data = c;
    if ((n = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_written)) < 0) {
        c->writing = 0;
        conn_fail(c, uv_strerror(n));
    }
}

static void
on_check(uv_check_t *h)
{
    struct lg_ctx *ctx = h->data;
    struct lg_conn *c;

    while ((c = ctx->dirty) != NULL) {
        ctx->dirty = c->next_dirty;
        c->dirty = 0;
        flush(c);
    }
}

/* Append one masked WebSocket frame (FIN set) with opcode op. */
static void
ws_send(struct lg_conn *c, int op, const char *payload, size_t len)
{
    unsigned char hdr[14];
    size_t hl = 2, i;
    uint32_t key = (uint32_t)lg_rand(&c->ctx->rng);
    uint64_t k64 = (uint64_t)key | ((uint64_t)key << 32), w;
    char *dst;

    if (c->state >= LG_C_CLOSING)
        return;
    hdr[0] = (unsigned char)(0x80 | op);
    if (len < 126) {
        hdr[1] = (unsigned char)(0x80 | len);
    } else if (len < 65536) {
        hdr[1] = 0x80 | 126;
        hdr[2] = (unsigned char)(len >> 8);
        hdr[3] = (unsigned char)len;
        hl = 4;
    } else {
        hdr[1] = 0x80 | 127;
        for (i = 0; i < 8; i++)
            hdr[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
        hl = 10;
    }
    memcpy(hdr + hl, &key, 4);
    hl += 4;
    if (reserve(&c->out, &c->ocap, c->olen, hl + len + 8) < 0) {
        conn_fail(c, "out of memory");
        return;
    }
    memcpy(c->out + c->olen, hdr, hl);
    dst = c->out + c->olen + hl;
    /* The key bytes repeat every 4, so an 8-byte word masks 8 at once. */
    for (i = 0; i + 8 <= len; i += 8) {
        memcpy(&w, payload + i, 8);
        w ^= k64;
        memcpy(dst + i, &w, 8);
    }
    for (; i < len; i++)
        dst[i] = (char)(payload[i] ^ ((const char *)&key)[i & 3]);
    c->olen += hl + len;
    mark_dirty(c);
}

void
lg_conn_send_frame(struct lg_conn *c, enum stomp_command cmd,
                   const struct stomp_header *h, size_t nh,
                   const char *body, size_t body_len)
{
    struct stomp_writer w;
    size_t need = 64 + body_len, n;

    for (size_t i = 0; i < nh; i++)
        need += h[i].name.len + 2 * h[i].value.len + 4;
    if (scratch_cap < need) {
        free(scratch);
        scratch_cap = need * 2;
        if ((scratch = malloc(scratch_cap)) == NULL) {
            scratch_cap = 0;
            conn_fail(c, "out of memory");
            return;
        }
    }
    stomp_writer_init(&w, scratch, scratch_cap, STOMP_V1_2);
    stomp_writer_command(&w, cmd);
    for (size_t i = 0; i < nh; i++)
        stomp_writer_header(&w, h[i].name, h[i].value);
    if (body != NULL)
        stomp_writer_body(&w, (struct stomp_str){ body, body_len });
    if (stomp_writer_finish(&w, &n) != STOMP_OK) {
        conn_fail(c, "cannot write a STOMP frame");
        return;
    }
    c->ctx->frames_out++;
    ws_send(c, 1, scratch, n);
}

/* ------------------------------------------------------------------------ */
/* STOMP input                                                               */
/* ------------------------------------------------------------------------ */

const struct stomp_str *
lg_hdr(const struct stomp_frame *f, const char *name)
{
    return stomp_frame_header(f, name);
}

#define H(n, v) { STOMP_STR(n), { (v), strlen(v) } }

static void
send_subscribes(struct lg_conn *c)
{
    struct stomp_header h[8];
    int rabbit = c->ctx->target == LG_RABBIT;

    for (int i = 0; i < c->nsubs; i++) {
        size_t nh = 0;

        h[nh++] = (struct stomp_header)H("id", c->sub_ids[i]);
        h[nh++] = (struct stomp_header)H("destination", c->subs[i]);
        if (rabbit) {
            h[nh++] = (struct stomp_header)H("ack", "client-individual");
            h[nh++] = (struct stomp_header)H("durable", "true");
            h[nh++] = (struct stomp_header)H("auto-delete", "false");
            if (c->ctx->prefetch[0])
                h[nh++] = (struct stomp_header)H("prefetch-count", c->ctx->prefetch);
        }
        if (i == c->nsubs - 1)
            h[nh++] = (struct stomp_header)H("receipt", "lg-ready");
        lg_conn_send_frame(c, STOMP_CMD_SUBSCRIBE, h, nh, NULL, 0);
    }
    if (c->nsubs == 0) {
        c->state = LG_C_READY;
        c->t_ready = lg_now_ns();
        c->ctx->ev->on_ready(c);
    }
}

static void
on_stomp_frame(struct lg_conn *c, const struct stomp_frame *f)
{
    const struct stomp_str *v;
    char why[160];

    c->ctx->frames_in++;
    switch (c->state) {
    case LG_C_CONNECT:
        if (f->command != STOMP_CMD_CONNECTED) {
            v = lg_hdr(f, "message");
            snprintf(why, sizeof why, "CONNECT refused: %.*s", v ? (int)v->len : 0,
                     v ? v->ptr : "");
            conn_fail(c, why);
            return;
        }
        c->state = LG_C_SUBSCRIBE;
        send_subscribes(c);
        return;
    case LG_C_SUBSCRIBE:
        if (f->command == STOMP_CMD_RECEIPT && (v = lg_hdr(f, "receipt-id")) &&
            v->len == 8 && memcmp(v->ptr, "lg-ready", 8) == 0) {
            c->state = LG_C_READY;
            c->t_ready = lg_now_ns();
            c->ctx->ev->on_ready(c);
            return;
        }
        if (f->command == STOMP_CMD_ERROR) {
            v = lg_hdr(f, "message");
            snprintf(why, sizeof why, "SUBSCRIBE refused: %.*s", v ? (int)v->len : 0,
                     v ? v->ptr : "");
            conn_fail(c, why);
            return;
        }
        c->ctx->ev->on_frame(c, f);
        return;
    case LG_C_READY:
        c->ctx->ev->on_frame(c, f);
        return;
    default:
        return;
    }
}

/* Parse STOMP frames from p[0..n); returns the bytes used (>= 0) or -1. */
static ssize_t
stomp_run(struct lg_conn *c, char *p, size_t n)
{
    struct stomp_header hdrs[MAX_HEADERS];
    struct stomp_frame f;
    size_t off = 0;
    ssize_t r;

    while (off < n && c->state < LG_C_CLOSING) {
        f.headers = hdrs;
        r = stomp_parse(&c->parser, p + off, n - off, &f);
        if (r == STOMP_AGAIN)
            break;
        if (r < 0) {
            conn_fail(c, stomp_strerror((int)r));
            return -1;
        }
        off += (size_t)r;
        if (f.command != STOMP_CMD_HEARTBEAT)
            on_stomp_frame(c, &f);
    }
    return (ssize_t)off;
}

/* One complete WebSocket text/binary message. */
static void
stomp_feed(struct lg_conn *c, char *p, size_t n)
{
    ssize_t used;

    c->ctx->ws_msgs_in++;
    if (c->slen == c->soff) {
        c->slen = c->soff = 0;
        if ((used = stomp_run(c, p, n)) < 0 || c->state >= LG_C_CLOSING)
            return;
        if ((size_t)used < n &&
            append(&c->sbuf, &c->slen, &c->scap, p + used, n - (size_t)used) < 0)
            conn_fail(c, "out of memory");
        return;
    }
    if (c->soff > 0) {
        memmove(c->sbuf, c->sbuf + c->soff, c->slen - c->soff);
        c->slen -= c->soff;
        c->soff = 0;
    }
    if (append(&c->sbuf, &c->slen, &c->scap, p, n) < 0) {
        conn_fail(c, "out of memory");
        return;
    }
    if ((used = stomp_run(c, c->sbuf, c->slen)) < 0)
        return;
    c->soff += (size_t)used;
}

/* ------------------------------------------------------------------------ */
/* WebSocket input                                                           */
/* ------------------------------------------------------------------------ */

static void
ws_frame(struct lg_conn *c, int fin, int op, char *p, size_t n)
{
    switch (op) {
    case 0x0:                                   /* continuation */
    case 0x1:                                   /* text */
    case 0x2:                                   /* binary */
        if (op != 0 && c->mlen > 0) {
            conn_fail(c, "websocket: new message inside a fragmented one");
            return;
        }
        if (fin && c->mlen == 0) {
            stomp_feed(c, p, n);
            return;
        }
        if (append(&c->mbuf, &c->mlen, &c->mcap, p, n) < 0) {
            conn_fail(c, "out of memory");
            return;
        }
        if (fin) {
            stomp_feed(c, c->mbuf, c->mlen);
            c->mlen = 0;
        }
        return;
    case 0x8: {                                 /* close: answer, then go */
        char why[160];
        unsigned code = n >= 2 ? ((unsigned)(unsigned char)p[0] << 8) |
                                     (unsigned char)p[1] : 1005;

        ws_send(c, 0x8, p, n >= 2 ? 2 : 0);
        flush(c);
        snprintf(why, sizeof why, "server closed the websocket: %u %.*s", code,
                 n > 2 ? (int)(n - 2 > 100 ? 100 : n - 2) : 0, n > 2 ? p + 2 : "");
        if (c->state == LG_C_READY && !c->ctx->verbose) {
            /* A close during the run is an error worth counting. */
        }
        conn_fail(c, why);
        return;
    }
    case 0x9:                                   /* ping */
        ws_send(c, 0xA, p, n);
        return;
    case 0xA:                                   /* pong */
        return;
    default:
        conn_fail(c, "websocket: unknown opcode");
        return;
    }
}

/* Handle every complete frame in p[0..n); returns the bytes used. */
static size_t
ws_run(struct lg_conn *c, char *p, size_t n)
{
    size_t off = 0;

    while (off + 2 <= n && c->state < LG_C_CLOSING) {
        unsigned char b0 = (unsigned char)p[off], b1 = (unsigned char)p[off + 1];
        uint64_t len = b1 & 0x7f;
        size_t hl = 2;

        if (len == 126) {
            if (off + 4 > n)
                break;
            len = ((uint64_t)(unsigned char)p[off + 2] << 8) | (unsigned char)p[off + 3];
            hl = 4;
        } else if (len == 127) {
            if (off + 10 > n)
                break;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = (len << 8) | (unsigned char)p[off + 2 + (size_t)i];
            hl = 10;
        }
        if (b1 & 0x80)
            hl += 4;
        if (len > MAX_WS_FRAME) {
            conn_fail(c, "websocket: frame too large");
            return n;
        }
        if (off + hl + len > n)
            break;
        if (b1 & 0x80) {                         /* servers must not mask */
            unsigned char *k = (unsigned char *)p + off + hl - 4;
            for (uint64_t i = 0; i < len; i++)
                p[off + hl + i] = (char)(p[off + hl + i] ^ k[i & 3]);
        }
        ws_frame(c, (b0 & 0x80) != 0, b0 & 0x0f, p + off + hl, (size_t)len);
        off += hl + (size_t)len;
    }
    return off;
}

static void
ws_input(struct lg_conn *c, char *p, size_t n)
{
    size_t used;

    if (c->rlen == 0) {
        used = ws_run(c, p, n);
        if (used < n && c->state < LG_C_CLOSING &&
            append(&c->rbuf, &c->rlen, &c->rcap, p + used, n - used) < 0)
            conn_fail(c, "out of memory");
        return;
    }
    if (append(&c->rbuf, &c->rlen, &c->rcap, p, n) < 0) {
        conn_fail(c, "out of memory");
        return;
    }
    used = ws_run(c, c->rbuf, c->rlen);
    if (c->state >= LG_C_CLOSING)
        return;
    memmove(c->rbuf, c->rbuf + used, c->rlen - used);
    c->rlen -= used;
}

/* ------------------------------------------------------------------------ */
/* Handshake                                                                 */
/* ------------------------------------------------------------------------ */

static void
send_connect(struct lg_conn *c)
{
    struct stomp_header h[6];
    size_t nh = 0;

    h[nh++] = (struct stomp_header)H("accept-version", "1.2");
    h[nh++] = (struct stomp_header)H("heart-beat", "0,0");
    if (c->ctx->target == LG_RABBIT) {
        h[nh++] = (struct stomp_header)H("host", "/");
        h[nh++] = (struct stomp_header)H("login", "guest");
        h[nh++] = (struct stomp_header)H("passcode", "guest");
    } else {
        h[nh++] = (struct stomp_header)H("host", "127.0.0.1");
    }
    c->state = LG_C_CONNECT;
    lg_conn_send_frame(c, STOMP_CMD_CONNECT, h, nh, NULL, 0);
}

static int
accept_ok(const struct lg_conn *c, const char *hdrs, size_t n)
{
    unsigned char sha[SHA_DIGEST_LENGTH];
    char in[64], want[64];
    const char *p;
    size_t klen = strlen(c->key);

    memcpy(in, c->key, klen);
    memcpy(in + klen, WS_GUID, sizeof WS_GUID - 1);
    SHA1((const unsigned char *)in, klen + sizeof WS_GUID - 1, sha);
    EVP_EncodeBlock((unsigned char *)want, sha, SHA_DIGEST_LENGTH);
    p = memmem(hdrs, n, want, strlen(want));
    return p != NULL;
}

static void
upgrade_input(struct lg_conn *c, char *p, size_t n)
{
    char *end;
    size_t hlen, rest;

    if (append(&c->rbuf, &c->rlen, &c->rcap, p, n) < 0) {
        conn_fail(c, "out of memory");
        return;
    }
    if ((end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4)) == NULL) {
        if (c->rlen > 16384)
            conn_fail(c, "handshake answer too long");
        return;
    }
    hlen = (size_t)(end - c->rbuf) + 4;
    if (c->rlen < 12 || memcmp(c->rbuf + 9, "101", 3) != 0) {
        char why[160];
        snprintf(why, sizeof why, "websocket upgrade refused: %.40s", c->rbuf);
        for (char *q = why; *q; q++)
            if (*q == '\r' || *q == '\n')
                *q = ' ';
        conn_fail(c, why);
        return;
    }
    if (!accept_ok(c, c->rbuf, hlen)) {
        conn_fail(c, "websocket upgrade: wrong Sec-WebSocket-Accept");
        return;
    }
    rest = c->rlen - hlen;
    c->rlen = 0;
    send_connect(c);
    if (rest > 0) {
        char *tmp = malloc(rest);

        if (tmp == NULL) {
            conn_fail(c, "out of memory");
            return;
        }
        memcpy(tmp, c->rbuf + hlen, rest);
        ws_input(c, tmp, rest);
        free(tmp);
    }
}

/* ------------------------------------------------------------------------ */
/* libuv callbacks                                                           */
/* ------------------------------------------------------------------------ */

static void
on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)h;
    (void)hint;
    *buf = uv_buf_init(read_buf, READ_BUF);
}

static void
on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct lg_conn *c = s->data;

    if (n < 0) {
        conn_fail(c, n == UV_EOF ? "server closed the connection" : uv_strerror((int)n));
        return;
    }
    if (n == 0 || c->state >= LG_C_CLOSING)
        return;
    c->ctx->bytes_in += (uint64_t)n;
    if (c->state == LG_C_UPGRADE)
        upgrade_input(c, buf->base, (size_t)n);
    else
        ws_input(c, buf->base, (size_t)n);
}

static void
on_connected(uv_connect_t *req, int status)
{
    struct lg_conn *c = req->data;
    unsigned char raw[16];
    char host[64], *req_text;
    int n;

    if (status < 0) {
        conn_fail(c, uv_strerror(status));
        return;
    }
    for (int i = 0; i < 16; i++)
        raw[i] = (unsigned char)lg_rand(&c->ctx->rng);
    EVP_EncodeBlock((unsigned char *)c->key, raw, 16);
    snprintf(host, sizeof host, "%s:%d", c->ctx->host, c->port);
    if (reserve(&c->out, &c->ocap, c->olen, 1024) < 0) {
        conn_fail(c, "out of memory");
        return;
    }
    req_text = c->out + c->olen;
    n = snprintf(req_text, 1024,
                 "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                 "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: v12.stomp\r\n\r\n",
                 c->path, host, c->key);
    c->olen += (size_t)n;
    c->state = LG_C_UPGRADE;
    mark_dirty(c);
    if ((n = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read)) < 0)
        conn_fail(c, uv_strerror(n));
}

void
lg_conn_global_cleanup(void)
{
    free(read_buf);
    free(scratch);
    read_buf = scratch = NULL;
    scratch_cap = 0;
}

void
lg_ctx_init(struct lg_ctx *ctx, uv_loop_t *loop)
{
    ctx->loop = loop;
    if (ctx->rng == 0)
        ctx->rng = lg_now_ns() | 1;
    if (read_buf == NULL && (read_buf = malloc(READ_BUF)) == NULL) {
        fprintf(stderr, "loadgen: out of memory\n");
        exit(2);
    }
    uv_check_init(loop, &ctx->flusher);
    ctx->flusher.data = ctx;
    uv_check_start(&ctx->flusher, on_check);
    uv_unref((uv_handle_t *)&ctx->flusher);
}

int
lg_conn_start(struct lg_ctx *ctx, struct lg_conn *c)
{
    struct sockaddr_in dst, src;
    struct stomp_limits lim = STOMP_LIMITS_DEFAULT;
    uv_os_fd_t fd;
    int rc, one = 1;

    c->ctx = ctx;
    lim.max_frame_bytes = 4u * 1024 * 1024;
    lim.max_header_bytes = 1024 * 1024;
    lim.max_headers = MAX_HEADERS;
    stomp_parser_init(&c->parser, &lim);
    c->port = ctx->nports > 1 ? ctx->ports[ctx->port_next++ % (unsigned)ctx->nports]
                              : ctx->port;
    if ((rc = uv_ip4_addr(ctx->host, c->port, &dst)) < 0)
        return rc;
    if ((rc = uv_tcp_init_ex(ctx->loop, &c->tcp, AF_INET)) < 0)
        return rc;
    c->tcp.data = c;
    c->creq.data = c;
    c->state = LG_C_TCP;
    c->t_start = lg_now_ns();
    if (ctx->nsrc > 1) {
        char ip[32];
        unsigned k = ctx->src_next++ % (unsigned)ctx->nsrc;

        /* Past 64k connections: each source address has its own ports.
         * IP_BIND_ADDRESS_NO_PORT lets connect() pick the port per
         * destination instead of bind() reserving one globally. */
        if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
            (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        snprintf(ip, sizeof ip, "127.0.%u.%u", 1 + k / 250, 1 + k % 250);
        if ((rc = uv_ip4_addr(ip, 0, &src)) < 0 ||
            (rc = uv_tcp_bind(&c->tcp, (const struct sockaddr *)&src, 0)) < 0) {
            lg_conn_close(c);
            return rc;
        }
    }
    (void)uv_tcp_nodelay(&c->tcp, 1);
    if ((rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&dst,
                             on_connected)) < 0) {
        lg_conn_close(c);
        return rc;
    }
    return 0;
}
