#include "fmacros.h"

/* guard_buf.c - guard-page buffers and the byte splitter (see guard_buf.h).
 *
 * Layout of one mapping, pages of the system's size:
 *
 *     map                                   guard          map + map_len
 *     | usable pages (PROT_READ|WRITE)     | PROT_NONE page |
 *                           [  input bytes ]
 *                           ^ guard - len
 *
 * guard_buf_revoke() turns usable pages PROT_NONE too: a test uses it to
 * prove that a parser never goes back to bytes it already scanned.
 */

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "guard_buf.h"

static size_t
page_size(void)
{
    long n = sysconf(_SC_PAGESIZE);

    return n > 0 ? (size_t)n : 4096;
}

int
guard_buf_init(struct guard_buf *gb, size_t cap)
{
    size_t page = page_size();
    size_t usable = (cap + page - 1) / page * page;
    void *map;

    if (usable == 0)
        usable = page;
    memset(gb, 0, sizeof(*gb));
    map = mmap(NULL, usable + page, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED)
        return -errno;
    if (mprotect((char *)map + usable, page, PROT_NONE) != 0) {
        int err = -errno;

        munmap(map, usable + page);
        return err;
    }
    gb->map = map;
    gb->map_len = usable + page;
    gb->guard = (char *)map + usable;
    gb->cap = usable;
    return 0;
}

void
guard_buf_cleanup(struct guard_buf *gb)
{
    if (gb->map != NULL)
        munmap(gb->map, gb->map_len);
    memset(gb, 0, sizeof(*gb));
}

char *
guard_buf_place(struct guard_buf *gb, const void *src, size_t len)
{
    char *dst = gb->guard - len;

    if (len > 0)
        memmove(dst, src, len);
    return dst;
}

size_t
guard_buf_revoke(struct guard_buf *gb, const char *from, const char *to)
{
    size_t page = page_size();
    size_t lo = ((size_t)(from - gb->map) + page - 1) / page * page;
    size_t hi = (size_t)(to - gb->map) / page * page;

    if (hi <= lo || mprotect(gb->map + lo, hi - lo, PROT_NONE) != 0)
        return 0;
    return hi - lo;
}

/* ------------------------------------------------------------------------ */

enum { SPLIT_AT, SPLIT_EVERY, SPLIT_RANDOM };

void
byte_splitter_at(struct byte_splitter *s, size_t total, size_t at)
{
    memset(s, 0, sizeof(*s));
    s->total = total;
    s->at = at;
    s->mode = SPLIT_AT;
}

void
byte_splitter_every(struct byte_splitter *s, size_t total, size_t n)
{
    memset(s, 0, sizeof(*s));
    s->total = total;
    s->every = n > 0 ? n : 1;
    s->mode = SPLIT_EVERY;
}

void
byte_splitter_random(struct byte_splitter *s, size_t total, uint64_t seed,
                     size_t max)
{
    memset(s, 0, sizeof(*s));
    s->total = total;
    s->rng = seed != 0 ? seed : 0x9e3779b97f4a7c15u;
    s->max = max > 0 ? max : 1;
    s->mode = SPLIT_RANDOM;
}

size_t
byte_splitter_next(struct byte_splitter *s)
{
    size_t left = s->total - s->off;
    size_t n;

    if (left == 0)
        return 0;
    switch (s->mode) {
    case SPLIT_AT:
        n = s->off < s->at && s->at < s->total ? s->at - s->off : left;
        break;
    case SPLIT_EVERY:
        n = s->every;
        break;
    default:
        /* xorshift64: reproducible, and good enough to vary chunk sizes. */
        s->rng ^= s->rng << 13;
        s->rng ^= s->rng >> 7;
        s->rng ^= s->rng << 17;
        n = 1 + (size_t)(s->rng % s->max);
        break;
    }
    if (n > left)
        n = left;
    s->off += n;
    return n;
}
