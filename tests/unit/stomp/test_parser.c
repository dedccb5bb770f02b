#include "fmacros.h"

/* test_parser.c - stomp_parse(), stomp_frame_header(), command names and
 * error messages.
 *
 * Most cases are rows of one table: input bytes, version, limits, and the
 * expected trace, a line of text per event:
 *
 *     SEND 33 {destination:/queue/a} [hello]    a frame: command, bytes
 *                                               used, {name:value}..., [body]
 *     heart-beat 2                              bare EOLs (merged)
 *     !BAD_ESCAPE                               the error that ended it
 *     AGAIN 7                                   bytes left as a partial frame
 *
 * Every row runs whole, split at every offset (the prefix, then the rest,
 * as a session calls again when more bytes arrive), one byte at a time and
 * in pseudo-random chunks; every run must print the same trace. Each call
 * gets its unconsumed bytes copied against a guard page, so that reading a
 * single byte past the input faults, and so that the parser sees its input
 * move between calls the way a compacting session buffer moves it.
 */

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard_buf.h"
#include "stomp/stomp.h"

/* ------------------------------------------------------------------------ */
/* Traces                                                                    */
/* ------------------------------------------------------------------------ */

struct trace {
    FILE *f;
    char *buf;
    size_t len;
    size_t hb; /* heart-beat bytes not printed yet: runs merge */
};

static void
trace_open(struct trace *t)
{
    t->buf = NULL;
    t->len = 0;
    t->hb = 0;
    t->f = open_memstream(&t->buf, &t->len);
    cr_assert(not(eq(ptr, t->f, NULL)));
}

static void
trace_flush_hb(struct trace *t)
{
    if (t->hb > 0)
        fprintf(t->f, "heart-beat %zu\n", t->hb);
    t->hb = 0;
}

/* Returns the trace text; the caller frees it. */
static char *
trace_close(struct trace *t)
{
    trace_flush_hb(t);
    fclose(t->f);
    return t->buf;
}

static uint64_t
fnv1a(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325u;
    size_t i;

    for (i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 0x100000001b3u;
    return h;
}

/* Prints p[0..n) readably: control bytes and the backslash as C escapes,
 * the bytes in specials behind a backslash, UTF-8 as it is. Long strings
 * print as their length and hash, so that limit tests stay readable. */
static void
repr(FILE *f, const char *p, size_t n, const char *specials)
{
    size_t i;

    if (n > 64) {
        fprintf(f, "<%zu bytes %016llx>", n, (unsigned long long)fnv1a(p, n));
        return;
    }
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];

        switch (c) {
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        case '\0': fputs("\\0", f); break;
        default:
            if (c < 0x20 || c == 0x7f)
                fprintf(f, "\\x%02x", c);
            else if (strchr(specials, c) != NULL)
                fprintf(f, "\\%c", c);
            else
                fputc(c, f);
        }
    }
}

static void
trace_frame(struct trace *t, const struct stomp_frame *fr, size_t used)
{
    size_t i;

    if (fr->command == STOMP_CMD_HEARTBEAT) {
        t->hb += used;
        return;
    }
    trace_flush_hb(t);
    fprintf(t->f, "%s %zu", stomp_command_name(fr->command), used);
    for (i = 0; i < fr->nheaders; i++) {
        fputs(" {", t->f);
        repr(t->f, fr->headers[i].name.ptr, fr->headers[i].name.len, ":{}");
        fputc(':', t->f);
        repr(t->f, fr->headers[i].value.ptr, fr->headers[i].value.len, "{}");
        fputc('}', t->f);
    }
    fputs(" [", t->f);
    repr(t->f, fr->body.ptr, fr->body.len, "[]");
    fputs("]\n", t->f);
}

static const char *
err_name(ssize_t err)
{
    switch (err) {
    case STOMP_E_FRAME_TOO_LARGE: return "FRAME_TOO_LARGE";
    case STOMP_E_TOO_MANY_HEADERS: return "TOO_MANY_HEADERS";
    case STOMP_E_HEADER_LINE_TOO_LONG: return "HEADER_LINE_TOO_LONG";
    case STOMP_E_HEADERS_TOO_LARGE: return "HEADERS_TOO_LARGE";
    case STOMP_E_BAD_ESCAPE: return "BAD_ESCAPE";
    case STOMP_E_BAD_CONTENT_LENGTH: return "BAD_CONTENT_LENGTH";
    case STOMP_E_UNKNOWN_COMMAND: return "UNKNOWN_COMMAND";
    case STOMP_E_BAD_HEADER: return "BAD_HEADER";
    case STOMP_E_BAD_FRAME: return "BAD_FRAME";
    default: return "?";
    }
}

/* ------------------------------------------------------------------------ */
/* The session-like driver                                                   */
/* ------------------------------------------------------------------------ */

struct feed_cfg {
    enum stomp_version version;
    const struct stomp_limits *lim; /* NULL: STOMP_LIMITS_DEFAULT */
    int place_once; /* big inputs: place all bytes once instead of moving
                       the unconsumed ones before every call (O(n^2)) */
};

static const struct stomp_limits default_limits = STOMP_LIMITS_DEFAULT;

/* Checks what stomp_parse() promises about a frame it returned from
 * b[0..used). */
static void
check_frame(const struct stomp_frame *fr, const char *b, size_t used,
            const struct stomp_limits *lim)
{
    size_t i, sum = 0;

    if (fr->command == STOMP_CMD_HEARTBEAT) {
        cr_assert(eq(sz, fr->nheaders, 0));
        cr_assert(eq(sz, fr->body.len, 0));
        return;
    }
    cr_assert(le(sz, used, lim->max_frame_bytes));
    cr_assert(le(sz, fr->nheaders, lim->max_headers));
    for (i = 0; i < fr->nheaders; i++) {
        const struct stomp_header *h = &fr->headers[i];

        cr_assert(gt(sz, h->name.len, 0));
        cr_assert(h->name.ptr >= b && h->name.ptr + h->name.len <= b + used);
        cr_assert(h->value.ptr >= b && h->value.ptr + h->value.len <= b + used);
        /* Unescaping only shrinks, so the raw limits bound the views. */
        cr_assert(le(sz, h->name.len + 1 + h->value.len, lim->max_header_line));
        sum += h->name.len + 1 + h->value.len;
    }
    cr_assert(le(sz, sum, lim->max_header_bytes));
    cr_assert(fr->body.ptr >= b && fr->body.ptr + fr->body.len < b + used);
    cr_assert(eq(i8, fr->body.ptr[fr->body.len], 0), "a frame ends in NUL");
}

/* Feeds in[0..len) to a fresh parser in the chunks s hands out, like a
 * session: bytes arrive, the parser runs until it wants more, frames are
 * consumed and the rest is kept for the next call. Returns the trace. */
static char *
feed(const struct feed_cfg *cfg, const char *in, size_t len,
     struct byte_splitter *s)
{
    const struct stomp_limits *lim = cfg->lim ? cfg->lim : &default_limits;
    struct stomp_header *hdrs = calloc(lim->max_headers + 1, sizeof(*hdrs));
    struct stomp_frame fr = {.headers = hdrs};
    struct stomp_parser p;
    struct guard_buf gb;
    struct trace t;
    size_t start = 0, fill = 0, chunk;
    char *base = NULL;
    char probe[] = "SEND\n\n"; /* a valid frame for a poisoned parser */
    ssize_t err = 0;

    cr_assert(not(eq(ptr, hdrs, NULL)));
    cr_assert(eq(int, guard_buf_init(&gb, len), 0));
    if (cfg->place_once)
        base = guard_buf_place(&gb, in, len);
    stomp_parser_init(&p, lim);
    stomp_parser_set_version(&p, cfg->version);
    trace_open(&t);

