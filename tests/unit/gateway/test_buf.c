/* test_buf.c - buf.c: reference-counted cg_buf and the growable cg_wbuf.
 *
 * Frees happen where the tests say they do: ASan turns an early free into a
 * use-after-free and a missed one into a leak, and cg_free() is wrapped by
 * the linker (-Wl,--wrap=cg_free, CMakeLists.txt) to count the calls, so
 * the refcount tests also see how many frees each unref made. */
#include "fmacros.h"

#include <stdint.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "core/buf.h"
#include "core/common.h"

static void
reset_alloc_hook(void)
{
    cg_alloc_fail_after(0);
}

/* Calls of cg_free() since the process started (buf.c's included). */
static unsigned long frees;

void __real_cg_free(void *p);
void __wrap_cg_free(void *p);

void
__wrap_cg_free(void *p)
{
    frees++;
    __real_cg_free(p);
}

TestSuite(cg_buf, .fini = reset_alloc_hook);
TestSuite(cg_wbuf, .fini = reset_alloc_hook);

/* ------------------------------------------------------------------------ */
/* cg_buf                                                                    */
/* ------------------------------------------------------------------------ */

Test(cg_buf, create_copies_bytes_and_adds_uncounted_nul)
{
    struct cg_buf *b = cg_buf_create("a\0b", 3);

    cr_assert(not(zero(ptr, b)));
    cr_assert(eq(u32, b->refs, 1));
    cr_assert(eq(u32, b->len, 3));
    cr_assert(eq(int, memcmp(b->data, "a\0b", 3), 0));
    cr_assert(eq(chr, b->data[3], '\0'));
    cg_buf_unref(b);
}

Test(cg_buf, create_without_src_leaves_room_to_fill)
{
    struct cg_buf *b = cg_buf_create(NULL, 5);

    cr_assert(not(zero(ptr, b)));
    memcpy(b->data, "hello", 5);
    cr_assert(eq(str, b->data, "hello"));
    cg_buf_unref(b);
}

Test(cg_buf, empty_buffer_is_an_empty_string)
{
    struct cg_buf *b = cg_buf_create(NULL, 0);

    cr_assert(not(zero(ptr, b)));
    cr_assert(eq(u32, b->len, 0));
    cr_assert(eq(str, b->data, ""));
    cg_buf_unref(b);
}

Test(cg_buf, last_unref_frees_and_earlier_ones_do_not)
{
    struct cg_buf *b = cg_buf_create("shared", 6);
    unsigned long before = frees;

    cr_assert(eq(ptr, cg_buf_ref(b), b));
    cr_assert(eq(ptr, cg_buf_ref(b), b));
    cr_assert(eq(u32, b->refs, 3));
    cg_buf_unref(b);
    cr_assert(eq(str, b->data, "shared"));   /* ASan: still alive */
    cg_buf_unref(b);
    cr_assert(eq(u32, b->refs, 1));
    cr_assert(eq(ulong, frees, before));     /* no free before the last unref */
    cg_buf_unref(b);                         /* ASan: a leak if not freed */
    cr_assert(eq(ulong, frees, before + 1));
}

Test(cg_buf, unref_of_null_is_a_noop)
{
    struct cg_buf *b = cg_buf_create("kept", 4);
    unsigned long before = frees;

    cg_buf_unref(NULL);                      /* no crash, and no free */
    cr_assert(eq(ulong, frees, before));
    cr_assert(eq(u32, b->refs, 1));
    cg_buf_unref(b);                         /* the count does see a free */
    cr_assert(eq(ulong, frees, before + 1));
}

Test(cg_buf, create_returns_null_when_allocation_fails)
{
    cg_alloc_fail_after(1);
    cr_assert(zero(ptr, cg_buf_create("x", 1)));
}

Test(cg_buf, create_rejects_lengths_beyond_32_bits)
{
    if (SIZE_MAX <= UINT32_MAX)
        cr_skip_test("size_t is 32 bits");
    cr_assert(zero(ptr, cg_buf_create(NULL, (size_t)UINT32_MAX + 1)));
}

