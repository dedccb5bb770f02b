/* utf8.c - see utf8.h. libc only: the fuzz targets compile it in. */
#include "core/utf8.h"

#include <string.h>

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

int
cg_utf8_valid(const void *p, size_t n)
{
    const unsigned char *u = p;
    uint32_t cp;
    size_t k;

    while (n > 0) {
        if ((k = cg_utf8_next(u, n, &cp)) == 0)
            return 0;
        u += k;
        n -= k;
    }
    return 1;
}

size_t
cg_utf8_sanitize(char *dst, size_t cap, const void *src, size_t n)
{
    static const char fffd[3] = { (char)0xEF, (char)0xBF, (char)0xBD };
    const unsigned char *u = src;
    size_t o = 0;
    uint32_t cp;

    if (cap == 0)
        return 0;
    while (n > 0) {
        size_t k = cg_utf8_next(u, n, &cp);
        const char *from = k ? (const char *)u : fffd;
        size_t w = k ? k : 3;

        if (o + w > cap - 1)
            break;
        memcpy(dst + o, from, w);
        o += w;
        k = k ? k : 1;
        u += k;
        n -= k;
    }
    dst[o] = '\0';
    return o;
}