    while (err == 0 && (chunk = byte_splitter_next(s)) > 0) {
        fill += chunk;
        for (;;) {
            /* Unconsumed bytes of the input are still the input's: the
             * parser writes only into frames it returns. */
            char *b = cfg->place_once
                          ? base + start
                          : guard_buf_place(&gb, in + start, fill - start);
            ssize_t n = stomp_parse(&p, b, fill - start, &fr);

            if (n == STOMP_AGAIN)
                break;
            if (n < 0) {
                trace_flush_hb(&t);
                fprintf(t.f, "!%s\n", err_name(n));
                /* Poisoned: the same answer, whatever comes next. */
                cr_assert(eq(i64, stomp_parse(&p, b, fill - start, &fr), n));
                cr_assert(eq(i64, stomp_parse(&p, probe, sizeof(probe), &fr), n));
                err = n;
                break;
            }
            cr_assert(le(sz, (size_t)n, fill - start));
            check_frame(&fr, b, (size_t)n, lim);
            trace_frame(&t, &fr, (size_t)n);
            start += (size_t)n;
        }
    }
    if (err == 0 && fill > start) {
        trace_flush_hb(&t);
        fprintf(t.f, "AGAIN %zu\n", fill - start);
    }
    guard_buf_cleanup(&gb);
    free(hdrs);
    return trace_close(&t);
}

static int
starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static char *
feed_whole(const struct feed_cfg *cfg, const char *in, size_t len)
{
    struct byte_splitter s;

    byte_splitter_at(&s, len, 0);
    return feed(cfg, in, len, &s);
}

/* Asserts that in[0..len) gives the trace want a byte at a time and in
 * pseudo-random chunks. */
static void
assert_chunked(const struct feed_cfg *cfg, const char *in, size_t len,
               const char *want, const char *name)
{
    struct byte_splitter s;
    uint64_t seed;
    char *got;

    byte_splitter_every(&s, len, 1);
    got = feed(cfg, in, len, &s);
    cr_assert(eq(str, got, (char *)want), "%s: byte by byte", name);
    free(got);

    for (seed = 1; seed <= 8; seed++) {
        byte_splitter_random(&s, len, seed, 1 + seed * seed);
        got = feed(cfg, in, len, &s);
        cr_assert(eq(str, got, (char *)want), "%s: random chunks, seed %llu",
                  name, (unsigned long long)seed);
        free(got);
    }
}

/* Asserts that in[0..len) gives the trace want whole, split at every
 * offset (at seven offsets for big inputs), a byte at a time and in random
 * chunks. */
static void
assert_trace(const struct feed_cfg *cfg, const char *in, size_t len,
             const char *want, const char *name)
{
    struct byte_splitter s;
    size_t at, step;
    char *got;

    got = feed_whole(cfg, in, len);
    cr_assert(eq(str, got, (char *)want), "%s: whole", name);
    free(got);

    step = len <= 512 ? 1 : len / 7;
    for (at = 1; at < len; at += step) {
        byte_splitter_at(&s, len, at);
        got = feed(cfg, in, len, &s);
        cr_assert(eq(str, got, (char *)want), "%s: split at %zu", name, at);
        free(got);
    }

    /* Moving the unconsumed bytes before every call costs O(n^2) in small
     * chunks: big inputs are placed once (see feed_cfg.place_once). */
    if (len > 4096 && !cfg->place_once) {
        struct feed_cfg once = *cfg;

        once.place_once = 1;
        cfg = &once;
        assert_chunked(cfg, in, len, want, name);
        return;
    }
    assert_chunked(cfg, in, len, want, name);
}

/* ------------------------------------------------------------------------ */
/* The table                                                                 */
/* ------------------------------------------------------------------------ */

/* Small limits, so that rows can sit on both sides of each one. */
static const struct stomp_limits lim_small = {
    .max_frame_bytes = 40,
    .max_headers = 2,
    .max_header_line = 8,
    .max_header_bytes = 12,
};
static const struct stomp_limits lim_cl = {
    .max_frame_bytes = 30,
    .max_headers = 4,
    .max_header_line = 32,
    .max_header_bytes = 64,
};
static const struct stomp_limits lim_tiny_frame = {
    .max_frame_bytes = 16,
    .max_headers = 4,
    .max_header_line = 64,
    .max_header_bytes = 64,
};
static const struct stomp_limits lim_tie = { /* line and total bytes agree */
    .max_frame_bytes = 100,
    .max_headers = 4,
    .max_header_line = 10,
    .max_header_bytes = 10,
};
static const struct stomp_limits lim_no_headers = {
    .max_frame_bytes = 100,
    .max_headers = 0,
    .max_header_line = 10,
    .max_header_bytes = 10,
};

struct parse_case {
    const char *name;
    enum stomp_version version;
    const struct stomp_limits *lim;
    const char *in;
    size_t len;
    const char *want;
};

/* in must be a string literal: its length is sizeof - 1, NULs included. */
#define ROW(name, in, want) {name, STOMP_V1_2, NULL, in, sizeof(in) - 1, want}
#define ROW_V(name, v, in, want) {name, v, NULL, in, sizeof(in) - 1, want}
#define ROW_L(name, lim, in, want) {name, STOMP_V1_2, lim, in, sizeof(in) - 1, want}

