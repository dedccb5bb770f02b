/* fuzz_http_head.c - libFuzzer target for the check of a connection's
 * first request head (gateway/http/http_head.c), which listener.c runs on
 * bytes it peeked while they arrive in pieces of any size.
 *
 * The first two input bytes pick small limits (so 414 and 431 are in
 * reach); the rest is the head. Beyond "no crash, no UB, no read past the
 * length" it checks the function's promises:
 *   - the verdict does not depend on how the bytes arrived: for every
 *     prefix, "not yet" (0) holds until some length k, and from k on every
 *     longer prefix gives exactly the verdict of k;
 *   - a verdict is 0, 400, 414 or 431; a refusal has a reason;
 *   - a fine head ends its bytes with a blank line (LF, or CR LF), lies
 *     within max_head_bytes, and its flags are known ones.
 * A broken promise aborts, which libFuzzer reports as a crash. */
#include "fmacros.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_head.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_INPUT 2048      /* every prefix is checked: keep it quadratic-small */

static void
check(int ok)
{
    if (!ok)
        abort();
}

static int
same(const struct cg_http_head_verdict *a, const struct cg_http_head_verdict *b)
{
    return a->status == b->status && a->head_len == b->head_len && a->flags == b->flags &&
           (a->status == 0 || strcmp(a->reason, b->reason) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cg_http_head_limits lim;
    struct cg_http_head_verdict first, v;
    size_t k = 0, n;
    char *buf;

    if (size < 2 || size > MAX_INPUT + 2)
        return 0;
    lim.max_request_line = 8 + data[0] % 120;
    lim.max_head_bytes = lim.max_request_line + 2 + data[1] % 400;
    lim.max_headers = 1 + data[1] % CG_HTTP_MAX_HEADERS_CAP;
    lim.max_query_params = CG_HTTP_MAX_QUERY_PARAMS;
    data += 2;
    size -= 2;
    /* An exact heap copy: reading past a prefix's length faults. */
    if ((buf = malloc(size ? size : 1)) == NULL)
        return 0;
    memcpy(buf, data, size);
    for (n = 0; n <= size; n++) {
        memset(&v, 0xa5, sizeof v);
        int rc = cg_http_head_check(buf, n, &lim, &v);

        check(rc == 0 || rc == 1);
        if (k == 0 && rc == 1) {
            k = n ? n : (size_t)-1;
            first = v;
            check(v.status == 0 || v.status == 400 || v.status == 414 || v.status == 431);
            if (v.status != 0) {
                check(v.reason != NULL && v.reason[0] != '\0');
            } else {
                check(v.head_len >= 2 && v.head_len <= n && v.head_len <= lim.max_head_bytes);
                check(buf[v.head_len - 1] == '\n');
                check((v.flags & ~CG_HTTP_HEAD_F_PATH_FOLDED) == 0);
            }
        } else if (k != 0) {
            check(rc == 1 && same(&v, &first));   /* more bytes change nothing */
        }
    }
    free(buf);
    return 0;
}
