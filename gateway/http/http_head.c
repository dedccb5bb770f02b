/* http_head.c - the check of a connection's first request head (see
 * http_head.h).
 *
 * Why. lws 4.1.6 closes a connection without a word when a request head
 * does not fit its header table (a long request line, many or long header
 * fields: "Ran out of header data space", "More hdr frags than we can deal
 * with") or holds a byte its URI decoder refuses (a NUL, raw or as %00).
 * The client sees a reset or an empty reply and cannot tell why. listener.c
 * peeks at the first head of each plain-HTTP connection before lws reads
 * it and answers 400, 414 or 431 itself; this file decides which. The
 * limits are set so that every head it passes fits lws's table (server.c
 * sizes max_http_header_data from them).
 *
 * How. One pass over the bytes, a byte at a time, through the states
 * below; the first byte that breaks a rule decides. It starts from the
 * first byte on every call: a head is at most http_max_head_bytes (32 KiB
 * at the most) and the caller calls again only when more bytes came.
 *
 *   METHOD --SP--> TARGET --SP--> VERSION --CR LF / LF--> FIELD_START
 *                  (%XX: PCT1, PCT2)                        |  ^
 *                                                           v  |
 *   done <--CR LF / LF (blank line)-- FIELD_START --> NAME --':'--> VALUE
 *
 * Grammar (RFC 9112 section 3 and 5, strict where lws would go astray):
 * method = token; target = any bytes above 0x20 but DEL, %-escapes with two
 * hex digits and never %00; version = "HTTP/" DIGIT "." DIGIT; field =
 * token ":" value, the value any bytes but controls (HT allowed); no
 * obs-fold; a CR only before LF. */
#include "fmacros.h"

#include <string.h>

#include "http/http_head.h"

#define CG_STR_(x) #x
#define CG_STR(x)  CG_STR_(x)

enum state {
    S_METHOD,
    S_TARGET,
    S_PCT1,         /* after '%' */
    S_PCT2,         /* after '%' and one hex digit */
    S_VERSION,      /* matching "HTTP/d.d" */
    S_RL_CR,        /* CR at the end of the request line */
    S_FIELD_START,  /* at the start of a header line (or the blank line) */
    S_NAME,
    S_VALUE,
    S_FIELD_CR,     /* CR at the end of a header line */
    S_END_CR,       /* CR of the blank line */
};