static const struct parse_case cases[] = {
    /* Frames. */
    ROW("simple_send", "SEND\ndestination:/queue/a\n\nhello\0",
        "SEND 33 {destination:/queue/a} [hello]\n"),
    ROW("crlf_line_endings", "SEND\r\ndestination:/queue/a\r\n\r\nhello\0",
        "SEND 36 {destination:/queue/a} [hello]\n"),
    ROW("mixed_line_endings", "SEND\r\na:1\nb:2\r\n\nx\0",
        "SEND 18 {a:1} {b:2} [x]\n"),
    ROW("command_only", "DISCONNECT\n\n\0", "DISCONNECT 13 []\n"),
    ROW("every_command",
        "CONNECT\n\n\0STOMP\n\n\0CONNECTED\n\n\0SEND\n\n\0SUBSCRIBE\n\n\0"
        "UNSUBSCRIBE\n\n\0ACK\n\n\0NACK\n\n\0BEGIN\n\n\0COMMIT\n\n\0"
        "ABORT\n\n\0DISCONNECT\n\n\0MESSAGE\n\n\0RECEIPT\n\n\0ERROR\n\n\0",
        "CONNECT 10 []\nSTOMP 8 []\nCONNECTED 12 []\nSEND 7 []\n"
        "SUBSCRIBE 12 []\nUNSUBSCRIBE 14 []\nACK 6 []\nNACK 7 []\n"
        "BEGIN 8 []\nCOMMIT 9 []\nABORT 8 []\nDISCONNECT 13 []\n"
        "MESSAGE 10 []\nRECEIPT 10 []\nERROR 8 []\n"),
    ROW("body_keeps_eols", "SEND\n\nline1\nline2\r\n\0",
        "SEND 20 [line1\\nline2\\r\\n]\n"),
    ROW("two_frames_in_one_buffer", "SEND\na:1\n\nx\0ACK\nid:7\n\n\0",
        "SEND 12 {a:1} [x]\nACK 11 {id:7} []\n"),
    ROW("unicode_headers_pass_through",
        "SEND\n目的地:/队列/聊天\n\n起来聊天\0",
        "SEND 44 {目的地:/队列/聊天} [起来聊天]\n"),
    ROW("header_with_empty_value", "SEND\nreceipt:\n\n\0",
        "SEND 16 {receipt:} []\n"),
    ROW("header_value_with_colon_splits_at_first", "SEND\nheader:val:ue\n\n\0",
        "SEND 21 {header:val:ue} []\n"),
    ROW("header_whitespace_is_kept", "SEND\n h :  foo \n\n\0",
        "SEND 18 { h :  foo } []\n"),
    ROW_V("header_whitespace_is_kept_in_1_0", STOMP_V1_0,
          "SEND\nheader: foo \n\n\0", "SEND 20 {header: foo } []\n"),
    ROW("repeated_headers_are_all_kept",
        "SEND\nheader:correct\nheader:incorrect\n\n\0",
        "SEND 39 {header:correct} {header:incorrect} []\n"),

    /* Heart-beats and what may come between frames. */
    ROW("heartbeat_lf", "\n", "heart-beat 1\n"),
    ROW("heartbeat_run_of_lf_and_crlf", "\n\r\n\n", "heart-beat 4\n"),
    ROW("heartbeat_before_command", "\nSEND\n\n\0",
        "heart-beat 1\nSEND 7 []\n"),
    ROW("crlf_between_frames", "\r\nSEND\n\n\0", "heart-beat 2\nSEND 7 []\n"),
    ROW("newline_after_nul", "SEND\n\nhi\0\n", "SEND 9 [hi]\nheart-beat 1\n"),
    ROW("eols_between_frames",
        "SEND\n\n\0\r\n\r\nACK\nid:1\n\n\0\n",
        "SEND 7 []\nheart-beat 4\nACK 11 {id:1} []\nheart-beat 1\n"),
    ROW("lone_cr_waits_for_lf", "\r", "AGAIN 1\n"),
    ROW("heartbeat_then_lone_cr", "\n\r", "heart-beat 1\nAGAIN 1\n"),
    ROW("cr_between_frames_is_not_eol", "\rSEND\n\n\0", "!UNKNOWN_COMMAND\n"),
    ROW("leading_nul_is_bad_frame", "\0\0SEND\n\n\0", "!BAD_FRAME\n"),
    ROW("nul_after_heartbeat_is_bad_frame", "\n\0", "heart-beat 1\n!BAD_FRAME\n"),
    ROW("empty_input", "", ""),

    /* Commands. */
    ROW("unknown_command", "FOO\n\n\0", "!UNKNOWN_COMMAND\n"),
    ROW("lowercase_command", "send\n\n\0", "!UNKNOWN_COMMAND\n"),
    ROW("command_with_trailing_space", "SEND \n\n\0", "!UNKNOWN_COMMAND\n"),
    ROW("longest_command_waits_for_eol", "UNSUBSCRIBE", "AGAIN 11\n"),
    ROW("overlong_command_fails_before_eol", "UNSUBSCRIBEX", "!UNKNOWN_COMMAND\n"),
    ROW("cr_inside_command", "SE\rND\n\n\0", "!UNKNOWN_COMMAND\n"),
    ROW("cr_cr_lf_after_command", "SEND\r\r\n\n\0", "!UNKNOWN_COMMAND\n"),
    ROW("nul_inside_command", "SE\0ND\n\n\0", "!BAD_FRAME\n"),
    ROW("command_without_eol", "SEND\0", "!BAD_FRAME\n"),

    /* Header lines. */
    ROW("header_without_colon",
        "SEND\nhdr1:val1\nhdrerror\nhdr2:val2\n\n\0", "!BAD_HEADER\n"),
    ROW("header_with_empty_name", "SEND\n:value\n\n\0", "!BAD_HEADER\n"),
    ROW("cr_inside_header_name", "SEND\nhead\rer:val\n\n\0", "!BAD_HEADER\n"),
    ROW("cr_inside_header_value", "SEND\nheader:val\rue\n\n\0", "!BAD_HEADER\n"),
    ROW("nul_inside_header", "SEND\na:b\0\n\n\0", "!BAD_FRAME\n"),
    ROW("nul_instead_of_blank_line", "SEND\na:b\n\0", "!BAD_FRAME\n"),
    ROW("partial_header_waits", "SEND\ndest", "AGAIN 9\n"),
    ROW("partial_crlf_waits", "SEND\r\na:b\r", "AGAIN 10\n"),

    /* Escapes. */
    ROW("escapes_1_2", "SEND\na\\cb:c\\nd\\re\\\\f\n\n\0",
        "SEND 23 {a\\:b:c\\nd\\re\\\\f} []\n"),
    ROW_V("escapes_1_1", STOMP_V1_1, "SEND\na\\cb:c\\nd\\\\f\n\n\0",
          "SEND 20 {a\\:b:c\\nd\\\\f} []\n"),
    ROW_V("escape_r_is_undefined_in_1_1", STOMP_V1_1, "SEND\na:\\r\n\n\0",
          "!BAD_ESCAPE\n"),
    ROW_V("no_escapes_in_1_0", STOMP_V1_0, "SEND\na\\cb:c\\n\\t\\\n\n\0",
          "SEND 19 {a\\\\cb:c\\\\n\\\\t\\\\} []\n"),
    ROW("connect_is_never_unescaped", "CONNECT\nlogin:a\\cb\\t\n\n\0",
        "CONNECT 23 {login:a\\\\cb\\\\t} []\n"),
    ROW("stomp_is_never_unescaped", "STOMP\npasscode:x\\y\n\n\0",
        "STOMP 21 {passcode:x\\\\y} []\n"),
    ROW("connected_is_never_unescaped", "CONNECTED\nsession:a\\n\n\n\0",
        "CONNECTED 24 {session:a\\\\n} []\n"),
    ROW("undefined_escape", "SEND\na:\\t\n\n\0", "!BAD_ESCAPE\n"),
    ROW("undefined_escape_in_name", "SEND\n\\x:b\n\n\0", "!BAD_ESCAPE\n"),
    ROW("trailing_backslash", "SEND\na:b\\\n\n\0", "!BAD_ESCAPE\n"),
    ROW("backslash_before_crlf", "SEND\r\na:b\\\r\n\r\n\0", "!BAD_ESCAPE\n"),
    ROW("no_nested_escapes", "SEND\nhdr\\\\rname:hdr\\\\rval\n\n\0",
        "SEND 28 {hdr\\\\rname:hdr\\\\rval} []\n"),
    ROW("escaped_colon_newline_cr_round_trip",
        "SEND\nhead\\r\\c\\ner:\\c\\n\\r\\\\\n\n\0",
        "SEND 29 {head\\r\\:\\ner::\\n\\r\\\\} []\n"),

    /* Body and content-length. */
    ROW("body_ends_at_first_nul", "SEND\n\nab\0cd\0",
        "SEND 9 [ab]\n!BAD_FRAME\n"),
    ROW("content_length_allows_nul_in_body",
        "SEND\ncontent-length:5\n\nab\0cd\0",
        "SEND 29 {content-length:5} [ab\\0cd]\n"),
    ROW("content_length_zero", "SEND\ncontent-length:0\n\n\0",
        "SEND 24 {content-length:0} []\n"),
    ROW("content_length_leading_zeros", "SEND\ncontent-length:005\n\nhello\0",
        "SEND 31 {content-length:005} [hello]\n"),
    ROW("content_length_with_crlf", "SEND\r\ncontent-length:3\r\n\r\nabc\0",
        "SEND 30 {content-length:3} [abc]\n"),
    ROW("content_length_body_of_nul_then_heartbeat",
        "SEND\ncontent-length:1\n\n\0\0\nACK\n\n\0",
        "SEND 25 {content-length:1} [\\0]\nheart-beat 1\nACK 6 []\n"),
    ROW("content_length_partial_body_waits", "SEND\ncontent-length:5\n\nab",
        "AGAIN 25\n"),
    ROW("content_length_not_followed_by_nul", "SEND\ncontent-length:2\n\nabc\0",
        "!BAD_FRAME\n"),
    ROW("first_content_length_wins",
        "SEND\ncontent-length:1\ncontent-length:5\n\na\0",
        "SEND 42 {content-length:1} {content-length:5} [a]\n"),
    ROW("later_content_length_is_not_parsed",
        "SEND\ncontent-length:1\ncontent-length:x\n\na\0",
        "SEND 42 {content-length:1} {content-length:x} [a]\n"),
    ROW("content_length_name_is_case_sensitive",
        "SEND\nContent-Length:5\n\nab\0cd\0",
        "SEND 26 {Content-Length:5} [ab]\n!BAD_FRAME\n"),
    ROW("content_length_in_connect", "CONNECT\ncontent-length:2\n\n\0\0\0",
        "CONNECT 29 {content-length:2} [\\0\\0]\n"),
    ROW("content_length_plus_sign", "SEND\ncontent-length:+5\n\nhello\0",
        "!BAD_CONTENT_LENGTH\n"),
    ROW("content_length_minus_sign", "SEND\ncontent-length:-5\n\nhello\0",
        "!BAD_CONTENT_LENGTH\n"),
    ROW("content_length_leading_space", "SEND\ncontent-length: 5\n\nhello\0",
        "!BAD_CONTENT_LENGTH\n"),
    ROW("content_length_trailing_space", "SEND\ncontent-length:5 \n\nhello\0",
        "!BAD_CONTENT_LENGTH\n"),
    ROW("content_length_empty", "SEND\ncontent-length:\n\n\0",
        "!BAD_CONTENT_LENGTH\n"),
    ROW("content_length_hex", "SEND\ncontent-length:0x5\n\nhello\0",
        "!BAD_CONTENT_LENGTH\n"),
    ROW("content_length_escaped", "SEND\ncontent-length:5\\c\n\nhello\0",
        "!BAD_CONTENT_LENGTH\n"),
    ROW("content_length_overflows_size_t",
        "SEND\ncontent-length:18446744073709551616\n\n\0",
        "!BAD_CONTENT_LENGTH\n"),
    ROW("content_length_size_max_is_too_large",
        "SEND\ncontent-length:18446744073709551615\n\n\0",
        "!FRAME_TOO_LARGE\n"),

    /* Limits, small enough to sit on both sides of each. */
    ROW_L("frame_at_limit", &lim_small,
          "SEND\n\n123456789012345678901234567890123\0",
          "SEND 40 [123456789012345678901234567890123]\n"),
    ROW_L("frame_over_limit", &lim_small,
          "SEND\n\n1234567890123456789012345678901234\0",
          "!FRAME_TOO_LARGE\n"),
    ROW_L("frame_over_limit_fails_without_nul", &lim_small,
          "SEND\n\n1234567890123456789012345678901234",
          "!FRAME_TOO_LARGE\n"),
    ROW_L("frame_limit_hit_in_headers", &lim_tiny_frame,
          "SEND\nabcdefghijklmnop", "!FRAME_TOO_LARGE\n"),
    ROW_L("frame_limit_reached_in_headers_fails_at_n_bytes", &lim_tiny_frame,
          "SEND\nabcdefghijk", "!FRAME_TOO_LARGE\n"),
    ROW_L("frame_limit_not_reached_in_headers_waits", &lim_tiny_frame,
          "SEND\nabcdefghij", "AGAIN 15\n"),
    ROW_L("frame_limit_hit_between_cr_and_lf", &lim_tiny_frame,
          "SEND\nabcdefghij\r\n\n\0", "!FRAME_TOO_LARGE\n"),
    ROW_L("content_length_at_frame_limit", &lim_cl,
          "SEND\ncontent-length:6\n\nabcdef\0",
          "SEND 30 {content-length:6} [abcdef]\n"),
    ROW_L("content_length_over_frame_limit", &lim_cl,
          "SEND\ncontent-length:7\n\nabcdefg\0", "!FRAME_TOO_LARGE\n"),
    ROW_L("content_length_over_frame_limit_fails_before_body", &lim_cl,
          "SEND\ncontent-length:7\n\n", "!FRAME_TOO_LARGE\n"),
    ROW_L("content_length_over_frame_limit_fails_at_its_line", &lim_cl,
          "SEND\ncontent-length:8\n", "!FRAME_TOO_LARGE\n"),
    ROW_L("content_length_then_headers_at_frame_limit", &lim_cl,
          "SEND\ncontent-length:0\nab:cd\n\n\0",
          "SEND 30 {content-length:0} {ab:cd} []\n"),
    ROW_L("content_length_then_headers_over_frame_limit", &lim_cl,
          "SEND\ncontent-length:1\nab:cd\n\nx\0", "!FRAME_TOO_LARGE\n"),
    ROW_L("content_length_crlf_blank_line_over_frame_limit", &lim_cl,
          "SEND\ncontent-length:6\r\n\r\nabcdef\0", "!FRAME_TOO_LARGE\n"),
    ROW_L("headers_at_limit", &lim_small, "SEND\na:1\nb:2\n\n\0",
          "SEND 15 {a:1} {b:2} []\n"),
    ROW_L("headers_over_limit", &lim_small, "SEND\na:1\nb:2\nc:3\n\n\0",
          "!TOO_MANY_HEADERS\n"),
    ROW_L("headers_over_limit_fails_at_first_byte", &lim_small,
          "SEND\na:1\nb:2\nc", "!TOO_MANY_HEADERS\n"),
    ROW_L("no_headers_allowed", &lim_no_headers, "SEND\n\r\n\0",
          "SEND 8 []\n"),
    ROW_L("no_headers_allowed_but_one", &lim_no_headers, "SEND\na:b\n\n\0",
          "!TOO_MANY_HEADERS\n"),
    ROW_L("header_line_at_limit", &lim_small, "SEND\nabc:1234\n\n\0",
          "SEND 16 {abc:1234} []\n"),
    ROW_L("header_line_at_limit_crlf", &lim_small,
          "SEND\r\nabc:1234\r\n\r\n\0", "SEND 19 {abc:1234} []\n"),
    ROW_L("header_line_over_limit", &lim_small, "SEND\nabc:12345\n\n\0",
          "!HEADER_LINE_TOO_LONG\n"),
    ROW_L("header_line_over_limit_fails_before_eol", &lim_small,
          "SEND\nabc:12345", "!HEADER_LINE_TOO_LONG\n"),
    ROW_L("header_line_limit_counts_raw_escapes", &lim_small,
          "SEND\na:\\n\\n\\n\n\n\0", "SEND 16 {a:\\n\\n\\n} []\n"),
    ROW_L("header_line_limit_counts_raw_escapes_over", &lim_small,
          "SEND\nab:\\n\\n\\n\n\n\0", "!HEADER_LINE_TOO_LONG\n"),
    ROW_L("header_bytes_at_limit", &lim_small, "SEND\nabc:1234\nd:ef\n\n\0",
          "SEND 21 {abc:1234} {d:ef} []\n"),
    ROW_L("header_bytes_over_limit", &lim_small, "SEND\nabc:1234\nd:efg\n\n\0",
          "!HEADERS_TOO_LARGE\n"),
    ROW_L("line_and_header_bytes_tie_reports_line", &lim_tie,
          "SEND\nabcd:567890x\n\n\0", "!HEADER_LINE_TOO_LONG\n"),
    ROW_L("bad_byte_at_limit_reports_the_byte", &lim_small,
          "SEND\nabc:1234\0", "!BAD_FRAME\n"),
    ROW_L("bad_escape_at_limit_reports_the_escape", &lim_small,
          "SEND\nabc:123\\t", "!BAD_ESCAPE\n"),
    ROW_L("backslash_past_limit_reports_the_limit", &lim_small,
          "SEND\nabc:1234\\n", "!HEADER_LINE_TOO_LONG\n"),
    ROW_L("heartbeats_have_no_limit", &lim_tiny_frame,
          "\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n", "heart-beat 20\n"),
};

