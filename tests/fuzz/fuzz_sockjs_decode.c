/* fuzz_sockjs_decode.c - libFuzzer target for gateway/transport/sockjs_frame.c: the
 * SockJS payload decoder (["...", ...] from xhr_send / the framed
 * websocket), the frame quoter, and the URL / jsonp helpers.
 *
 * Beyond "no crash, no leak, no UB, no read past the input" (the input is
 * copied into a buffer of exactly its size, and the decoder's output
 * buffer is exactly as long as its input, so ASan sees any overrun), it
 * checks the module's promises:
 *   - decoding never grows: out_len <= len; the messages the callback saw
 *     add up to out_len and lie inside out;
 *   - what the decoder accepts, jansson also reads as an array of strings
 *     (or one string) - except for lone surrogate escapes, which jansson
 *     refuses and we turn into U+FFFD - and both give the same bytes;
 *     what jansson accepts as an array of strings, the decoder accepts;
 *   - quoting any bytes gives a literal that decodes again, measure and
 *     write agree, and valid UTF-8 round-trips byte for byte;
 *   - the jsonp form decoder never grows either.
 * The first input byte picks the decoder flags. Any broken promise aborts,
 * which libFuzzer reports as a crash. */
#include "fmacros.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "transport/sockjs_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int ok)
{
    if (!ok)
        abort();
}

struct seen {
    const char *base;
    size_t      cap;
    size_t      total;
    size_t      count;
};

static void
on_msg(const char *msg, size_t len, void *data)
{
    struct seen *s = data;

    check(msg >= s->base && msg + len <= s->base + s->cap);
    s->total += len;
    s->count++;
}

/* 1 if in[0..len) contains a \u escape of a surrogate not paired the way
 * JSON pairs them (jansson refuses those; the decoder maps them to U+FFFD).
 * Approximate: any \ud8..\udf escape counts, which only widens the case
 * where the comparison with jansson is skipped. */
static int
has_surrogate_escape(const char *in, size_t len)
{
    for (size_t i = 0; i + 3 < len; i++)
        if (in[i] == '\\' && in[i + 1] == 'u' && (in[i + 2] == 'd' || in[i + 2] == 'D') &&
            strchr("89abcdefABCDEF", in[i + 3]) != NULL && in[i + 3] != '\0')
            return 1;
    return 0;
}

/* jansson's reading of the payload: the concatenated strings into *out
 * (malloc'd), or -1 when it is not an array of strings / one string. */
