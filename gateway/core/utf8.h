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

#endif
