/* stomp.h - STOMP 1.0, 1.1 and 1.2 incremental frame parser and frame writer.
 *
 * libstomp is pure: it does no I/O, never allocates and keeps no global
 * state. Everything it needs lives in structures the caller embeds (the
 * parser, the writer) or passes in (the bytes, the header array).
 *
 * Parsing follows picohttpparser: the caller owns the bytes, the parser hands
 * back views into them plus a byte count. A small resumable state (how far
 * the current frame has been scanned) makes a frame that arrives one byte at
 * a time cost O(n) in total, and an error poisons the parser for good, as in
 * hiredis.
 *
 * A session typically does:
 *
 *     struct stomp_limits lim = STOMP_LIMITS_DEFAULT;
 *     struct stomp_header hdrs[64];                 // lim.max_headers
 *     struct stomp_frame  f = { .headers = hdrs };
 *     struct stomp_parser p;
 *
 *     stomp_parser_init(&p, &lim);
 *     ...
 *     // bytes arrived: buf[start..end) holds what is not consumed yet
 *     for (;;) {
 *         ssize_t n = stomp_parse(&p, buf + start, end - start, &f);
 *         if (n == STOMP_AGAIN) break;          // wait for more bytes
 *         if (n < 0) { fail(n); return; }        // ERROR frame, then close
 *         dispatch(&f);                          // views into buf
 *         start += (size_t)n;
 *     }
 *     // compact buf only when start is large (hiredis's 1 KiB rule)
 *
 * Writing is a builder with a sticky error (sqlite JsonString) and a measure
 * mode, so a caller can size its buffer exactly, then serialize once:
 *
 *     struct stomp_writer w;
 *     size_t n;
 *     stomp_writer_init(&w, NULL, 0, STOMP_V1_2);    // measure only
 *     build(&w);                                     // command, headers, body
 *     if (stomp_writer_finish(&w, &n) != STOMP_OK) ...
 *     char *out = malloc(n);
 *     stomp_writer_init(&w, out, n, STOMP_V1_2);
 *     build(&w);
 *     stomp_writer_finish(&w, &n);                   // cannot fail now
 *
 * Error codes of this library are small negative numbers (-1 to -99), so
 * they never collide with -errno values or the gateway's own codes (from
 * -1000 down).
 */
#ifndef STOMP_STOMP_H
#define STOMP_STOMP_H

#include <stddef.h>    /* size_t */
#include <sys/types.h> /* ssize_t */

#include "stomp/str.h" /* struct stomp_str, STOMP_STR() */

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Codes, commands, versions                                                 */
/* ------------------------------------------------------------------------ */

enum stomp_err {
    STOMP_OK = 0,
    STOMP_AGAIN = 0,                  /* stomp_parse() only: need more bytes */
    STOMP_E_FRAME_TOO_LARGE = -1,     /* over max_frame_bytes */
    STOMP_E_TOO_MANY_HEADERS = -2,    /* over max_headers */
    STOMP_E_HEADER_LINE_TOO_LONG = -3, /* over max_header_line */
    STOMP_E_HEADERS_TOO_LARGE = -4,   /* over max_header_bytes */
    STOMP_E_BAD_ESCAPE = -5,          /* undefined escape, e.g. "\t" or a trailing "\" */
    STOMP_E_BAD_CONTENT_LENGTH = -6,  /* not a plain unsigned decimal, or overflows */
    STOMP_E_UNKNOWN_COMMAND = -7,     /* not one of the commands below */
    STOMP_E_BAD_HEADER = -8,          /* no colon, empty name, or a CR not before LF */
    STOMP_E_BAD_FRAME = -9,           /* NUL missing or misplaced; writer calls out of order */
    STOMP_E_BAD_VALUE = -10,          /* writer: header the frame cannot carry */
    STOMP_E_NOSPACE = -11             /* writer: output buffer too small */
};

enum stomp_command {
    STOMP_CMD_CONNECT,
    STOMP_CMD_STOMP,
    STOMP_CMD_CONNECTED,
    STOMP_CMD_SEND,
    STOMP_CMD_SUBSCRIBE,
    STOMP_CMD_UNSUBSCRIBE,
    STOMP_CMD_ACK,
    STOMP_CMD_NACK,
    STOMP_CMD_BEGIN,
    STOMP_CMD_COMMIT,
    STOMP_CMD_ABORT,
    STOMP_CMD_DISCONNECT,
    STOMP_CMD_MESSAGE,
    STOMP_CMD_RECEIPT,
    STOMP_CMD_ERROR,
    STOMP_CMD_HEARTBEAT, /* one or more bare EOLs between frames */
    STOMP_CMD_COUNT      /* number of values above; sizes dispatch tables */
};

