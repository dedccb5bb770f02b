/* session_input.c - the input side of a session: bytes in, the parser,
 * frames out to the dispatch table.
 *
 * What it does. The transport hands over the peer's bytes
 * (cg_session_on_bytes); they are appended to the session's input buffer
 * and parsed (libstomp) frame by frame, each one handed to
 * session_dispatch.c's cg_session__dispatch(); a long-link session's bytes
 * are parsed (liblonglink) packet by packet, each one handed to
 * session_ll.c's cg_session__ll_dispatch(), under the same limits, pauses
 * and timeouts (a packet is held to max_frame_bytes, header included). Reading pauses (transport
 * pause_read + no parsing) while the session waits for its token check
 * and attach, while max_inflight requests await Redis, and for good once
 * it closes (cg_session__pause_input/_resume_input); frames that arrived
 * meanwhile wait, unparsed, and are parsed from the timer once reading
 * resumes.
 *
 * Limits: the parser's (max_frame_bytes, max_headers, max_header_line),
 * tighter before CONNECT succeeds (unauth_max_frame_bytes); while paused,
 * at most max_frame_bytes + SESSION_PAUSED_SLACK of input is kept; a
 * partial frame gets frame_timeout_ms (s->frame_dl, enforced by the timer
 * in session_timer.c). A parse error or a limit is an ERROR and a close
 * through cg_session__fail() (session.c).
 *
 * Owns the input buffer (s->in: lazily allocated, compacted only when the
 * consumed prefix is SESSION_COMPACT_AT or more, freed when empty: idle
 * sessions hold none) and the parser's limits. Frames are views into it,
 * valid until the next stomp_parse() or compaction; F_IN_INPUT marks the
 * time they are live, so a close from inside a handler leaves the buffer
 * for cg_session__process_input() to free. */
#include "fmacros.h"

#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include "core/common.h"
#include "core/config.h"
#include "core/context.h"
#include "core/metrics.h"
#include "session/session.h"
#include "session/session_internal.h"
#include "longlink/longlink.h"
#include "stomp/stomp.h"

/* ------------------------------------------------------------------------ */
/* Limits                                                                   */
/* ------------------------------------------------------------------------ */

/* The parser needs an array of max_headers entries. It lives on the stack
 * of cg_session__process_input() (32 bytes an entry, 32 KiB at most), not
 * in the session, so idle sessions do not pay for it. 1024 is config.c's upper
 * bound for max_headers; the clamp only guards against a mismatch. */
#define SESSION_HEADERS_MAX 1024

/* Input kept while reading is paused: the transport may hand over what it
 * had already read when it was asked to pause (one read), plus this slack
 * for transports that deliver a little more (a SockJS xhr_send batch). */
#define SESSION_PAUSED_SLACK (1024 * 1024)

/* hiredis's rule: compact the input buffer only when the consumed prefix
 * is at least this big, never after each frame. */
#define SESSION_COMPACT_AT 1024

/* ------------------------------------------------------------------------ */
/* The buffer and pausing                                                   */
/* ------------------------------------------------------------------------ */

void
cg_session__input_free(cg_session *s)
{
    cg_free(s->in);
    s->in = NULL;
    s->in_len = s->in_off = s->in_cap = 0;
}

int
cg_session__input_paused(const cg_session *s)
{
    return s->paused != 0;
}

void
cg_session__pause_input(cg_session *s, unsigned why)
{
    s->paused |= (uint8_t)why;
    if (!(s->flags & F_READ_STOPPED) && ops_usable(s)) {
        s->flags |= F_READ_STOPPED;
        s->ops->pause_read(s->t, 1);
    }
}

void
cg_session__resume_input(cg_session *s, unsigned why)
{
    if (!(s->paused & why))
        return;
    s->paused &= (uint8_t)~why;
    if (s->paused != 0)
        return;
    if ((s->flags & F_READ_STOPPED) && ops_usable(s)) {
        s->flags &= (uint16_t)~F_READ_STOPPED;
        s->ops->pause_read(s->t, 0);
    }
    /* The peer was not heard while it could not be read. */
    s->last_read = now_ms(s);
    /* Frames buffered meanwhile are parsed from the timer, never from inside
     * the callback that resumed us (which may be deep in a handler). */
    if (s->in_len > s->in_off) {
        s->flags |= F_PARSE_PENDING;
        cg_session__arm_timer(s);
    }
}