#define NCASES (sizeof(cases) / sizeof(cases[0]))

/* Criterion runs each parameter in a fresh process image, where the
 * addresses of static data differ: parameters are row numbers, never
 * pointers. */
static size_t case_index[NCASES];

ParameterizedTestParameters(stomp_parser, frame_cases)
{
    size_t i;

    for (i = 0; i < NCASES; i++)
        case_index[i] = i;
    return cr_make_param_array(size_t, case_index, NCASES);
}

ParameterizedTest(size_t *row, stomp_parser, frame_cases)
{
    const struct parse_case *c = &cases[*row];
    struct feed_cfg cfg = {.version = c->version, .lim = c->lim};

    assert_trace(&cfg, c->in, c->len, c->want, c->name);
}

/* ------------------------------------------------------------------------ */
/* Frames and views                                                          */
/* ------------------------------------------------------------------------ */

Test(stomp_parser, first_repeated_header_wins)
{
    char buf[] = "MESSAGE\nfoo:World\nfoo:Hello\n\n\0";
    struct stomp_header hdrs[64];
    struct stomp_frame f = {.headers = hdrs};
    struct stomp_parser p;
    const struct stomp_str *v;

    stomp_parser_init(&p, NULL);
    cr_assert(eq(sz, (size_t)stomp_parse(&p, buf, sizeof(buf) - 1, &f),
                 sizeof(buf) - 1));
    cr_assert(eq(sz, f.nheaders, 2));
    v = stomp_frame_header(&f, "foo");
    cr_assert(not(eq(ptr, (void *)v, NULL)));
    cr_assert(eq(mem, ((struct cr_mem){v->ptr, v->len}),
                 ((struct cr_mem){"World", 5})));
    cr_assert(eq(ptr, (void *)v, (void *)&hdrs[0].value));
}