/* The numeric values read as the version: 10 is "1.0". */
enum stomp_version {
    STOMP_V1_0 = 10, /* no header escaping at all */
    STOMP_V1_1 = 11, /* escapes \n \c \\ */
    STOMP_V1_2 = 12  /* escapes \n \c \\ \r */
};

/* ------------------------------------------------------------------------ */
/* Limits                                                                    */
/* ------------------------------------------------------------------------ */

/* Every limit is checked while the frame is scanned, so a peer can never
 * make the caller buffer more than the limit (plus one read) before it is
 * told. Each limit has its own error code so the ERROR frame can name it.
 * The defaults are PROTOCOL.md section 3's. */
struct stomp_limits {
    size_t max_frame_bytes;  /* whole frame: command line, headers, blank
                                line, body and the NUL; at most SSIZE_MAX */
    size_t max_headers;      /* header lines in one frame; the caller's
                                header array must have room for this many */
    size_t max_header_line;  /* one raw "name:value" line as sent (before
                                unescaping), without its EOL */
    size_t max_header_bytes; /* sum of all raw header lines of one frame,
                                each measured as for max_header_line */
};

#define STOMP_LIMITS_DEFAULT                                                  \
    {                                                                         \
        .max_frame_bytes = 65536, .max_headers = 64,                          \
        .max_header_line = 8192, .max_header_bytes = 65536                    \
    }

/* ------------------------------------------------------------------------ */
/* Frames                                                                    */
/* ------------------------------------------------------------------------ */

/* Strings are struct stomp_str views (stomp/str.h). */

struct stomp_header {
    struct stomp_str name;  /* unescaped; never empty */
    struct stomp_str value; /* unescaped; may be empty */
};

/* A parsed frame.
 *
 * Every view (header names and values, body) BORROWS the buffer that was
 * passed to stomp_parse(): the views stay valid until the caller reuses,
 * moves (compacts) or frees those bytes. Handlers copy out what they keep.
 * The parser unescapes headers in place inside that buffer, so the frame's
 * bytes no longer read as the wire bytes once the frame is returned. */
struct stomp_frame {
    enum stomp_command command;   /* STOMP_CMD_HEARTBEAT for bare EOLs */
    struct stomp_header *headers; /* set by the caller: room for
                                     max_headers entries; filled in wire
                                     order, repeated names included */
    size_t nheaders;              /* entries filled in headers[] */
    struct stomp_str body;        /* exactly content-length bytes (may hold
                                     NULs) when that header was given,
                                     otherwise the bytes before the first
                                     NUL; empty for a heart-beat */
};

/* Returns the value of the first header called name (NUL-terminated,
 * compared exactly: STOMP header names are case-sensitive), or NULL when the
 * frame has none. The first of repeated headers wins, as STOMP 1.2
 * "Repeated Header Entries" requires; the others stay in f->headers. The
 * result borrows from f and lives as long as f's views do. */
const struct stomp_str *stomp_frame_header(const struct stomp_frame *f,
                                           const char *name);

/* Returns the command's wire name ("SEND"), "heart-beat" for
 * STOMP_CMD_HEARTBEAT (which has no command line), or NULL for a value
 * outside enum stomp_command. The string is static. */
const char *stomp_command_name(enum stomp_command cmd);

/* Returns the command whose wire name is exactly ptr[0..len) (case-
 * sensitive, as the specification writes them), or STOMP_E_UNKNOWN_COMMAND.
 * Never returns STOMP_CMD_HEARTBEAT. */
int stomp_command_from(const char *ptr, size_t len);

/* ------------------------------------------------------------------------ */
/* Parser                                                                    */
/* ------------------------------------------------------------------------ */

/* Embed in the session. Every field is private: use the functions below.
 * The parser never allocates and needs no cleanup. */
struct stomp_parser {
    struct stomp_limits lim;    /* in force for the next frame */
    enum stomp_version version; /* escaping of the next frame */
    int err;                    /* sticky STOMP_E_* once poisoned, else 0 */
    /* The frame being scanned; offsets count from its first byte. */
    int state;                /* how far its scan got */
    int cmd;                  /* its command, once the command line is read */
    int line_err;             /* the error for going past line_cap */
    unsigned char escapes;    /* how its headers are escaped (internal enum) */
    unsigned char esc;        /* a backslash awaits its escape letter */
    unsigned char unescape;   /* some header line held a backslash */
    unsigned char has_cl;     /* it carries content-length */
    size_t pos;               /* bytes scanned so far */
    size_t line;              /* offset of the line being scanned */
    size_t line_cap;          /* content bytes that line may hold */
    size_t colon;             /* offset of its first colon, or SIZE_MAX */
    size_t hdr;               /* offset of the first header line */
    size_t body;              /* offset of the body */
    size_t nheaders;          /* header lines read */
    size_t header_bytes;      /* their raw length, summed */
    size_t content_length;    /* the first content-length's value */
};

