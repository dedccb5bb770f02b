#include "fmacros.h"

/* test_parser.c - ll_parse(): packets, every error, limits at N and N+1,
 * sticky errors, and the same result for every way the bytes arrive.
 *
 * Most cases are rows of one table: the input (built from packet specs, so
 * a row reads as the header fields it carries), the limit, and the expected
 * trace, a line per event:
 *
 *     send#7 [hello] 21       a packet: operation, sequence, body, bytes used
 *     !LL_E_TOO_LARGE         the error that ended the stream
 *     AGAIN 5                 bytes left over as a partial packet
 *
 * Every row runs whole, split at every offset (the prefix, then the rest),
 * one byte at a time and in pseudo-random chunks; every run must print the
 * same trace. Before each call the unconsumed bytes are copied to end right
 * before a guard page, so reading one byte past the input faults, and the
 * parser sees its input move between calls as a compacting buffer moves it.
 */

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard_buf.h"
#include "longlink/longlink.h"

/* ------------------------------------------------------------------------ */
/* Building inputs                                                           */
/* ------------------------------------------------------------------------ */

#define AUTO (-1L)

/* One piece of a row's input: a packet whose header fields default to the
 * right values (AUTO), cut to its first keep bytes when keep > 0. */
struct seg {
    long plen; /* packet length field; AUTO: 16 + the body's length */
    long hlen; /* header length field; AUTO: 16 */
    long ver;  /* version field; AUTO: 1 */
    uint32_t op;
    uint32_t seq;
    const char *body; /* NUL-terminated; NULL: empty */
    size_t keep;      /* 0: the whole packet */
};

static void
put32(unsigned char *b, uint32_t v)
{
    b[0] = (unsigned char)(v >> 24);
    b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8);
    b[3] = (unsigned char)v;
}

/* Appends s to out at *len. out has room for 4096 bytes. */
static void
build_seg(unsigned char *out, size_t *len, const struct seg *s)
{
    size_t blen = s->body != NULL ? strlen(s->body) : 0;
    unsigned char p[4096];
    size_t n = 16 + blen;

    put32(p, s->plen == AUTO ? (uint32_t)(16 + blen) : (uint32_t)s->plen);
    p[4] = (unsigned char)((s->hlen == AUTO ? 16 : s->hlen) >> 8);
    p[5] = (unsigned char)(s->hlen == AUTO ? 16 : s->hlen);
    p[6] = (unsigned char)((s->ver == AUTO ? 1 : s->ver) >> 8);
    p[7] = (unsigned char)(s->ver == AUTO ? 1 : s->ver);
    put32(p + 8, s->op);
    put32(p + 12, s->seq);
    if (blen > 0)
        memcpy(p + 16, s->body, blen);
    if (s->keep > 0 && s->keep < n)
        n = s->keep;
    cr_assert(le(sz, *len + n, 4096));
    memcpy(out + *len, p, n);
    *len += n;
}

/* ------------------------------------------------------------------------ */
/* Traces and the session-like driver                                        */
/* ------------------------------------------------------------------------ */

struct trace {
    FILE *f;
    char *buf;
    size_t len;
};

static void
trace_open(struct trace *t)
{
    t->buf = NULL;
    t->len = 0;
    t->f = open_memstream(&t->buf, &t->len);
    cr_assert(not(eq(ptr, t->f, NULL)));
}

static char *
trace_close(struct trace *t)
{
    fclose(t->f);
    return t->buf;
}

static void
trace_packet(struct trace *t, const struct ll_packet *pk, size_t used)
{
    size_t i;

    fprintf(t->f, "%s#%u [", ll_op_name(pk->op), pk->seq);
    if (pk->body_len > 64) {
        fprintf(t->f, "<%zu bytes>", pk->body_len);
    } else {
        for (i = 0; i < pk->body_len; i++) {
            unsigned char c = (unsigned char)pk->body[i];

            if (c < 0x20 || c >= 0x7f || c == '\\')
                fprintf(t->f, "\\x%02x", c);
            else
                fputc(c, t->f);
        }
    }
    fprintf(t->f, "] %zu\n", used);
}

/* Feeds in[0..len) to a fresh parser with limits lim in the chunks s hands
 * out, the way a connection does, and returns the trace (caller frees). */
static char *
feed(const unsigned char *in, size_t len, const struct ll_limits *lim,
     struct byte_splitter *s)
{
    struct guard_buf gb = {0};
    struct ll_parser p;
    struct trace t;
    size_t have = 0, start = 0, chunk;
    int failed = 0;

