/* buf.c - reference-counted immutable buffers and the growable write buffer.
 *
 * cg_buf: one allocation holding the header and the bytes, with a NUL after
 * the last byte so a body can be handed to a C string API for logging
 * without a copy. A chat message body is serialized once into a cg_buf and
 * every session it fans out to holds one reference (Redis shared objects).
 * The count is a plain integer because everything runs on the loop thread.
 *
 *     create -> refs = 1 --ref--> refs + 1 --unref--> ... --unref--> free
 *
 * cg_wbuf: a session's write buffer. LWS_PRE bytes of headroom sit in front
 * of the data from the first allocation on, so lws_write() can prepend its
 * framing without a copy. Growth is geometric (doubling), so n appends cost
 * O(n) copying in total and O(log n) reallocations; the buffer never
 * shrinks, because a session's next batch is usually the size of its last.
 *
 *     base                 base + pre              base + pre + cap
 *     | headroom (pre)     | data (len)  | free    |
 *
 * Invariants: len <= cap; base == NULL exactly when cap == 0; a failed
 * reserve or append leaves the buffer as it was. cg_wbuf_data() means
 * something only once a reserve or append has succeeded (before that base
 * is NULL and there is no headroom to point past). */
#include "fmacros.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "core/buf.h"
#include "core/common.h"

/* ------------------------------------------------------------------------ */
/* cg_buf                                                                    */
/* ------------------------------------------------------------------------ */

struct cg_buf *
cg_buf_create(const void *src, size_t len)
{
    struct cg_buf *b;

    /* len is stored in 32 bits; no message comes near 4 GiB. */
    if (len > UINT32_MAX)
        return NULL;
    b = cg_malloc(sizeof *b + len + 1);
    if (b == NULL)
        return NULL;
    b->refs = 1;
    b->len = (uint32_t)len;
    if (src != NULL && len > 0)
        memcpy(b->data, src, len);
    b->data[len] = '\0';
    return b;
}

void
cg_buf_unref(struct cg_buf *b)
{
    if (b == NULL)
        return;
    assert(b->refs > 0);
    if (--b->refs == 0)
        cg_free(b);
}

/* ------------------------------------------------------------------------ */
/* cg_wbuf                                                                   */
/* ------------------------------------------------------------------------ */

/* The first allocation's data capacity: one typical batch of small frames,
 * so a session that writes little never reallocates. */
#define WBUF_MIN_CAP 1024

void
cg_wbuf_init(struct cg_wbuf *wb, size_t pre)
{
    wb->base = NULL;
    wb->pre = pre;
    wb->len = 0;
    wb->cap = 0;
}

int
cg_wbuf_reserve(struct cg_wbuf *wb, size_t n)
{
    size_t need, cap;
    char *p;

    if (n <= wb->cap - wb->len)
        return 0;
    if (n > SIZE_MAX - wb->pre - wb->len)
        return CG_E_NOMEM;                     /* would overflow size_t */
    need = wb->len + n;
    cap = wb->cap ? wb->cap : WBUF_MIN_CAP;
    while (cap < need)
        cap = cap <= (SIZE_MAX - wb->pre) / 2 ? cap * 2 : SIZE_MAX - wb->pre;
    p = cg_realloc(wb->base, wb->pre + cap);
    if (p == NULL)
        return CG_E_NOMEM;
    wb->base = p;
    wb->cap = cap;
    return 0;
}

int
cg_wbuf_append(struct cg_wbuf *wb, const void *p, size_t n)
{
    int rc;

    if (n == 0)
        return 0;
    if ((rc = cg_wbuf_reserve(wb, n)) < 0)
        return rc;
    memcpy(wb->base + wb->pre + wb->len, p, n);
    wb->len += n;
    return 0;
}

void
cg_wbuf_cleanup(struct cg_wbuf *wb)
{
    cg_free(wb->base);
    wb->base = NULL;
    wb->len = 0;
    wb->cap = 0;
}
