/* test_sockjs_frame.c - sockjs_frame.c: SockJS URLs, the JSON quoting of
 * outgoing frames, the decoder of incoming payloads, jsonp checks.
 *
 * Inputs sit right before a guard page (tests/support/guard_buf.h), and the
 * decoder's output buffer is exactly as long as its input, also against a
 * guard page: a read past the input or a write past len faults at once.
 * Every code point is quoted and decoded back (a sweep of U+0000 to
 * U+10FFFF), and every proper prefix of a valid payload must be refused. */
#include "fmacros.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>

#include "guard_buf.h"
#include "transport/sockjs_frame.h"

#define NROWS(a) (sizeof(a) / sizeof *(a))
#define S(lit) lit, sizeof(lit) - 1

/* ------------------------------------------------------------------------ */
/* helpers                                                                   */
/* ------------------------------------------------------------------------ */

/* Quote in[0..len) (placed against a guard page) into a fresh buffer of
 * exactly the measured size (also against a guard page); returns the
 * literal as a NUL-terminated copy in out (cap bytes). */
static size_t
quote_guarded(const char *in, size_t len, unsigned flags, char *out, size_t cap)
{
    struct guard_buf gin, gout;
    const char *src;
    char *dst;
    size_t n, m;

    cr_assert(eq(int, guard_buf_init(&gin, len ? len : 1), 0));
    src = guard_buf_place(&gin, in, len);
    n = cg_sockjs_quote(src, len, flags, NULL);
    cr_assert(eq(int, guard_buf_init(&gout, n), 0));
    dst = gout.guard - n;
    m = cg_sockjs_quote(src, len, flags, dst);
    cr_assert(eq(sz, m, n), "measure and write agree");
    cr_assert(n < cap);
    memcpy(out, dst, n);
    out[n] = '\0';
    guard_buf_cleanup(&gout);
    guard_buf_cleanup(&gin);
    return n;
}

struct msgs {
    size_t count;
    size_t lens[16];
    char   text[16][64];
};

static void
on_msg(const char *msg, size_t len, void *data)
{
    struct msgs *m = data;

    if (m->count < 16) {
        m->lens[m->count] = len;
        memcpy(m->text[m->count], msg, len < 63 ? len : 63);
        m->text[m->count][len < 63 ? len : 63] = '\0';
    }
    m->count++;
}

/* Decode in[0..len) against guard pages; the output buffer holds exactly
 * len bytes. Copies the output to out (cap bytes) and returns rc. */