/* ------------------------------------------------------------------------ */
/* cg_wbuf                                                                   */
/* ------------------------------------------------------------------------ */

#define PRE 16   /* stands in for LWS_PRE */

Test(cg_wbuf, init_allocates_nothing)
{
    struct cg_wbuf wb;

    cg_alloc_fail_after(1);                  /* any allocation would fail */
    cg_wbuf_init(&wb, PRE);
    cr_assert(zero(ptr, wb.base));
    cr_assert(eq(sz, wb.pre, PRE));
    cr_assert(eq(sz, wb.len, 0));
    cr_assert(eq(sz, wb.cap, 0));
    cr_assert(eq(int, cg_wbuf_append(&wb, "", 0), 0));   /* nothing to add */
    cg_wbuf_cleanup(&wb);
}

Test(cg_wbuf, data_sits_after_the_headroom)
{
    struct cg_wbuf wb;

    cg_wbuf_init(&wb, PRE);
    cr_assert(eq(int, cg_wbuf_append(&wb, "abc", 3), 0));
    cr_assert(eq(ptr, cg_wbuf_data(&wb), wb.base + PRE));
    cr_assert(eq(sz, wb.len, 3));
    cr_assert(ge(sz, wb.cap, 3));
    cr_assert(eq(int, memcmp(cg_wbuf_data(&wb), "abc", 3), 0));
    cg_wbuf_cleanup(&wb);
}

Test(cg_wbuf, growth_keeps_headroom_and_data)
{
    struct cg_wbuf wb;
    char chunk[1000];

    cg_wbuf_init(&wb, PRE);
    cr_assert(eq(int, cg_wbuf_reserve(&wb, 1), 0));
    memset(wb.base, 'H', PRE);               /* what lws would write there */
    for (int i = 0; i < 100; i++) {
        memset(chunk, 'a' + i % 26, sizeof chunk);
        cr_assert(eq(int, cg_wbuf_append(&wb, chunk, sizeof chunk), 0));
    }
    cr_assert(eq(sz, wb.len, 100 * sizeof chunk));
    for (int i = 0; i < PRE; i++)
        cr_assert(eq(chr, wb.base[i], 'H'));
    for (int i = 0; i < 100; i++)
        cr_assert(eq(chr, cg_wbuf_data(&wb)[i * 1000 + 999], (char)('a' + i % 26)));
    cg_wbuf_cleanup(&wb);
}

Test(cg_wbuf, growth_is_geometric)
{
    struct cg_wbuf wb;
    size_t last_cap = 0, grows = 0;
    const size_t n = 1 << 20;

    cg_wbuf_init(&wb, PRE);
    for (size_t i = 0; i < n; i++) {
        cr_assert(eq(int, cg_wbuf_append(&wb, "x", 1), 0));
        if (wb.cap != last_cap) {
            cr_assert(ge(sz, wb.cap, 2 * last_cap));  /* at least doubles */
            last_cap = wb.cap;
            grows++;
        }
    }
    /* From the first allocation (<= 1 MiB) to 1 MiB by doublings: at most
     * 21 allocations for a million appends, and never more than twice the
     * space needed. */
    cr_assert(le(sz, grows, 21));
    cr_assert(le(sz, wb.cap, 2 * n));
    cg_wbuf_cleanup(&wb);
}

Test(cg_wbuf, reserve_makes_room_without_changing_len)
{
    struct cg_wbuf wb;

    cg_wbuf_init(&wb, PRE);
    cr_assert(eq(int, cg_wbuf_append(&wb, "ab", 2), 0));
    cr_assert(eq(int, cg_wbuf_reserve(&wb, 5000), 0));
    cr_assert(eq(sz, wb.len, 2));
    cr_assert(ge(sz, wb.cap - wb.len, 5000));
    /* Within the reserved room, appending does not allocate. */
    cg_alloc_fail_after(1);
    cr_assert(eq(int, cg_wbuf_append(&wb, "cd", 2), 0));
    cr_assert(eq(int, memcmp(cg_wbuf_data(&wb), "abcd", 4), 0));
    cg_wbuf_cleanup(&wb);
}

