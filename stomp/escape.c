#include "fmacros.h"

/* escape.c - header escaping per STOMP version, both directions.
 *
 * STOMP 1.1 and 1.2 ("Value Encoding") escape header names and values so
 * that they can carry the bytes that delimit them:
 *
 *     byte      1.0 / CONNECT-like    1.1       1.2
 *     LF        cannot be sent        \n        \n
 *     ':'       as is (value only)    \c        \c
 *     '\'       as is                 \\        \\
 *     CR        cannot be sent        cannot    \r
 *     NUL       cannot be sent (it would end the frame)
 *
 * CONNECT, STOMP and CONNECTED frames are never escaped, in any version, so
 * that a STOMP 1.0 peer can read them. Decoding is the inverse; any other
 * backslash sequence (\t, a backslash at the end) is undefined and is a
 * fatal error (STOMP_E_BAD_ESCAPE), as the 1.2 specification requires.
 *
 * The decoder rewrites in place: "\x" is two bytes that become one, so the
 * write cursor never passes the read cursor:
 *
 *     s:  a b \ n c          read  ------->
 *         a b LF c . .       write ----->     (only ever shrinks)
 *
 * The encoder runs in two steps so that the writer can measure without
 * writing: stomp__escape_measure() validates and sizes, stomp__escape_copy()
 * writes exactly that many bytes.
 *
 * Nothing here allocates or keeps state.
 */

#include <assert.h>
#include <string.h>

#include "stomp_int.h"

enum stomp__escaping
stomp__escaping_for(enum stomp_version v, int cmd)
{
    if (cmd == STOMP_CMD_CONNECT || cmd == STOMP_CMD_STOMP ||
        cmd == STOMP_CMD_CONNECTED)
        return STOMP__ESC_NONE;
    if (v >= STOMP_V1_2)
        return STOMP__ESC_V12;
    if (v == STOMP_V1_1)
        return STOMP__ESC_V11;
    return STOMP__ESC_NONE;
}

int
stomp__unescape_char(enum stomp__escaping esc, unsigned char letter)
{
    if (esc == STOMP__ESC_NONE)
        return -1;
    switch (letter) {
    case 'n':
        return '\n';
    case 'c':
        return ':';
    case '\\':
        return '\\';
    case 'r':
        return esc == STOMP__ESC_V12 ? '\r' : -1;
    default:
        return -1;
    }
}

int
stomp__unescape_inplace(char *s, size_t len, enum stomp__escaping esc,
                        size_t *len_out)
{
    char *end = s + len;
    char *r, *w;

    if (esc == STOMP__ESC_NONE ||
        (r = memchr(s, '\\', len)) == NULL) {
        *len_out = len;
        return STOMP_OK;
    }

    /* Everything before the first backslash stays where it is. From there
     * on, copy runs of plain bytes and decode each escape sequence. */
    w = r;
    while (r < end) {
        char *bs = memchr(r, '\\', (size_t)(end - r));
        size_t run = (size_t)((bs ? bs : end) - r);
        int c;

        if (w != r)
            memmove(w, r, run);
        w += run;
        r += run;
        if (bs == NULL)
            break;
        if (r + 1 == end)
            return STOMP_E_BAD_ESCAPE; /* trailing backslash */
        c = stomp__unescape_char(esc, (unsigned char)r[1]);
        if (c < 0)
            return STOMP_E_BAD_ESCAPE;
        *w++ = (char)c;
        r += 2;
    }
    *len_out = (size_t)(w - s);
    return STOMP_OK;
}

/* The bytes that need a look when encoding; every other byte is copied as
 * it is. */
static const unsigned char special[256] = {
    ['\0'] = 1, ['\n'] = 1, ['\r'] = 1, [':'] = 1, ['\\'] = 1,
};

int
stomp__escape_measure(const char *s, size_t len, enum stomp__escaping esc,
                      enum stomp__field field, size_t *len_out)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = len;
    size_t i;

    for (i = 0; i < len; i++) {
        /* Header fields are mostly plain: skip them four at a time. */
        while (len - i >= 4 &&
               (special[u[i]] | special[u[i + 1]] | special[u[i + 2]] |
                special[u[i + 3]]) == 0)
            i += 4;
        if (i == len)
            break;
        if (!special[u[i]])
            continue;
        switch (s[i]) { /* one of the five special bytes */
        case '\0':
            return STOMP_E_BAD_VALUE;
        case '\n':
            if (esc == STOMP__ESC_NONE)
                return STOMP_E_BAD_VALUE;
            n++;
            break;
        case '\r':
            if (esc != STOMP__ESC_V12)
                return STOMP_E_BAD_VALUE;
            n++;
            break;
        case ':':
            if (esc != STOMP__ESC_NONE)
                n++;
            else if (field == STOMP__FIELD_NAME)
                return STOMP_E_BAD_VALUE;
            break;
        case '\\':
            if (esc != STOMP__ESC_NONE)
                n++;
            break;
        }
    }
    *len_out = n;
    return STOMP_OK;
}

size_t
stomp__escape_copy(char *dst, const char *s, size_t len,
                   enum stomp__escaping esc)
{
    char *w = dst;
    size_t i;

    if (esc == STOMP__ESC_NONE) {
        if (len > 0)
            memcpy(dst, s, len);
        return len;
    }
    for (i = 0; i < len; i++) {
        char letter;

        switch (s[i]) {
        case '\n':
            letter = 'n';
            break;
        case '\r':
            letter = 'r';
            break;
        case ':':
            letter = 'c';
            break;
        case '\\':
            letter = '\\';
            break;
        default:
            *w++ = s[i];
            continue;
        }
        assert(s[i] != '\r' || esc == STOMP__ESC_V12);
        *w++ = '\\';
        *w++ = letter;
    }
    return (size_t)(w - dst);
}