/* Initializes p to parse frames from the start of a stream, with a copy of
 * *lim (NULL means STOMP_LIMITS_DEFAULT) and STOMP_V1_2 header escaping.
 *
 * Until the session calls stomp_parser_set_version() after negotiating,
 * frames are unescaped by the STOMP 1.2 rules, except CONNECT, STOMP and
 * CONNECTED frames, whose headers are never unescaped in any version (for
 * STOMP 1.0 compatibility, as the 1.1 and 1.2 specifications require).
 * Since the first frame of a session is CONNECT or STOMP, the default only
 * matters to a peer that sends other frames before negotiating. */
void stomp_parser_init(struct stomp_parser *p, const struct stomp_limits *lim);

/* Sets the header escaping rules for the next frames: STOMP_V1_0 unescapes
 * nothing, STOMP_V1_1 decodes \n \c \\ and STOMP_V1_2 also \r; any other
 * escape is STOMP_E_BAD_ESCAPE. Call it between frames: before the first
 * stomp_parse() or after one returned > 0 (a frame's escaping is fixed when
 * its command line has been read). */
void stomp_parser_set_version(struct stomp_parser *p, enum stomp_version v);

/* Replaces the limits with a copy of *lim for the next frames, e.g. tight
 * ones until CONNECT succeeds, then the configured ones (Redis's
 * unauthenticated caps). Call it between frames, like
 * stomp_parser_set_version(). max_frame_bytes is clamped to SSIZE_MAX. */
void stomp_parser_set_limits(struct stomp_parser *p,
                             const struct stomp_limits *lim);

/* Parses the next frame, which starts at buf[0], from buf[0..len).
 * out->headers must have room for the max_headers of the limits in force.
 *
 * Returns > 0: a frame was parsed and used that many bytes, NUL included;
 *              or, with out->command == STOMP_CMD_HEARTBEAT, that many bytes
 *              were bare EOLs (LF or CR LF) before the next command. The
 *              caller advances buf by that many bytes either way. A heart-
 *              beat's byte count depends on how the bytes arrived: only
 *              "the peer is alive" is meaningful.
 *         STOMP_AGAIN (0): buf holds only part of a frame. Call again with
 *              the same bytes, at buf[0] again (the caller may move them
 *              meanwhile), plus any that arrived; scanning resumes where it
 *              stopped, never from 0. buf is left unchanged.
 *         < 0: a STOMP_E_* code. The parser is poisoned: every later call
 *              returns the same code. The caller must fail the connection
 *              (STOMP 1.2 "Size Limits": ERROR frame, then close);
 *              stomp_strerror_limit() words the message.
 *
 * out is written only when the result is > 0. Its views point into buf, as
 * struct stomp_frame explains, and stomp_parse() writes into buf only then,
 * to unescape header names and values in place (unescaping only shrinks).
 * A heart-beat has no headers and an empty body whose ptr is NULL.
 *
 * Wire rules: LF and CR LF line ends; a CR anywhere else in the command or
 * a header line is an error. Header lines split at the first colon; names
 * and values are never trimmed (RabbitMQ trims nothing either), in STOMP
 * 1.0 too. content-length (the first one) must be a plain unsigned decimal
 * (leading zeros allowed) and the frame it implies must fit max_frame_bytes,
 * both checked before any body byte is awaited; the body must then be
 * followed by a NUL. Bare EOLs before a command are heart-beats, and only
 * EOLs are tolerated between frames: a NUL before a command (RabbitMQ skips
 * such empty frames) or anywhere in the command or header lines is
 * STOMP_E_BAD_FRAME, since it means the peer's framing is broken, and a
 * lone CR there starts a command line, which then fails as
 * STOMP_E_UNKNOWN_COMMAND. A command line longer than any command fails as
 * soon as it is, without waiting for its EOL. Any command of
 * enum stomp_command is accepted in any version and either direction:
 * which frames a peer may send is the session's business.
 *
 * Cost: linear in the bytes of the frame for any way they are split across
 * calls. Never allocates; may be called from any callback. */
ssize_t stomp_parse(struct stomp_parser *p, char *buf, size_t len,
                    struct stomp_frame *out);

/* ------------------------------------------------------------------------ */
/* Writer                                                                    */
/* ------------------------------------------------------------------------ */