/* ------------------------------------------------------------------------ */
/* Parsing                                                                  */
/* ------------------------------------------------------------------------ */

static void
current_limits(const cg_session *s, struct stomp_limits *lim)
{
    const struct cg_config *cfg = cfg_of(s);
    size_t frame = cfg_size(cfg->max_frame_bytes), line = cfg_size(cfg->max_header_line);
    size_t headers = cfg_size(cfg->max_headers), unauth = cfg_size(cfg->unauth_max_frame_bytes);

    if (!(s->flags & F_AUTH_LIMITS)) {
        /* Redis's unauthenticated caps: a peer that has not proven who it
         * is cannot make us buffer a full-size frame. */
        if (unauth > 0 && unauth < frame)
            frame = unauth;
        if (line > frame)
            line = frame;
    }
    lim->max_frame_bytes = frame;
    lim->max_headers = headers < SESSION_HEADERS_MAX ? headers : SESSION_HEADERS_MAX;
    lim->max_header_line = line;
    lim->max_header_bytes = frame;   /* no separate option: the frame bounds it */
}

void
cg_session__apply_limits(cg_session *s)
{
    struct stomp_limits lim;
    struct ll_limits ll;

    current_limits(s, &lim);
    stomp_parser_set_limits(&s->parser, &lim);
    /* A long-link packet, header included, is held to the frame limit. */
    ll.max_body = lim.max_frame_bytes > LL_HEADER_LEN ? lim.max_frame_bytes - LL_HEADER_LEN : 0;
    ll_parser_set_limits(&s->llp, &ll);
}

/* The limit a long-link packet met, worded as parse_fail() words a frame's. */
void
cg_session__ll_parse_fail(cg_session *s, int err)
{
    struct stomp_limits lim;
    char msg[DETAIL_MAX];

    if (err != LL_E_TOO_LARGE) {
        cg_session__fail(s, CG_E_PROTO, ll_strerror(err));
        return;
    }
    current_limits(s, &lim);
    if (!(s->flags & F_AUTH_LIMITS) &&
        lim.max_frame_bytes < cfg_size(cfg_of(s)->max_frame_bytes))
        snprintf(msg, sizeof msg, "packet exceeds %zu bytes before auth "
                 "(unauth_max_frame_bytes)", lim.max_frame_bytes);
    else
        snprintf(msg, sizeof msg, "packet exceeds %zu bytes (max_frame_bytes)",
                 lim.max_frame_bytes);
    cg_session__fail(s, CG_E_LIMIT, msg);
}

/* The long link's loop of cg_session__process_input(): returns 1 when a
 * packet was dispatched, 0 when more bytes are needed, -1 on an error
 * (the session is failing). */
static int
process_packet(cg_session *s)
{
    struct ll_packet pk;
    ssize_t n = ll_parse(&s->llp, s->in + s->in_off, s->in_len - s->in_off, &pk);

    if (n == LL_AGAIN)
        return 0;
    if (n < 0) {
        cg_session__ll_parse_fail(s, (int)n);
        return -1;
    }
    s->in_off += (size_t)n;
    cg_session__ll_dispatch(s, &pk);
    return 1;
}

static void
parse_fail(cg_session *s, int err)
{
    struct stomp_limits lim;
    char msg[DETAIL_MAX];
    int limit = err == STOMP_E_FRAME_TOO_LARGE || err == STOMP_E_TOO_MANY_HEADERS ||
                err == STOMP_E_HEADER_LINE_TOO_LONG || err == STOMP_E_HEADERS_TOO_LARGE;

    current_limits(s, &lim);
    if (err == STOMP_E_FRAME_TOO_LARGE && !(s->flags & F_AUTH_LIMITS) &&
        lim.max_frame_bytes < cfg_size(cfg_of(s)->max_frame_bytes))
        snprintf(msg, sizeof msg, "frame exceeds %zu bytes before CONNECT "
                 "(unauth_max_frame_bytes)", lim.max_frame_bytes);
    else
        (void)stomp_strerror_limit(err, &lim, msg, sizeof msg);
    cg_session__fail(s, limit ? CG_E_LIMIT : CG_E_PROTO, msg);
}

