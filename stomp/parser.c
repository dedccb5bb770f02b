#include "fmacros.h"

/* parser.c - finds STOMP frame boundaries and parses frames, incrementally.
 *
 * stomp_parse() is a pure function of the bytes at buf[0..len) plus a small
 * resumable state (struct stomp_parser), picohttpparser style: the caller
 * owns the buffer, a complete frame comes back as views into it with the
 * byte count it used, a partial one as STOMP_AGAIN.
 *
 * Each frame goes through two passes:
 *
 *  1. The scan walks the bytes once, in order, across as many calls as the
 *     bytes need, and decides everything that can go wrong: limits, command,
 *     header syntax, escapes, content-length, terminating NUL. It remembers
 *     only offsets and counters, never pointers, because the caller may
 *     move (compact) the bytes between calls.
 *  2. Once the frame is complete, the fill pass walks the header lines a
 *     second time to hand out the views and unescape them in place. It
 *     cannot fail: the scan validated every byte it touches.
 *
 * Scan states (p->state), one frame at a time:
 *
 *            LF, CR LF: returned as a heart-beat
 *             +-----+
 *             |     v
 *          +---------+  other byte  +-----------+ EOL +-----------+
 *   ---->  |  START  | -----------> |  COMMAND  | --> |  HEADERS  | --+
 *          +---------+              +-----------+     +-----------+   |
 *               ^                                       |  ^  EOL     |
 *               |                                       |  +----------+
 *               |            +--------+  empty line     |
 *               +----------- |  BODY  | <---------------+
 *           frame returned   +--------+
 *           (after the fill pass)
 *
 *   any state -- error --> poisoned: p->err is returned forever.
 *
 * Invariants:
 *
 *  - The scan reads each byte of a frame once, whatever the split of the
 *    input across calls: p->pos is where it stopped (a CR at the end of the
 *    input is looked at again with its successor, a heart-beat's lone CR
 *    likewise), so a frame fed a byte at a time costs O(n). The fill pass
 *    reads the header lines once more.
 *  - The result depends only on the byte stream, not on how it was split.
 *    That is why every check happens at one well-defined byte, in stream
 *    order, and at each byte in the same order: the pending escape letter,
 *    then the byte's own meaning (NUL, colon, CR, LF), then the limit that
 *    byte would break. Never "look further and decide later".
 *  - Nothing is written into buf before the frame is complete, so a caller
 *    may move or copy partial data freely.
 *  - No frame is ever scanned past max_frame_bytes: the scan window is
 *    clamped to it, so a peer cannot make us look at, or the caller hold,
 *    more than that (plus one read).
 *
 * Limits, each checked at the byte that breaks it:
 *
 *  - max_frame_bytes: a frame that is not complete within its first
 *    max_frame_bytes bytes; with content-length, as soon as that header
 *    line ends (and exactly at the blank line), before any body byte.
 *  - max_headers: the first content byte of one header line too many.
 *  - max_header_line, max_header_bytes: the first content byte past either
 *    (content excludes the EOL). Each line gets one byte budget, the
 *    smaller of the two, computed when it starts (p->line_cap); p->line_err
 *    says which limit that budget came from.
 */

#include <assert.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "stomp/stomp.h"
#include "stomp_int.h"

enum {
    S_START,   /* between frames: heart-beat EOLs, or a command begins */
    S_COMMAND, /* in the command line */
    S_HEADERS, /* in the header lines */
    S_BODY     /* after the blank line, looking for the end of the body */
};

#define NO_COLON SIZE_MAX

/* Byte classes for the line scanner. A mask per kind of line selects the
 * classes that mean something there; every other byte is plain content and
 * is skipped by the tight loop in scan_lines(). */
#define K_LF 0x01
#define K_CR 0x02
#define K_NUL 0x04
#define K_COLON 0x08
#define K_BACKSLASH 0x10

#define MASK_COMMAND (K_LF | K_CR | K_NUL)
#define MASK_HEADER (MASK_COMMAND | K_COLON)
#define MASK_HEADER_ESC (MASK_HEADER | K_BACKSLASH)

static const unsigned char byte_class[256] = {
    ['\n'] = K_LF,    ['\r'] = K_CR,           ['\0'] = K_NUL,
    [':'] = K_COLON, ['\\'] = K_BACKSLASH,
};

/* Returns the offset of the first byte in s[i..stop) whose class is in
 * mask, or stop. Reads nothing at or past stop. Unrolled by four, which
 * drops three bound checks in four: header lines are short runs between
 * specials (colon, EOL), too short for word-at-a-time tricks to pay. */
