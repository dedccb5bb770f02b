/* store_resp.c - the RESP encoder: commands and batches built as arrays of
 * bulk strings ("*<n>\r\n" then "$<len>\r\n<bytes>\r\n" each) in a growable
 * buffer, ready for redisAsyncFormattedCommand().
 *
 * Why our own and not redisFormatCommandArgv(): a batch of chat operations
 * is built piecewise over a loop turn (keys and arguments in two buffers,
 * store_batch.c) and its array length is known only when it is sent, so the
 * pieces are encoded as they arrive and joined once. */
#include "fmacros.h"

#include <string.h>

#include "core/common.h"
#include "store/store_internal.h"

int
cg_store__rbuf_reserve(struct rbuf *b, size_t n)
{
    size_t cap = b->cap ? b->cap : 256;
    char *p;

    if (b->len + n <= b->cap)
        return 0;
    while (cap < b->len + n)
        cap *= 2;
    if ((p = cg_realloc(b->p, cap)) == NULL)
        return CG_E_NOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

/* "<type><n>\r\n" */
static void
rbuf_len_line(struct rbuf *b, char type, size_t n)
{
    char tmp[CG_U64_STR_MAX];
    size_t k = cg_u64_str(tmp, n);

    b->p[b->len++] = type;
    memcpy(b->p + b->len, tmp, k);
    b->len += k;
    b->p[b->len++] = '\r';
    b->p[b->len++] = '\n';
}

/* One bulk string "$<n>\r\n<s>\r\n". */
int
cg_store__rbuf_bulk(struct rbuf *b, const char *s, size_t n)
{
    if (cg_store__rbuf_reserve(b, n + 26) < 0)
        return CG_E_NOMEM;
    rbuf_len_line(b, '$', n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len++] = '\r';
    b->p[b->len++] = '\n';
    return 0;
}

int
cg_store__rbuf_array(struct rbuf *b, size_t n)
{
    if (cg_store__rbuf_reserve(b, 24) < 0)
        return CG_E_NOMEM;
    rbuf_len_line(b, '*', n);
    return 0;
}
