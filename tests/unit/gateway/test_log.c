/* test_log.c - log.c: level names, the line format (captured by pointing
 * fd 2 at a pipe), the level check before formatting, lws routing, and the
 * escaped repr of peer bytes. */
#include "fmacros.h"

#include <errno.h>
#include <limits.h>
#include <regex.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>
#include <libwebsockets.h>

#include "core/common.h"
#include "core/log.h"
#include "guard_buf.h"

/* ------------------------------------------------------------------------ */
/* Capturing fd 2                                                            */
/* ------------------------------------------------------------------------ */

static int saved_fd = -1, pipe_rd = -1;

/* Point fd 2 at a fresh pipe; what the code under test logs waits there. */
static void
capture_start(void)
{
    int p[2];

    cr_assert(eq(int, pipe(p), 0));
    saved_fd = dup(STDERR_FILENO);
    cr_assert(ge(int, saved_fd, 0));
    cr_assert(ge(int, dup2(p[1], STDERR_FILENO), 0));
    close(p[1]);
    pipe_rd = p[0];
}

/* Restore fd 2 and return everything written meanwhile (static storage). */
static const char *
capture_end(void)
{
    static char text[4 * PIPE_BUF];
    size_t len = 0;
    ssize_t n;

    dup2(saved_fd, STDERR_FILENO);           /* closes the pipe's write end */
    close(saved_fd);
    while (len < sizeof text - 1 &&
           (n = read(pipe_rd, text + len, sizeof text - 1 - len)) > 0)
        len += (size_t)n;
    close(pipe_rd);
    text[len] = '\0';
    return text;
}

static void
setup(void)
{
    cg_log_set_level(CG_LOG_INFO);
}

TestSuite(cg_log, .init = setup);
TestSuite(cg_log_lws, .init = setup);

/* ------------------------------------------------------------------------ */
/* Levels                                                                    */
/* ------------------------------------------------------------------------ */

Test(cg_log, level_names_parse_to_their_levels)
{
    static const struct { const char *name; enum cg_log_level lvl; } rows[] = {
        { "error", CG_LOG_ERROR }, { "warn", CG_LOG_WARN },
        { "notice", CG_LOG_NOTICE }, { "info", CG_LOG_INFO },
        { "debug", CG_LOG_DEBUG },
    };

    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        enum cg_log_level lvl = CG_LOG_ERROR;

        cr_assert(eq(int, cg_log_level_parse(rows[i].name, &lvl), 0), "%s", rows[i].name);
        cr_assert(eq(int, (int)lvl, (int)rows[i].lvl), "%s", rows[i].name);
    }
}

Test(cg_log, unknown_level_names_are_invalid)
{
    static const char *const bad[] = { "", "INFO", "warning", "trace", "info ", "err" };
    enum cg_log_level lvl = CG_LOG_NOTICE;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert(eq(int, cg_log_level_parse(bad[i], &lvl), CG_E_INVAL), "'%s'", bad[i]);
    cr_assert(eq(int, (int)lvl, (int)CG_LOG_NOTICE));   /* untouched */
}

/* ------------------------------------------------------------------------ */
/* Line format                                                               */
/* ------------------------------------------------------------------------ */

/* Assert that text matches the extended regular expression re. */
static void
assert_matches(const char *text, const char *re)
{
    regex_t rx;

    cr_assert(eq(int, regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0), "%s", re);
    cr_assert(eq(int, regexec(&rx, text, 0, NULL, 0), 0),
              "line:  [%s]\nregex: %s", text, re);
    regfree(&rx);
}

#define STAMP "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z"

Test(cg_log, line_has_utc_stamp_level_context_and_message)
{
    capture_start();
    cg_log_ctx(CG_LOG_NOTICE, "s#42 u=wususu 10.0.0.1:51234 ws", "hello %d", 42);
    assert_matches(capture_end(),
                   "^" STAMP " NOTICE \\[s#42 u=wususu 10\\.0\\.0\\.1:51234 ws\\] hello 42\n$");
}

Test(cg_log, line_without_context_has_no_brackets)
{
    capture_start();
    cg_log(CG_LOG_ERROR, "disk %s", "full");
    cg_log_ctx(CG_LOG_WARN, "", "empty context");
    assert_matches(capture_end(),
                   "^" STAMP " ERROR disk full\n" STAMP " WARN empty context\n$");
}