Test(cg_wbuf, failed_append_leaves_the_buffer_as_it_was)
{
    struct cg_wbuf wb;
    static char big[8192];
    char *base;
    size_t cap;

    cg_wbuf_init(&wb, PRE);
    cr_assert(eq(int, cg_wbuf_append(&wb, "abc", 3), 0));
    base = wb.base;
    cap = wb.cap;
    cg_alloc_fail_after(1);
    cr_assert(eq(int, cg_wbuf_append(&wb, big, sizeof big), CG_E_NOMEM));
    cr_assert(eq(ptr, wb.base, base));
    cr_assert(eq(sz, wb.cap, cap));
    cr_assert(eq(sz, wb.len, 3));
    cr_assert(eq(int, memcmp(cg_wbuf_data(&wb), "abc", 3), 0));
    cg_alloc_fail_after(0);
    cr_assert(eq(int, cg_wbuf_append(&wb, big, sizeof big), 0));
    cr_assert(eq(sz, wb.len, 3 + sizeof big));
    cg_wbuf_cleanup(&wb);
}

Test(cg_wbuf, first_allocation_failure_is_nomem)
{
    struct cg_wbuf wb;

    cg_wbuf_init(&wb, PRE);
    cg_alloc_fail_after(1);
    cr_assert(eq(int, cg_wbuf_reserve(&wb, 1), CG_E_NOMEM));
    cr_assert(zero(ptr, wb.base));
    cr_assert(eq(sz, wb.cap, 0));
    cg_wbuf_cleanup(&wb);
}

Test(cg_wbuf, size_overflow_is_nomem_without_allocating)
{
    struct cg_wbuf wb;

    cg_wbuf_init(&wb, PRE);
    cr_assert(eq(int, cg_wbuf_append(&wb, "a", 1), 0));
    cg_alloc_fail_after(1);                  /* proves no allocation is tried */
    cr_assert(eq(int, cg_wbuf_reserve(&wb, SIZE_MAX), CG_E_NOMEM));
    cr_assert(eq(int, cg_wbuf_reserve(&wb, SIZE_MAX - PRE), CG_E_NOMEM));
    cr_assert(eq(sz, wb.len, 1));
    cg_wbuf_cleanup(&wb);
}

Test(cg_wbuf, reset_empties_but_keeps_the_allocation)
{
    struct cg_wbuf wb;
    char *base;

    cg_wbuf_init(&wb, PRE);
    cr_assert(eq(int, cg_wbuf_append(&wb, "abc", 3), 0));
    base = wb.base;
    cg_wbuf_reset(&wb);
    cr_assert(eq(sz, wb.len, 0));
    cr_assert(eq(ptr, wb.base, base));
    cr_assert(eq(int, cg_wbuf_append(&wb, "z", 1), 0));
    cr_assert(eq(chr, cg_wbuf_data(&wb)[0], 'z'));
    cg_wbuf_cleanup(&wb);
}

Test(cg_wbuf, cleanup_frees_and_the_buffer_can_start_again)
{
    struct cg_wbuf wb;

    cg_wbuf_init(&wb, PRE);
    cr_assert(eq(int, cg_wbuf_append(&wb, "abc", 3), 0));
    cg_wbuf_cleanup(&wb);
    cr_assert(zero(ptr, wb.base));
    cr_assert(eq(sz, wb.len, 0));
    cr_assert(eq(sz, wb.cap, 0));
    cg_wbuf_cleanup(&wb);                    /* twice is harmless */
    cg_wbuf_init(&wb, 0);
    cr_assert(eq(int, cg_wbuf_append(&wb, "q", 1), 0));
    cr_assert(eq(ptr, cg_wbuf_data(&wb), wb.base));
    cg_wbuf_cleanup(&wb);
}
