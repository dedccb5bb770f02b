#include "fmacros.h"

/* fuzz_longlink_parse.c - libFuzzer target: ll_parse() gives the same
 * packets and the same error whatever way the bytes arrive, and every
 * packet it returns encodes back to its own bytes.
 *
 * Input layout:
 *
 *     byte 0        configuration: the max_body profile (c % 8), and
 *                   whether the unconsumed bytes move before every call
 *                   (c / 8 & 1)
 *     byte 1        n: how many chunk-size bytes follow (n % 16)
 *     bytes 2..n+1  chunk sizes, used in turn (a byte b means b + 1 bytes)
 *     the rest      the byte stream a peer sends
 *
 * The stream is parsed twice: whole, from one exactly-sized heap block (a
 * read past its end faults under ASan), and in chunks through a buffer that
 * receives them one by one and holds exactly what has arrived (a fresh
 * exactly-sized block per call, so a read past the bytes received faults
 * too). Each run logs its events (op, seq, body, length of each packet;
 * the error or the bytes left over) and the two logs must be identical.
 * Along the way:
 *
 *  - a packet respects the limit and its header reads as ll_parse() said;
 *  - ll_encode() of (op, seq, body) gives back the packet's exact bytes;
 *  - a poisoned parser keeps failing with the same code, and the code has
 *    a name and a line.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "longlink/longlink.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                           \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,  \
                    #cond);                                                   \
            abort();                                                          \
        }                                                                     \
    } while (0)

static const size_t profiles[8] = {
    65536, 0, 1, 16, 64, 255, 4096, SIZE_MAX,
};

struct log {
    uint8_t *p;
    size_t len, cap;
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
log_u64(struct log *l, char tag, uint64_t v)
{
    log_put(l, &tag, 1);
    log_put(l, &v, sizeof(v));
}

struct run {
    struct ll_parser p;
    struct ll_limits lim;
    struct log log;
    ssize_t err;
};

/* Parses buf[0..len) as far as it goes; returns the bytes consumed. */
static size_t
run_parse(struct run *r, const uint8_t *buf, size_t len)
{
    size_t off = 0;

    while (r->err == 0) {
        struct ll_packet pk;
        ssize_t n = ll_parse(&r->p, buf + off, len - off, &pk);
        uint8_t *again;
        ssize_t m;

        if (n == LL_AGAIN)
            break;
        if (n < 0) {
            CHECK(ll_errname((int)n) != NULL);
            CHECK(strcmp(ll_strerror((int)n), "unknown error") != 0);
            CHECK(ll_parse(&r->p, buf + off, len - off, &pk) == n);
            CHECK(ll_parser_error(&r->p) == (int)n);
            r->err = n;
            log_u64(&r->log, 'E', (uint64_t)-n);
            break;
        }
        CHECK((size_t)n >= LL_HEADER_LEN && (size_t)n <= len - off);
        CHECK(pk.body_len == (size_t)n - LL_HEADER_LEN);
        CHECK(pk.body_len <= r->lim.max_body);
        CHECK(pk.body == (const char *)buf + off + LL_HEADER_LEN);
        CHECK(ll_op_name(pk.op) != NULL && ll_op_dir(pk.op) != 0);
        CHECK(ll_packet_len(buf + off, len - off) == (size_t)n);

        again = malloc((size_t)n);
        CHECK(again != NULL);
        m = ll_encode(again, (size_t)n, pk.op, pk.seq, pk.body, pk.body_len);
        CHECK(m == n);
        CHECK(memcmp(again, buf + off, (size_t)n) == 0);
        free(again);

        log_u64(&r->log, 'P', pk.op);
        log_u64(&r->log, 'S', pk.seq);
        log_u64(&r->log, 'B', pk.body_len);
        log_put(&r->log, pk.body, pk.body_len);
        off += (size_t)n;
    }
    return off;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct run whole, chunked;
    const uint8_t *stream, *cuts;
    size_t stream_len, ncuts, start = 0, have = 0, k = 0, used;
    uint8_t *copy;
    int move_always;

    if (size < 2)
        return 0;
    ncuts = data[1] % 16;
    if (ncuts > size - 2)
        ncuts = size - 2;
    cuts = data + 2;
    stream = data + 2 + ncuts;
    stream_len = size - 2 - ncuts;
    move_always = (data[0] / 8) & 1;

    memset(&whole, 0, sizeof(whole));
    memset(&chunked, 0, sizeof(chunked));
    whole.lim.max_body = chunked.lim.max_body = profiles[data[0] % 8];
    ll_parser_init(&whole.p, &whole.lim);
    ll_parser_init(&chunked.p, &chunked.lim);

    /* Whole. */
    copy = malloc(stream_len ? stream_len : 1);
    CHECK(copy != NULL);
    memcpy(copy, stream, stream_len);
    used = run_parse(&whole, copy, stream_len);
    if (whole.err == 0)
        log_u64(&whole.log, 'L', stream_len - used);
    free(copy);

    /* In chunks. With move_always the unconsumed bytes sit at the start of
     * a fresh block; otherwise the block holds the whole stream received so
     * far and parsing starts at the first unconsumed byte. */
    while (have < stream_len && chunked.err == 0) {
        size_t step = ncuts ? (size_t)cuts[k++ % ncuts] + 1 : stream_len;
        uint8_t *blk;

        if (step > stream_len - have)
            step = stream_len - have;
        have += step;
        if (move_always) {
            blk = malloc(have - start ? have - start : 1);
            CHECK(blk != NULL);
            memcpy(blk, stream + start, have - start);
            start += run_parse(&chunked, blk, have - start);
        } else {
            blk = malloc(have);
            CHECK(blk != NULL);
            memcpy(blk, stream, have);
            start += run_parse(&chunked, blk + start, have - start);
        }
        free(blk);
    }
    if (chunked.err == 0)
        log_u64(&chunked.log, 'L', stream_len - start);

    CHECK(whole.err == chunked.err);
    CHECK(whole.log.len == chunked.log.len);
    CHECK(whole.log.len == 0 ||
          memcmp(whole.log.p, chunked.log.p, whole.log.len) == 0);
    free(whole.log.p);
    free(chunked.log.p);
    return 0;
}
