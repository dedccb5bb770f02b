/* test_utf8.c - utf8.c: cg_utf8_valid() and cg_utf8_sanitize(), the
 * replacement of bytes that are not UTF-8 before they are echoed in a text
 * frame (issue 13, finding 10). */
#include "fmacros.h"

#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "core/utf8.h"

#define FFFD "\xEF\xBF\xBD"

static void
expect(const char *in, size_t n, size_t cap, const char *want)
{
    char out[256];
    size_t len;

    cr_assert(le(sz, cap, sizeof out));
    memset(out, 'X', sizeof out);
    len = cg_utf8_sanitize(out, cap, in, n);
    cr_assert(eq(sz, len, strlen(want)), "length of %zu bytes in %zu", n, cap);
    cr_assert(eq(int, memcmp(out, want, len + 1), 0));
    cr_assert(eq(int, cg_utf8_valid(out, len), 1));
}

Test(utf8, valid_text_is_copied_unchanged)
{
    expect("", 0, 16, "");
    expect("abc", 3, 16, "abc");
    expect("h\xC3\xA9 \xE6\x88\x90 \xF0\x9F\x98\x80", 12, 32,
           "h\xC3\xA9 \xE6\x88\x90 \xF0\x9F\x98\x80");
    cr_assert(eq(int, cg_utf8_valid("h\xC3\xA9", 3), 1));
    cr_assert(eq(int, cg_utf8_valid("", 0), 1));
}

Test(utf8, each_bad_byte_becomes_one_replacement_character)
{
    expect("/x\xFF\xFE", 4, 32, "/x" FFFD FFFD);
    expect("\xFF\xFE", 2, 32, FFFD FFFD);
    expect("a\xC3", 2, 32, "a" FFFD);                  /* truncated sequence */
    expect("\xC0\xAF", 2, 32, FFFD FFFD);              /* overlong */
    expect("\xED\xA0\x80", 3, 32, FFFD FFFD FFFD);     /* surrogate */
    expect("\xF4\x90\x80\x80", 4, 32, FFFD FFFD FFFD FFFD);  /* past U+10FFFF */
    expect("a\x80" "b", 3, 32, "a" FFFD "b");          /* lone continuation */
    cr_assert(eq(int, cg_utf8_valid("/x\xFF\xFE", 4), 0));
    cr_assert(eq(int, cg_utf8_valid("a\xC3", 2), 0));
}

Test(utf8, a_short_buffer_cuts_between_characters)
{
    expect("abc", 3, 3, "ab");
    expect("a\xC3\xA9", 3, 3, "a");                    /* no half of é */
    expect("a\xFF", 2, 4, "a");                        /* U+FFFD needs 3 */
    expect("a\xFF", 2, 5, "a" FFFD);
    expect("abc", 3, 1, "");
}

Test(utf8, a_nul_byte_is_kept)
{
    char out[8];

    cr_assert(eq(sz, cg_utf8_sanitize(out, sizeof out, "a\0b", 3), 3));
    cr_assert(eq(int, memcmp(out, "a\0b", 4), 0));
}
