/* sockjs_frame.c - SockJS 0.3.3 framing as pure functions of bytes.
 *
 * What it does. The sockjs_*.c files move bytes between lws and a session;
 * everything in between that depends only on the bytes lives here, with no
 * lws, no allocation and no state kept between calls:
 *
 *   URL      "/000/abcd1234/xhr_send" -> {CG_SJ_XHR_SEND, "000", "abcd1234"}
 *   out      one STOMP frame -> one JSON string literal of an a[...] frame
 *   in       ["CONNECT\n...\u0000", "..."] -> the STOMP bytes, concatenated
 *   jsonp    callback name check, the d= field of a form body
 *
 * Decoder state machine (one pass, no backtracking; every state reads
 * forward only, so a payload costs O(n) and never reads past in + len):
 *
 *   START --ws--> START --'['--> ARRAY_OPEN --ws--> ARRAY_OPEN
 *     |                            |   ']' -> TAIL     '"' -> STRING
 *     |  '"' (DECODE_SINGLE)       v
 *     +------------------------> STRING --'"'--> AFTER_ELEM (TAIL if single)
 *                                  ^                |  ','  -> NEXT (ws, '"')
 *                                  +-- NEXT <-------+  ']'  -> TAIL (ws, end)
 *   anything else, at any point: CG_SJ_E_BROKEN
 *
 * Invariants callers rely on: the decoder writes at most len bytes to out
 * (an escape is never shorter than what it decodes to: \uXXXX is 6 bytes
 * for at most 3, a \u pair 12 for 4, U+FFFD 3 for 6); the quoter's measure
 * and write passes agree to the byte; both emit only well-formed UTF-8. */
#include "fmacros.h"

#include <stdint.h>
#include <string.h>

#include "core/utf8.h"
#include "transport/sockjs_frame.h"

/* ------------------------------------------------------------------------ */
/* UTF-8                                                                     */
/* ------------------------------------------------------------------------ */

