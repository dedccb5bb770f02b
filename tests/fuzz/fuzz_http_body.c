/* fuzz_http_body.c - libFuzzer target for the HTTP API's body decoder
 * (gateway/http/http_body.c: register and login bodies) and its Content-Length
 * parser.
 *
 * Beyond "no crash, no leak, no UB" it checks the decoder's promises:
 *   - it answers 0 or CG_E_INVAL, and a failure sets a reason and owns
 *     nothing;
 *   - on success the views are exactly the JSON strings (lengths include
 *     any \u0000), and cleanup leaves the struct empty;
 *   - the name rule applied to the view never reads past its length;
 *   - a Content-Length is accepted exactly when it is all decimal digits
 *     and fits in 64 bits (strtoull, on a NUL-terminated copy, is the
 *     independent judge), with strtoull's value.
 * A broken promise aborts, which libFuzzer reports as a crash. */
#include "fmacros.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "chat/auth.h"
#include "core/common.h"
#include "http/http_body.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int ok)
{
    if (!ok)
        abort();
}

/* s: an exact heap copy (no NUL after it, so an over-read faults). */
static void
fuzz_content_length(const char *s, size_t size)
{
    char *z = malloc(size + 1);
    int digits = size > 0;
    unsigned long long want = 0;
    uint64_t got = 0;
    int rc;

    check(z != NULL);
    memcpy(z, s, size);
    z[size] = '\0';
    for (size_t i = 0; i < size; i++)
        digits = digits && s[i] >= '0' && s[i] <= '9';
    if (digits) {
        errno = 0;
        want = strtoull(z, NULL, 10);
        digits = errno != ERANGE;
    }
    rc = cg_http_parse_content_length(s, size, &got);
    check(digits ? rc == 0 && got == want : rc == CG_E_INVAL);
    free(z);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cg_credentials c;
    const char *why = NULL;
    char *copy = malloc(size ? size : 1);
    int rc;

    /* The decoder must not rely on a NUL after the body: give it an exact
     * heap copy so ASan catches an over-read. */
    check(copy != NULL);
    memcpy(copy, data, size);
    fuzz_content_length(copy, size);
    rc = cg_http_decode_credentials(copy, size, &c, &why);
    if (rc != 0) {
        check(rc == CG_E_INVAL && why != NULL && why[0] != '\0');
        check(c.doc == NULL && c.name == NULL && c.password == NULL);
    } else {
        json_t *n = json_object_get(c.doc, "username");
        json_t *p = json_object_get(c.doc, "password");

        check(json_is_string(n) && json_is_string(p));
        check(c.name == json_string_value(n) && c.name_len == json_string_length(n));
        check(c.password == json_string_value(p) &&
              c.password_len == json_string_length(p));
        (void)cg_auth_valid_name(c.name, c.name_len);
        cg_credentials_cleanup(&c);
        check(c.doc == NULL && c.name == NULL && c.password_len == 0);
    }
    free(copy);
    return 0;
}