/* RFC 9110 5.6.2 tchar. */
static int
is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int
is_ctl(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

static int
hex_val(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int
refuse(struct cg_http_head_verdict *out, int status, const char *reason)
{
    out->status = status;
    out->reason = reason;
    return 1;
}

/* What lws's URI decoder folds away: an empty segment, "." or "..". The
 * path is followed one decoded byte at a time. */
struct path_scan {
    int    in_path;     /* before the first '?' */
    int    seen_slash;  /* a '/' was seen: segments are counted from it */
    size_t seg_len;     /* bytes of the current segment */
    size_t seg_dots;    /* of which '.' */
    int    folded;
};

static void
path_byte(struct path_scan *p, unsigned char c)
{
    if (!p->in_path)
        return;
    if (c == '/') {
        if (p->seen_slash && (p->seg_len == 0 ||
                              (p->seg_len == p->seg_dots && p->seg_len <= 2)))
            p->folded = 1;
        p->seen_slash = 1;
        p->seg_len = p->seg_dots = 0;
        return;
    }
    p->seg_len++;
    p->seg_dots += c == '.';
}

static void
path_end(struct path_scan *p)
{
    if (p->in_path && p->seen_slash && p->seg_len > 0 &&
        p->seg_len == p->seg_dots && p->seg_len <= 2)
        p->folded = 1;
    p->in_path = 0;
}

int
cg_http_head_check(const char *buf, size_t len, const struct cg_http_head_limits *lim,
                   struct cg_http_head_verdict *out)
{
    static const char http[] = "HTTP/d.d";
    const unsigned char *s = (const unsigned char *)buf;
    struct path_scan ps = { 1, 0, 0, 0, 0 };
    enum state st = S_METHOD;
    size_t end = len < lim->max_head_bytes ? len : lim->max_head_bytes;
    size_t i, tlen = 0, vpos = 0, params = 0, fields = 0;
    int pct_hi = 0;

    memset(out, 0, sizeof *out);
    for (i = 0; i < end; i++) {
        unsigned char c = s[i];

        /* The request line's content ends at its CR or LF. */
        if (st <= S_VERSION && i >= lim->max_request_line && c != '\r' && c != '\n')
            return refuse(out, 414, "request line too long (http_max_request_line)");

        switch (st) {
        case S_METHOD:
            if (is_tchar(c))
                continue;
            if (c == ' ' && i > 0) {
                st = S_TARGET;
                continue;
            }
            return is_ctl(c) ? refuse(out, 400, "control byte in the request line")
                             : refuse(out, 400, "malformed request line");

        case S_TARGET:
            if (c == ' ' && tlen > 0) {
                path_end(&ps);
                st = S_VERSION;
                continue;
            }
            if (c == '\r' || c == '\n' || c == ' ')
                return refuse(out, 400, "malformed request line");
            if (is_ctl(c))
                return refuse(out, 400, "control byte in the request target");
            tlen++;
            if (c == '%') {
                st = S_PCT1;
                continue;
            }
            if (c == '?' || c == '&' || c == ';') {
                if (++params > lim->max_query_params)
                    return refuse(out, 414, "too many query parameters (at most "
                                  CG_STR(CG_HTTP_MAX_QUERY_PARAMS) ")");
                if (c == '?')
                    path_end(&ps);
            }
            path_byte(&ps, c);
            continue;

        case S_PCT1:
        case S_PCT2: {
            int h = hex_val(c);

            if (h < 0)
                return is_ctl(c) ? refuse(out, 400, "control byte in the request target")
                                 : refuse(out, 400, "bad %-escape in the request target");
            tlen++;
            if (st == S_PCT1) {
                pct_hi = h;
                st = S_PCT2;
                continue;
            }
            if (pct_hi == 0 && h == 0)
                return refuse(out, 400, "NUL byte (%00) in the request target");
            path_byte(&ps, (unsigned char)(pct_hi << 4 | h));
            st = S_TARGET;
            continue;
        }

        case S_VERSION:
            if (vpos == sizeof http - 1) {
                if (c == '\r') {
                    st = S_RL_CR;
                    continue;
                }
                if (c == '\n') {
                    st = S_FIELD_START;
                    continue;
                }
            } else if (http[vpos] == 'd' ? (c >= '0' && c <= '9') : c == (unsigned char)http[vpos]) {
                vpos++;
                continue;
            }
            return is_ctl(c) && c != '\r' && c != '\n'
                       ? refuse(out, 400, "control byte in the request line")
                       : refuse(out, 400, "malformed request line");

        case S_RL_CR:
        case S_FIELD_CR:
            if (c != '\n')
                return refuse(out, 400, "CR without LF in the request head");
            st = S_FIELD_START;
            continue;

        case S_FIELD_START:
            if (c == '\r') {
                st = S_END_CR;
                continue;
            }
            if (c == '\n')
                goto done;
            if (c == ' ' || c == '\t')
                return refuse(out, 400, "folded header field (obs-fold)");
            if (++fields > lim->max_headers)
                return refuse(out, 431, "too many header fields (http_max_headers)");
            if (!is_tchar(c))
                return refuse(out, 400, "malformed header field name");
            st = S_NAME;
            continue;

        case S_NAME:
            if (is_tchar(c))
                continue;
            if (c == ':') {
                st = S_VALUE;
                continue;
            }
            return refuse(out, 400, "malformed header field name");

        case S_VALUE:
            if (c == '\r') {
                st = S_FIELD_CR;
                continue;
            }
            if (c == '\n') {
                st = S_FIELD_START;
                continue;
            }
            if (is_ctl(c) && c != '\t')
                return refuse(out, 400, "control byte in a header field");
            continue;

        case S_END_CR:
            if (c != '\n')
                return refuse(out, 400, "CR without LF in the request head");
            goto done;
        }
    }
    /* Out of bytes: more may come, unless the head is at its limit. */
    if (end < len || end == lim->max_head_bytes)
        return st <= S_VERSION
                   ? refuse(out, 414, "request line too long (http_max_request_line)")
                   : refuse(out, 431, "request head too large (http_max_head_bytes)");
    return 0;

done:
    out->head_len = i + 1;
    out->flags = ps.folded ? CG_HTTP_HEAD_F_PATH_FOLDED : 0;
    return 1;
}