static size_t
skip_plain(const unsigned char *s, size_t i, size_t stop, unsigned mask)
{
    while (stop - i >= 4) {
        if (byte_class[s[i]] & mask)
            return i;
        if (byte_class[s[i + 1]] & mask)
            return i + 1;
        if (byte_class[s[i + 2]] & mask)
            return i + 2;
        if (byte_class[s[i + 3]] & mask)
            return i + 3;
        i += 4;
    }
    while (i < stop && (byte_class[s[i]] & mask) == 0)
        i++;
    return i;
}

static const char content_length[] = "content-length";
#define CONTENT_LENGTH_LEN (sizeof(content_length) - 1)

/* ------------------------------------------------------------------------ */
/* Setup                                                                     */
/* ------------------------------------------------------------------------ */

void
stomp_parser_init(struct stomp_parser *p, const struct stomp_limits *lim)
{
    static const struct stomp_limits defaults = STOMP_LIMITS_DEFAULT;

    memset(p, 0, sizeof(*p));
    stomp_parser_set_limits(p, lim ? lim : &defaults);
    p->version = STOMP_V1_2;
    p->state = S_START;
}

void
stomp_parser_set_version(struct stomp_parser *p, enum stomp_version v)
{
    p->version = v;
}

void
stomp_parser_set_limits(struct stomp_parser *p, const struct stomp_limits *lim)
{
    p->lim = *lim;
    /* stomp_parse() returns frame lengths as ssize_t. */
    if (p->lim.max_frame_bytes > (size_t)SSIZE_MAX)
        p->lim.max_frame_bytes = (size_t)SSIZE_MAX;
}

/* ------------------------------------------------------------------------ */
/* Scan                                                                      */
/* ------------------------------------------------------------------------ */

static ssize_t
fail(struct stomp_parser *p, int err)
{
    p->err = err;
    return err;
}

/* Sets up the scan of the line that starts at offset off: the budget of
 * content bytes it may hold and the error for exceeding it. */
static void
start_line(struct stomp_parser *p, size_t off)
{
    size_t line_max = p->lim.max_header_line;
    size_t bytes_left = p->header_bytes < p->lim.max_header_bytes
                            ? p->lim.max_header_bytes - p->header_bytes
                            : 0;

    p->line = off;
    p->colon = NO_COLON;
    if (p->state == S_COMMAND) {
        p->line_cap = STOMP__COMMAND_MAX_LEN;
        p->line_err = STOMP_E_UNKNOWN_COMMAND;
    } else if (p->nheaders >= p->lim.max_headers) {
        /* Only the blank line may come now. */
        p->line_cap = 0;
        p->line_err = STOMP_E_TOO_MANY_HEADERS;
    } else if (line_max <= bytes_left) {
        p->line_cap = line_max;
        p->line_err = STOMP_E_HEADER_LINE_TOO_LONG;
    } else {
        p->line_cap = bytes_left;
        p->line_err = STOMP_E_HEADERS_TOO_LARGE;
    }
}

static void
begin_frame(struct stomp_parser *p)
{
    p->state = S_COMMAND;
    p->cmd = -1;
    p->escapes = STOMP__ESC_NONE;
    p->esc = 0;
    p->unescape = 0;
    p->has_cl = 0;
    p->pos = 0;
    p->hdr = 0;
    p->body = 0;
    p->nheaders = 0;
    p->header_bytes = 0;
    p->content_length = 0;
    start_line(p, 0);
}

/* Parses a content-length value: one or more ASCII digits, nothing else (no
 * sign, no blanks, no hex), without overflowing size_t. Leading zeros are
 * harmless and allowed. Returns 0 or -1. */