Test(cg_log, every_level_has_its_name)
{
    cg_log_set_level(CG_LOG_DEBUG);
    capture_start();
    cg_log(CG_LOG_ERROR, "a");
    cg_log(CG_LOG_WARN, "b");
    cg_log(CG_LOG_NOTICE, "c");
    cg_log(CG_LOG_INFO, "d");
    cg_log(CG_LOG_DEBUG, "e");
    assert_matches(capture_end(), "^" STAMP " ERROR a\n" STAMP " WARN b\n" STAMP
                   " NOTICE c\n" STAMP " INFO d\n" STAMP " DEBUG e\n$");
}

Test(cg_log, stamp_is_now_in_utc)
{
    char want[32];
    time_t t = time(NULL);
    struct tm tm;
    const char *line;

    gmtime_r(&t, &tm);
    strftime(want, sizeof want, "%Y-%m-%dT%H", &tm);
    capture_start();
    cg_log(CG_LOG_ERROR, "x");
    line = capture_end();
    /* Same date and hour, unless the hour turned in between. */
    if (strncmp(line, want, strlen(want)) != 0) {
        t = time(NULL);
        gmtime_r(&t, &tm);
        strftime(want, sizeof want, "%Y-%m-%dT%H", &tm);
    }
    cr_assert(eq(int, strncmp(line, want, strlen(want)), 0), "%s vs %s", line, want);
}

static int evaluated;

static int
side_effect(void)
{
    evaluated++;
    return 1;
}

Test(cg_log, disabled_levels_do_not_format_or_write)
{
    cg_log_set_level(CG_LOG_WARN);
    capture_start();
    cg_log(CG_LOG_INFO, "%d", side_effect());
    cg_log_ctx(CG_LOG_DEBUG, "ctx", "%d", side_effect());
    cg_log(CG_LOG_WARN, "shown");
    assert_matches(capture_end(), "^" STAMP " WARN shown\n$");
    cr_assert(eq(int, evaluated, 0));
    cr_assert(eq(int, cg_log_enabled(CG_LOG_NOTICE), 0));
    cr_assert(eq(int, cg_log_enabled(CG_LOG_ERROR), 1));
}

Test(cg_log, message_stays_on_one_line)
{
    capture_start();
    cg_log(CG_LOG_ERROR, "one\ntwo\r\n");
    cg_log_ctx(CG_LOG_ERROR, "c\nx", "three\n\n");
    assert_matches(capture_end(),
                   "^" STAMP " ERROR one two\n" STAMP " ERROR \\[c x\\] three\n$");
}

Test(cg_log, long_message_is_cut_to_one_atomic_write)
{
    static char big[3 * PIPE_BUF];
    const char *out;
    size_t len;

    memset(big, 'a', sizeof big - 1);
    capture_start();
    cg_log(CG_LOG_ERROR, "%s", big);
    out = capture_end();
    len = strlen(out);
    cr_assert(le(sz, len, PIPE_BUF));
    cr_assert(eq(chr, out[len - 1], '\n'));
    cr_assert(eq(int, memcmp(out + len - 4, "...", 3), 0));
    cr_assert(zero(ptr, memchr(out, '\n', len - 1)));
}

Test(cg_log, emit_preserves_errno)
{
    capture_start();
    errno = EAGAIN;
    cg_log(CG_LOG_ERROR, "x");
    cr_assert(eq(int, errno, EAGAIN));
    capture_end();
}

/* ------------------------------------------------------------------------ */
/* lws routing                                                               */
/* ------------------------------------------------------------------------ */

Test(cg_log_lws, lws_lines_arrive_as_ours_at_the_mapped_level)
{
    cg_log_set_level(CG_LOG_NOTICE);
    cg_log_route_lws();
    capture_start();
    _lws_log(LLL_ERR, "boom %d\n", 7);
    _lws_log(LLL_WARN, "careful\n");
    _lws_log(LLL_NOTICE, "fyi\n");
    _lws_log(LLL_INFO, "hidden: lws info is our debug\n");
    assert_matches(capture_end(), "^" STAMP " ERROR \\[lws\\] boom 7\n" STAMP
                   " WARN \\[lws\\] careful\n" STAMP " NOTICE \\[lws\\] fyi\n$");
}

