#include "fmacros.h"

/* fuzz_stomp_parse.c - libFuzzer target: stomp_parse() must give the same
 * frames whatever way the bytes arrive.
 *
 * Input layout (shared with fuzz_stomp_roundtrip.c, so one seed corpus
 * serves both):
 *
 *     byte 0        configuration, see config_from()
 *     byte 1        n: how many chunk-size bytes follow (n % 16)
 *     bytes 2..n+1  chunk sizes, used in turn (a byte b means b + 1 bytes)
 *     the rest      the byte stream a peer sends
 *
 * The stream is parsed twice:
 *
 *  - whole: all of it in one exactly-sized heap block (ASan catches a read
 *    past its end), frames consumed from the front as they come;
 *  - like a session: a read buffer that receives the chunks, grows,
 *    compacts (when the consumed prefix passes 1 KiB, hiredis's rule, or
 *    before every call, by configuration), and whose unused capacity is
 *    poisoned for ASan so a read past the bytes received faults too.
 *
 * Each run records a log of events (frames with their headers and body,
 * heart-beat bytes merged, the final error or the bytes left over) and the
 * two logs must be identical. Along the way every frame is checked against
 * the limits and the API's promises, and a parser that failed must keep
 * failing with the same code.
 */

#include <sanitizer/asan_interface.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stomp/stomp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                           \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,  \
                    #cond);                                                   \
            abort();                                                          \
        }                                                                     \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Configuration                                                             */
/* ------------------------------------------------------------------------ */

static const struct stomp_limits profiles[8] = {
    {65536, 64, 8192, 65536}, /* the defaults */
    {256, 8, 64, 128},
    {48, 3, 16, 24},          /* tiny: every limit is reachable */
    {96, 64, 8192, 40},       /* lines may be longer than frames */
    {65536, 0, 8192, 65536},  /* no header allowed */
    {512, 2, 512, 512},
    {64, 64, 64, 64},
    {1u << 20, 64, 8192, 8192},
};

static const enum stomp_version versions[3] = {STOMP_V1_0, STOMP_V1_1,
                                               STOMP_V1_2};

struct config {
    enum stomp_version version;
    struct stomp_limits lim;
    int negotiate;       /* start as a fresh session (tight limits, default
                            version), apply version and lim after the first
                            frame, as after CONNECT */
    int compact_always;  /* move unconsumed bytes before every call */
    const uint8_t *cuts; /* chunk sizes */
    size_t ncuts;
};

static void
config_from(const uint8_t *data, size_t size, struct config *cfg,
            const uint8_t **stream, size_t *stream_len)
{
    uint8_t c = data[0];
    size_t n = data[1] % 16;

    if (n > size - 2)
        n = size - 2;
    cfg->version = versions[c % 3];
    cfg->lim = profiles[(c / 3) % 8];
    cfg->compact_always = (c / 24) & 1;
    cfg->negotiate = (c / 48) & 1;
    cfg->cuts = data + 2;
    cfg->ncuts = n;
    *stream = data + 2 + n;
    *stream_len = size - 2 - n;
}

/* ------------------------------------------------------------------------ */
/* Event log                                                                 */
/* ------------------------------------------------------------------------ */

struct log {
    uint8_t *p;
    size_t len, cap;
    size_t hb; /* heart-beat bytes not yet recorded: runs merge, since how
                  many come back per call depends on how they arrived */
};

static void
log_put(struct log *l, const void *src, size_t n)
{
    if (l->len + n > l->cap) {
        l->cap = (l->len + n) * 2;
        l->p = realloc(l->p, l->cap);
        CHECK(l->p != NULL);
    }
    memcpy(l->p + l->len, src, n);
    l->len += n;
}

static void
log_size(struct log *l, char tag, size_t v)
{
    log_put(l, &tag, 1);
    log_put(l, &v, sizeof(v));
}

static void
log_str(struct log *l, char tag, struct stomp_str s)
{
    log_size(l, tag, s.len);
    log_put(l, s.ptr, s.len);
}

static void
log_flush_hb(struct log *l)
{
    if (l->hb > 0)
        log_size(l, 'H', l->hb);
    l->hb = 0;
}

/* ------------------------------------------------------------------------ */
/* Checks and the two runs                                                   */
/* ------------------------------------------------------------------------ */