static int
decode_guarded(const char *in, size_t len, unsigned flags, char *out, size_t cap,
               size_t *out_len, struct msgs *m)
{
    struct guard_buf gin, gout;
    const char *src;
    char *dst;
    int rc;

    cr_assert(eq(int, guard_buf_init(&gin, len ? len : 1), 0));
    cr_assert(eq(int, guard_buf_init(&gout, len ? len : 1), 0));
    src = guard_buf_place(&gin, in, len);
    dst = gout.guard - len;
    *out_len = (size_t)-1;
    rc = cg_sockjs_decode(src, len, flags, dst, out_len, m ? on_msg : NULL, m);
    if (rc == 0) {
        cr_assert(le(sz, *out_len, len), "decoding never grows");
        cr_assert(lt(sz, *out_len, cap));
        memcpy(out, dst, *out_len);
    }
    guard_buf_cleanup(&gout);
    guard_buf_cleanup(&gin);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* quoting                                                                   */
/* ------------------------------------------------------------------------ */

struct quote_case {
    const char *in;
    size_t      in_len;
    unsigned    flags;
    const char *out;
};

static const struct quote_case quote_cases[] = {
    { S(""), 0, "\"\"" },
    { S("abc"), 0, "\"abc\"" },
    { S("say \"hi\" \\ /"), 0, "\"say \\\"hi\\\" \\\\ /\"" },
    { S("\b\f\n\r\t"), 0, "\"\\b\\f\\n\\r\\t\"" },
    { S("\x00\x01\x1f"), 0, "\"\\u0000\\u0001\\u001f\"" },
    { S("CONNECTED\nversion:1.2\n\n\x00"), 0, "\"CONNECTED\\nversion:1.2\\n\\n\\u0000\"" },
    { S(" ~\x7f"), 0, "\" ~\x7f\"" },                        /* DEL stays */
    { S("\xc3\xa9\xe4\xb8\xad"), 0, "\"\xc3\xa9\xe4\xb8\xad\"" },  /* é 中 */
    /* U+200B | U+200C..U+200F | U+2010 */
    { S("\xe2\x80\x8b"), 0, "\"\xe2\x80\x8b\"" },
    { S("\xe2\x80\x8c\xe2\x80\x8f"), 0, "\"\\u200c\\u200f\"" },
    { S("\xe2\x80\x90"), 0, "\"\xe2\x80\x90\"" },
    /* U+2027 | U+2028 U+2029 .. U+202F | U+2030 */
    { S("\xe2\x80\xa7"), 0, "\"\xe2\x80\xa7\"" },
    { S("\xe2\x80\xa8\xe2\x80\xa9\xe2\x80\xaf"), 0, "\"\\u2028\\u2029\\u202f\"" },
    { S("\xe2\x80\xb0"), 0, "\"\xe2\x80\xb0\"" },
    /* U+205F | U+2060..U+206F | U+2070 */
    { S("\xe2\x81\x9f"), 0, "\"\xe2\x81\x9f\"" },
    { S("\xe2\x81\xa0\xe2\x81\xaf"), 0, "\"\\u2060\\u206f\"" },
    { S("\xe2\x81\xb0"), 0, "\"\xe2\x81\xb0\"" },
    /* U+FFEF | U+FFF0 U+FFFD U+FFFF */
    { S("\xef\xbf\xaf"), 0, "\"\xef\xbf\xaf\"" },
    { S("\xef\xbf\xb0\xef\xbf\xbd\xef\xbf\xbf"), 0, "\"\\ufff0\\ufffd\\uffff\"" },
    /* after the surrogates: U+E000 stays */
    { S("\xee\x80\x80"), 0, "\"\xee\x80\x80\"" },
    /* above U+FFFF: an escaped surrogate pair */
    { S("\xf0\x9f\x98\x80"), 0, "\"\\ud83d\\ude00\"" },
    { S("\xf0\x90\x80\x80"), 0, "\"\\ud800\\udc00\"" },
    { S("\xf4\x8f\xbf\xbf"), 0, "\"\\udbff\\udfff\"" },
    { S("a\xf0\x9f\x98\x80" "b\xe2\x80\xa8" "c"), 0, "\"a\\ud83d\\ude00b\\u2028c\"" },
    /* encoded lone surrogates (CESU-8 / WTF-8): their \u unit */
    { S("\xed\xa0\x80"), 0, "\"\\ud800\"" },
    { S("\xed\xbf\xbf"), 0, "\"\\udfff\"" },
    { S("\xed\xa0\xbd\xed\xb8\x80"), 0, "\"\\ud83d\\ude00\"" },
    /* ill-formed bytes: U+FFFD each */
    { S("\x80"), 0, "\"\\ufffd\"" },
    { S("\xc0\x80"), 0, "\"\\ufffd\\ufffd\"" },            /* overlong */
    { S("\xe0\x80\x80"), 0, "\"\\ufffd\\ufffd\\ufffd\"" },  /* overlong */
    { S("x\xe4\xb8"), 0, "\"x\\ufffd\\ufffd\"" },          /* truncated */
    { S("\xed\xa0"), 0, "\"\\ufffd\\ufffd\"" },            /* truncated surrogate */
    { S("\xf5\x80"), 0, "\"\\ufffd\\ufffd\"" },
    { S("\xf4\x90\x80\x80"), 0, "\"\\ufffd\\ufffd\\ufffd\\ufffd\"" },  /* > U+10FFFF */
    { S("\xff"), 0, "\"\\ufffd\"" },
    /* htmlfile: nothing in the string may end the <script> */
    { S("</script><b>&amp;"), CG_SJ_QUOTE_HTML,
      "\"\\u003c/script\\u003e\\u003cb\\u003e\\u0026amp;\"" },
    { S("</script>"), 0, "\"</script>\"" },
};

static size_t quote_index[NROWS(quote_cases)];

ParameterizedTestParameters(sockjs_quote, cases)
{
    for (size_t i = 0; i < NROWS(quote_cases); i++)
        quote_index[i] = i;
    return cr_make_param_array(size_t, quote_index, NROWS(quote_cases));
}

ParameterizedTest(size_t *row, sockjs_quote, cases)
{
    const struct quote_case *c = &quote_cases[*row];
    char out[256];

    quote_guarded(c->in, c->in_len, c->flags, out, sizeof out);
    cr_assert(eq(str, out, (char *)c->out), "row %zu", *row);
}

/* Which code points the server escapes (sockjs-protocol-0.3.3.py
 * escapable_by_server plus JSON's own and the UTF-16 surrogates). */
static int
must_escape(uint32_t cp)
{
    return cp < 0x20 || cp == '"' || cp == '\\' ||
           (cp >= 0x200C && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202F) ||
           (cp >= 0x2060 && cp <= 0x206F) || (cp >= 0xFFF0 && cp <= 0xFFFF) ||
           cp >= 0x10000;
}

static size_t
utf8_encode(uint32_t cp, char *o)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

Test(sockjs_quote, every_code_point_escaped_as_required_and_decodes_back)
{
    char in[8], lit[32], arr[40], back[40];
    size_t n, q, outlen;

    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF)
            continue;                 /* not characters; covered above */
        n = utf8_encode(cp, in);
        q = cg_sockjs_quote(in, n, 0, lit);
        cr_assert(eq(sz, q, cg_sockjs_quote(in, n, 0, NULL)));
        if (must_escape(cp))
            cr_assert(lit[1] == '\\' && q >= 4, "U+%04X must be escaped", cp);
        else
            cr_assert(eq(sz, q, n + 2), "U+%04X must go as is", cp);
        /* ["<literal>"] decodes to the character again */
        arr[0] = '[';
        memcpy(arr + 1, lit, q);
        arr[q + 1] = ']';
        cr_assert(eq(int, cg_sockjs_decode(arr, q + 2, 0, back, &outlen, NULL, NULL), 0),
                  "U+%04X", cp);
        cr_assert(eq(sz, outlen, n), "U+%04X", cp);
        cr_assert(eq(int, memcmp(back, in, n), 0), "U+%04X", cp);
    }
}