Test(cg_log_lws, lws_info_and_debug_need_our_debug)
{
    cg_log_set_level(CG_LOG_DEBUG);
    cg_log_route_lws();
    capture_start();
    _lws_log(LLL_INFO, "i\n");
    _lws_log(LLL_DEBUG, "d\n");
    assert_matches(capture_end(), "^" STAMP " DEBUG \\[lws\\] i\n" STAMP " DEBUG \\[lws\\] d\n$");
}

Test(cg_log_lws, a_leading_lws_timestamp_is_stripped)
{
    cg_log_route_lws();
    capture_start();
    _lws_log(LLL_ERR, "[2026/11/21 21:07:53:1234] E: stamped\n");
    _lws_log(LLL_ERR, "[wsi|0] not a stamp\n");
    assert_matches(capture_end(), "^" STAMP " ERROR \\[lws\\] stamped\n" STAMP
                   " ERROR \\[lws\\] \\[wsi\\|0\\] not a stamp\n$");
}

/* ------------------------------------------------------------------------ */
/* cg_log_repr                                                               */
/* ------------------------------------------------------------------------ */

/* By value: each parameterized test runs in a fresh worker process, where
 * pointers into the runner's static data would not be valid. */
struct repr_case {
    char   in[16];
    size_t len;
    size_t max;
    size_t cap;
    char   want[32];
};

#define R(in, max, cap, want) { in, sizeof(in) - 1, max, cap, want }

ParameterizedTestParameters(cg_log_repr, escapes_quotes_and_cuts)
{
    static struct repr_case cases[] = {
        R("", 64, 256, "\"\""),
        R("CONNECT", 64, 256, "\"CONNECT\""),
        R("a\nb\rc\td", 64, 256, "\"a\\nb\\rc\\td\""),
        R("q\"b\\", 64, 256, "\"q\\\"b\\\\\""),
        R("\x00\x01\x7f\x80\xff", 64, 256, "\"\\x00\\x01\\x7f\\x80\\xff\""),
        R("abcdef", 3, 256, "\"abc\"..."),          /* over max */
        R("abc", 3, 256, "\"abc\""),                /* exactly max */
        R("abcdef", 64, 9, "\"abc\"..."),           /* cap: 5 for the tail */
        R("\n\n\n", 64, 10, "\"\\n\\n\"..."),       /* escapes are not split */
        R("abc", 64, 6, "\"\"..."),                 /* smallest useful cap */
        R("abc", 64, 5, ""),                        /* too small: empty */
        R("abc", 0, 256, "\"\"..."),
    };

    return cr_make_param_array(struct repr_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct repr_case *c, cg_log_repr, escapes_quotes_and_cuts)
{
    struct guard_buf gb = { 0 };
    char out[257];                           /* cap <= 256, plus a sentinel */
    const char *in;

    /* The input ends right before a PROT_NONE page: any over-read faults. */
    cr_assert(eq(int, guard_buf_init(&gb, 64), 0));
    in = guard_buf_place(&gb, c->in, c->len);
    memset(out, 'Z', sizeof out);
    cr_assert(eq(ptr, (void *)cg_log_repr(in, c->len, c->max, out, c->cap), out));
    cr_assert(eq(str, out, (char *)c->want));
    cr_assert(eq(chr, out[c->cap], 'Z'));   /* nothing written past cap */
    guard_buf_cleanup(&gb);
}

Test(cg_log_repr, zero_cap_writes_nothing)
{
    char out[1] = { 'Z' };

    cg_log_repr("abc", 3, 64, out, 0);
    cr_assert(eq(chr, out[0], 'Z'));
}

Test(cg_log_repr, four_times_max_plus_six_always_fits)
{
    unsigned char in[64];
    char out[64 * 4 + 6];

    memset(in, 0xff, sizeof in);
    cg_log_repr(in, sizeof in, sizeof in, out, sizeof out);
    cr_assert(eq(sz, strlen(out), 64 * 4 + 2));
    cr_assert(eq(chr, out[strlen(out) - 1], '"'));
}
