/* utf8.c - see utf8.h. libc only: the fuzz targets compile it in. */
#include "core/utf8.h"

size_t
cg_utf8_next(const unsigned char *p, size_t n, uint32_t *cp)
{
    unsigned char c, lo = 0x80, hi = 0xBF;
    size_t need;

    if (n == 0)
        return 0;
    c = p[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
        *cp = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        *cp = c & 0x0Fu;
        if (c == 0xE0) lo = 0xA0;             /* no overlongs */
        if (c == 0xED) hi = 0x9F;             /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        *cp = c & 0x07u;
        if (c == 0xF0) lo = 0x90;             /* no overlongs */
        if (c == 0xF4) hi = 0x8F;             /* nothing past U+10FFFF */
    } else {
        return 0;
    }
    if (n < need || p[1] < lo || p[1] > hi)
        return 0;
    *cp = (*cp << 6) | (p[1] & 0x3Fu);
    for (size_t i = 2; i < need; i++) {
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
        *cp = (*cp << 6) | (p[i] & 0x3Fu);
    }
    return need;
}
