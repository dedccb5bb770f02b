/* json_scan.c - see json_scan.h. RFC 8259 grammar, restricted: whitespace
 * is space, tab, CR, LF; strings are checked to be UTF-8 the way jansson
 * checks them (utf8.h: no overlong forms, no surrogates, nothing above
 * U+10FFFF). */
#include "fmacros.h"

#include <string.h>

#include "core/json_scan.h"
#include "core/utf8.h"

#define UINT_DIGITS_MAX 18     /* below 10^18: no overflow, fits json_int_t */

static const char *
skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    return p;
}

/* A string without escapes at *pp (which points at its opening quote);
 * on success *pp is past the closing quote. */
static int
scan_string(const char **pp, const char *end, const char **str, size_t *len)
{
    const unsigned char *p = (const unsigned char *)*pp + 1;
    const unsigned char *e = (const unsigned char *)end;
    const unsigned char *start = p;

    while (p < e && *p != '"') {
        uint32_t cp;
        size_t n;

        if (*p < 0x20 || *p == '\\')
            return -1;
        if ((n = cg_utf8_next(p, (size_t)(e - p), &cp)) == 0)
            return -1;
        p += n;
    }
    if (p >= e)
        return -1;
    *str = (const char *)start;
    *len = (size_t)(p - start);
    *pp = (const char *)p + 1;
    return 0;
}

static int
scan_uint(const char **pp, const char *end, uint64_t *out)
{
    const char *p = *pp;
    uint64_t v = 0;
    size_t n = 0;

    if (p >= end || *p < '1' || *p > '9')
        return -1;
    while (p < end && *p >= '0' && *p <= '9') {
        if (++n > UINT_DIGITS_MAX)
            return -1;
        v = v * 10 + (uint64_t)(*p - '0');
        p++;
    }
    /* A fraction or an exponent makes it a real in jansson's eyes. */
    if (p < end && (*p == '.' || *p == 'e' || *p == 'E'))
        return -1;
    *out = v;
    *pp = p;
    return 0;
}

static struct cg_jscan_field *
find_field(struct cg_jscan_field *fields, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(fields[i].name) == len && memcmp(fields[i].name, name, len) == 0)
            return &fields[i];
    return NULL;
}

int
cg_jscan_object(const char *s, size_t len, struct cg_jscan_field *fields, size_t nfields)
{
    const char *p, *end = s + len;

    for (size_t i = 0; i < nfields; i++)
        fields[i].seen = 0;
    if (s == NULL)
        return -1;
    p = skip_ws(s, end);
    if (p >= end || *p++ != '{')
        return -1;
    p = skip_ws(p, end);
    if (p < end && *p == '}') {
        p++;
        goto done;
    }
    for (;;) {
        const char *name;
        size_t nlen;
        struct cg_jscan_field *f;

        if (p >= end || *p != '"' || scan_string(&p, end, &name, &nlen) < 0)
            return -1;
        if ((f = find_field(fields, nfields, name, nlen)) == NULL || f->seen)
            return -1;
        p = skip_ws(p, end);
        if (p >= end || *p++ != ':')
            return -1;
        p = skip_ws(p, end);
        if (f->type == CG_JSCAN_STRING) {
            if (p >= end || *p != '"' || scan_string(&p, end, &f->str, &f->len) < 0)
                return -1;
        } else if (scan_uint(&p, end, &f->num) < 0) {
            return -1;
        }
        f->seen = 1;
        p = skip_ws(p, end);
        if (p < end && *p == ',') {
            p = skip_ws(p + 1, end);
            continue;
        }
        if (p < end && *p == '}') {
            p++;
            break;
        }
        return -1;
    }
done:
    return skip_ws(p, end) == end ? 0 : -1;
}
