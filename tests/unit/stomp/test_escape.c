#include "fmacros.h"

/* test_escape.c - header escaping per version, both directions: the
 * internal helpers of escape.c first, then every byte value through the
 * public writer and parser. */

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>
#include <stdlib.h>
#include <string.h>

#include "guard_buf.h"
#include "stomp/stomp.h"
#include "stomp_int.h"

#define MEM(p, n) ((struct cr_mem){(p), (n)})

/* ------------------------------------------------------------------------ */
/* Decoding                                                                  */
/* ------------------------------------------------------------------------ */

struct unescape_case {
    enum stomp__escaping esc;
    const char *in;
    size_t in_len;
    const char *out; /* NULL: STOMP_E_BAD_ESCAPE */
    size_t out_len;
};

#define UN(esc, in, out) {esc, in, sizeof(in) - 1, out, sizeof(out) - 1}
#define UN_BAD(esc, in) {esc, in, sizeof(in) - 1, NULL, 0}

static const struct unescape_case unescape_cases[] = {
    UN(STOMP__ESC_V11, "", ""),
    UN(STOMP__ESC_V11, "plain value", "plain value"),
    UN(STOMP__ESC_V11, "a\\nb", "a\nb"),
    UN(STOMP__ESC_V11, "\\c", ":"),
    UN(STOMP__ESC_V11, "\\\\", "\\"),
    UN(STOMP__ESC_V11, "\\n\\n\\c\\\\", "\n\n:\\"),
    UN(STOMP__ESC_V11, "\\\\n", "\\n"), /* no nested escapes */
    UN(STOMP__ESC_V11, "x\\\\\\\\y", "x\\\\y"),
    UN_BAD(STOMP__ESC_V11, "\\r"),
    UN_BAD(STOMP__ESC_V11, "\\t"),
    UN_BAD(STOMP__ESC_V11, "\\N"),
    UN_BAD(STOMP__ESC_V11, "\\"),
    UN_BAD(STOMP__ESC_V11, "abc\\"),
    UN_BAD(STOMP__ESC_V11, "\\\\\\"),
    UN_BAD(STOMP__ESC_V11, "a\\\0"),
    UN(STOMP__ESC_V12, "a\\rb", "a\rb"),
    UN(STOMP__ESC_V12, "head\\r\\c\\ner", "head\r:\ner"),
    UN(STOMP__ESC_V12, "\\c\\n\\r\\\\", ":\n\r\\"),
    UN(STOMP__ESC_V12, "起来\\c聊天", "起来:聊天"),
    UN_BAD(STOMP__ESC_V12, "\\t"),
    UN_BAD(STOMP__ESC_V12, "ok\\ x"),
    UN(STOMP__ESC_NONE, "\\t\\", "\\t\\"),
    UN(STOMP__ESC_NONE, "a\\nb", "a\\nb"),
};

/* Criterion runs each parameter in a fresh process image, where the
 * addresses of static data differ: parameters are row numbers, never
 * pointers. */
#define NROWS(a) (sizeof(a) / sizeof((a)[0]))

static size_t unescape_index[NROWS(unescape_cases)];

ParameterizedTestParameters(stomp_escape, unescape_cases)
{
    size_t i;

    for (i = 0; i < NROWS(unescape_cases); i++)
        unescape_index[i] = i;
    return cr_make_param_array(size_t, unescape_index, NROWS(unescape_cases));
}

/* The input sits against a guard page: decoding must not read past it. */
ParameterizedTest(size_t *row, stomp_escape, unescape_cases)
{
    const struct unescape_case *c = &unescape_cases[*row];
    struct guard_buf gb;
    size_t len = (size_t)-1;
    char *s;
    int rc;

    cr_assert(eq(int, guard_buf_init(&gb, c->in_len), 0));
    s = guard_buf_place(&gb, c->in, c->in_len);
    rc = stomp__unescape_inplace(s, c->in_len, c->esc, &len);
    if (c->out == NULL) {
        cr_assert(eq(int, rc, STOMP_E_BAD_ESCAPE), "%s", c->in);
    } else {
        cr_assert(eq(int, rc, STOMP_OK), "%s", c->in);
        cr_assert(eq(mem, MEM(s, len), MEM(c->out, c->out_len)), "%s", c->in);
    }
    guard_buf_cleanup(&gb);
}

Test(stomp_escape, defined_sequences_per_version)
{
    unsigned c;

    for (c = 0; c < 256; c++) {
        int v11 = stomp__unescape_char(STOMP__ESC_V11, (unsigned char)c);
        int v12 = stomp__unescape_char(STOMP__ESC_V12, (unsigned char)c);

        cr_assert(eq(int, stomp__unescape_char(STOMP__ESC_NONE, (unsigned char)c), -1));
        switch (c) {
        case 'n':
            cr_assert(eq(int, v11, '\n'));
            cr_assert(eq(int, v12, '\n'));
            break;
        case 'c':
            cr_assert(eq(int, v11, ':'));
            cr_assert(eq(int, v12, ':'));
            break;
        case '\\':
            cr_assert(eq(int, v11, '\\'));
            cr_assert(eq(int, v12, '\\'));
            break;
        case 'r':
            cr_assert(eq(int, v11, -1));
            cr_assert(eq(int, v12, '\r'));
            break;
        default:
            cr_assert(eq(int, v11, -1), "\\x%02x", c);
            cr_assert(eq(int, v12, -1), "\\x%02x", c);
        }
    }
}