/* A frame serializer with a sticky error: the stomp_writer_* calls return
 * nothing, the first error sticks, later calls do nothing, and
 * stomp_writer_finish() reports it. Fields are private but may be read. */
struct stomp_writer {
    char *buf;                  /* output, or NULL to measure only */
    size_t cap;                 /* bytes available at buf; 0 = measure */
    size_t len;                 /* bytes written (or measured) so far */
    int err;                    /* first error, or STOMP_OK */
    enum stomp_version version; /* escaping rules of the output */
    int cmd;                    /* command written, -1 before that */
    int state;                  /* which call may come next */
    int escaping;               /* how this frame's headers are escaped */
};

/* Starts a frame in buf[0..cap) for a peer speaking version v. With
 * cap == 0 or buf == NULL nothing is written and the writer only measures: stomp_writer_finish() then returns the exact length a real
 * write needs, so the caller can allocate once (LWS_PRE + n) and serialize
 * once. Borrows buf until stomp_writer_finish(). */
void stomp_writer_init(struct stomp_writer *w, char *buf, size_t cap,
                       enum stomp_version v);

/* Writes the command line; must be the first call. STOMP_CMD_HEARTBEAT
 * writes a single LF, and no header or body may follow it. A value outside
 * enum stomp_command is STOMP_E_UNKNOWN_COMMAND; a second command is
 * STOMP_E_BAD_FRAME. */
void stomp_writer_command(struct stomp_writer *w, enum stomp_command cmd);

/* Writes one "name:value" header line, escaped as the version requires:
 * STOMP 1.1 writes LF, ':' and '\' as \n \c \\ and 1.2 also CR as \r.
 * CONNECT, STOMP and CONNECTED frames are never escaped, nor is any frame in
 * STOMP 1.0 (clients of those cannot decode escapes).
 *
 * STOMP_E_BAD_VALUE when the header cannot be carried: an empty name, a NUL
 * anywhere, a CR or LF that cannot be escaped (1.0, CONNECT-like frames; CR
 * in 1.1), a colon in a name that cannot be escaped, or the name
 * "content-length", which stomp_writer_body() owns so that the framing is
 * always right. STOMP_E_BAD_FRAME before the command or after the body.
 * Borrows name and value only during the call. */
void stomp_writer_header(struct stomp_writer *w, struct stomp_str name,
                         struct stomp_str value);

/* Writes "content-length:<body.len>", the blank line, the body (which may
 * contain NULs) and the terminating NUL. Optional: without it the frame has
 * no content-length and an empty body. At most once; STOMP_E_BAD_FRAME
 * before the command, after a heart-beat or a second time. */
void stomp_writer_body(struct stomp_writer *w, struct stomp_str body);

/* Ends the frame (the blank line and the NUL, unless stomp_writer_body()
 * wrote them) and returns the first error met by any call, or STOMP_OK:
 * STOMP_E_NOSPACE when buf was too small, STOMP_E_BAD_VALUE,
 * STOMP_E_BAD_FRAME (also when no command was written),
 * STOMP_E_UNKNOWN_COMMAND. On STOMP_OK *len_out (if not NULL) is the frame's
 * length, which the writer wrote at buf or measured; on an error it is 0
 * and buf holds an unspecified prefix. Calling it again returns the same. */
int stomp_writer_finish(struct stomp_writer *w, size_t *len_out);

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

/* Returns a static one-line description of code (a STOMP_E_* value or
 * STOMP_OK), naming the limit for the four limit codes:
 * "frame too large (max_frame_bytes)". Never NULL: an unknown code gives
 * "unknown error". */
const char *stomp_strerror(int code);

/* Writes into buf[0..cap) the one-line message for an ERROR frame, with the
 * value of the limit that was hit taken from *lim:
 *   STOMP_E_FRAME_TOO_LARGE       "frame exceeds 65536 bytes (max_frame_bytes)"
 *   STOMP_E_TOO_MANY_HEADERS      "more than 64 headers (max_headers)"
 *   STOMP_E_HEADER_LINE_TOO_LONG  "header line exceeds 8192 bytes (max_header_line)"
 *   STOMP_E_HEADERS_TOO_LARGE     "headers exceed 65536 bytes (max_header_bytes)"
 * and stomp_strerror(code) for any other code or when lim is NULL. Returns
 * the message's length like snprintf(): buf is always NUL-terminated when
 * cap > 0, and a result >= cap means it was truncated. Pass the limits the
 * parser used when it failed. */
int stomp_strerror_limit(int code, const struct stomp_limits *lim, char *buf,
                         size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* STOMP_STOMP_H */
