/* log.c - leveled one-line logging, lws log routing and a safe repr of peer
 * bytes (STYLE.md section 8).
 *
 * A line is
 *
 *     2026-11-21T21:07:53.123Z NOTICE [s#42 u=wususu 10.0.0.1:51234 ws] text
 *
 * an ISO-8601 UTC timestamp with milliseconds, the level, the context in
 * brackets when there is one, and the message. Each line is formatted into
 * a stack buffer and leaves with a single write(2) to fd 2. Lines are capped
 * at PIPE_BUF bytes, which POSIX guarantees is written atomically to a pipe,
 * so several gateway processes sharing one log pipe (one per core) never
 * interleave inside a line; a longer message is cut and ends in "...".
 * Nothing is buffered in the process, so no line is lost on a crash and the
 * emitter is safe to call from libuv's thread pool.
 *
 * A line is one line: newlines and other control characters inside the
 * message or the context become spaces, so a log reader can split on '\n'.
 * Peer bytes must still go through cg_log_repr(), which escapes them
 * visibly and bounds their length.
 *
 * State: cg_log_threshold (set once at startup, read by the cg_log macros
 * before any formatting) is the only mutable global; the sink is fd 2. */
#include "fmacros.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "core/common.h"
#include "core/log.h"

enum cg_log_level cg_log_threshold = CG_LOG_INFO;

/* Indexed by enum cg_log_level: the config spelling and the line spelling. */
static const struct {
    const char *name;
    const char *tag;
} levels[] = {
    [CG_LOG_ERROR]  = { "error",  "ERROR" },
    [CG_LOG_WARN]   = { "warn",   "WARN" },
    [CG_LOG_NOTICE] = { "notice", "NOTICE" },
    [CG_LOG_INFO]   = { "info",   "INFO" },
    [CG_LOG_DEBUG]  = { "debug",  "DEBUG" },
};

#define NLEVELS (sizeof levels / sizeof levels[0])

/* PIPE_BUF is 4096 on Linux: the longest line that cannot interleave. */
#define LOG_LINE_MAX PIPE_BUF

/* ------------------------------------------------------------------------ */
/* Levels                                                                    */
/* ------------------------------------------------------------------------ */

int
cg_log_level_parse(const char *name, enum cg_log_level *out)
{
    for (size_t i = 0; i < NLEVELS; i++) {
        if (strcmp(name, levels[i].name) == 0) {
            *out = (enum cg_log_level)i;
            return 0;
        }
    }
    return CG_E_INVAL;
}

void
cg_log_set_level(enum cg_log_level lvl)
{
    cg_log_threshold = lvl;
}

/* ------------------------------------------------------------------------ */
/* Emitting                                                                  */
/* ------------------------------------------------------------------------ */

/* Replace control characters in s[0..len) with spaces. */
static void
flatten(char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            s[i] = ' ';
}

/* Write the "timestamp LEVEL " prefix into buf (at least 64 bytes). */
static size_t
format_prefix(char *buf, size_t cap, enum cg_log_level lvl)
{
    struct timespec ts;
    struct tm tm;
    int n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                 (size_t)lvl < NLEVELS ? levels[lvl].tag : "?");
    return n > 0 ? (size_t)n : 0;
}

/* Write all of buf to fd 2 in one write(2); retry only on EINTR or a short
 * write (which a pipe never does for <= PIPE_BUF bytes). Errors are
 * dropped: there is nowhere left to report them. */
static void
write_line(const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, buf, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        buf += n;
        len -= (size_t)n;
    }
}