Test(stomp_parser, views_point_into_buffer_unescaped_in_place)
{
    char buf[] = "SEND\na\\cb:c\\nd\n\nbody\0";
    struct stomp_header hdrs[4];
    struct stomp_frame f = {.headers = hdrs};
    struct stomp_parser p;

    stomp_parser_init(&p, NULL);
    cr_assert(eq(sz, (size_t)stomp_parse(&p, buf, sizeof(buf) - 1, &f),
                 sizeof(buf) - 1));
    cr_assert(eq(int, f.command, STOMP_CMD_SEND));
    cr_assert(eq(ptr, (void *)hdrs[0].name.ptr, buf + 5));
    cr_assert(eq(mem, ((struct cr_mem){hdrs[0].name.ptr, hdrs[0].name.len}),
                 ((struct cr_mem){"a:b", 3})));
    cr_assert(eq(ptr, (void *)hdrs[0].value.ptr, buf + 10));
    cr_assert(eq(mem, ((struct cr_mem){hdrs[0].value.ptr, hdrs[0].value.len}),
                 ((struct cr_mem){"c\nd", 3})));
    cr_assert(eq(ptr, (void *)f.body.ptr, buf + 16));
    cr_assert(eq(sz, f.body.len, 4));
}

Test(stomp_parser, again_leaves_the_buffer_untouched)
{
    const char frame[] = "SEND\na\\cb:c\\nd\n\nbody";
    char buf[sizeof(frame)];
    struct stomp_header hdrs[4];
    struct stomp_frame f = {.headers = hdrs};
    struct stomp_parser p;

    memcpy(buf, frame, sizeof(frame));
    stomp_parser_init(&p, NULL);
    cr_assert(eq(sz, (size_t)stomp_parse(&p, buf, sizeof(frame) - 1, &f), 0));
    cr_assert(eq(mem, ((struct cr_mem){buf, sizeof(frame)}),
                 ((struct cr_mem){frame, sizeof(frame)})));
}

Test(stomp_parser, zero_bytes_is_again)
{
    struct stomp_frame f = {0};
    struct stomp_parser p;

    stomp_parser_init(&p, NULL);
    cr_assert(eq(sz, (size_t)stomp_parse(&p, NULL, 0, &f), 0));
    cr_assert(eq(sz, (size_t)stomp_parse(&p, (char *)"", 0, &f), 0));
}

Test(stomp_parser, heartbeat_is_reported_before_the_next_frame_arrives)
{
    char buf[] = "\n\nSEN";
    struct stomp_header hdrs[4];
    struct stomp_frame f = {.headers = hdrs};
    struct stomp_parser p;

    stomp_parser_init(&p, NULL);
    cr_assert(eq(sz, (size_t)stomp_parse(&p, buf, 2, &f), 2));
    cr_assert(eq(int, f.command, STOMP_CMD_HEARTBEAT));
    cr_assert(eq(sz, (size_t)stomp_parse(&p, buf + 2, 3, &f), 0));
}

/* ------------------------------------------------------------------------ */
/* Chat traffic in 191-byte packets                                          */
/* ------------------------------------------------------------------------ */

/* Appends printf output to a growing buffer. */
struct strbuf {
    char *p;
    size_t len, cap;
};

static void
sb_put(struct strbuf *sb, const void *data, size_t n)
{
    if (sb->len + n > sb->cap) {
        sb->cap = (sb->len + n) * 2;
        sb->p = realloc(sb->p, sb->cap);
        cr_assert(not(eq(ptr, sb->p, NULL)));
    }
    memcpy(sb->p + sb->len, data, n);
    sb->len += n;
}

static void __attribute__((format(printf, 2, 3)))
sb_printf(struct strbuf *sb, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    cr_assert(lt(int, n, (int)sizeof(tmp)));
    sb_put(sb, tmp, (size_t)n);
}

/* Writes n frames of chat traffic by hand (no writer: this test must not
 * depend on it) and the trace they must give. */
static void
make_chat_stream(size_t n, struct strbuf *wire, struct trace *want)
{
    static const char *const eols[] = {"\n", "\r\n", "\n\r\n"};
    size_t i;

    for (i = 0; i < n; i++) {
        struct stomp_header h[6];
        struct stomp_frame f = {.headers = h};
        char body[512], id[32];
        size_t start = wire->len, blen;

        switch (i % 5) {
        case 0: /* SEND with content-length and a JSON body */
            blen = (size_t)snprintf(body, sizeof(body),
                                    "{\"msgID\":\"%040zx\",\"reciverId\":%zu,"
                                    "\"content\":\"起来聊天 #%zu\"}",
                                    i * 7919, i % 97, i);
            sb_printf(wire, "SEND\ndestination:/socket/chat/send\n"
                            "content-type:application/json;charset=UTF-8\n"
                            "content-length:%zu\n\n", blen);
            sb_put(wire, body, blen);
            sb_put(wire, "", 1);
            f.command = STOMP_CMD_SEND;
            h[0] = (struct stomp_header){STOMP_STR("destination"),
                                         STOMP_STR("/socket/chat/send")};
            h[1] = (struct stomp_header){
                STOMP_STR("content-type"),
                STOMP_STR("application/json;charset=UTF-8")};
            snprintf(id, sizeof(id), "%zu", blen);
            h[2] = (struct stomp_header){STOMP_STR("content-length"),
                                         {id, strlen(id)}};
            f.nheaders = 3;
            f.body = (struct stomp_str){body, blen};
            break;
        case 1: /* MESSAGE, escaped header, no content-length */
            blen = (size_t)snprintf(body, sizeof(body),
                                    "{\"id\":%zu,\"chatID\":\"%040zx\","
                                    "\"sender\":\"wususu\",\"reciver\":"
                                    "\"liaojiekx\",\"content\":\"%0*zu\","
                                    "\"time\":1504712402000,\"senderId\":1,"
                                    "\"reciverId\":2}",
                                    i, i, (int)(i % 90), i);
            sb_printf(wire, "MESSAGE\r\ndestination:/user/liaojiekx/recive\r\n"
                            "subscription:sub-0\r\nmessage-id:%zu\r\n"
                            "x-note:a\\cb\\\\c\r\n\r\n", i);
            sb_put(wire, body, blen);
            sb_put(wire, "", 1);
            f.command = STOMP_CMD_MESSAGE;
            h[0] = (struct stomp_header){STOMP_STR("destination"),
                                         STOMP_STR("/user/liaojiekx/recive")};
            h[1] = (struct stomp_header){STOMP_STR("subscription"),
                                         STOMP_STR("sub-0")};
            snprintf(id, sizeof(id), "%zu", i);
            h[2] = (struct stomp_header){STOMP_STR("message-id"),
                                         {id, strlen(id)}};
            h[3] = (struct stomp_header){STOMP_STR("x-note"),
                                         STOMP_STR("a:b\\c")};
            f.nheaders = 4;
            f.body = (struct stomp_str){body, blen};
            break;
        case 2: /* ACK */
            sb_printf(wire, "ACK\nid:%zu\n\n", i);
            sb_put(wire, "", 1);
            f.command = STOMP_CMD_ACK;
            snprintf(id, sizeof(id), "%zu", i);
            h[0] = (struct stomp_header){STOMP_STR("id"), {id, strlen(id)}};
            f.nheaders = 1;
            f.body = (struct stomp_str){"", 0};
            break;
        case 3: /* heart-beats */
            sb_put(wire, eols[i % 3], strlen(eols[i % 3]));
            f.command = STOMP_CMD_HEARTBEAT;
            break;
        default: /* SEND with a receipt and a NUL inside the body */
            sb_printf(wire, "SEND\ndestination:/socket/chat/recive\n"
                            "receipt:r-%zu\ncontent-length:3\n\n", i);
            sb_put(wire, "a\0b", 4);
            f.command = STOMP_CMD_SEND;
            h[0] = (struct stomp_header){STOMP_STR("destination"),
                                         STOMP_STR("/socket/chat/recive")};
            snprintf(id, sizeof(id), "r-%zu", i);
            h[1] = (struct stomp_header){STOMP_STR("receipt"),
                                         {id, strlen(id)}};
            h[2] = (struct stomp_header){STOMP_STR("content-length"),
                                         STOMP_STR("3")};
            f.nheaders = 3;
            f.body = (struct stomp_str){"a\0b", 3};
            break;
        }
        trace_frame(want, &f, wire->len - start);
    }
}