    cr_assert(eq(int, guard_buf_init(&gb, len + 1), 0));
    ll_parser_init(&p, lim);
    trace_open(&t);
    while (!failed && (chunk = byte_splitter_next(s)) > 0) {
        have += chunk;
        for (;;) {
            struct ll_packet pk;
            const char *b = guard_buf_place(&gb, in + start, have - start);
            ssize_t n = ll_parse(&p, b, have - start, &pk);

            if (n == LL_AGAIN)
                break;
            if (n < 0) {
                fprintf(t.f, "!%s\n", ll_errname((int)n));
                /* Sticky, and the same error, whatever comes next. */
                cr_assert(eq(sz, ll_parse(&p, b, have - start, &pk), n));
                cr_assert(eq(sz, ll_parse(&p, b, 0, &pk), n));
                cr_assert(eq(int, ll_parser_error(&p), (int)n));
                failed = 1;
                break;
            }
            /* What ll_parse() promises about a packet. */
            cr_assert(ge(sz, (size_t)n, 16));
            cr_assert(le(sz, (size_t)n, have - start));
            cr_assert(eq(sz, pk.body_len, (size_t)n - 16));
            cr_assert(eq(ptr, (void *)pk.body, (void *)(b + 16)));
            cr_assert(le(sz, pk.body_len, lim->max_body));
            cr_assert(eq(sz, ll_packet_len(b, have - start), (size_t)n));
            trace_packet(&t, &pk, (size_t)n);
            start += (size_t)n;
        }
    }
    if (!failed && start < len)
        fprintf(t.f, "AGAIN %zu\n", len - start);
    guard_buf_cleanup(&gb);
    return trace_close(&t);
}

/* Runs in whole, split at every offset, byte by byte and in random chunks;
 * each must give want. */
static void
assert_trace(const unsigned char *in, size_t len, const struct ll_limits *lim,
             const char *want, const char *name)
{
    struct byte_splitter s;
    size_t at;
    uint64_t seed;
    char *got;

    byte_splitter_at(&s, len, len);
    got = feed(in, len, lim, &s);
    cr_assert(eq(str, got, (char *)want), "%s: whole", name);
    free(got);
    for (at = 1; at < len; at++) {
        byte_splitter_at(&s, len, at);
        got = feed(in, len, lim, &s);
        cr_assert(eq(str, got, (char *)want), "%s: split at %zu", name, at);
        free(got);
    }
    byte_splitter_every(&s, len, 1);
    got = feed(in, len, lim, &s);
    cr_assert(eq(str, got, (char *)want), "%s: byte by byte", name);
    free(got);
    for (seed = 1; seed <= 8; seed++) {
        byte_splitter_random(&s, len, seed, 23);
        got = feed(in, len, lim, &s);
        cr_assert(eq(str, got, (char *)want), "%s: random %llu", name,
                  (unsigned long long)seed);
        free(got);
    }
}

/* ------------------------------------------------------------------------ */
/* The table                                                                 */
/* ------------------------------------------------------------------------ */

#define MAXSEG 4

struct parse_case {
    const char *name;
    size_t max_body;
    struct seg segs[MAXSEG];
    size_t nsegs;
    const char *want;
};

#define P(op_, seq_, body_)                                                   \
    {AUTO, AUTO, AUTO, (op_), (seq_), (body_), 0}
#define PX(plen_, hlen_, ver_, op_, seq_, body_)                              \
    {(plen_), (hlen_), (ver_), (op_), (seq_), (body_), 0}
#define CUT(keep_, op_, seq_, body_)                                          \
    {AUTO, AUTO, AUTO, (op_), (seq_), (body_), (keep_)}
#define ROW(name_, max_, want_, ...)                                          \
    {                                                                         \
        name_, max_, {__VA_ARGS__},                                           \
            sizeof((struct seg[]){__VA_ARGS__}) / sizeof(struct seg), want_   \
    }

#define BODY_SEND "{\"msgID\":\"abcdef0123\",\"reciverId\":2,\"content\":\"hi\"}"

