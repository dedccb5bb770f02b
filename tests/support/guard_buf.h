/* guard_buf.h - test buffers whose last byte sits right before an
 * inaccessible page, and a byte splitter to feed input in chunks.
 *
 * A guard buffer is picohttpparser's trick: place the input so that its
 * last byte is the last byte of a readable page and the next page is
 * PROT_NONE. Reading even one byte past the input then faults at once, with
 * or without AddressSanitizer (and ASan does not see over-reads within a
 * larger heap block, which is what a session's read buffer is).
 *
 *     [ ... readable ... | input bytes ][ PROT_NONE guard page ]
 *                         ^ guard_buf_place()   ^ gb->guard
 */
#ifndef CG_TEST_GUARD_BUF_H
#define CG_TEST_GUARD_BUF_H

#include <stddef.h>
#include <stdint.h>

struct guard_buf {
    char *map;      /* the whole mapping */
    size_t map_len; /* its length: usable pages plus the guard page */
    char *guard;    /* first byte of the PROT_NONE page */
    size_t cap;     /* usable bytes before guard */
};

/* Maps room for at least cap bytes followed by a guard page. Returns 0 or
 * -errno. Pair with guard_buf_cleanup(). */
int guard_buf_init(struct guard_buf *gb, size_t cap);

/* Unmaps the buffer. Safe on a zeroed struct and when called twice. */
void guard_buf_cleanup(struct guard_buf *gb);

/* Copies src[0..len) (which may lie inside the buffer itself) so that it
 * ends right before the guard page, and returns where it starts.
 * len must not exceed gb->cap. */
char *guard_buf_place(struct guard_buf *gb, const void *src, size_t len);

/* Makes every whole page of the buffer inside [from, to) inaccessible, so
 * that reading those bytes faults. Returns how many bytes that covers (0 if
 * no whole page fits, or if mprotect failed). Only guard_buf_cleanup()
 * undoes it. */
size_t guard_buf_revoke(struct guard_buf *gb, const char *from, const char *to);

/* ------------------------------------------------------------------------ */

/* Cuts total bytes into chunks, the way a socket might deliver them. */
struct byte_splitter {
    size_t total; /* bytes to hand out */
    size_t off;   /* bytes handed out so far */
    size_t at;    /* split_at: the single cut */
    size_t every; /* split_every: the chunk size */
    uint64_t rng; /* split_random: xorshift state */
    size_t max;   /* split_random: the largest chunk */
    int mode;
};

/* Two chunks, [0, at) then [at, total); a cut at 0 or total gives one. */
void byte_splitter_at(struct byte_splitter *s, size_t total, size_t at);

/* Chunks of n bytes (n >= 1), the last one possibly shorter. */
void byte_splitter_every(struct byte_splitter *s, size_t total, size_t n);

/* Chunks of 1 to max bytes, pseudo-random from seed (reproducible). */
void byte_splitter_random(struct byte_splitter *s, size_t total,
                          uint64_t seed, size_t max);

/* Returns the length of the next chunk, or 0 when all bytes are out. */
size_t byte_splitter_next(struct byte_splitter *s);

#endif /* CG_TEST_GUARD_BUF_H */