Test(stomp_parser, chat_traffic_in_191_byte_packets)
{
    struct feed_cfg cfg = {.version = STOMP_V1_2};
    struct strbuf wire = {0};
    struct trace want;
    struct byte_splitter s;
    char *expect, *got;
    uint64_t seed;

    trace_open(&want);
    make_chat_stream(500, &wire, &want);
    expect = trace_close(&want);

    got = feed_whole(&cfg, wire.p, wire.len);
    cr_assert(eq(str, got, expect), "whole");
    free(got);

    byte_splitter_every(&s, wire.len, 191);
    got = feed(&cfg, wire.p, wire.len, &s);
    cr_assert(eq(str, got, expect), "191-byte packets");
    free(got);

    for (seed = 1; seed <= 4; seed++) {
        byte_splitter_random(&s, wire.len, seed, 400);
        got = feed(&cfg, wire.p, wire.len, &s);
        cr_assert(eq(str, got, expect), "random packets, seed %llu",
                  (unsigned long long)seed);
        free(got);
    }
    free(expect);
    free(wire.p);
}

/* ------------------------------------------------------------------------ */
/* Limits at N and N+1, with the defaults and the exact message              */
/* ------------------------------------------------------------------------ */

static void
assert_message(int code, const struct stomp_limits *lim, const char *want)
{
    char msg[128];

    stomp_strerror_limit(code, lim, msg, sizeof(msg));
    cr_assert(eq(str, msg, (char *)want));
}

/* Runs sb's bytes whole, split, byte by byte and in random chunks. */
static void
assert_big_trace(const struct stomp_limits *lim, const struct strbuf *sb,
                 const char *want, const char *name)
{
    struct feed_cfg cfg = {.version = STOMP_V1_2, .lim = lim};

    assert_trace(&cfg, sb->p, sb->len, want, name);
}

/* The trace of the single frame in sb, parsed whole. */
static char *
whole_trace(const struct stomp_limits *lim, const struct strbuf *sb)
{
    struct feed_cfg cfg = {.version = STOMP_V1_2, .lim = lim};

    return feed_whole(&cfg, sb->p, sb->len);
}

static void
sb_fill(struct strbuf *sb, char c, size_t n)
{
    while (n-- > 0)
        sb_put(sb, &c, 1);
}

/* "SEND\n\n" + body + NUL: a frame of exactly size bytes. */
static void
make_frame_of_size(struct strbuf *sb, size_t size)
{
    sb->len = 0;
    sb_put(sb, "SEND\n\n", 6);
    sb_fill(sb, 'x', size - 7);
    sb_put(sb, "", 1);
}

Test(stomp_limits, max_frame_bytes_at_n_and_n_plus_1)
{
    struct stomp_limits lim = STOMP_LIMITS_DEFAULT;
    struct strbuf sb = {0};
    char *got;

    make_frame_of_size(&sb, 65536);
    got = whole_trace(&lim, &sb);
    cr_assert(starts_with(got, "SEND 65536 [<65529 bytes "), "%s", got);
    assert_big_trace(&lim, &sb, got, "frame at 65536");
    free(got);

    make_frame_of_size(&sb, 65537);
    assert_big_trace(&lim, &sb, "!FRAME_TOO_LARGE\n", "frame at 65537");
    /* Refused once the limit is reached, without waiting for the NUL. */
    sb.len = 65536;
    assert_big_trace(&lim, &sb, "!FRAME_TOO_LARGE\n", "65536 bytes, no NUL");
    assert_message(STOMP_E_FRAME_TOO_LARGE, &lim,
                   "frame exceeds 65536 bytes (max_frame_bytes)");
    free(sb.p);
}

/* "SEND\ncontent-length:L\n\n" + L bytes + NUL, of exactly size bytes. */
static void
make_cl_frame_of_size(struct strbuf *sb, size_t size, size_t *head_len)
{
    char head[64];
    size_t body;
    int n = 0;

    /* The head's length depends on the digits of the body's length. */
    for (body = size; body > 0; body--) {
        n = snprintf(head, sizeof(head), "SEND\ncontent-length:%zu\n\n", body);
        if ((size_t)n + body + 1 == size)
            break;
    }
    cr_assert(gt(sz, body, 0));
    sb->len = 0;
    sb_put(sb, head, (size_t)n);
    sb_fill(sb, '\0', body); /* NULs: only content-length can carry them */
    sb_put(sb, "", 1);
    *head_len = (size_t)n;
}

Test(stomp_limits, content_length_against_max_frame_bytes_before_the_body)
{
    struct stomp_limits lim = STOMP_LIMITS_DEFAULT;
    struct strbuf sb = {0};
    size_t head;
    char *got;

    make_cl_frame_of_size(&sb, 65536, &head);
    got = whole_trace(&lim, &sb);
    cr_assert(starts_with(got, "SEND 65536 {content-length:65508} [<65508 bytes "),
              "%s", got);
    assert_big_trace(&lim, &sb, got, "content-length frame at 65536");
    free(got);

    make_cl_frame_of_size(&sb, 65537, &head);
    assert_big_trace(&lim, &sb, "!FRAME_TOO_LARGE\n", "content-length frame at 65537");
    /* The headers alone are enough to refuse it: no body byte is awaited. */
    sb.len = head;
    assert_big_trace(&lim, &sb, "!FRAME_TOO_LARGE\n", "headers of 65537");
    free(sb.p);
}

static void
make_headers_frame(struct strbuf *sb, size_t nheaders)
{
    size_t i;

    sb->len = 0;
    sb_put(sb, "SEND\n", 5);
    for (i = 0; i < nheaders; i++)
        sb_printf(sb, "h%02zu:v\n", i);
    sb_put(sb, "\n", 2); /* blank line and NUL */
}

Test(stomp_limits, max_headers_at_n_and_n_plus_1)
{
    struct stomp_limits lim = STOMP_LIMITS_DEFAULT;
    struct strbuf sb = {0};
    char *got;

    make_headers_frame(&sb, 64);
    got = whole_trace(&lim, &sb);
    cr_assert(starts_with(got, "SEND 391 {h00:v} {h01:v}"), "%s", got);
    cr_assert(not(eq(ptr, strstr(got, "{h63:v} []\n"), NULL)), "%s", got);
    assert_big_trace(&lim, &sb, got, "64 headers");
    free(got);

    make_headers_frame(&sb, 65);
    assert_big_trace(&lim, &sb, "!TOO_MANY_HEADERS\n", "65 headers");
    /* Refused at the first byte of the 65th line. */
    sb.len = 5 + 64 * 6 + 1;
    assert_big_trace(&lim, &sb, "!TOO_MANY_HEADERS\n", "65th line begins");
    assert_message(STOMP_E_TOO_MANY_HEADERS, &lim,
                   "more than 64 headers (max_headers)");
    free(sb.p);
}

/* "SEND\n" + "n:" + value of (line - 2) bytes + eol + blank line + NUL. */
static void
make_line_frame(struct strbuf *sb, size_t line, const char *eol,
                const char *unit)
{
    size_t ulen = strlen(unit);
    size_t n = 2;

    sb->len = 0;
    sb_put(sb, "SEND", 4);
    sb_put(sb, eol, strlen(eol));
    sb_put(sb, "n:", 2);
    while (n + ulen <= line) {
        sb_put(sb, unit, ulen);
        n += ulen;
    }
    sb_fill(sb, 'v', line - n);
    sb_put(sb, eol, strlen(eol));
    sb_put(sb, eol, strlen(eol));
    sb_put(sb, "", 1);
}

