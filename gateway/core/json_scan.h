/* json_scan.h - a strict single-pass reader for the flat JSON objects that
 * make up almost every chat request ({"msgID":"..","reciverId":2,
 * "content":".."}), so the hot path needs no allocation and no DOM.
 *
 * It only says yes to the simple, common shape and leaves everything else
 * to the full decoder (jansson): a member not in the caller's list, a
 * duplicate, a string with an escape or a control character, invalid
 * UTF-8, a number that is not a plain positive integer of up to 18 digits,
 * nested values, trailing data. So whatever it accepts, the full decoder
 * would decode to the same values; whatever it refuses gets the full
 * decoder's exact answer (including its error message). */
#ifndef CHATGATE_JSON_SCAN_H
#define CHATGATE_JSON_SCAN_H

#include <stddef.h>
#include <stdint.h>

enum cg_jscan_type {
    CG_JSCAN_STRING = 1,      /* raw bytes between the quotes (no escapes) */
    CG_JSCAN_UINT,            /* a JSON integer in 1 .. 10^18 - 1 */
};

struct cg_jscan_field {
    const char        *name;  /* member name (ASCII, no escapes) */
    enum cg_jscan_type type;
    int                seen;  /* out: 1 when present */
    const char        *str;   /* out, CG_JSCAN_STRING: points into the input */
    size_t             len;
    uint64_t           num;   /* out, CG_JSCAN_UINT */
};

/* Read s[0..len) as one JSON object whose members are all among fields[]
 * and of their declared type. Returns 0 when it did (fields[i].seen tells
 * which were present), -1 when the input is not of that simple shape (then
 * nothing may be concluded: use the full decoder). */
int cg_jscan_object(const char *s, size_t len, struct cg_jscan_field *fields,
                    size_t nfields);

#endif