static const struct parse_case cases[] = {
    /* Packets. */
    ROW("header_only", 64, "heartbeat#1 [] 16\n", P(LL_OP_HEARTBEAT, 1, NULL)),
    ROW("with_body", 64, "auth#7 [{\"token\":\"t\"}] 29\n",
        P(LL_OP_AUTH, 7, "{\"token\":\"t\"}")),
    ROW("chat_send", 64, "send#4294967295 [" BODY_SEND "] 67\n",
        P(LL_OP_SEND, 4294967295u, BODY_SEND)),
    ROW("server_push_seq_0", 64, "push#0 [{}] 18\n", P(LL_OP_PUSH, 0, "{}")),
    ROW("body_bytes_are_opaque", 64, "close#0 [\\x01\\xff\\x7f?] 20\n",
        PX(20, AUTO, AUTO, LL_OP_CLOSE, 0, "\x01\xff\x7f?")),
    ROW("several_in_one_buffer", 64,
        "auth#1 [a] 17\ninit#2 [] 16\nsync#3 [{\"syncKey\":5}] 29\n",
        P(LL_OP_AUTH, 1, "a"), P(LL_OP_INIT, 2, NULL),
        P(LL_OP_SYNC, 3, "{\"syncKey\":5}")),
    ROW("every_client_op", 64,
        "confirm#9 [{}] 18\nheartbeat#10 [] 16\nsend#11 [x] 17\n",
        P(LL_OP_CONFIRM, 9, "{}"), P(LL_OP_HEARTBEAT, 10, NULL),
        P(LL_OP_SEND, 11, "x")),
    ROW("last_op", 64, "delivered#0 [] 16\n", P(LL_OP_DELIVERED, 0, NULL)),

    /* Partial packets. */
    ROW("three_bytes", 64, "AGAIN 3\n", CUT(3, LL_OP_AUTH, 1, "abc")),
    ROW("header_cut", 64, "AGAIN 15\n", CUT(15, LL_OP_AUTH, 1, "abc")),
    ROW("body_cut", 64, "AGAIN 18\n", CUT(18, LL_OP_AUTH, 1, "abc")),
    ROW("packet_then_partial", 64, "init#1 [] 16\nAGAIN 17\n",
        P(LL_OP_INIT, 1, NULL), CUT(17, LL_OP_SEND, 2, "hello")),
    ROW("never_ends", 64, "AGAIN 20\n",
        PX(80, AUTO, AUTO, LL_OP_SEND, 1, "four")),

    /* Errors, each alone. */
    ROW("length_0", 64, "!LL_E_LENGTH_TOO_SHORT\n",
        PX(0, AUTO, AUTO, LL_OP_AUTH, 1, NULL)),
    ROW("length_15", 64, "!LL_E_LENGTH_TOO_SHORT\n",
        PX(15, AUTO, AUTO, LL_OP_AUTH, 1, NULL)),
    ROW("length_too_short_needs_only_the_field", 64,
        "!LL_E_LENGTH_TOO_SHORT\n", {15, AUTO, AUTO, LL_OP_AUTH, 1, NULL, 4}),
    ROW("header_length_15", 64, "!LL_E_BAD_HEADER_LENGTH\n",
        PX(AUTO, 15, AUTO, LL_OP_AUTH, 1, NULL)),
    ROW("header_length_17", 64, "!LL_E_BAD_HEADER_LENGTH\n",
        PX(AUTO, 17, AUTO, LL_OP_AUTH, 1, NULL)),
    ROW("header_length_0x1000", 64, "!LL_E_BAD_HEADER_LENGTH\n",
        PX(AUTO, 0x1000, AUTO, LL_OP_AUTH, 1, NULL)),
    ROW("header_length_needs_six_bytes", 64, "!LL_E_BAD_HEADER_LENGTH\n",
        {AUTO, 0, AUTO, LL_OP_AUTH, 1, NULL, 6}),
    ROW("version_0", 64, "!LL_E_BAD_VERSION\n",
        PX(AUTO, AUTO, 0, LL_OP_AUTH, 1, NULL)),
    ROW("version_2", 64, "!LL_E_BAD_VERSION\n",
        PX(AUTO, AUTO, 2, LL_OP_AUTH, 1, NULL)),
    ROW("version_0x0100", 64, "!LL_E_BAD_VERSION\n",
        PX(AUTO, AUTO, 0x100, LL_OP_AUTH, 1, NULL)),
    ROW("version_needs_eight_bytes", 64, "!LL_E_BAD_VERSION\n",
        {AUTO, AUTO, 9, LL_OP_AUTH, 1, NULL, 8}),
    ROW("op_0", 64, "!LL_E_UNKNOWN_OP\n", P(0, 1, NULL)),
    ROW("op_past_the_last", 64, "!LL_E_UNKNOWN_OP\n",
        P(LL_OP_MAX + 1, 1, NULL)),
    ROW("op_huge", 64, "!LL_E_UNKNOWN_OP\n", P(0x01000003u, 1, NULL)),
    ROW("op_needs_twelve_bytes", 64, "!LL_E_UNKNOWN_OP\n",
        CUT(12, 99, 1, NULL)),
    ROW("op_checked_before_the_body_arrives", 64, "!LL_E_UNKNOWN_OP\n",
        CUT(16, 99, 1, "abc")),

    /* The first fault in wire order wins. */
    ROW("short_length_before_header_length", 64, "!LL_E_LENGTH_TOO_SHORT\n",
        PX(3, 3, 3, 99, 1, NULL)),
    ROW("too_large_before_header_length", 4, "!LL_E_TOO_LARGE\n",
        PX(100, 3, 3, 99, 1, NULL)),
    ROW("header_length_before_version", 64, "!LL_E_BAD_HEADER_LENGTH\n",
        PX(AUTO, 3, 3, 99, 1, NULL)),
    ROW("version_before_op", 64, "!LL_E_BAD_VERSION\n",
        PX(AUTO, AUTO, 3, 99, 1, NULL)),
    ROW("error_after_good_packets", 64,
        "init#1 [] 16\nsend#2 [ab] 18\n!LL_E_UNKNOWN_OP\n",
        P(LL_OP_INIT, 1, NULL), P(LL_OP_SEND, 2, "ab"), P(77, 3, NULL),
        P(LL_OP_INIT, 4, NULL)),

    /* The body limit, at N and N + 1. */
    ROW("body_at_limit", 4, "send#1 [abcd] 20\n", P(LL_OP_SEND, 1, "abcd")),
    ROW("body_over_limit", 4, "!LL_E_TOO_LARGE\n", P(LL_OP_SEND, 1, "abcde")),
    ROW("body_over_limit_needs_only_the_length", 4, "!LL_E_TOO_LARGE\n",
        CUT(4, LL_OP_SEND, 1, "abcde")),
    ROW("zero_limit_takes_headers_alone", 0, "init#1 [] 16\n!LL_E_TOO_LARGE\n",
        P(LL_OP_INIT, 1, NULL), P(LL_OP_SEND, 2, "a")),
    ROW("length_max_is_over_a_default_limit", 65536, "!LL_E_TOO_LARGE\n",
        {0xffffffffL, AUTO, AUTO, LL_OP_SEND, 1, NULL, 4}),
    ROW("length_max_waits_without_a_limit", SIZE_MAX, "AGAIN 16\n",
        PX(0xffffffffL, AUTO, AUTO, LL_OP_SEND, 1, NULL)),
};