Test(stomp_limits, max_header_line_at_n_and_n_plus_1)
{
    struct stomp_limits lim = STOMP_LIMITS_DEFAULT;
    static const char *const eols[] = {"\n", "\r\n"};
    static const char *const units[] = {"v", "\\n"};
    struct strbuf sb = {0};
    size_t e, u;

    for (e = 0; e < 2; e++) {
        for (u = 0; u < 2; u++) {
            char *got;

            /* The raw line counts, before unescaping, without its EOL. */
            make_line_frame(&sb, 8192, eols[e], units[u]);
            got = whole_trace(&lim, &sb);
            cr_assert(starts_with(got, "SEND "), "%s", got);
            assert_big_trace(&lim, &sb, got, "line of 8192");
            free(got);

            make_line_frame(&sb, 8193, eols[e], units[u]);
            assert_big_trace(&lim, &sb, "!HEADER_LINE_TOO_LONG\n", "line of 8193");
            /* Refused at the 8193rd byte, long before the EOL. */
            sb.len = 4 + strlen(eols[e]) + 8193;
            assert_big_trace(&lim, &sb, "!HEADER_LINE_TOO_LONG\n",
                             "8193 bytes, no EOL");
        }
    }
    assert_message(STOMP_E_HEADER_LINE_TOO_LONG, &lim,
                   "header line exceeds 8192 bytes (max_header_line)");
    free(sb.p);
}

/* Seven lines of 8192 bytes, one of last bytes, then "a:" (2 bytes). */
static void
make_header_bytes_frame(struct strbuf *sb, size_t last)
{
    size_t i;

    sb->len = 0;
    sb_put(sb, "SEND\n", 5);
    for (i = 0; i < 8; i++) {
        sb_printf(sb, "%zu:", i);
        sb_fill(sb, 'v', (i < 7 ? 8192 : last) - 2);
        sb_put(sb, "\n", 1);
    }
    sb_put(sb, "a:\n\n", 5);
}

Test(stomp_limits, max_header_bytes_at_n_and_n_plus_1)
{
    struct stomp_limits lim = STOMP_LIMITS_DEFAULT;
    struct strbuf sb = {0};
    char *got;

    /* With the defaults the frame limit always comes first; widen it. */
    lim.max_frame_bytes = 1u << 20;

    make_header_bytes_frame(&sb, 8190); /* 7 * 8192 + 8190 + 2 = 65536 */
    got = whole_trace(&lim, &sb);
    cr_assert(starts_with(got, "SEND 65552 "), "%s", got);
    assert_big_trace(&lim, &sb, got, "65536 header bytes");
    free(got);

    make_header_bytes_frame(&sb, 8191);
    assert_big_trace(&lim, &sb, "!HEADERS_TOO_LARGE\n", "65537 header bytes");
    assert_message(STOMP_E_HEADERS_TOO_LARGE, &lim,
                   "headers exceed 65536 bytes (max_header_bytes)");
    free(sb.p);
}

/* ------------------------------------------------------------------------ */
/* State across frames                                                       */
/* ------------------------------------------------------------------------ */

Test(stomp_parser, error_is_sticky)
{
    char bad[] = "SEND\nnocolon\n\n\0";
    char good[] = "SEND\n\n\0";
    struct stomp_header hdrs[4];
    struct stomp_frame f = {.headers = hdrs};
    struct stomp_parser p;
    int i;

    stomp_parser_init(&p, NULL);
    cr_assert(eq(i64, stomp_parse(&p, bad, sizeof(bad) - 1, &f), STOMP_E_BAD_HEADER));
    for (i = 0; i < 3; i++) {
        cr_assert(eq(i64, stomp_parse(&p, good, sizeof(good) - 1, &f), STOMP_E_BAD_HEADER));
        cr_assert(eq(i64, stomp_parse(&p, good, 0, &f), STOMP_E_BAD_HEADER));
    }
    stomp_parser_init(&p, NULL);
    cr_assert(eq(sz, (size_t)stomp_parse(&p, good, sizeof(good) - 1, &f),
                 sizeof(good) - 1), "init starts afresh");
}

Test(stomp_parser, tight_limits_until_connect_then_configured_ones)
{
    static const struct stomp_limits tight = {
        .max_frame_bytes = 64, .max_headers = 4,
        .max_header_line = 32, .max_header_bytes = 64,
    };
    struct stomp_limits lim = STOMP_LIMITS_DEFAULT;
    char buf[] = "CONNECT\naccept-version:1.2\nhost:chat\n\n\0"
                 "SEND\ndestination:/socket/chat/send\n\n"
                 "{\"msgID\":\"0123456789abcdef\",\"reciverId\":2,\"content\":\"hi\"}\0";
    size_t len = sizeof(buf) - 1, off = 0;
    struct stomp_header hdrs[64];
    struct stomp_frame f = {.headers = hdrs};
    struct stomp_parser p, q;
    ssize_t n;

    stomp_parser_init(&p, &tight);
    n = stomp_parse(&p, buf, len, &f);
    cr_assert(eq(sz, (size_t)n, 39));
    cr_assert(eq(int, f.command, STOMP_CMD_CONNECT));
    off += (size_t)n;

    /* The SEND would break the tight limits: a parser that kept them fails. */
    q = p;
    cr_assert(eq(i64, stomp_parse(&q, buf + off, len - off, &f), STOMP_E_FRAME_TOO_LARGE));

    stomp_parser_set_limits(&p, &lim);
    stomp_parser_set_version(&p, STOMP_V1_2);
    n = stomp_parse(&p, buf + off, len - off, &f);
    cr_assert(eq(sz, (size_t)n, len - off));
    cr_assert(eq(int, f.command, STOMP_CMD_SEND));
}

Test(stomp_parser, unbounded_limits_do_not_overflow)
{
    static const struct stomp_limits huge = {SIZE_MAX, SIZE_MAX, SIZE_MAX, SIZE_MAX};
    char ok[] = "SEND\ncontent-length:3\n\nabc\0";
    char big[] = "SEND\ncontent-length:18446744073709551615\n\n";
    struct stomp_header hdrs[4];
    struct stomp_frame f = {.headers = hdrs};
    struct stomp_parser p;

    stomp_parser_init(&p, &huge);
    cr_assert(eq(sz, (size_t)stomp_parse(&p, ok, sizeof(ok) - 1, &f), sizeof(ok) - 1));
    /* max_frame_bytes is clamped to SSIZE_MAX: SIZE_MAX cannot fit. */
    cr_assert(eq(i64, stomp_parse(&p, big, sizeof(big) - 1, &f), STOMP_E_FRAME_TOO_LARGE));
}

Test(stomp_parser, default_version_unescapes_as_1_2)
{
    char buf[] = "SEND\na:\\r\n\n\0";
    struct stomp_header hdrs[4];
    struct stomp_frame f = {.headers = hdrs};
    struct stomp_parser p;

    stomp_parser_init(&p, NULL);
    cr_assert(eq(sz, (size_t)stomp_parse(&p, buf, sizeof(buf) - 1, &f),
                 sizeof(buf) - 1));
    cr_assert(eq(mem, ((struct cr_mem){hdrs[0].value.ptr, hdrs[0].value.len}),
                 ((struct cr_mem){"\r", 1})));
}