static int
parse_size(const char *s, size_t len, size_t *out)
{
    size_t v = 0;
    size_t i;

    if (len == 0)
        return -1;
    for (i = 0; i < len; i++) {
        size_t d;

        if (s[i] < '0' || s[i] > '9')
            return -1;
        d = (size_t)(s[i] - '0');
        if (v > (SIZE_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* The line that started at p->line has content up to eol (exclusive) and
 * the next line starts at next. Returns 0 or a STOMP_E_* code. */
static int
end_line(struct stomp_parser *p, const char *buf, size_t eol, size_t next)
{
    const char *line = buf + p->line;
    size_t len = eol - p->line;
    size_t max = p->lim.max_frame_bytes;

    if (p->state == S_COMMAND) {
        int cmd = stomp_command_from(line, len);

        if (cmd < 0)
            return STOMP_E_UNKNOWN_COMMAND;
        p->cmd = cmd;
        p->escapes = (unsigned char)stomp__escaping_for(p->version, cmd);
        p->state = S_HEADERS;
        p->hdr = next;
        start_line(p, next);
        return 0;
    }

    if (len == 0) {
        /* The blank line: the body starts at next. With content-length the
         * whole frame size is known now; refuse it before awaiting a single
         * body byte. */
        p->body = next;
        if (p->has_cl &&
            (next >= max || p->content_length > max - next - 1))
            return STOMP_E_FRAME_TOO_LARGE;
        p->state = S_BODY;
        p->pos = next;
        return 0;
    }

    if (p->colon == NO_COLON)
        return STOMP_E_BAD_HEADER;

    /* An escaped name cannot spell content-length differently: no escape
     * sequence decodes to a letter or '-'. So the raw bytes decide, and
     * only the first content-length counts, as for any repeated header. */
    if (!p->has_cl && p->colon - p->line == CONTENT_LENGTH_LEN &&
        memcmp(line, content_length, CONTENT_LENGTH_LEN) == 0) {
        size_t cl;

        if (parse_size(buf + p->colon + 1, eol - p->colon - 1, &cl) < 0)
            return STOMP_E_BAD_CONTENT_LENGTH;
        /* At least a blank line (one byte) and the NUL still follow. */
        if (next >= max || cl > max - next || max - next - cl < 2)
            return STOMP_E_FRAME_TOO_LARGE;
        p->has_cl = 1;
        p->content_length = cl;
    }

    p->nheaders++;
    p->header_bytes += len;
    start_line(p, next);
    return 0;
}

/* Scans the command and header lines in buf[p->pos..end), where end never
 * exceeds max_frame_bytes. Returns 0 with p->state == S_BODY once the blank
 * line was read, 0 with p->pos updated when the bytes ran out first, or a
 * STOMP_E_* code. */
static int
scan_lines(struct stomp_parser *p, const char *buf, size_t end)
{
    const unsigned char *s = (const unsigned char *)buf;
    size_t i = p->pos;
    unsigned mask;
    size_t limit; /* offset of the first content byte over the budget */
    int rc;

again:
    mask = p->state == S_COMMAND
               ? MASK_COMMAND
               : (p->escapes != STOMP__ESC_NONE ? MASK_HEADER_ESC : MASK_HEADER);
    limit = p->line_cap <= SIZE_MAX - p->line ? p->line + p->line_cap
                                                : SIZE_MAX;

    while (i < end) {
        size_t stop;
        size_t next;

        if (p->esc) {
            /* The letter after a backslash, whatever its class. */
            if (stomp__unescape_char((enum stomp__escaping)p->escapes, s[i]) < 0)
                return STOMP_E_BAD_ESCAPE;
            p->esc = 0;
            if (i >= limit)
                return p->line_err;
            i++;
            continue;
        }

        /* The hot loop: plain content bytes within the budget. */
        stop = end < limit ? end : limit;
        i = skip_plain(s, i, stop, mask);
        if (i == end)
            break;

        switch (byte_class[s[i]] & mask) {
        case 0:
            /* A plain byte, and i == limit: one content byte too many. */
            return p->line_err;

        case K_NUL:
            /* Only a body may hold a NUL; here it would end the frame in
             * the middle of its command or headers. */
            return STOMP_E_BAD_FRAME;

        case K_COLON:
            if (p->colon == NO_COLON) {
                if (i == p->line)
                    return STOMP_E_BAD_HEADER; /* empty name */
                p->colon = i;
            }
            if (i >= limit)
                return p->line_err;
            i++;
            continue;

        case K_BACKSLASH:
            if (i >= limit)
                return p->line_err;
            p->esc = 1;
            p->unescape = 1;
            i++;
            continue;

        case K_CR:
            /* Only as part of CR LF. Whether it is cannot be known until
             * the next byte is there: stop on it and look again later. */
            if (i + 1 == end)
                goto out;
            if (s[i + 1] != '\n')
                return p->state == S_COMMAND ? STOMP_E_UNKNOWN_COMMAND
                                             : STOMP_E_BAD_HEADER;
            next = i + 2;
            break;

        case K_LF:
            next = i + 1;
            break;

        default:
            assert(0 && "one class per byte");
            return STOMP_E_BAD_FRAME;
        }

        /* An EOL at i: the line's content is [p->line, i). */
        rc = end_line(p, buf, i, next);
        if (rc < 0)
            return rc;
        i = next;
        if (p->state == S_BODY)
            return 0;
        goto again; /* new line: new mask (after the command), new budget */
    }
out:
    p->pos = i;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Fill                                                                      */
/* ------------------------------------------------------------------------ */

/* Hands out the views of the complete frame the scan validated, unescaping
 * header names and values in place. Every header line holds a colon (the
 * first one ends the name) and ends in LF or CR LF before p->body. */
static void
fill_frame(const struct stomp_parser *p, char *buf, size_t body_len,
           struct stomp_frame *out)
{
    /* Frames without a backslash in their headers skip the decoder. */
    enum stomp__escaping esc =
        p->unescape ? (enum stomp__escaping)p->escapes : STOMP__ESC_NONE;
    char *line = buf + p->hdr;
    char *end = buf + p->body;
    size_t k;

    for (k = 0; k < p->nheaders; k++) {
        struct stomp_header *h = &out->headers[k];
        char *colon = memchr(line, ':', (size_t)(end - line));
        char *lf, *eol;
        size_t len;
        int rc;

        assert(colon != NULL && colon > line);
        lf = memchr(colon, '\n', (size_t)(end - colon));
        assert(lf != NULL);
        eol = lf[-1] == '\r' ? lf - 1 : lf;

        h->name.ptr = line;
        h->name.len = (size_t)(colon - line);
        h->value.ptr = colon + 1;
        h->value.len = (size_t)(eol - colon - 1);
        if (esc != STOMP__ESC_NONE) {
            rc = stomp__unescape_inplace(line, h->name.len, esc, &len);
            assert(rc == STOMP_OK);
            h->name.len = len;
            rc = stomp__unescape_inplace(colon + 1, h->value.len, esc, &len);
            assert(rc == STOMP_OK);
            (void)rc; /* the scan validated every escape */
            h->value.len = len;
        }
        line = lf + 1;
    }

    out->command = (enum stomp_command)p->cmd;
    out->nheaders = p->nheaders;
    out->body.ptr = buf + p->body;
    out->body.len = body_len;
}

/* ------------------------------------------------------------------------ */
/* Entry point                                                               */
/* ------------------------------------------------------------------------ */

/* Counts the bare EOLs (LF or CR LF) at the start of buf[0..len). A CR at
 * the very end is not counted: its LF may still be on the way. */
static size_t
count_eols(const char *buf, size_t len)
{
    size_t i = 0;

    for (;;) {
        if (i < len && buf[i] == '\n')
            i += 1;
        else if (i + 1 < len && buf[i] == '\r' && buf[i + 1] == '\n')
            i += 2;
        else
            return i;
    }
}

ssize_t
stomp_parse(struct stomp_parser *p, char *buf, size_t len,
            struct stomp_frame *out)
{
    size_t max = p->lim.max_frame_bytes;
    size_t end, used, body_len;
    int rc;

    if (p->err != 0)
        return p->err;

    if (p->state == S_START) {
        size_t n = count_eols(buf, len);

        if (n > 0) {
            /* Heart-beats are not frames: no limit applies, and they are
             * handed back at once so the read timer is refreshed even
             * when nothing else follows. */
            out->command = STOMP_CMD_HEARTBEAT;
            out->nheaders = 0;
            out->body.ptr = NULL;
            out->body.len = 0;
            return (ssize_t)n;
        }
        if (len == 0 || (len == 1 && buf[0] == '\r'))
            return STOMP_AGAIN;
        begin_frame(p);
    }

    /* The caller hands back at least the bytes it handed before. */
    assert(len >= p->pos);
    end = len < max ? len : max;

    if (p->state != S_BODY) {
        rc = scan_lines(p, buf, end);
        if (rc < 0)
            return fail(p, rc);
        if (p->state != S_BODY)
            /* Incomplete: with max_frame_bytes bytes at hand it cannot end
             * within the limit any more. */
            return len >= max ? fail(p, STOMP_E_FRAME_TOO_LARGE)
                              : STOMP_AGAIN;
    }

    if (p->has_cl) {
        /* end_line() made sure this fits max_frame_bytes. */
        used = p->body + p->content_length + 1;
        if (len < used)
            return STOMP_AGAIN;
        if (buf[used - 1] != '\0')
            return fail(p, STOMP_E_BAD_FRAME);
        body_len = p->content_length;
    } else {
        const char *nul = NULL;

        if (p->pos < end)
            nul = memchr(buf + p->pos, '\0', end - p->pos);
        if (nul == NULL) {
            if (len >= max)
                return fail(p, STOMP_E_FRAME_TOO_LARGE);
            p->pos = end;
            return STOMP_AGAIN;
        }
        used = (size_t)(nul - buf) + 1;
        body_len = (size_t)(nul - buf) - p->body;
    }

    fill_frame(p, buf, body_len, out);
    p->state = S_START;
    p->pos = 0;
    return (ssize_t)used;
}