static int
input_append(cg_session *s, const char *data, size_t len)
{
    size_t unparsed = s->in_len - s->in_off, need, cap;
    char *p;

    if (cg_session__input_paused(s) &&
        unparsed + len > cfg_size(cfg_of(s)->max_frame_bytes) + SESSION_PAUSED_SLACK)
        return CG_E_LIMIT;
    /* Reuse the consumed prefix before growing. */
    if (s->in_off > 0 && (s->in_off >= SESSION_COMPACT_AT || s->in_cap - s->in_len < len)) {
        memmove(s->in, s->in + s->in_off, unparsed);
        s->in_len = unparsed;
        s->in_off = 0;
    }
    need = s->in_len + len;
    if (need > s->in_cap) {
        cap = s->in_cap ? s->in_cap : 512;
        while (cap < need)
            cap *= 2;
        if ((p = cg_realloc(s->in, cap)) == NULL)
            return CG_E_NOMEM;
        s->in = p;
        s->in_cap = cap;
    }
    memcpy(s->in + s->in_len, data, len);
    s->in_len += len;
    return 0;
}

static int
can_dispatch(const cg_session *s)
{
    return s->state != ST_CLOSING && !(s->paused & (PAUSE_AUTH | PAUSE_INFLIGHT));
}

void
cg_session__process_input(cg_session *s)
{
    struct stomp_header hdrs[SESSION_HEADERS_MAX];
    struct stomp_frame f;
    int progressed = 0;
    ssize_t n;

    if (s->flags & F_IN_INPUT)
        return;                    /* the outer loop goes on by itself */
    s->flags |= F_IN_INPUT;
    while (can_dispatch(s) && s->in_off < s->in_len) {
        if (s->proto == CG_PROTO_LONGLINK) {
            int r = process_packet(s);

            if (r <= 0)
                break;
            progressed = 1;
            continue;
        }
        f.headers = hdrs;
        n = stomp_parse(&s->parser, s->in + s->in_off, s->in_len - s->in_off, &f);
        if (n == STOMP_AGAIN)
            break;
        if (n < 0) {
            parse_fail(s, (int)n);
            break;
        }
        s->in_off += (size_t)n;
        progressed = 1;
        if (f.command != STOMP_CMD_HEARTBEAT)
            cg_session__dispatch(s, &f);
    }
    s->flags &= (uint16_t)~F_IN_INPUT;

    if (s->state == ST_CLOSING || s->in_off == s->in_len) {
        cg_session__input_free(s);             /* idle sessions hold no input buffer */
        s->frame_dl = 0;
    } else if (!can_dispatch(s)) {
        s->frame_dl = 0;           /* complete frames may wait; no timeout */
    } else {
        if (s->in_off >= SESSION_COMPACT_AT) {
            memmove(s->in, s->in + s->in_off, s->in_len - s->in_off);
            s->in_len -= s->in_off;
            s->in_off = 0;
        }
        /* A partial frame sits in the buffer: it has frame_timeout_ms from
         * the moment it started (or from the last frame that completed). */
        if (progressed || s->frame_dl == 0)
            s->frame_dl = now_ms(s) + cfg_size(cfg_of(s)->frame_timeout_ms);
    }
    cg_session__arm_timer(s);
}

/* ------------------------------------------------------------------------ */
/* Bytes in (session.h)                                                     */
/* ------------------------------------------------------------------------ */

int
cg_session_on_bytes(cg_session *s, const char *data, size_t len)
{
    int rc;

    if ((s->flags & F_GONE) || s->state == ST_CLOSING)
        return CG_E_CLOSED;
    s->last_read = now_ms(s);
    s->srv->metrics.bytes_in += len;
    if (len == 0)
        return 0;
    cg_session_ref(s);
    rc = input_append(s, data, len);
    if (rc == CG_E_LIMIT) {
        char msg[DETAIL_MAX];

        snprintf(msg, sizeof msg, "input over %zu bytes while reading is paused "
                 "(max_frame_bytes + %d)", cfg_size(cfg_of(s)->max_frame_bytes),
                 SESSION_PAUSED_SLACK);
        cg_session__fail(s, CG_E_LIMIT, msg);
    } else if (rc < 0) {
        cg_session__fail(s, rc, "out of memory");
    } else {
        cg_session__process_input(s);
    }
    rc = s->state == ST_CLOSING ? CG_E_CLOSED : 0;
    cg_session_unref(s);
    return rc;
}

