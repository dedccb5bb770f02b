/* test_http_head.c - http_head.c: which first request heads pass, which
 * are refused with which status, and that the answer does not depend on
 * how the bytes were split (listener.c checks whatever has arrived).
 * One row per case; each limit at N and N + 1 (small limits, so the rows
 * stay readable). */
#include "fmacros.h"

#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>

#include "http/http_head.h"

/* Small limits for the rows: request line 40, head 128, 4 fields, 3 query
 * parameters. */
static const struct cg_http_head_limits lim = { 40, 128, 4, 3 };

/* By value: Criterion runs each parameter in a fresh worker process. */
struct head_case {
    char     head[192];
    int      status;       /* 0: passes; -1: incomplete (needs more) */
    unsigned flags;
};

#define PASS(h)        { h, 0, 0 }
#define FOLDED(h)      { h, 0, CG_HTTP_HEAD_F_PATH_FOLDED }
#define REFUSE(h, st)  { h, st, 0 }
#define MORE(h)        { h, -1, 0 }

static const struct head_case cases[] = {
    PASS("GET / HTTP/1.1\r\n\r\n"),
    PASS("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"),
    PASS("GET /healthz HTTP/1.0\nHost: x\n\n"),                 /* LF alone */
    PASS("POST /api/login HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"),
    PASS("GET /a?b=%41&c;d HTTP/1.1\r\n\r\n"),                 /* 3 parameters */
    PASS("GET /\xc3\xa9 HTTP/1.1\r\nX: \xff\t\r\n\r\n"),       /* obs-text */
    PASS("GET /a HTTP/1.1\r\nA:\r\nB: 1\r\nC: 2\r\nD: 3\r\n\r\n"),  /* 4 fields */
    PASS("GET /abcdefghijklmnopqrstuvwxyz HTTP/1.1\r\n\r\n"),   /* line of 40 */
    PASS("GET /a/.b/..c/b.. HTTP/1.1\r\n\r\n"),
    PASS("GET * HTTP/1.1\r\n\r\n"),
    FOLDED("GET /socketServer// HTTP/1.1\r\n\r\n"),
    FOLDED("GET //a HTTP/1.1\r\n\r\n"),
    FOLDED("GET /a/./b HTTP/1.1\r\n\r\n"),
    FOLDED("GET /a/../b HTTP/1.1\r\n\r\n"),
    FOLDED("GET /a/.. HTTP/1.1\r\n\r\n"),
    FOLDED("GET /a/. HTTP/1.1\r\n\r\n"),
    FOLDED("GET /a%2F/b HTTP/1.1\r\n\r\n"),                     /* decoded "//" */
    FOLDED("GET /a/%2e%2E/b HTTP/1.1\r\n\r\n"),
    PASS("GET /a?x=//y/../ HTTP/1.1\r\n\r\n"),                  /* the query is not */
    MORE(""),
    MORE("GET"),
    MORE("GET /a%4"),
    MORE("GET /a HTTP/1."),
    MORE("GET /a HTTP/1.1\r"),
    MORE("GET /a HTTP/1.1\r\nHost: x\r\n"),
    MORE("GET /a HTTP/1.1\r\nHost: x\r\n\r"),
    REFUSE("GET /abcdefghijklmnopqrstuvwxyz0 HTTP/1.1\r\n\r\n", 414),   /* line of 41 */
    REFUSE("GET /abcdefghijklmnopqrstuvwxyz0123456789", 414),        /* at once */
    REFUSE("GET /a?b&c&d&e HTTP/1.1\r\n\r\n", 414),             /* 4 parameters */
    REFUSE("GET /a HTTP/1.1\r\nA:\r\nB: 1\r\nC: 2\r\nD: 3\r\nE: 4\r\n\r\n", 431),
    REFUSE("GET /a HTTP/1.1\r\nCookie: 0123456789012345678901234567890123456789"
           "0123456789012345678901234567890123456789012345678901234567890\r\n\r\n", 431),
    REFUSE("GET /a\x01 HTTP/1.1\r\n\r\n", 400),
    REFUSE("GET /a\x7f HTTP/1.1\r\n\r\n", 400),
    REFUSE("GET /a%00 HTTP/1.1\r\n\r\n", 400),
    REFUSE("GET /a?b=%00 HTTP/1.1\r\n\r\n", 400),
    REFUSE("GET /a%0g HTTP/1.1\r\n\r\n", 400),
    REFUSE("GET /a%g0 HTTP/1.1\r\n\r\n", 400),
    REFUSE("GET /a\r\n\r\n", 400),                              /* HTTP/0.9 */
    REFUSE("GET  /a HTTP/1.1\r\n\r\n", 400),
    REFUSE(" GET /a HTTP/1.1\r\n\r\n", 400),
    REFUSE("\r\nGET /a HTTP/1.1\r\n\r\n", 400),
    REFUSE("GET /a HTTP/1.1 \r\n\r\n", 400),
    REFUSE("GET /a HTTPS/1.1\r\n\r\n", 400),
    REFUSE("GET /a HTTP/11\r\n\r\n", 400),
    REFUSE("G(T /a HTTP/1.1\r\n\r\n", 400),
    REFUSE("GET /a HTTP/1.1\rX: 1\r\n\r\n", 400),
    REFUSE("GET /a HTTP/1.1\r\nX: 1\rY\r\n\r\n", 400),
    REFUSE("GET /a HTTP/1.1\r\nX : 1\r\n\r\n", 400),
    REFUSE("GET /a HTTP/1.1\r\n: 1\r\n\r\n", 400),
    REFUSE("GET /a HTTP/1.1\r\nX\r\n\r\n", 400),
    REFUSE("GET /a HTTP/1.1\r\nX: 1\r\n folded\r\n\r\n", 400),
    REFUSE("GET /a HTTP/1.1\r\nX: a\x01""b\r\n\r\n", 400),
    REFUSE("GET /a HTTP/1.1\r\n\r\r\n", 400),
};