static long
jansson_decode(const char *in, size_t len, unsigned flags, char **out)
{
    json_error_t e;
    json_t *j = json_loadb(in, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    size_t total = 0, at = 0;
    long rc = -1;

    *out = NULL;
    if (j == NULL)
        return -1;
    if (json_is_string(j) && (flags & CG_SJ_DECODE_SINGLE)) {
        total = json_string_length(j);
        if ((*out = malloc(total + 1)) != NULL) {
            memcpy(*out, json_string_value(j), total);
            rc = (long)total;
        }
    } else if (json_is_array(j)) {
        size_t i;
        json_t *v;

        json_array_foreach(j, i, v) {
            if (!json_is_string(v))
                goto out;
            total += json_string_length(v);
        }
        if ((*out = malloc(total + 1)) == NULL)
            goto out;
        json_array_foreach(j, i, v) {
            memcpy(*out + at, json_string_value(v), json_string_length(v));
            at += json_string_length(v);
        }
        rc = (long)total;
    }
out:
    json_decref(j);
    return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned flags;
    char *in, *out, *lit, *arr, *back, *jout = NULL;
    size_t len, n = 0, q, q2, m = 0;
    struct seen seen;
    struct cg_sockjs_path sp;
    long jn;
    int rc;

    if (size == 0)
        return 0;
    flags = data[0] & 1u ? CG_SJ_DECODE_SINGLE : 0;
    len = size - 1;
    in = malloc(len ? len : 1);
    out = malloc(len ? len : 1);
    check(in != NULL && out != NULL);
    memcpy(in, data + 1, len);

    /* the decoder */
    seen = (struct seen){ out, len, 0, 0 };
    rc = cg_sockjs_decode(in, len, flags, out, &n, on_msg, &seen);
    check(rc == 0 || rc == CG_SJ_E_EMPTY || rc == CG_SJ_E_BROKEN);
    check(rc != CG_SJ_E_EMPTY || len == 0);
    if (rc == 0) {
        check(n <= len);
        check(seen.total == n);
    }
    /* against jansson */
    jn = jansson_decode(in, len, flags, &jout);
    if (jn >= 0) {
        check(rc == 0);
        check((size_t)jn == n && memcmp(jout, out, n) == 0);
    } else if (rc == 0) {
        check(has_surrogate_escape(in, len));
    }
    free(jout);

    /* decoding in place gives the same bytes */
    if (rc == 0) {
        char *copy = malloc(len ? len : 1);

        check(copy != NULL);
        memcpy(copy, in, len);
        check(cg_sockjs_decode(copy, len, flags, copy, &m, NULL, NULL) == 0);
        check(m == n && memcmp(copy, out, n) == 0);
        free(copy);
    }

    /* the quoter: any bytes give a literal that decodes again */
    q = cg_sockjs_quote(in, len, 0, NULL);
    lit = malloc(q);
    arr = malloc(q + 2);
    back = malloc(q + 2);
    check(lit != NULL && arr != NULL && back != NULL);
    q2 = cg_sockjs_quote(in, len, 0, lit);
    check(q == q2 && q >= 2 && lit[0] == '"' && lit[q - 1] == '"');
    arr[0] = '[';
    memcpy(arr + 1, lit, q);
    arr[q + 1] = ']';
    check(cg_sockjs_decode(arr, q + 2, 0, back, &m, NULL, NULL) == 0);
    /* valid UTF-8 (quoted as is or escaped) comes back unchanged: the
     * decoder accepted the input as a string's contents iff it was
     * UTF-8; check with the quoter's inverse on the lit itself */
    if (rc == 0 && (flags & CG_SJ_DECODE_SINGLE) == 0) {
        /* out is valid UTF-8 (the decoder emits nothing else): quoting it
         * and decoding back must give out again */
        char *lit2, *arr2, *back2;
        size_t q3 = cg_sockjs_quote(out, n, CG_SJ_QUOTE_HTML, NULL), m2;

        lit2 = malloc(q3 + 2);
        back2 = malloc(q3 + 2);
        check(lit2 != NULL && back2 != NULL);
        arr2 = lit2;
        arr2[0] = '[';
        cg_sockjs_quote(out, n, CG_SJ_QUOTE_HTML, arr2 + 1);
        arr2[q3 + 1] = ']';
        check(cg_sockjs_decode(arr2, q3 + 2, 0, back2, &m2, NULL, NULL) == 0);
        check(m2 == n && memcmp(back2, out, n) == 0);
        /* and the literal is pure JSON: jansson agrees */
        {
            char *jo = NULL;
            long k = jansson_decode(arr2, q3 + 2, 0, &jo);

            check(k == (long)n && memcmp(jo, out, n) == 0);
            free(jo);
        }
        free(lit2);
        free(back2);
    }
    free(lit);
    free(arr);
    free(back);

    /* URL, jsonp helpers: no crash, bounded output */
    cg_sockjs_parse_path(in, len, &sp);
    if (sp.route >= CG_SJ_WEBSOCKET) {
        check(cg_sockjs_id_valid(sp.server.ptr, sp.server.len));
        check(cg_sockjs_id_valid(sp.session.ptr, sp.session.len));
        check(sp.session.ptr >= in && sp.session.ptr + sp.session.len <= in + len);
    }
    (void)cg_sockjs_callback_valid(in, len);
    {
        long d = cg_sockjs_form_d(in, len, out);

        check(d == CG_SJ_E_EMPTY || d == CG_SJ_E_BROKEN || (d >= 0 && (size_t)d <= len));
    }

    free(in);
    free(out);
    return 0;
}