Test(stomp_escape, connect_frames_are_never_escaped)
{
    static const enum stomp_version versions[] = {STOMP_V1_0, STOMP_V1_1, STOMP_V1_2};
    size_t i;

    for (i = 0; i < 3; i++) {
        enum stomp_version v = versions[i];

        cr_assert(eq(int, stomp__escaping_for(v, STOMP_CMD_CONNECT), STOMP__ESC_NONE));
        cr_assert(eq(int, stomp__escaping_for(v, STOMP_CMD_STOMP), STOMP__ESC_NONE));
        cr_assert(eq(int, stomp__escaping_for(v, STOMP_CMD_CONNECTED), STOMP__ESC_NONE));
    }
    cr_assert(eq(int, stomp__escaping_for(STOMP_V1_0, STOMP_CMD_SEND), STOMP__ESC_NONE));
    cr_assert(eq(int, stomp__escaping_for(STOMP_V1_1, STOMP_CMD_SEND), STOMP__ESC_V11));
    cr_assert(eq(int, stomp__escaping_for(STOMP_V1_2, STOMP_CMD_MESSAGE), STOMP__ESC_V12));
    cr_assert(eq(int, stomp__escaping_for(STOMP_V1_2, STOMP_CMD_ERROR), STOMP__ESC_V12));
}

/* ------------------------------------------------------------------------ */
/* Encoding                                                                  */
/* ------------------------------------------------------------------------ */

struct escape_case {
    enum stomp__escaping esc;
    enum stomp__field field;
    const char *in;
    size_t in_len;
    const char *out; /* NULL: STOMP_E_BAD_VALUE */
    size_t out_len;
};

#define ES(esc, f, in, out) {esc, f, in, sizeof(in) - 1, out, sizeof(out) - 1}
#define ES_BAD(esc, f, in) {esc, f, in, sizeof(in) - 1, NULL, 0}
#define NAME STOMP__FIELD_NAME
#define VALUE STOMP__FIELD_VALUE

static const struct escape_case escape_cases[] = {
    ES(STOMP__ESC_NONE, VALUE, "", ""),
    ES(STOMP__ESC_NONE, VALUE, "a:b", "a:b"),
    ES(STOMP__ESC_NONE, VALUE, "a\\b", "a\\b"),
    ES(STOMP__ESC_NONE, VALUE, "起来聊天", "起来聊天"),
    ES_BAD(STOMP__ESC_NONE, VALUE, "a\nb"),
    ES_BAD(STOMP__ESC_NONE, VALUE, "a\rb"),
    ES_BAD(STOMP__ESC_NONE, VALUE, "a\0b"),
    ES_BAD(STOMP__ESC_NONE, NAME, "a:b"),
    ES(STOMP__ESC_NONE, NAME, "a\\b", "a\\b"),
    ES(STOMP__ESC_V11, VALUE, "a:b", "a\\cb"),
    ES(STOMP__ESC_V11, NAME, "a:b", "a\\cb"),
    ES(STOMP__ESC_V11, VALUE, "l1\nl2", "l1\\nl2"),
    ES(STOMP__ESC_V11, VALUE, "C:\\dir", "C\\c\\\\dir"),
    ES(STOMP__ESC_V11, VALUE, "\\n", "\\\\n"),
    ES_BAD(STOMP__ESC_V11, VALUE, "a\rb"),
    ES_BAD(STOMP__ESC_V11, NAME, "\0"),
    ES(STOMP__ESC_V12, VALUE, "a\rb", "a\\rb"),
    ES(STOMP__ESC_V12, NAME, "head\r:\ner", "head\\r\\c\\ner"),
    ES(STOMP__ESC_V12, VALUE, ":\n\r\\", "\\c\\n\\r\\\\"),
    ES_BAD(STOMP__ESC_V12, VALUE, "ok\0"),
};

static size_t escape_index[NROWS(escape_cases)];

ParameterizedTestParameters(stomp_escape, escape_cases)
{
    size_t i;

    for (i = 0; i < NROWS(escape_cases); i++)
        escape_index[i] = i;
    return cr_make_param_array(size_t, escape_index, NROWS(escape_cases));
}