void
cg_log_emit(enum cg_log_level lvl, const char *ctx, const char *fmt, ...)
{
    char line[LOG_LINE_MAX];
    const size_t room = sizeof line - 1;     /* keep one byte for '\n' */
    int saved_errno = errno;                 /* callers log, then look at errno */
    size_t len, start;
    va_list ap;
    int n;

    len = format_prefix(line, room, lvl);
    if (ctx != NULL && ctx[0] != '\0') {
        start = len;
        n = snprintf(line + len, room - len, "[%s] ", ctx);
        len = n < 0 ? len : len + (size_t)n < room ? len + (size_t)n : room - 1;
        flatten(line + start, len - start);
    }
    start = len;
    va_start(ap, fmt);
    n = vsnprintf(line + len, room - len, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if (len + (size_t)n >= room) {           /* truncated: say so */
        len = room - 1;
        memcpy(line + len - 3, "...", 3);
    } else {
        len += (size_t)n;
    }
    while (len > start && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;                               /* the line end is ours to add */
    flatten(line + start, len - start);
    line[len++] = '\n';
    write_line(line, len);
    errno = saved_errno;
}

/* ------------------------------------------------------------------------ */
/* libwebsockets routing                                                     */
/* ------------------------------------------------------------------------ */

/* lws levels we ask for at each of our thresholds, and what they become. */
static const struct {
    int lll;
    enum cg_log_level lvl;
} lws_levels[] = {
    { LLL_ERR,    CG_LOG_ERROR },
    { LLL_WARN,   CG_LOG_WARN },
    { LLL_NOTICE, CG_LOG_NOTICE },
    { LLL_USER,   CG_LOG_INFO },
    { LLL_INFO,   CG_LOG_DEBUG },
    { LLL_DEBUG,  CG_LOG_DEBUG },
};

#define NLWS_LEVELS (sizeof lws_levels / sizeof lws_levels[0])

/* lws's stderr emitter prefixes "[2026/11/21 21:07:53:1234] N: "; lws
 * 4.1's custom emitters receive the bare message, but other builds and
 * versions add the stamp before calling us. Skip it when it is there: a
 * '[' followed only by digits, '/', ':', '.' and spaces up to ']', then an
 * optional one-letter level tag "X: ". */
static const char *
skip_lws_stamp(const char *s)
{
    const char *p = s + 1;

    if (s[0] != '[')
        return s;
    while ((*p >= '0' && *p <= '9') || *p == '/' || *p == ':' || *p == '.' ||
           *p == ' ')
        p++;
    if (*p != ']' || p - s < 9)              /* shortest stamp: "[1:2:3:4]" */
        return s;
    p++;
    while (*p == ' ')
        p++;
    if (p[0] >= 'A' && p[0] <= 'Z' && p[1] == ':' && p[2] == ' ')
        p += 3;
    return p;
}

static void
on_lws_line(int level, const char *line)
{
    enum cg_log_level lvl = CG_LOG_DEBUG;
    size_t len;

    for (size_t i = 0; i < NLWS_LEVELS; i++)
        if (level & lws_levels[i].lll) {
            lvl = lws_levels[i].lvl;
            break;
        }
    if (!cg_log_enabled(lvl))
        return;
    line = skip_lws_stamp(line);
    len = strlen(line);
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    cg_log_emit(lvl, "lws", "%.*s", (int)len, line);
}

void
cg_log_route_lws(void)
{
    int mask = 0;

    for (size_t i = 0; i < NLWS_LEVELS; i++)
        if (cg_log_enabled(lws_levels[i].lvl))
            mask |= lws_levels[i].lll;
    lws_set_log_level(mask, on_lws_line);
}

/* ------------------------------------------------------------------------ */
/* Safe repr of peer bytes                                                   */
/* ------------------------------------------------------------------------ */

/* Write the escape of byte c into e (4 bytes); returns its length. */
static size_t
escape_byte(unsigned char c, char *e)
{
    static const char hex[] = "0123456789abcdef";

    switch (c) {
    case '\\': memcpy(e, "\\\\", 2); return 2;
    case '"':  memcpy(e, "\\\"", 2); return 2;
    case '\n': memcpy(e, "\\n", 2);  return 2;
    case '\r': memcpy(e, "\\r", 2);  return 2;
    case '\t': memcpy(e, "\\t", 2);  return 2;
    default:
        break;
    }
    if (c >= 0x20 && c < 0x7f) {
        e[0] = (char)c;
        return 1;
    }
    e[0] = '\\';
    e[1] = 'x';
    e[2] = hex[c >> 4];
    e[3] = hex[c & 0xf];
    return 4;
}

/* The result is quoted, so an empty input shows as "" and a cut one as
 * "CONNECT\naccept-ver"... with the marker outside the quotes, where peer
 * bytes can never put it. Both limits cut: more than max input bytes, or
 * an escaped form that does not fit in cap. */
const char *
cg_log_repr(const void *buf, size_t len, size_t max, char *out, size_t cap)
{
    const unsigned char *in = buf;
    const size_t tail = sizeof "\"...";      /* closing quote, "...", NUL */
    size_t i, o = 0, n = len < max ? len : max;
    char e[4];

    if (cap < 1 + tail) {                    /* too small for even "" ... */
        if (cap > 0)
            out[0] = '\0';
        return out;
    }
    out[o++] = '"';
    for (i = 0; i < n; i++) {
        size_t elen = escape_byte(in[i], e);

        if (o + elen + tail > cap)
            break;
        memcpy(out + o, e, elen);
        o += elen;
    }
    out[o++] = '"';
    if (i < len) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}