/* The head's bytes: rows are C strings, but one NUL row is tested below. */
static size_t
head_len(const struct head_case *c)
{
    return strlen(c->head);
}

static void
expect(const struct head_case *c, const char *buf, size_t len, const char *how)
{
    struct cg_http_head_verdict v;
    int rc = cg_http_head_check(buf, len, &lim, &v);

    if (c->status < 0) {
        cr_assert(eq(int, rc, 0), "%s: incomplete: %s", how, c->head);
        return;
    }
    cr_assert(eq(int, rc, 1), "%s: a verdict for %s", how, c->head);
    cr_assert(eq(int, v.status, c->status), "%s: %s (%s)", how, c->head,
              v.reason ? v.reason : "-");
    if (c->status == 0) {
        cr_assert(eq(u32, v.flags, c->flags), "%s: flags of %s", how, c->head);
        /* The head ends at its blank line; what follows is not its. */
        cr_assert(eq(int, buf[v.head_len - 1], '\n'));
    } else {
        cr_assert(not(zero(ptr, (void *)v.reason)));
    }
}

ParameterizedTestParameters(http_head, heads_are_judged_as_the_rows_say)
{
    return cr_make_param_array(struct head_case, (void *)cases,
                               sizeof cases / sizeof cases[0]);
}

ParameterizedTest(const struct head_case *c, http_head, heads_are_judged_as_the_rows_say)
{
    size_t n = head_len(c);
    char *buf = malloc(n + 1);

    /* At the end of its own allocation: ASan sees any over-read. */
    memcpy(buf, c->head, n);
    expect(c, buf, n, "whole");
    /* Every prefix: no verdict yet, or the same refusal once the bytes
     * that decide it are in (a passing head is only complete at its end). */
    for (size_t k = 0; k < n; k++) {
        struct cg_http_head_verdict v;
        int rc = cg_http_head_check(buf, k, &lim, &v);

        if (rc == 1)
            cr_assert(eq(int, v.status, c->status), "prefix %zu of %s: %d", k, c->head,
                      v.status);
    }
    free(buf);
}

Test(http_head, raw_nul_in_the_target_is_400)
{
    static const char h[] = "GET /a\0b HTTP/1.1\r\n\r\n";
    struct cg_http_head_verdict v;

    cr_assert(eq(int, cg_http_head_check(h, sizeof h - 1, &lim, &v), 1));
    cr_assert(eq(int, v.status, 400));
    cr_assert(eq(str, (char *)v.reason, "control byte in the request target"));
}

Test(http_head, head_at_the_byte_limit_passes_and_one_more_is_431)
{
    struct cg_http_head_limits l = { 40, 64, 4, 3 };
    struct cg_http_head_verdict v;
    char h[80];

    /* "GET / HTTP/1.1\r\n" (16) + "X: " + value + "\r\n" + "\r\n" = 64 */
    memset(h, 0, sizeof h);
    strcpy(h, "GET / HTTP/1.1\r\nX: ");
    memset(h + strlen(h), 'v', 64 - 16 - 3 - 4);
    strcat(h, "\r\n\r\n");
    cr_assert(eq(sz, strlen(h), 64));
    cr_assert(eq(int, cg_http_head_check(h, 64, &l, &v), 1));
    cr_assert(eq(int, v.status, 0));
    cr_assert(eq(sz, v.head_len, 64));

    memmove(h + 20, h + 19, 46);
    h[19] = 'v';
    cr_assert(eq(int, cg_http_head_check(h, 65, &l, &v), 1));
    cr_assert(eq(int, v.status, 431));
    /* Only the 64 bytes seen so far, no end: the head cannot fit any more. */
    cr_assert(eq(int, cg_http_head_check(h, 64, &l, &v), 1));
    cr_assert(eq(int, v.status, 431));
}

Test(http_head, lws_table_size_covers_the_limits)
{
    struct cg_http_head_limits l = { 4096, 8192, 64, CG_HTTP_MAX_QUERY_PARAMS };

    /* server.c gives lws this much; it must fit lws's unsigned short. */
    cr_assert(le(sz, CG_HTTP_HEAD_LWS_BYTES(&l), 65535));
    l.max_head_bytes = 32768;
    cr_assert(le(sz, CG_HTTP_HEAD_LWS_BYTES(&l), 65535));
}
