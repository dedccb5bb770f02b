/* test_json_scan.c - json_scan.c, the allocation-free reader of the chat
 * hot path: what it accepts (with the values it reads) and everything it
 * must leave to jansson. fuzz_chat_json checks it against jansson on
 * arbitrary input; this table pins the edges. */
#include "fmacros.h"

#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>

#include "core/json_scan.h"

enum { F_ID, F_TO, F_TEXT, F_MAX };

struct scan_case {
    char     name[48];
    char     in[160];
    int      rc;          /* 0 accepted, -1 left to the full decoder */
    char     id[24];      /* accepted: expected msgID ("" = absent) */
    uint64_t to;          /* accepted: expected reciverId (0 = absent) */
    char     text[32];    /* accepted: expected content ("-" = absent) */
};

ParameterizedTestParameters(json_scan, cases)
{
    static struct scan_case cases[] = {
        { "plain", "{\"msgID\":\"abcdefgh\",\"reciverId\":2,\"content\":\"hi\"}",
          0, "abcdefgh", 2, "hi" },
        { "any order, whitespace", " \r\n\t{ \"content\" : \"hi\" ,\"reciverId\":12 , "
          "\"msgID\":\"x\" } \n", 0, "x", 12, "hi" },
        { "empty object", "{}", 0, "", 0, "-" },
        { "subset", "{\"msgID\":\"abc\"}", 0, "abc", 0, "-" },
        { "UTF-8 content", "{\"content\":\"起来聊天 é\"}", 0, "", 0, "起来聊天 é" },
        { "4-byte UTF-8", "{\"content\":\"\xF0\x9F\x98\x80\"}", 0, "", 0, "\xF0\x9F\x98\x80" },
        { "18 digits", "{\"reciverId\":999999999999999999}", 0, "", 999999999999999999ULL, "-" },
        { "empty string", "{\"content\":\"\"}", 0, "", 0, "" },
        /* left to jansson */
        { "19 digits", "{\"reciverId\":1000000000000000000}", -1, "", 0, "" },
        { "zero", "{\"reciverId\":0}", -1, "", 0, "" },
        { "leading zero", "{\"reciverId\":02}", -1, "", 0, "" },
        { "negative", "{\"reciverId\":-2}", -1, "", 0, "" },
        { "fraction", "{\"reciverId\":2.0}", -1, "", 0, "" },
        { "exponent", "{\"reciverId\":2e3}", -1, "", 0, "" },
        { "number as string", "{\"reciverId\":\"2\"}", -1, "", 0, "" },
        { "string as number", "{\"content\":5}", -1, "", 0, "" },
        { "null", "{\"content\":null}", -1, "", 0, "" },
        { "escape", "{\"content\":\"a\\nb\"}", -1, "", 0, "" },
        { "escaped key", "{\"msg\\u0049D\":\"abcdefgh\"}", -1, "", 0, "" },
        { "raw control char", "{\"content\":\"a\tb\"}", -1, "", 0, "" },
        { "invalid UTF-8", "{\"content\":\"a\xFF\"}", -1, "", 0, "" },
        { "overlong UTF-8", "{\"content\":\"\xC0\xAF\"}", -1, "", 0, "" },
        { "surrogate in UTF-8", "{\"content\":\"\xED\xA0\x80\"}", -1, "", 0, "" },
        { "above U+10FFFF", "{\"content\":\"\xF4\x90\x80\x80\"}", -1, "", 0, "" },
        { "truncated UTF-8", "{\"content\":\"\xE8\xB5\"}", -1, "", 0, "" },
        { "unknown member", "{\"msgID\":\"abc\",\"senderId\":1}", -1, "", 0, "" },
        { "duplicate", "{\"msgID\":\"abc\",\"msgID\":\"def\"}", -1, "", 0, "" },
        { "trailing data", "{\"msgID\":\"abc\"} x", -1, "", 0, "" },
        { "trailing comma", "{\"msgID\":\"abc\",}", -1, "", 0, "" },
        { "missing colon", "{\"msgID\" \"abc\"}", -1, "", 0, "" },
        { "unterminated", "{\"msgID\":\"abc", -1, "", 0, "" },
        { "not an object", "[\"abc\"]", -1, "", 0, "" },
        { "nested", "{\"content\":{\"a\":1}}", -1, "", 0, "" },
        { "empty input", "", -1, "", 0, "" },
    };
    return cr_make_param_array(struct scan_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct scan_case *c, json_scan, cases)
{
    struct cg_jscan_field f[F_MAX] = {
        [F_ID]   = { .name = "msgID",     .type = CG_JSCAN_STRING },
        [F_TO]   = { .name = "reciverId", .type = CG_JSCAN_UINT },
        [F_TEXT] = { .name = "content",   .type = CG_JSCAN_STRING },
    };
    int rc = cg_jscan_object(c->in, strlen(c->in), f, F_MAX);

    cr_assert(eq(int, rc, c->rc), "%s", c->name);
    if (rc < 0)
        return;
    cr_assert(eq(int, f[F_ID].seen, c->id[0] != '\0'), "%s", c->name);
    if (f[F_ID].seen)
        cr_assert(f[F_ID].len == strlen(c->id) && memcmp(f[F_ID].str, c->id, f[F_ID].len) == 0,
                  "%s", c->name);
    cr_assert(eq(int, f[F_TO].seen, c->to != 0), "%s", c->name);
    if (f[F_TO].seen)
        cr_assert(eq(u64, f[F_TO].num, c->to), "%s", c->name);
    cr_assert(eq(int, f[F_TEXT].seen, strcmp(c->text, "-") != 0), "%s", c->name);
    if (f[F_TEXT].seen)
        cr_assert(f[F_TEXT].len == strlen(c->text) &&
                  memcmp(f[F_TEXT].str, c->text, f[F_TEXT].len) == 0, "%s", c->name);
}

Test(json_scan, strings_point_into_the_input_and_may_hold_no_nul)
{
    static const char in[] = "{\"content\":\"abc\"}";
    struct cg_jscan_field f = { .name = "content", .type = CG_JSCAN_STRING };

    cr_assert(eq(int, cg_jscan_object(in, sizeof in - 1, &f, 1), 0));
    cr_assert(f.str == in + 12);
    /* A NUL byte inside the quotes is a control character. */
    cr_assert(eq(int, cg_jscan_object("{\"content\":\"a\0b\"}", 17, &f, 1), -1));
    cr_assert(eq(int, cg_jscan_object(NULL, 0, &f, 1), -1));
}