#define NCASES (sizeof(cases) / sizeof(cases[0]))

/* Parameters are row numbers, never pointers: Criterion may run each in a
 * fresh process image. */
static size_t case_index[NCASES];

ParameterizedTestParameters(ll_parser, packet_cases)
{
    size_t i;

    for (i = 0; i < NCASES; i++)
        case_index[i] = i;
    return cr_make_param_array(size_t, case_index, NCASES);
}

ParameterizedTest(size_t *row, ll_parser, packet_cases)
{
    const struct parse_case *c = &cases[*row];
    struct ll_limits lim = {.max_body = c->max_body};
    unsigned char in[4096];
    size_t len = 0, i;

    for (i = 0; i < c->nsegs; i++)
        build_seg(in, &len, &c->segs[i]);
    assert_trace(in, len, &lim, c->want, c->name);
}

/* ------------------------------------------------------------------------ */
/* Single behaviours                                                         */
/* ------------------------------------------------------------------------ */

Test(ll_parser, zero_bytes_is_again)
{
    struct ll_parser p;
    struct ll_packet pk;

    ll_parser_init(&p, NULL);
    cr_assert(eq(sz, ll_parse(&p, "", 0, &pk), LL_AGAIN));
    cr_assert(eq(int, ll_parser_error(&p), LL_OK));
}