ParameterizedTest(size_t *row, stomp_escape, escape_cases)
{
    const struct escape_case *c = &escape_cases[*row];
    struct guard_buf gb;
    size_t len = (size_t)-1;
    int rc;

    rc = stomp__escape_measure(c->in, c->in_len, c->esc, c->field, &len);
    if (c->out == NULL) {
        cr_assert(eq(int, rc, STOMP_E_BAD_VALUE), "%s", c->in);
        return;
    }
    cr_assert(eq(int, rc, STOMP_OK), "%s", c->in);
    cr_assert(eq(sz, len, c->out_len), "%s", c->in);

    /* Exactly the measured room, against a guard page. */
    cr_assert(eq(int, guard_buf_init(&gb, len), 0));
    cr_assert(eq(sz, stomp__escape_copy(gb.guard - len, c->in, c->in_len, c->esc), len));
    cr_assert(eq(mem, MEM(gb.guard - len, len), MEM(c->out, c->out_len)), "%s", c->in);

    /* And back. */
    {
        size_t back;

        cr_assert(eq(int, stomp__unescape_inplace(gb.guard - len, len, c->esc, &back),
                     STOMP_OK));
        cr_assert(eq(mem, MEM(gb.guard - len, back), MEM(c->in, c->in_len)));
    }
    guard_buf_cleanup(&gb);
}

Test(stomp_escape, escape_then_unescape_is_identity_for_every_byte)
{
    static const enum stomp__escaping modes[] = {STOMP__ESC_V11, STOMP__ESC_V12};
    char in[3 * 256], out[6 * 256];
    size_t n = 0, i, len, back;
    unsigned c;

    /* Every byte the mode can carry, each between two letters. */
    for (i = 0; i < 2; i++) {
        n = 0;
        for (c = 1; c < 256; c++) {
            if (c == '\r' && modes[i] == STOMP__ESC_V11)
                continue;
            in[n++] = 'x';
            in[n++] = (char)c;
            in[n++] = 'y';
        }
        cr_assert(eq(int, stomp__escape_measure(in, n, modes[i], NAME, &len), STOMP_OK));
        cr_assert(eq(sz, stomp__escape_copy(out, in, n, modes[i]), len));
        cr_assert(eq(int, stomp__unescape_inplace(out, len, modes[i], &back), STOMP_OK));
        cr_assert(eq(mem, MEM(out, back), MEM(in, n)));
    }
}

/* ------------------------------------------------------------------------ */
/* Both ways through the public API                                          */
/* ------------------------------------------------------------------------ */

/* Can a header holding byte c (in its name or value) be written in version
 * v for a cmd frame? This is the table at the top of escape.c. */
static int
representable(enum stomp_version v, enum stomp_command cmd, int in_name,
              unsigned char c)
{
    int raw = v == STOMP_V1_0 || cmd == STOMP_CMD_CONNECT ||
              cmd == STOMP_CMD_STOMP || cmd == STOMP_CMD_CONNECTED;

    switch (c) {
    case '\0':
        return 0;
    case '\n':
        return !raw;
    case '\r':
        return !raw && v == STOMP_V1_2;
    case ':':
        return !raw || !in_name;
    default:
        return 1;
    }
}

Test(stomp_escape, every_byte_through_writer_and_parser)
{
    static const enum stomp_version versions[] = {STOMP_V1_0, STOMP_V1_1, STOMP_V1_2};
    static const enum stomp_command cmds[] = {STOMP_CMD_SEND, STOMP_CMD_CONNECT,
                                              STOMP_CMD_CONNECTED};
    size_t vi, ci;
    unsigned c;
    int in_name;

    for (vi = 0; vi < 3; vi++)
    for (ci = 0; ci < 3; ci++)
    for (in_name = 0; in_name < 2; in_name++)
    for (c = 0; c < 256; c++) {
        enum stomp_version v = versions[vi];
        char field[3] = {'k', (char)c, 'z'};
        struct stomp_str name = in_name ? (struct stomp_str){field, 3} : STOMP_STR("k");
        struct stomp_str value = in_name ? STOMP_STR("v") : (struct stomp_str){field, 3};
        char buf[64];
        struct stomp_writer w;
        struct stomp_header hdrs[2];
        struct stomp_frame f = {.headers = hdrs};
        struct stomp_parser p;
        size_t n;
        int rc;

        stomp_writer_init(&w, buf, sizeof(buf), v);
        stomp_writer_command(&w, cmds[ci]);
        stomp_writer_header(&w, name, value);
        rc = stomp_writer_finish(&w, &n);
        if (!representable(v, cmds[ci], in_name, (unsigned char)c)) {
            cr_assert(eq(int, rc, STOMP_E_BAD_VALUE), "v%d cmd %zu byte %u", v, ci, c);
            continue;
        }
        cr_assert(eq(int, rc, STOMP_OK), "v%d cmd %zu byte %u", v, ci, c);

        stomp_parser_init(&p, NULL);
        stomp_parser_set_version(&p, v);
        cr_assert(eq(sz, (size_t)stomp_parse(&p, buf, n, &f), n),
                  "v%d cmd %zu byte %u", v, ci, c);
        cr_assert(eq(sz, f.nheaders, 1));
        cr_assert(eq(mem, MEM(hdrs[0].name.ptr, hdrs[0].name.len), MEM(name.ptr, name.len)),
                  "v%d cmd %zu byte %u", v, ci, c);
        cr_assert(eq(mem, MEM(hdrs[0].value.ptr, hdrs[0].value.len),
                     MEM(value.ptr, value.len)), "v%d cmd %zu byte %u", v, ci, c);
    }
}
