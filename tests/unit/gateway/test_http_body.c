/* test_http_body.c - http_body.c's Content-Length parser: which values
 * frame a request body (one row per case; the framing decision of
 * http_api.c and sockjs_route.c rests on it). The JSON body decoder is
 * covered by tests/fuzz/fuzz_http_body.c and tests/integration. */
#include "fmacros.h"

#include <stdint.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>

#include "core/common.h"
#include "http/http_body.h"

/* By value: Criterion runs each parameter in a fresh worker process. */
struct clen_case {
    char     value[32];
    size_t   len;          /* bytes of value to parse (NULs included) */
    int      ok;
    uint64_t want;
};

#define OK(v, n)  { v, sizeof v - 1, 1, n }
#define BAD(v)    { v, sizeof v - 1, 0, 0 }

static const struct clen_case cases[] = {
    OK("0", 0),
    OK("5", 5),
    OK("0005", 5),                       /* leading zeros are still digits */
    OK("65536", 65536),
    OK("18446744073709551615", UINT64_MAX),
    BAD("18446744073709551616"),         /* one past 64 bits */
    BAD("99999999999999999999"),
    BAD(""),
    BAD("abc"),
    BAD("-1"),
    BAD("+5"),
    BAD(" 5"),
    BAD("5 "),
    BAD("5,5"),                          /* two headers, as lws joins them */
    BAD("0x10"),
    BAD("1e3"),
    BAD("1.5"),
    BAD("5\0" "0"),                      /* a NUL inside the value */
    BAD("\xd9\xa1"),                     /* ARABIC-INDIC DIGIT ONE */
};

ParameterizedTestParameters(cg_http_body, content_length)
{
    return cr_make_param_array(struct clen_case, (void *)cases,
                               sizeof cases / sizeof cases[0]);
}

ParameterizedTest(const struct clen_case *c, cg_http_body, content_length)
{
    uint64_t got = 12345;
    int rc = cg_http_parse_content_length(c->value, c->len, &got);

    if (c->ok) {
        cr_assert(eq(int, rc, 0), "\"%s\" must be accepted", c->value);
        cr_assert(eq(u64, got, c->want), "\"%s\"", c->value);
    } else {
        cr_assert(eq(int, rc, CG_E_INVAL), "\"%s\" must be refused", c->value);
        cr_assert(eq(u64, got, 12345), "\"%s\": nothing written on failure", c->value);
    }
}

Test(cg_http_body, content_length_reads_only_its_length)
{
    uint64_t got = 0;

    /* "12" out of "123": the third byte is not part of the value. */
    cr_assert(eq(int, cg_http_parse_content_length("123", 2, &got), 0));
    cr_assert(eq(u64, got, 12));
}
