/* http_head.h - the check of a connection's first HTTP/1 request head,
 * before lws reads it (http_head.c; listener.c calls it on the bytes it
 * peeked). Pure: bytes and limits in, a verdict out; no I/O, no
 * allocation. */
#ifndef CG_HTTP_HEAD_H
#define CG_HTTP_HEAD_H

#include <stddef.h>

/* Query parameters ('?', '&' and ';' in the request target) a request may
 * have: lws 4.1.6 keeps each in one of its 94 header slots, which the
 * request line, the HTTP version and up to CG_HTTP_MAX_HEADERS_CAP known
 * header fields share. Past it: 414. */
#define CG_HTTP_MAX_QUERY_PARAMS 24

/* The largest http_max_headers: with the request target, the version and
 * CG_HTTP_MAX_QUERY_PARAMS, lws's 94 slots are all used (2 + 24 + 64 = 90,
 * four to spare). */
#define CG_HTTP_MAX_HEADERS_CAP 64

/* Seconds a new connection has to send its whole first request head:
 * lws's own limit for the heads it reads (its timeout_secs_ah_idle, which
 * server.c sets to the same), so nothing changes for a slow client. */
#define CG_HTTP_HEAD_TIMEOUT_S 10

/* Bytes lws's header table needs for any head that passes lim (server.c
 * sets max_http_header_data to it). Each stored field costs lws at most 9
 * bytes more than it takes on the wire (an 8-byte record and a ':' for a
 * field lws does not know, a NUL for one it knows), each query parameter 1
 * (a NUL and a skipped byte for a 1-byte delimiter), the target and the
 * version 2 each; 64 spare. */
#define CG_HTTP_HEAD_LWS_BYTES(lim) \
    ((lim)->max_head_bytes + 9 * (lim)->max_headers + (lim)->max_query_params + 64)

struct cg_http_head_limits {
    size_t max_request_line;  /* request line, its CR LF excluded: 414 past it */
    size_t max_head_bytes;    /* request line, header fields and the blank
                                 line: 431 past it */
    size_t max_headers;       /* header field lines: 431 past it */
    size_t max_query_params;  /* CG_HTTP_MAX_QUERY_PARAMS: 414 past it */
};

/* The path of the request target (before '?'), percent-decoded, holds an
 * empty segment ("//") or a "." or ".." segment: lws folds those away
 * before the route table sees the path. */
#define CG_HTTP_HEAD_F_PATH_FOLDED 1u

struct cg_http_head_verdict {
    int         status;     /* 0: the head is fine; else 400, 414 or 431 */
    const char *reason;     /* status != 0: a static one-line reason */
    size_t      head_len;   /* status 0: bytes of the head, blank line included */
    unsigned    flags;      /* status 0: CG_HTTP_HEAD_F_* */
};

/* Check the request head at the start of buf[0..len) (the bytes a
 * connection sent so far; what follows the head is not looked at).
 *
 * Returns 0 when buf holds only part of a head and nothing is wrong yet:
 * call again with the same bytes and more. Returns 1 with *out set when a
 * verdict is in: the whole head is fine (status 0), or it is refused as
 * soon as the bytes show it (status and reason):
 *   400  a control byte (NUL included, raw or as %00) in the request line,
 *        a malformed request line (method, one space, target, one space,
 *        HTTP/d.d), a bad %-escape, a header line that is not
 *        "name: value" with a token name and no control byte but HT in the
 *        value, a folded header line, a CR not followed by LF;
 *   414  a request line over max_request_line, or more query parameters
 *        than max_query_params;
 *   431  a head over max_head_bytes, or more than max_headers fields.
 * LF alone ends a line as CR LF does (RFC 9112 2.2). */
int cg_http_head_check(const char *buf, size_t len,
                       const struct cg_http_head_limits *lim,
                       struct cg_http_head_verdict *out);

#endif