static int
parse_decimal(struct stomp_str s, size_t *out)
{
    size_t v = 0, i;

    if (s.len == 0)
        return -1;
    for (i = 0; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9' || v > (SIZE_MAX - 9) / 10)
            return -1;
        v = v * 10 + (size_t)(s.ptr[i] - '0');
    }
    *out = v;
    return 0;
}

/* What stomp_parse() promises about a frame it returned from b[0..used). */
static void
check_frame(const struct stomp_frame *f, const char *b, size_t used,
            const struct stomp_limits *lim)
{
    const struct stomp_str *cl;
    size_t i, sum = 0, n;

    if (f->command == STOMP_CMD_HEARTBEAT) {
        CHECK(f->nheaders == 0 && f->body.len == 0);
        for (i = 0; i < used; i++)
            CHECK(b[i] == '\n' || b[i] == '\r');
        return;
    }
    CHECK((unsigned)f->command < STOMP_CMD_HEARTBEAT);
    CHECK(used <= lim->max_frame_bytes);
    CHECK(f->nheaders <= lim->max_headers);
    for (i = 0; i < f->nheaders; i++) {
        const struct stomp_header *h = &f->headers[i];

        CHECK(h->name.len > 0);
        CHECK(h->name.ptr >= b && h->name.ptr + h->name.len <= b + used);
        CHECK(h->value.ptr >= b && h->value.ptr + h->value.len <= b + used);
        CHECK(h->name.len + 1 + h->value.len <= lim->max_header_line);
        sum += h->name.len + 1 + h->value.len;
    }
    CHECK(sum <= lim->max_header_bytes);
    CHECK(f->body.ptr >= b && f->body.ptr + f->body.len < b + used);
    CHECK(f->body.ptr[f->body.len] == '\0');
    CHECK(f->body.ptr + f->body.len + 1 == b + used);

    cl = stomp_frame_header(f, "content-length");
    if (cl != NULL && parse_decimal(*cl, &n) == 0)
        CHECK(n == f->body.len);
    else
        CHECK(memchr(f->body.ptr, '\0', f->body.len) == NULL);
}

struct run {
    const struct config *cfg;
    struct stomp_parser p;
    struct stomp_header *hdrs;
    struct stomp_frame f;
    struct log log;
    size_t frames;
    ssize_t err;
};

static const struct stomp_limits tight = {64, 4, 32, 64};

static void
run_init(struct run *r, const struct config *cfg)
{
    memset(r, 0, sizeof(*r));
    r->cfg = cfg;
    r->hdrs = calloc(cfg->lim.max_headers + tight.max_headers + 1,
                     sizeof(*r->hdrs));
    CHECK(r->hdrs != NULL);
    r->f.headers = r->hdrs;
    if (cfg->negotiate) {
        stomp_parser_init(&r->p, &tight);
    } else {
        stomp_parser_init(&r->p, &cfg->lim);
        stomp_parser_set_version(&r->p, cfg->version);
    }
}

static const struct stomp_limits *
run_limits(const struct run *r)
{
    return r->cfg->negotiate && r->frames == 0 ? &tight : &r->cfg->lim;
}

/* Parses what buf[0..len) holds; returns the bytes consumed. Records the
 * error in r->err if one ends the stream. */
static size_t
run_parse(struct run *r, char *buf, size_t len)
{
    size_t off = 0;

    while (r->err == 0) {
        const struct stomp_limits *lim = run_limits(r);
        ssize_t n = stomp_parse(&r->p, buf + off, len - off, &r->f);
        size_t i;

        if (n == STOMP_AGAIN)
            break;
        if (n < 0) {
            char msg[128];
            int m = stomp_strerror_limit((int)n, lim, msg, sizeof(msg));

            CHECK(m > 0 && (size_t)m < sizeof(msg) && strchr(msg, '\n') == NULL);
            CHECK(stomp_parse(&r->p, buf + off, len - off, &r->f) == n);
            CHECK(stomp_parse(&r->p, buf, 0, &r->f) == n);
            log_flush_hb(&r->log);
            log_size(&r->log, 'E', (size_t)-n);
            r->err = n;
            break;
        }
        CHECK((size_t)n <= len - off);
        check_frame(&r->f, buf + off, (size_t)n, lim);
        if (r->f.command == STOMP_CMD_HEARTBEAT) {
            r->log.hb += (size_t)n;
        } else {
            log_flush_hb(&r->log);
            log_size(&r->log, 'F', (size_t)r->f.command);
            log_size(&r->log, 'N', (size_t)n);
            for (i = 0; i < r->f.nheaders; i++) {
                log_str(&r->log, 'k', r->hdrs[i].name);
                log_str(&r->log, 'v', r->hdrs[i].value);
            }
            log_str(&r->log, 'b', r->f.body);
            if (r->frames++ == 0 && r->cfg->negotiate) {
                stomp_parser_set_limits(&r->p, &r->cfg->lim);
                stomp_parser_set_version(&r->p, r->cfg->version);
            }
        }
        off += (size_t)n;
    }
    return off;
}