/* Encode cp (< 0x110000, not a surrogate) at o; returns the byte count. */
static size_t
utf8_put(unsigned char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ------------------------------------------------------------------------ */
/* URLs                                                                      */
/* ------------------------------------------------------------------------ */

static const struct {
    const char          *name;
    enum cg_sockjs_route route;
} transports[] = {
    { "websocket",     CG_SJ_WEBSOCKET },
    { "xhr",           CG_SJ_XHR },
    { "xhr_send",      CG_SJ_XHR_SEND },
    { "xhr_streaming", CG_SJ_XHR_STREAMING },
    { "eventsource",   CG_SJ_EVENTSOURCE },
    { "htmlfile",      CG_SJ_HTMLFILE },
    { "jsonp",         CG_SJ_JSONP },
    { "jsonp_send",    CG_SJ_JSONP_SEND },
};

static int
str_is(const char *p, size_t len, const char *lit)
{
    size_t n = strlen(lit);

    return len == n && memcmp(p, lit, n) == 0;
}

int
cg_sockjs_id_valid(const char *id, size_t len)
{
    if (len == 0 || len > CG_SOCKJS_ID_MAX)
        return 0;
    return memchr(id, '.', len) == NULL && memchr(id, '/', len) == NULL;
}

void
cg_sockjs_parse_path(const char *path, size_t len, struct cg_sockjs_path *out)
{
    const char *seg[3], *p, *end = path + len;
    size_t seglen[3];
    int n = 0;

    memset(out, 0, sizeof *out);
    if (len == 0 || str_is(path, len, "/")) {
        out->route = CG_SJ_GREETING;
        return;
    }
    if (str_is(path, len, "/info")) {
        out->route = CG_SJ_INFO;
        return;
    }
    if (str_is(path, len, "/websocket")) {
        out->route = CG_SJ_RAW_WEBSOCKET;
        return;
    }
    if (path[0] != '/')
        return;
    /* Exactly three segments after the leading slash. */
    for (p = path + 1; n < 3; n++) {
        const char *slash = memchr(p, '/', (size_t)(end - p));

        seg[n] = p;
        seglen[n] = (size_t)((slash ? slash : end) - p);
        if (slash == NULL) {
            n++;
            break;
        }
        p = slash + 1;
        if (n == 2)
            return;                   /* a fourth segment */
    }
    if (n != 3 || !cg_sockjs_id_valid(seg[0], seglen[0]) ||
        !cg_sockjs_id_valid(seg[1], seglen[1]))
        return;
    for (size_t i = 0; i < sizeof transports / sizeof *transports; i++) {
        if (str_is(seg[2], seglen[2], transports[i].name)) {
            out->route = transports[i].route;
            out->server = (struct stomp_str){ seg[0], seglen[0] };
            out->session = (struct stomp_str){ seg[1], seglen[1] };
            return;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Quoting                                                                   */
/* ------------------------------------------------------------------------ */

static const char hexdig[] = "0123456789abcdef";

/* The BMP code points SockJS servers escape beyond what JSON needs
 * (sockjs-protocol-0.3.3.py escapable_by_server; surrogates are handled
 * where they are found). Browsers and proxies mangle or drop these: the
 * zero-width and bidi controls, the line/paragraph separators that end a
 * JavaScript string literal, the invisible operators and the specials. */
static int
server_escapes(uint32_t cp)
{
    return (cp >= 0x200C && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202F) ||
           (cp >= 0x2060 && cp <= 0x206F) || (cp >= 0xFFF0 && cp <= 0xFFFF);
}

/* Write \uXXXX for unit at o (when o != NULL); returns 6. */
static size_t
put_u(unsigned char *o, uint32_t unit)
{
    if (o != NULL) {
        o[0] = '\\';
        o[1] = 'u';
        o[2] = (unsigned char)hexdig[(unit >> 12) & 0xF];
        o[3] = (unsigned char)hexdig[(unit >> 8) & 0xF];
        o[4] = (unsigned char)hexdig[(unit >> 4) & 0xF];
        o[5] = (unsigned char)hexdig[unit & 0xF];
    }
    return 6;
}

/* Write a two-byte escape \c (when o != NULL); returns 2. */
static size_t
put_short(unsigned char *o, char c)
{
    if (o != NULL) {
        o[0] = '\\';
        o[1] = (unsigned char)c;
    }
    return 2;
}

size_t
cg_sockjs_quote(const char *in, size_t len, unsigned flags, char *out)
{
    const unsigned char *p = (const unsigned char *)in, *end = p + len;
    unsigned char *o = (unsigned char *)out;
    size_t n = 0, k, seq;
    uint32_t cp;

#define EMIT(expr)                                                         \
    do {                                                                   \
        k = (expr);                                                        \
        n += k;                                                            \
        if (o != NULL)                                                     \
            o += k;                                                        \
    } while (0)

    if (o != NULL)
        *o++ = '"';
    n++;
    while (p < end) {
        unsigned char c = *p;

        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\' &&
            !((flags & CG_SJ_QUOTE_HTML) && (c == '<' || c == '>' || c == '&'))) {
            if (o != NULL)
                *o++ = c;
            n++;
            p++;
            continue;
        }
        if (c < 0x80) {
            switch (c) {
            case '"':  EMIT(put_short(o, '"')); break;
            case '\\': EMIT(put_short(o, '\\')); break;
            case '\b': EMIT(put_short(o, 'b')); break;
            case '\f': EMIT(put_short(o, 'f')); break;
            case '\n': EMIT(put_short(o, 'n')); break;
            case '\r': EMIT(put_short(o, 'r')); break;
            case '\t': EMIT(put_short(o, 't')); break;
            default:   EMIT(put_u(o, c)); break;   /* controls, < > & */
            }
            p++;
            continue;
        }
        seq = cg_utf8_next(p, (size_t)(end - p), &cp);
        if (seq == 0) {
            /* An encoded surrogate (ED A0..BF 80..BF, as CESU-8 or WTF-8
             * write one) goes out as the \udxxx unit a JavaScript string
             * would hold; any other ill-formed byte is U+FFFD. */
            if (c == 0xED && end - p >= 3 && p[1] >= 0xA0 && p[1] <= 0xBF &&
                p[2] >= 0x80 && p[2] <= 0xBF) {
                cp = 0xD000u | ((uint32_t)(p[1] & 0x3F) << 6) | (p[2] & 0x3Fu);
                EMIT(put_u(o, cp));
                p += 3;
            } else {
                EMIT(put_u(o, 0xFFFD));
                p++;
            }
            continue;
        }
        if (cp >= 0x10000) {
            /* A UTF-16 surrogate pair, both halves escaped, as sockjs-node
             * escapes every unit in U+D800-U+DFFF. */
            cp -= 0x10000;
            EMIT(put_u(o, 0xD800 + (cp >> 10)));
            EMIT(put_u(o, 0xDC00 + (cp & 0x3FF)));
        } else if (server_escapes(cp)) {
            EMIT(put_u(o, cp));
        } else {
            if (o != NULL) {
                memcpy(o, p, seq);
                o += seq;
            }
            n += seq;
        }
        p += seq;
    }
    if (o != NULL)
        *o = '"';
    n++;
    return n;
#undef EMIT
}

/* ------------------------------------------------------------------------ */
/* Decoding                                                                  */
/* ------------------------------------------------------------------------ */

struct dec {
    const unsigned char *p, *end;
    unsigned char       *o;
};

static void
skip_ws(struct dec *d)
{
    while (d->p < d->end &&
           (*d->p == ' ' || *d->p == '\t' || *d->p == '\n' || *d->p == '\r'))
        d->p++;
}

static int
hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Read the 4 hex digits of a \u escape whose 'u' is at p; -1 if bad. */
static long
read_u4(const unsigned char *p, const unsigned char *end)
{
    long v = 0;

    if (end - p < 5)
        return -1;
    for (int i = 1; i <= 4; i++) {
        int h = hexval(p[i]);

        if (h < 0)
            return -1;
        v = (v << 4) | h;
    }
    return v;
}

/* Decode the string whose opening quote is at d->p; on success d->p is
 * past the closing quote and its bytes were appended at d->o. */
static int
dec_string(struct dec *d, cg_sockjs_msg_cb cb, void *data)
{
    unsigned char *start = d->o;
    uint32_t cp;
    size_t k;

    d->p++;                                   /* the opening quote */
    for (;;) {
        unsigned char c;

        if (d->p >= d->end)
            return CG_SJ_E_BROKEN;            /* unterminated */
        c = *d->p;
        if (c == '"') {
            d->p++;
            if (cb != NULL)
                cb((const char *)start, (size_t)(d->o - start), data);
            return 0;
        }
        if (c < 0x20)
            return CG_SJ_E_BROKEN;            /* raw control character */
        if (c != '\\') {
            k = cg_utf8_next(d->p, (size_t)(d->end - d->p), &cp);
            if (k == 0)
                return CG_SJ_E_BROKEN;        /* not UTF-8 */
            memmove(d->o, d->p, k);   /* may be in place: o <= p */
            d->o += k;
            d->p += k;
            continue;
        }
        if (d->end - d->p < 2)
            return CG_SJ_E_BROKEN;
        switch (d->p[1]) {
        case '"':  *d->o++ = '"';  d->p += 2; continue;
        case '\\': *d->o++ = '\\'; d->p += 2; continue;
        case '/':  *d->o++ = '/';  d->p += 2; continue;
        case 'b':  *d->o++ = '\b'; d->p += 2; continue;
        case 'f':  *d->o++ = '\f'; d->p += 2; continue;
        case 'n':  *d->o++ = '\n'; d->p += 2; continue;
        case 'r':  *d->o++ = '\r'; d->p += 2; continue;
        case 't':  *d->o++ = '\t'; d->p += 2; continue;
        case 'u':  break;
        default:   return CG_SJ_E_BROKEN;
        }
        {
            long u = read_u4(d->p + 1, d->end), lo;

            if (u < 0)
                return CG_SJ_E_BROKEN;
            d->p += 6;
            if (u >= 0xD800 && u <= 0xDBFF && d->end - d->p >= 6 &&
                d->p[0] == '\\' && d->p[1] == 'u' &&
                (lo = read_u4(d->p + 1, d->end)) >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000u + ((uint32_t)(u - 0xD800) << 10) + (uint32_t)(lo - 0xDC00);
                d->p += 6;
            } else if (u >= 0xD800 && u <= 0xDFFF) {
                cp = 0xFFFD;                  /* lone surrogate */
            } else {
                cp = (uint32_t)u;
            }
            d->o += utf8_put(d->o, cp);
        }
    }
}

int
cg_sockjs_decode(const char *in, size_t len, unsigned flags, char *out,
                 size_t *out_len, cg_sockjs_msg_cb cb, void *data)
{
    struct dec d = { (const unsigned char *)in, (const unsigned char *)in + len,
                     (unsigned char *)out };
    int rc;

    *out_len = 0;
    if (len == 0)
        return CG_SJ_E_EMPTY;
    skip_ws(&d);
    if (d.p < d.end && *d.p == '"' && (flags & CG_SJ_DECODE_SINGLE)) {
        if ((rc = dec_string(&d, cb, data)) < 0)
            return rc;
    } else {
        if (d.p >= d.end || *d.p != '[')
            return CG_SJ_E_BROKEN;
        d.p++;
        skip_ws(&d);
        if (d.p < d.end && *d.p == ']') {
            d.p++;                            /* [] : no messages */
        } else {
            for (;;) {
                if (d.p >= d.end || *d.p != '"')
                    return CG_SJ_E_BROKEN;    /* only strings */
                if ((rc = dec_string(&d, cb, data)) < 0)
                    return rc;
                skip_ws(&d);
                if (d.p < d.end && *d.p == ',') {
                    d.p++;
                    skip_ws(&d);
                    continue;
                }
                if (d.p < d.end && *d.p == ']') {
                    d.p++;
                    break;
                }
                return CG_SJ_E_BROKEN;
            }
        }
    }
    skip_ws(&d);
    if (d.p != d.end)
        return CG_SJ_E_BROKEN;                /* trailing bytes */
    *out_len = (size_t)(d.o - (unsigned char *)out);
    return 0;
}

const char *
cg_sockjs_decode_strerror(int err)
{
    return err == CG_SJ_E_EMPTY ? "Payload expected." : "Broken JSON encoding.";
}

/* ------------------------------------------------------------------------ */
/* jsonp                                                                     */
/* ------------------------------------------------------------------------ */

int
cg_sockjs_callback_valid(const char *name, size_t len)
{
    if (len == 0 || len > CG_SOCKJS_CALLBACK_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.'))
            return 0;
    }
    return 1;
}

long
cg_sockjs_form_d(const char *body, size_t len, char *out)
{
    const char *p = body, *end = body + len;

    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p)), *fe = amp ? amp : end;

        if (fe - p >= 2 && p[0] == 'd' && p[1] == '=') {
            char *o = out;

            for (p += 2; p < fe; p++) {
                if (*p == '+') {
                    *o++ = ' ';
                } else if (*p == '%') {
                    int hi, lo;

                    if (fe - p < 3 || (hi = hexval((unsigned char)p[1])) < 0 ||
                        (lo = hexval((unsigned char)p[2])) < 0)
                        return CG_SJ_E_BROKEN;
                    *o++ = (char)((hi << 4) | lo);
                    p += 2;
                } else {
                    *o++ = *p;
                }
            }
            return (long)(o - out);
        }
        p = amp ? amp + 1 : end;
    }
    return CG_SJ_E_EMPTY;
}