Test(sockjs_quote, output_is_ascii_for_the_escaped_ranges_and_valid_utf8_always)
{
    /* Every byte value alone, and in pairs: the literal is well-formed
     * UTF-8 and decodes without error. */
    char in[2], lit[16], arr[20], back[20];
    size_t q, outlen;

    for (int a = 0; a < 256; a++) {
        for (int b = -1; b < 256; b++) {
            size_t n = b < 0 ? 1 : 2;

            in[0] = (char)a;
            in[1] = (char)b;
            q = cg_sockjs_quote(in, n, 0, lit);
            arr[0] = '[';
            memcpy(arr + 1, lit, q);
            arr[q + 1] = ']';
            cr_assert(eq(int, cg_sockjs_decode(arr, q + 2, 0, back, &outlen, NULL, NULL), 0),
                      "bytes %02x %02x", a, b);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* decoding                                                                  */
/* ------------------------------------------------------------------------ */

struct decode_case {
    const char *in;
    size_t      in_len;
    unsigned    flags;
    int         rc;
    const char *out;           /* expected bytes when rc == 0 */
    size_t      out_len;
    size_t      count;         /* messages */
};

#define OK(in, flags, out, n) { S(in), flags, 0, out, sizeof(out) - 1, n }
#define BAD(in, flags)        { S(in), flags, CG_SJ_E_BROKEN, NULL, 0, 0 }

static const struct decode_case decode_cases[] = {
    OK("[]", 0, "", 0),
    OK(" [ ] ", 0, "", 0),
    OK("[\"a\"]", 0, "a", 1),
    OK("[\"a\",\"b\"]", 0, "ab", 2),
    OK(" \t\r\n[ \"a\" ,\n\"\" , \"c\" ]\r\n ", 0, "ac", 3),
    OK("[\"\"]", 0, "", 1),
    OK("\"a\"", CG_SJ_DECODE_SINGLE, "a", 1),
    OK(" \"a\\nb\" ", CG_SJ_DECODE_SINGLE, "a\nb", 1),
    OK("[\"a\",\"b\"]", CG_SJ_DECODE_SINGLE, "ab", 2),
    OK("[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]", 0, "\"\\/\b\f\n\r\t", 1),
    OK("[\"\\u0000\"]", 0, "\0", 1),
    OK("[\"SEND\\ndestination:/x\\n\\nhi\\u0000\"]", 0, "SEND\ndestination:/x\n\nhi\0", 1),
    OK("[\"\\u00e9\\u4E2D\"]", 0, "\xc3\xa9\xe4\xb8\xad", 1),
    OK("[\"\\ud83d\\ude00\"]", 0, "\xf0\x9f\x98\x80", 1),
    OK("[\"\\uD83D\\uDE00\"]", 0, "\xf0\x9f\x98\x80", 1),
    OK("[\"\\udbff\\udfff\"]", 0, "\xf4\x8f\xbf\xbf", 1),
    OK("[\"\\ud83d\"]", 0, "\xef\xbf\xbd", 1),           /* lone high */
    OK("[\"\\ude00x\"]", 0, "\xef\xbf\xbdx", 1),         /* lone low */
    OK("[\"\\ud83d\\u0041\"]", 0, "\xef\xbf\xbd" "A", 1), /* high, not low */
    OK("[\"\\ud83d\\ud83d\\ude00\"]", 0, "\xef\xbf\xbd\xf0\x9f\x98\x80", 1),
    OK("[\"\\u2028\\u2029\\ufff0\"]", 0, "\xe2\x80\xa8\xe2\x80\xa9\xef\xbf\xb0", 1),
    OK("[\"\xe4\xb8\xad \xf0\x9f\x98\x80 \xe2\x80\xa8\"]", 0,
       "\xe4\xb8\xad \xf0\x9f\x98\x80 \xe2\x80\xa8", 1),       /* raw UTF-8 */
    OK("[\"\x7f\"]", 0, "\x7f", 1),
    /* broken: structure */
    BAD(" ", 0),
    BAD("[", 0),
    BAD("]", 0),
    BAD("[\"a\"", 0),
    BAD("[\"a", 0),
    BAD("[\"a\",]", 0),
    BAD("[,\"a\"]", 0),
    BAD("[\"a\" \"b\"]", 0),
    BAD("[\"a\"]]", 0),
    BAD("[\"a\"]x", 0),
    BAD("[\"a\"][]", 0),
    BAD("\"a\"", 0),                                   /* single needs the flag */
    BAD("\"a\" \"b\"", CG_SJ_DECODE_SINGLE),
    BAD("[1]", 0),
    BAD("[null]", 0),
    BAD("[[\"a\"]]", 0),
    BAD("{\"a\":1}", 0),
    BAD("x", 0),
    /* broken: strings */
    BAD("[\"\\x\"]", 0),
    BAD("[\"\\u12\"]", 0),
    BAD("[\"\\u12G4\"]", 0),
    BAD("[\"\\", 0),
    BAD("[\"\\u\"]", 0),
    BAD("[\"a\nb\"]", 0),                               /* raw control */
    BAD("[\"\x01\"]", 0),
    BAD("[\"\x80\"]", 0),                               /* not UTF-8 */
    BAD("[\"\xc0\x80\"]", 0),                           /* overlong NUL */
    BAD("[\"\xed\xa0\x80\"]", 0),                       /* surrogate bytes */
    BAD("[\"\xf4\x90\x80\x80\"]", 0),                   /* > U+10FFFF */
    BAD("[\"\xe4\xb8\"]", 0),                           /* truncated */
    BAD("[\"\xff\"]", 0),
};

static size_t decode_index[NROWS(decode_cases)];

ParameterizedTestParameters(sockjs_decode, cases)
{
    for (size_t i = 0; i < NROWS(decode_cases); i++)
        decode_index[i] = i;
    return cr_make_param_array(size_t, decode_index, NROWS(decode_cases));
}

ParameterizedTest(size_t *row, sockjs_decode, cases)
{
    const struct decode_case *c = &decode_cases[*row];
    struct msgs m = { 0 };
    char out[256];
    size_t n;
    int rc = decode_guarded(c->in, c->in_len, c->flags, out, sizeof out, &n, &m);

    cr_assert(eq(int, rc, c->rc), "row %zu: %s", *row, c->in);
    if (rc != 0)
        return;
    cr_assert(eq(sz, n, c->out_len), "row %zu", *row);
    cr_assert(eq(int, memcmp(out, c->out, n), 0), "row %zu", *row);
    cr_assert(eq(sz, m.count, c->count), "row %zu: messages", *row);
}

/* Cut a valid payload anywhere before its closing bracket: never valid,
 * never a read past the cut. */
Test(sockjs_decode, every_proper_prefix_of_a_payload_is_refused)
{
    for (size_t r = 0; r < NROWS(decode_cases); r++) {
        const struct decode_case *c = &decode_cases[r];
        const char *close;
        size_t end, n;
        char out[256];

        if (c->rc != 0)
            continue;
        /* the last non-blank byte: ']' or the closing '"' */
        end = c->in_len;
        while (end > 0 && strchr(" \t\r\n", c->in[end - 1]))
            end--;
        close = c->in + end - 1;
        cr_assert(strchr("]\"", close[0]) != NULL, "row %zu ends a payload", r);
        for (size_t cut = 0; cut < end; cut++) {
            int rc = decode_guarded(c->in, cut, c->flags, out, sizeof out, &n, NULL);

            cr_assert(rc == (cut == 0 ? CG_SJ_E_EMPTY : CG_SJ_E_BROKEN),
                      "row %zu cut at %zu: rc %d", r, cut, rc);
        }
    }
}

Test(sockjs_decode, empty_payload_is_payload_expected)
{
    size_t n = 7;

    cr_assert(eq(int, cg_sockjs_decode("", 0, 0, NULL, &n, NULL, NULL), CG_SJ_E_EMPTY));
    cr_assert(eq(sz, n, 0));
    cr_assert(eq(str, (char *)cg_sockjs_decode_strerror(CG_SJ_E_EMPTY), "Payload expected."));
    cr_assert(eq(str, (char *)cg_sockjs_decode_strerror(CG_SJ_E_BROKEN),
                 "Broken JSON encoding."));
}

Test(sockjs_decode, callback_sees_each_message_in_order)
{
    static const char in[] = "[\"ab\",\"\",\"c\\u0000d\"]";
    struct msgs m = { 0 };
    char out[64];
    size_t n;

    cr_assert(eq(int, decode_guarded(in, sizeof in - 1, 0, out, sizeof out, &n, &m), 0));
    cr_assert(eq(sz, m.count, 3));
    cr_assert(eq(sz, m.lens[0], 2));
    cr_assert(eq(str, m.text[0], "ab"));
    cr_assert(eq(sz, m.lens[1], 0));
    cr_assert(eq(sz, m.lens[2], 3));
    cr_assert(eq(int, memcmp(m.text[2], "c\0d", 3), 0));
    cr_assert(eq(sz, n, 5));
}

Test(sockjs_decode, decodes_in_place)
{
    /* raw bytes after escapes move backwards over themselves */
    char buf[] = "[\"\\ud83d\\ude00 \\u4e2d\",\"x\\n\"]";
    size_t n;

    cr_assert(eq(int, cg_sockjs_decode(buf, sizeof buf - 1, 0, buf, &n, NULL, NULL), 0));
    cr_assert(eq(sz, n, 10));
    cr_assert(eq(int, memcmp(buf, "\xf0\x9f\x98\x80 \xe4\xb8\xadx\n", 10), 0));
}

Test(sockjs_decode, decodes_in_place_with_raw_utf8_after_an_escape)
{
    char buf[] = "[\"\\n\xf0\x9f\x98\x80" "abcdef\"]";
    size_t n;

    cr_assert(eq(int, cg_sockjs_decode(buf, sizeof buf - 1, 0, buf, &n, NULL, NULL), 0));
    cr_assert(eq(sz, n, 11));
    cr_assert(eq(int, memcmp(buf, "\n\xf0\x9f\x98\x80" "abcdef", 11), 0));
}

Test(sockjs_decode, stomp_frame_split_across_messages_concatenates)
{
    /* stompjs cuts a frame at 16 KiB into several SockJS messages; the
     * session sees one byte stream. */
    static const char in[] = "[\"SEND\\ndestination:/a\\n\\nhel\",\"lo\\u0000\"]";
    char out[64];
    size_t n;

    cr_assert(eq(int, decode_guarded(in, sizeof in - 1, 0, out, sizeof out, &n, NULL), 0));
    cr_assert(eq(sz, n, 27));
    cr_assert(eq(int, memcmp(out, "SEND\ndestination:/a\n\nhello\0", 27), 0));
}

/* ------------------------------------------------------------------------ */
/* URLs                                                                      */
/* ------------------------------------------------------------------------ */

struct path_case {
    const char          *path;
    enum cg_sockjs_route route;
    const char          *server, *session;
};

static const struct path_case path_cases[] = {
    { "",                    CG_SJ_GREETING, NULL, NULL },
    { "/",                   CG_SJ_GREETING, NULL, NULL },
    { "/info",               CG_SJ_INFO, NULL, NULL },
    { "/websocket",          CG_SJ_RAW_WEBSOCKET, NULL, NULL },
    { "/000/abcd1234/websocket",     CG_SJ_WEBSOCKET,     "000", "abcd1234" },
    { "/000/abcd1234/xhr",           CG_SJ_XHR,           "000", "abcd1234" },
    { "/000/abcd1234/xhr_send",      CG_SJ_XHR_SEND,      "000", "abcd1234" },
    { "/000/abcd1234/xhr_streaming", CG_SJ_XHR_STREAMING, "000", "abcd1234" },
    { "/000/abcd1234/eventsource",   CG_SJ_EVENTSOURCE,   "000", "abcd1234" },
    { "/000/abcd1234/htmlfile",      CG_SJ_HTMLFILE,      "000", "abcd1234" },
    { "/000/abcd1234/jsonp",         CG_SJ_JSONP,         "000", "abcd1234" },
    { "/000/abcd1234/jsonp_send",    CG_SJ_JSONP_SEND,    "000", "abcd1234" },
    { "/a/a/xhr",            CG_SJ_XHR, "a", "a" },
    { "/_/_/xhr",            CG_SJ_XHR, "_", "_" },
    { "/abcdefgh_i-j /abcdefg_i-j /xhr", CG_SJ_XHR, "abcdefgh_i-j ", "abcdefg_i-j " },
    /* spec: not empty, no dots, exactly three parts */
    { "//",                  CG_SJ_NOT_FOUND, NULL, NULL },
    { "///",                 CG_SJ_NOT_FOUND, NULL, NULL },
    { "/a",                  CG_SJ_NOT_FOUND, NULL, NULL },
    { "/a/",                 CG_SJ_NOT_FOUND, NULL, NULL },
    { "/a.html",             CG_SJ_NOT_FOUND, NULL, NULL },
    { "/a/a",                CG_SJ_NOT_FOUND, NULL, NULL },
    { "/a/a/",               CG_SJ_NOT_FOUND, NULL, NULL },
    { "///xhr",              CG_SJ_NOT_FOUND, NULL, NULL },
    { "//a/xhr",             CG_SJ_NOT_FOUND, NULL, NULL },
    { "/a//xhr",             CG_SJ_NOT_FOUND, NULL, NULL },
    { "/a./a/xhr",           CG_SJ_NOT_FOUND, NULL, NULL },
    { "/a/a./xhr",           CG_SJ_NOT_FOUND, NULL, NULL },
    { "/./././xhr",          CG_SJ_NOT_FOUND, NULL, NULL },
    { "/a/a/xhr/",           CG_SJ_NOT_FOUND, NULL, NULL },
    { "/a/a/xhr/x",          CG_SJ_NOT_FOUND, NULL, NULL },
    { "/a/b/c/xhr",          CG_SJ_NOT_FOUND, NULL, NULL },
    { "/a/a/XHR",            CG_SJ_NOT_FOUND, NULL, NULL },
    { "/a/a/xhr_sendx",      CG_SJ_NOT_FOUND, NULL, NULL },
    { "/info/",              CG_SJ_NOT_FOUND, NULL, NULL },
    { "/infox",              CG_SJ_NOT_FOUND, NULL, NULL },
    { "/iframe.html",        CG_SJ_NOT_FOUND, NULL, NULL },
    { "/websocket/",         CG_SJ_NOT_FOUND, NULL, NULL },
    { "info",                CG_SJ_NOT_FOUND, NULL, NULL },
};

static size_t path_index[NROWS(path_cases)];

ParameterizedTestParameters(sockjs_path, cases)
{
    for (size_t i = 0; i < NROWS(path_cases); i++)
        path_index[i] = i;
    return cr_make_param_array(size_t, path_index, NROWS(path_cases));
}

ParameterizedTest(size_t *row, sockjs_path, cases)
{
    const struct path_case *c = &path_cases[*row];
    struct cg_sockjs_path sp;
    struct guard_buf gb;
    size_t len = strlen(c->path);
    const char *p;

    cr_assert(eq(int, guard_buf_init(&gb, len ? len : 1), 0));
    p = guard_buf_place(&gb, c->path, len);
    cg_sockjs_parse_path(p, len, &sp);
    cr_assert(eq(int, (int)sp.route, (int)c->route), "%s", c->path);
    if (c->server != NULL) {
        cr_assert(eq(sz, sp.server.len, strlen(c->server)));
        cr_assert(eq(int, memcmp(sp.server.ptr, c->server, sp.server.len), 0));
        cr_assert(eq(sz, sp.session.len, strlen(c->session)));
        cr_assert(eq(int, memcmp(sp.session.ptr, c->session, sp.session.len), 0));
    }
    guard_buf_cleanup(&gb);
}

Test(sockjs_path, session_id_length_limit_is_inclusive)
{
    char path[CG_SOCKJS_ID_MAX + 32];
    struct cg_sockjs_path sp;
    int n;

    memset(path, 0, sizeof path);
    n = snprintf(path, sizeof path, "/000/%0*d/xhr", CG_SOCKJS_ID_MAX, 7);
    cg_sockjs_parse_path(path, (size_t)n, &sp);
    cr_assert(eq(int, (int)sp.route, (int)CG_SJ_XHR), "at the limit");
    cr_assert(eq(sz, sp.session.len, CG_SOCKJS_ID_MAX));
    n = snprintf(path, sizeof path, "/000/%0*d/xhr", CG_SOCKJS_ID_MAX + 1, 7);
    cg_sockjs_parse_path(path, (size_t)n, &sp);
    cr_assert(eq(int, (int)sp.route, (int)CG_SJ_NOT_FOUND), "one past the limit");
}

/* ------------------------------------------------------------------------ */
/* jsonp                                                                     */
/* ------------------------------------------------------------------------ */

Test(sockjs_jsonp, callback_names_are_checked_strictly)
{
    char name[CG_SOCKJS_CALLBACK_MAX + 2];

    cr_assert(cg_sockjs_callback_valid(S("callback")));
    cr_assert(cg_sockjs_callback_valid(S("a.b_c9")));
    cr_assert(cg_sockjs_callback_valid(S("_sockjs_onload.x")));
    cr_assert(not(cg_sockjs_callback_valid(S(""))));
    cr_assert(not(cg_sockjs_callback_valid(S("a-b"))));
    cr_assert(not(cg_sockjs_callback_valid(S("a b"))));
    cr_assert(not(cg_sockjs_callback_valid(S("alert(1)"))));
    cr_assert(not(cg_sockjs_callback_valid(S("a;b"))));
    cr_assert(not(cg_sockjs_callback_valid(S("a</script>"))));
    cr_assert(not(cg_sockjs_callback_valid(S("a\0b"))));
    cr_assert(not(cg_sockjs_callback_valid(S("x\xc3\xa9"))));
    memset(name, 'c', sizeof name);
    cr_assert(cg_sockjs_callback_valid(name, CG_SOCKJS_CALLBACK_MAX), "at the limit");
    cr_assert(not(cg_sockjs_callback_valid(name, CG_SOCKJS_CALLBACK_MAX + 1)), "past it");
}

struct form_case {
    const char *in;
    size_t      in_len;
    long        rc;
    const char *out;
};

static const struct form_case form_cases[] = {
    { S("d=%5B%22x%22%5D"), 5, "[\"x\"]" },
    { S("a=1&d=x+y%2b"), 4, "x y+" },
    { S("d="), 0, "" },
    { S("d=1&d=2"), 1, "1" },
    { S("dd=1&d=2"), 1, "2" },
    { S(""), CG_SJ_E_EMPTY, NULL },
    { S("p=p"), CG_SJ_E_EMPTY, NULL },
    { S("dd=1"), CG_SJ_E_EMPTY, NULL },
    { S("d"), CG_SJ_E_EMPTY, NULL },
    { S("d=%5"), CG_SJ_E_BROKEN, NULL },
    { S("d=%G1"), CG_SJ_E_BROKEN, NULL },
    { S("d=%"), CG_SJ_E_BROKEN, NULL },
};

Test(sockjs_jsonp, form_d_field_is_url_decoded)
{
    for (size_t i = 0; i < NROWS(form_cases); i++) {
        const struct form_case *c = &form_cases[i];
        struct guard_buf gb;
        const char *in;
        char out[64];
        long rc;

        cr_assert(eq(int, guard_buf_init(&gb, c->in_len ? c->in_len : 1), 0));
        in = guard_buf_place(&gb, c->in, c->in_len);
        rc = cg_sockjs_form_d(in, c->in_len, out);
        cr_assert(eq(long, rc, c->rc), "%s", c->in);
        if (rc >= 0)
            cr_assert(eq(int, memcmp(out, c->out, (size_t)rc), 0), "%s", c->in);
        guard_buf_cleanup(&gb);
    }
}