static void
run_finish(struct run *r, size_t left)
{
    log_flush_hb(&r->log);
    if (r->err == 0)
        log_size(&r->log, 'A', left);
    free(r->hdrs);
}

static void
parse_whole(struct run *r, const uint8_t *stream, size_t len)
{
    char *buf = malloc(len > 0 ? len : 1);
    size_t used;

    CHECK(buf != NULL);
    if (len > 0)
        memcpy(buf, stream, len);
    used = run_parse(r, buf, len);
    run_finish(r, len - used);
    free(buf);
}

/* A session's read buffer: bytes [start, end) are received and not yet
 * consumed; [end, cap) is poisoned. */
struct session_buf {
    char *p;
    size_t cap, start, end;
};

static void
session_append(struct session_buf *s, const uint8_t *src, size_t n,
               int compact_always)
{
    if (s->start > 0 &&
        (compact_always || s->start >= 1024 || s->end + n > s->cap)) {
        ASAN_UNPOISON_MEMORY_REGION(s->p, s->cap);
        memmove(s->p, s->p + s->start, s->end - s->start);
        s->end -= s->start;
        s->start = 0;
    }
    if (s->end + n > s->cap) {
        size_t cap = s->cap * 2 > s->end + n ? s->cap * 2 : s->end + n;

        ASAN_UNPOISON_MEMORY_REGION(s->p, s->cap);
        s->p = realloc(s->p, cap);
        CHECK(s->p != NULL);
        s->cap = cap;
    }
    ASAN_UNPOISON_MEMORY_REGION(s->p, s->cap);
    memcpy(s->p + s->end, src, n);
    s->end += n;
    ASAN_POISON_MEMORY_REGION(s->p + s->end, s->cap - s->end);
}

static void
parse_in_chunks(struct run *r, const uint8_t *stream, size_t len)
{
    struct session_buf s = {0};
    size_t off = 0, k = 0;

    while (off < len && r->err == 0) {
        size_t n = r->cfg->ncuts > 0 ? (size_t)r->cfg->cuts[k++ % r->cfg->ncuts] + 1
                                     : len;

        if (n > len - off)
            n = len - off;
        session_append(&s, stream + off, n, r->cfg->compact_always);
        off += n;
        s.start += run_parse(r, s.p + s.start, s.end - s.start);
        /* Bytes not consumed are still the peer's bytes, unmodified. Checked
         * after chunks 1, 2, 4, 8, ... and the last: after every chunk
         * would make byte-sized chunks cost O(n^2). */
        if (r->err == 0 && ((k & (k - 1)) == 0 || off == len))
            CHECK(memcmp(s.p + s.start, stream + off - (s.end - s.start),
                         s.end - s.start) == 0);
    }
    run_finish(r, s.end - s.start);
    ASAN_UNPOISON_MEMORY_REGION(s.p, s.cap);
    free(s.p);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config cfg;
    const uint8_t *stream;
    size_t len;
    struct run whole, chunked;

    if (size < 2)
        return 0;
    config_from(data, size, &cfg, &stream, &len);

    run_init(&whole, &cfg);
    parse_whole(&whole, stream, len);
    run_init(&chunked, &cfg);
    parse_in_chunks(&chunked, stream, len);

    if (whole.log.len != chunked.log.len ||
        memcmp(whole.log.p, chunked.log.p, whole.log.len) != 0) {
        fprintf(stderr, "whole and chunked parses differ (%zu vs %zu log bytes)\n",
                whole.log.len, chunked.log.len);
        abort();
    }
    free(whole.log.p);
    free(chunked.log.p);
    return 0;
}
