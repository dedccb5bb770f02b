/* utf8.h - the one UTF-8 decoder of the gateway (SockJS frames, chat JSON
 * bodies, configuration text). */
#ifndef CHATGATE_UTF8_H
#define CHATGATE_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Length of the well-formed UTF-8 sequence at p (RFC 3629 table 3-7: no
 * overlongs, no surrogates, nothing above U+10FFFF) and its code point in
 * *cp, or 0 when p[0..n) does not start with one (n == 0 included). */
size_t cg_utf8_next(const unsigned char *p, size_t n, uint32_t *cp);

/* 1 when p[0..n) is well-formed UTF-8 throughout (n == 0 included). */
int cg_utf8_valid(const void *p, size_t n);

/* Copy src[0..n) into dst (cap bytes, cap >= 1), NUL-terminated, with each
 * byte that does not start a well-formed sequence replaced by U+FFFD (EF BF
 * BD), so the result is valid UTF-8 for a text frame whatever the peer
 * sent. Stops before a character that would not fit whole; the result
 * holds at most 3 * n bytes. Returns its length (without the NUL). */
size_t cg_utf8_sanitize(char *dst, size_t cap, const void *src, size_t n);

#endif
