/* http.c - one-shot HTTP/1.1 POSTs on the generator's loop (register and
 * login before a run).
 *
 *   connect (bound to a source address) -> write request -> read until
 *   the peer closes or Content-Length bytes arrived -> callback -> close
 *
 * Each request is a heap object freed in its close callback. The request
 * asks for "Connection: close", so there is no keep-alive state. The
 * gateway rate-limits logins per client address, which is why the caller
 * may pick a source address per request (any 127.x.y.z is local). */
#include "fmacros.h"

#include <stdlib.h>
#include <string.h>

#include "lg.h"

struct http_req {
    uv_tcp_t     tcp;
    uv_connect_t creq;
    uv_write_t   wreq;
    lg_http_cb   cb;
    void        *data;
    char        *req;
    size_t       req_len;
    char        *resp;
    size_t       len, cap;
    int          done;
};

static void
on_closed(uv_handle_t *h)
{
    struct http_req *r = h->data;

    free(r->req);
    free(r->resp);
    free(r);
}

/* Status and body once the answer is complete (or the peer closed). */
static int
parse_answer(struct http_req *r, int eof, struct lg_http_result *res)
{
    char *hdr_end, *cl;
    size_t hlen, want;

    if (r->len < 12 || (hdr_end = memmem(r->resp, r->len, "\r\n\r\n", 4)) == NULL)
        return eof ? -1 : 0;
    hlen = (size_t)(hdr_end - r->resp) + 4;
    res->status = atoi(r->resp + 9);
    res->body = r->resp + hlen;
    res->body_len = r->len - hlen;
    cl = memmem(r->resp, hlen, "Content-Length:", 15);
    if (cl == NULL)
        cl = memmem(r->resp, hlen, "content-length:", 15);
    if (cl != NULL) {
        want = (size_t)strtoul(cl + 15, NULL, 10);
        if (res->body_len >= want) {
            res->body_len = want;
            return 1;
        }
        return eof ? 1 : 0;
    }
    return eof ? 1 : 0;
}

static void
finish(struct http_req *r, int status)
{
    struct lg_http_result res = { status, NULL, 0 };

    if (r->done)
        return;
    r->done = 1;
    r->cb(&res, r->data);
    uv_close((uv_handle_t *)&r->tcp, on_closed);
}

static void
on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct http_req *r = h->data;

    (void)hint;
    if (r->cap - r->len < 4096) {
        size_t cap = r->cap ? r->cap * 2 : 8192;
        char *p = realloc(r->resp, cap);

        if (p == NULL) {
            *buf = uv_buf_init(NULL, 0);
            return;
        }
        r->resp = p;
        r->cap = cap;
    }
    *buf = uv_buf_init(r->resp + r->len, (unsigned)(r->cap - r->len));
}

static void
on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct http_req *r = s->data;
    struct lg_http_result res = { 0, NULL, 0 };
    int eof = 0, rc;

    (void)buf;
    if (r->done)
        return;
    if (n > 0)
        r->len += (size_t)n;
    else if (n == UV_EOF)
        eof = 1;
    else if (n < 0) {
        finish(r, (int)n);
        return;
    }
    rc = parse_answer(r, eof, &res);
    if (rc < 0) {
        finish(r, -1);
    } else if (rc > 0) {
        r->done = 1;
        r->cb(&res, r->data);
        uv_close((uv_handle_t *)&r->tcp, on_closed);
    }
}

static void
on_written(uv_write_t *w, int status)
{
    struct http_req *r = w->data;

    if (status < 0)
        finish(r, status);
}

static void
on_connected(uv_connect_t *c, int status)
{
    struct http_req *r = c->data;
    uv_buf_t b = uv_buf_init(r->req, (unsigned)r->req_len);

    if (status < 0) {
        finish(r, status);
        return;
    }
    r->wreq.data = r;
    if (uv_write(&r->wreq, (uv_stream_t *)&r->tcp, &b, 1, on_written) < 0 ||
        uv_read_start((uv_stream_t *)&r->tcp, on_alloc, on_read) < 0)
        finish(r, -1);
}

int
lg_http_post(uv_loop_t *loop, const char *host, int port, const char *src,
             const char *path, const char *body, lg_http_cb cb, void *data)
{
    struct http_req *r = calloc(1, sizeof *r);
    struct sockaddr_in dst, sa;
    size_t blen = strlen(body);
    int rc;

    if (r == NULL)
        return UV_ENOMEM;
    r->cb = cb;
    r->data = data;
    r->req_len = strlen(path) + strlen(host) + blen + 200;
    if ((r->req = malloc(r->req_len)) == NULL) {
        free(r);
        return UV_ENOMEM;
    }
    r->req_len = (size_t)snprintf(r->req, r->req_len,
                                  "POST %s HTTP/1.1\r\nHost: %s:%d\r\n"
                                  "Content-Type: application/json\r\n"
                                  "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                                  path, host, port, blen, body);
    if ((rc = uv_ip4_addr(host, port, &dst)) < 0 ||
        (rc = uv_tcp_init(loop, &r->tcp)) < 0) {
        free(r->req);
        free(r);
        return rc;
    }
    r->tcp.data = r;
    r->creq.data = r;
    if (src != NULL && (rc = uv_ip4_addr(src, 0, &sa)) == 0)
        rc = uv_tcp_bind(&r->tcp, (const struct sockaddr *)&sa, 0);
    if (rc == 0)
        rc = uv_tcp_connect(&r->creq, &r->tcp, (const struct sockaddr *)&dst, on_connected);
    if (rc < 0) {
        r->done = 1;
        uv_close((uv_handle_t *)&r->tcp, on_closed);
        return rc;
    }
    return 0;
}