Test(ll_parser, default_limit_is_64_kib_of_body)
{
    static unsigned char buf[16 + 65537];
    struct ll_parser p;
    struct ll_packet pk;

    ll_parser_init(&p, NULL);
    cr_assert(eq(sz, ll_encode(buf, sizeof(buf), LL_OP_SEND, 1, NULL, 0), 16));
    buf[0] = 0, buf[1] = 1, buf[2] = 0, buf[3] = 16; /* 65536 + 16 */
    cr_assert(eq(sz, ll_parse(&p, buf, 16 + 65536, &pk), 16 + 65536));
    cr_assert(eq(sz, pk.body_len, 65536));
    buf[3] = 17;
    cr_assert(eq(sz, ll_parse(&p, buf, 16 + 65537, &pk), LL_E_TOO_LARGE));
}

Test(ll_parser, error_is_sticky_across_good_input)
{
    unsigned char good[16], bad[16];
    struct ll_parser p;
    struct ll_packet pk = {0};

    ll_parser_init(&p, NULL);
    cr_assert(eq(int, ll_encode_header(good, LL_OP_INIT, 1, 0), 16));
    memcpy(bad, good, 16);
    bad[7] = 2; /* version 2 */
    cr_assert(eq(sz, ll_parse(&p, good, 16, &pk), 16));
    cr_assert(eq(sz, ll_parse(&p, bad, 16, &pk), LL_E_BAD_VERSION));
    pk.op = 0;
    cr_assert(eq(sz, ll_parse(&p, good, 16, &pk), LL_E_BAD_VERSION));
    cr_assert(eq(u32, pk.op, 0), "out is not written after an error");
    ll_parser_set_limits(&p, NULL);
    cr_assert(eq(sz, ll_parse(&p, good, 16, &pk), LL_E_BAD_VERSION),
              "new limits do not clear the error");
}

Test(ll_parser, again_does_not_write_out)
{
    unsigned char b[20];
    struct ll_parser p;
    struct ll_packet pk = {.op = 42};

    ll_parser_init(&p, NULL);
    cr_assert(eq(sz, ll_encode(b, sizeof(b), LL_OP_SEND, 1, "abcd", 4), 20));
    cr_assert(eq(sz, ll_parse(&p, b, 19, &pk), LL_AGAIN));
    cr_assert(eq(u32, pk.op, 42));
}

Test(ll_parser, limits_change_between_packets)
{
    unsigned char b[64];
    struct ll_limits tight = {.max_body = 2}, wide = {.max_body = 64};
    struct ll_parser p;
    struct ll_packet pk;
    ssize_t n = ll_encode(b, sizeof(b), LL_OP_SEND, 1, "abc", 3);

    ll_parser_init(&p, &wide);
    cr_assert(eq(sz, ll_parse(&p, b, (size_t)n, &pk), n));
    ll_parser_set_limits(&p, &tight);
    cr_assert(eq(sz, ll_parse(&p, b, (size_t)n, &pk), LL_E_TOO_LARGE));
}

Test(ll_parser, a_large_body_fed_in_small_pieces)
{
    enum { BODY = 200000 };
    unsigned char *in = malloc(16 + BODY), *body = malloc(BODY);
    struct ll_limits lim = {.max_body = BODY};
    struct ll_parser p;
    struct ll_packet pk;
    size_t have = 0;
    ssize_t n = LL_AGAIN;
    size_t i;

    cr_assert(not(eq(ptr, in, NULL)));
    cr_assert(not(eq(ptr, body, NULL)));
    for (i = 0; i < BODY; i++)
        body[i] = (unsigned char)(i * 7);
    cr_assert(eq(sz, ll_encode(in, 16 + BODY, LL_OP_SEND, 3, body, BODY),
                 16 + BODY));
    free(body);
    ll_parser_init(&p, &lim);
    while (n == LL_AGAIN && have < 16 + BODY) {
        have += 1000;
        if (have > 16 + BODY)
            have = 16 + BODY;
        n = ll_parse(&p, in, have, &pk);
    }
    cr_assert(eq(sz, n, 16 + BODY));
    cr_assert(eq(sz, pk.body_len, BODY));
    cr_assert(eq(u8, (unsigned char)pk.body[BODY - 1],
                 (unsigned char)((BODY - 1) * 7)));
    free(in);
}

Test(ll_parser, packet_len_needs_four_bytes)
{
    unsigned char b[16];

    cr_assert(eq(int, ll_encode_header(b, LL_OP_INIT, 0, 300), 16));
    cr_assert(eq(sz, ll_packet_len(b, 3), 0));
    cr_assert(eq(sz, ll_packet_len(b, 4), 316));
}
