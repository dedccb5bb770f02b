/* stomp_int.h - internals shared by the files of libstomp.
 *
 * Nothing here is part of the public API: these functions carry a double
 * underscore (stomp__*) and may change with any commit. The unit tests
 * include this header to test escaping directly.
 */
#ifndef STOMP_STOMP_INT_H
#define STOMP_STOMP_INT_H

#include <stddef.h>

#include "stomp/stomp.h"

/* The longest command name, "UNSUBSCRIBE". A command line that is longer is
 * rejected as soon as its twelfth byte arrives instead of being buffered up
 * to max_frame_bytes. */
#define STOMP__COMMAND_MAX_LEN 11

/* How the header lines of one frame are escaped. It depends on the version
 * and on the command, because CONNECT, STOMP and CONNECTED frames are never
 * escaped (STOMP 1.1 and 1.2, "Value Encoding"). */
enum stomp__escaping {
    STOMP__ESC_NONE, /* STOMP 1.0, or a CONNECT-like frame: bytes as they are */
    STOMP__ESC_V11,  /* \n \c \\ */
    STOMP__ESC_V12   /* \n \c \\ \r */
};

/* Which part of a header line a string is: a name may not hold a raw
 * colon, since the first colon ends the name. */
enum stomp__field {
    STOMP__FIELD_NAME,
    STOMP__FIELD_VALUE
};

/* Returns the escaping of the header lines of a cmd frame in version v.
 * cmd is an enum stomp_command value. */
enum stomp__escaping stomp__escaping_for(enum stomp_version v, int cmd);

/* Returns the byte that the escape sequence "\<letter>" stands for under
 * esc, or -1 when that sequence is undefined (every sequence is undefined
 * under STOMP__ESC_NONE). */
int stomp__unescape_char(enum stomp__escaping esc, unsigned char letter);

/* Decodes the escape sequences of s[0..len) in place under esc. The result
 * is never longer than the input; its length goes to *len_out.
 * Returns STOMP_OK, or STOMP_E_BAD_ESCAPE for an undefined sequence or a
 * trailing backslash, in which case s is partly rewritten and *len_out is
 * not set. */
int stomp__unescape_inplace(char *s, size_t len, enum stomp__escaping esc,
                            size_t *len_out);

/* Checks that s[0..len) can be written as a header field under esc and puts
 * the length of its escaped form in *len_out. Returns STOMP_OK or
 * STOMP_E_BAD_VALUE (a NUL; a LF, a CR or a colon in a name that esc cannot
 * encode). Does not check for an empty name: the writer does. */
int stomp__escape_measure(const char *s, size_t len, enum stomp__escaping esc,
                          enum stomp__field field, size_t *len_out);

/* Writes the escaped form of s[0..len) at dst, which has room for the
 * length stomp__escape_measure() returned for the same arguments, and
 * returns that length. s must have passed stomp__escape_measure(). */
size_t stomp__escape_copy(char *dst, const char *s, size_t len,
                          enum stomp__escaping esc);

#endif /* STOMP_STOMP_INT_H */
