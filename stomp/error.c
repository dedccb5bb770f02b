#include "fmacros.h"

/* error.c - one line of text per STOMP_E_* code.
 *
 * stomp_strerror() gives a static line per code. stomp_strerror_limit()
 * words the same line for an ERROR frame and, for the four limit codes,
 * puts the value of the limit in it ("frame exceeds 65536 bytes
 * (max_frame_bytes)"), so that a peer that hit a limit learns which one and
 * where it stands. Both follow STYLE.md section 3: one line, what was
 * wrong and what the limit was, no "error:" prefix.
 *
 * No state: the message table is const.
 */

#include <stdio.h>

#include "stomp/stomp.h"

/* Indexed by -code; the designated initializers keep each line next to its
 * code whatever order the enum is in. */
static const char *const messages[] = {
    [-STOMP_OK] = "success",
    [-STOMP_E_FRAME_TOO_LARGE] = "frame too large (max_frame_bytes)",
    [-STOMP_E_TOO_MANY_HEADERS] = "too many headers (max_headers)",
    [-STOMP_E_HEADER_LINE_TOO_LONG] = "header line too long (max_header_line)",
    [-STOMP_E_HEADERS_TOO_LARGE] = "headers too large (max_header_bytes)",
    [-STOMP_E_BAD_ESCAPE] = "undefined escape sequence in a header",
    [-STOMP_E_BAD_CONTENT_LENGTH] =
        "content-length is not an unsigned decimal number",
    [-STOMP_E_UNKNOWN_COMMAND] = "unknown command",
    [-STOMP_E_BAD_HEADER] =
        "malformed header line (no colon, empty name or stray CR)",
    [-STOMP_E_BAD_FRAME] = "malformed frame (NUL missing or misplaced)",
    [-STOMP_E_BAD_VALUE] = "header cannot be encoded in this frame",
    [-STOMP_E_NOSPACE] = "output buffer too small",
};

const char *
stomp_strerror(int code)
{
    if (code > 0 || -code >= (int)(sizeof(messages) / sizeof(messages[0])) ||
        messages[-code] == NULL)
        return "unknown error";
    return messages[-code];
}

int
stomp_strerror_limit(int code, const struct stomp_limits *lim, char *buf,
                     size_t cap)
{
    if (lim != NULL) {
        switch (code) {
        case STOMP_E_FRAME_TOO_LARGE:
            return snprintf(buf, cap, "frame exceeds %zu bytes (max_frame_bytes)",
                            lim->max_frame_bytes);
        case STOMP_E_TOO_MANY_HEADERS:
            return snprintf(buf, cap, "more than %zu headers (max_headers)",
                            lim->max_headers);
        case STOMP_E_HEADER_LINE_TOO_LONG:
            return snprintf(buf, cap,
                            "header line exceeds %zu bytes (max_header_line)",
                            lim->max_header_line);
        case STOMP_E_HEADERS_TOO_LARGE:
            return snprintf(buf, cap,
                            "headers exceed %zu bytes (max_header_bytes)",
                            lim->max_header_bytes);
        default:
            break;
        }
    }
    return snprintf(buf, cap, "%s", stomp_strerror(code));
}