Test(stomp_parser, version_applies_from_the_next_frame)
{
    char buf[] = "SEND\na:\\\\\n\n\0SEND\na:\\\\\n\n\0SEND\na:\\r\n\n\0";
    struct stomp_header hdrs[4];
    struct stomp_frame f = {.headers = hdrs};
    struct stomp_parser p;
    size_t off = 0, len = sizeof(buf) - 1;
    ssize_t n;

    stomp_parser_init(&p, NULL);
    stomp_parser_set_version(&p, STOMP_V1_0);
    n = stomp_parse(&p, buf, len, &f);
    cr_assert(eq(sz, (size_t)n, 12));
    cr_assert(eq(mem, ((struct cr_mem){hdrs[0].value.ptr, hdrs[0].value.len}),
                 ((struct cr_mem){"\\\\", 2})), "1.0 keeps backslashes");
    off += (size_t)n;

    stomp_parser_set_version(&p, STOMP_V1_1);
    n = stomp_parse(&p, buf + off, len - off, &f);
    cr_assert(eq(sz, (size_t)n, 12));
    cr_assert(eq(mem, ((struct cr_mem){hdrs[0].value.ptr, hdrs[0].value.len}),
                 ((struct cr_mem){"\\", 1})), "1.1 decodes \\\\");
    off += (size_t)n;

    cr_assert(eq(i64, stomp_parse(&p, buf + off, len - off, &f), STOMP_E_BAD_ESCAPE), "1.1 has no \\r");
}

/* The scan resumes where it stopped: after each STOMP_AGAIN the pages the
 * parser already scanned are made unreadable, and a parser that went back
 * to them would fault. */
static void
assert_no_rescan(int with_content_length)
{
    const size_t body = 1u << 20;
    struct stomp_limits lim = STOMP_LIMITS_DEFAULT;
    struct stomp_header hdrs[4];
    struct stomp_frame f = {.headers = hdrs};
    struct stomp_parser p;
    struct guard_buf gb;
    struct strbuf sb = {0};
    size_t len, revoked = 0;
    char *b;
    ssize_t n = 0;

    lim.max_frame_bytes = 2 * body;
    if (with_content_length)
        sb_printf(&sb, "SEND\ncontent-length:%zu\n\n", body);
    else
        sb_put(&sb, "SEND\n\n", 6);
    sb_fill(&sb, 'x', body);
    sb_put(&sb, "", 1);

    cr_assert(eq(int, guard_buf_init(&gb, sb.len), 0));
    b = guard_buf_place(&gb, sb.p, sb.len);
    stomp_parser_init(&p, &lim);
    for (len = 1; len <= sb.len; len += len < 4096 ? 1 : 4096) {
        n = stomp_parse(&p, b, len, &f);
        if (n != STOMP_AGAIN)
            break;
        /* Keep the first page: the fill pass reads the headers again. */
        revoked = guard_buf_revoke(&gb, b + 4096, b + len);
    }
    if (n == STOMP_AGAIN)
        n = stomp_parse(&p, b, sb.len, &f);
    cr_assert(eq(sz, (size_t)n, sb.len));
    cr_assert(eq(sz, f.body.len, body));
    cr_assert(gt(sz, revoked, body - 3 * 4096), "pages were revoked");
    guard_buf_cleanup(&gb);
    free(sb.p);
}

Test(stomp_parser, resumes_without_rereading_a_nul_terminated_body)
{
    assert_no_rescan(0);
}

Test(stomp_parser, resumes_without_rereading_a_content_length_body)
{
    assert_no_rescan(1);
}

/* ------------------------------------------------------------------------ */
/* Command names (frame.c) and messages (error.c)                            */
/* ------------------------------------------------------------------------ */

Test(stomp_frame, command_names_round_trip)
{
    int c;

    for (c = 0; c < STOMP_CMD_HEARTBEAT; c++) {
        const char *name = stomp_command_name((enum stomp_command)c);

        cr_assert(not(eq(ptr, (void *)name, NULL)));
        cr_assert(eq(int, stomp_command_from(name, strlen(name)), c), "%s", name);
    }
    cr_assert(eq(str, (char *)stomp_command_name(STOMP_CMD_SEND), "SEND"));
    cr_assert(eq(str, (char *)stomp_command_name(STOMP_CMD_HEARTBEAT), "heart-beat"));
    cr_assert(eq(ptr, (void *)stomp_command_name(STOMP_CMD_COUNT), NULL));
    cr_assert(eq(ptr, (void *)stomp_command_name((enum stomp_command)-1), NULL));
}

Test(stomp_frame, command_from_is_exact)
{
    cr_assert(eq(int, stomp_command_from("heart-beat", 10), STOMP_E_UNKNOWN_COMMAND));
    cr_assert(eq(int, stomp_command_from("send", 4), STOMP_E_UNKNOWN_COMMAND));
    cr_assert(eq(int, stomp_command_from("SEN", 3), STOMP_E_UNKNOWN_COMMAND));
    cr_assert(eq(int, stomp_command_from("SENDX", 5), STOMP_E_UNKNOWN_COMMAND));
    cr_assert(eq(int, stomp_command_from("", 0), STOMP_E_UNKNOWN_COMMAND));
    cr_assert(eq(int, stomp_command_from("SENDX", 4), STOMP_CMD_SEND));
}

Test(stomp_frame, header_lookup_is_exact_and_case_sensitive)
{
    struct stomp_header h[] = {
        {STOMP_STR("destination"), STOMP_STR("/a")},
        {STOMP_STR("Destination"), STOMP_STR("/b")},
        {STOMP_STR("dest"), STOMP_STR("/c")},
    };
    struct stomp_frame f = {.command = STOMP_CMD_SEND, .headers = h, .nheaders = 3};

    cr_assert(eq(ptr, (void *)stomp_frame_header(&f, "destination"), &h[0].value));
    cr_assert(eq(ptr, (void *)stomp_frame_header(&f, "Destination"), &h[1].value));
    cr_assert(eq(ptr, (void *)stomp_frame_header(&f, "dest"), &h[2].value));
    cr_assert(eq(ptr, (void *)stomp_frame_header(&f, "destinatio"), NULL));
    cr_assert(eq(ptr, (void *)stomp_frame_header(&f, "receipt"), NULL));
    f.nheaders = 0;
    cr_assert(eq(ptr, (void *)stomp_frame_header(&f, "destination"), NULL));
}

Test(stomp_error, every_code_has_its_own_line)
{
    int a, b;

    for (a = STOMP_E_NOSPACE; a <= STOMP_OK; a++) {
        const char *m = stomp_strerror(a);

        cr_assert(gt(sz, strlen(m), 0));
        cr_assert(strchr(m, '\n') == NULL);
        cr_assert(ne(str, (char *)m, "unknown error"), "code %d", a);
        for (b = STOMP_E_NOSPACE; b < a; b++)
            cr_assert(ne(str, (char *)m, (char *)stomp_strerror(b)));
    }
    cr_assert(eq(str, (char *)stomp_strerror(1), "unknown error"));
    cr_assert(eq(str, (char *)stomp_strerror(-99), "unknown error"));
    cr_assert(eq(str, (char *)stomp_strerror(-1000), "unknown error"));
    cr_assert(eq(str, (char *)stomp_strerror(STOMP_E_FRAME_TOO_LARGE),
                 "frame too large (max_frame_bytes)"));
}

Test(stomp_error, limit_message_names_the_limit_and_truncates_like_snprintf)
{
    struct stomp_limits lim = {.max_frame_bytes = 4096, .max_headers = 8,
                               .max_header_line = 100, .max_header_bytes = 900};
    char buf[16];
    int n;

    assert_message(STOMP_E_FRAME_TOO_LARGE, &lim,
                   "frame exceeds 4096 bytes (max_frame_bytes)");
    assert_message(STOMP_E_TOO_MANY_HEADERS, &lim, "more than 8 headers (max_headers)");
    assert_message(STOMP_E_HEADER_LINE_TOO_LONG, &lim,
                   "header line exceeds 100 bytes (max_header_line)");
    assert_message(STOMP_E_HEADERS_TOO_LARGE, &lim,
                   "headers exceed 900 bytes (max_header_bytes)");
    assert_message(STOMP_E_BAD_ESCAPE, &lim, stomp_strerror(STOMP_E_BAD_ESCAPE));
    assert_message(STOMP_E_FRAME_TOO_LARGE, NULL, stomp_strerror(STOMP_E_FRAME_TOO_LARGE));

    n = stomp_strerror_limit(STOMP_E_FRAME_TOO_LARGE, &lim, buf, sizeof(buf));
    cr_assert(eq(int, n, (int)strlen("frame exceeds 4096 bytes (max_frame_bytes)")));
    cr_assert(eq(str, buf, "frame exceeds 4"));
}
