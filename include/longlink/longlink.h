/* longlink.h - the native long-link packet: an incremental parser and a
 * header encoder.
 *
 * A packet is a 16-byte header and a body (the seed protocol of WeChat's
 * Mars, simplified). The header is big-endian:
 *
 *     offset  size  field
 *     0       4     packet length: header and body; 16 is a header alone
 *     4       2     header length: always 16
 *     6       2     protocol version: 1
 *     8       4     operation (enum ll_op)
 *     12      4     sequence: the client's number of a request, echoed in
 *                   its answer; 0 on what the server sends by itself
 *
 * Several packets may share one read or one write, and one packet may be
 * cut anywhere across reads: the parser is incremental.
 *
 * liblonglink is pure, like libstomp: no I/O, no allocation, no global
 * state. The caller owns the bytes; a parsed packet is a view into them.
 *
 *     struct ll_limits lim = LL_LIMITS_DEFAULT;
 *     struct ll_parser p;
 *     struct ll_packet pk;
 *
 *     ll_parser_init(&p, &lim);
 *     ...
 *     // bytes arrived: buf[start..end) holds what is not consumed yet
 *     for (;;) {
 *         ssize_t n = ll_parse(&p, buf + start, end - start, &pk);
 *         if (n == LL_AGAIN) break;              // wait for more bytes
 *         if (n < 0) { fail(n); return; }         // close packet, then close
 *         dispatch(&pk);                          // pk.body points into buf
 *         start += (size_t)n;
 *     }
 *
 * Every header field is checked as soon as its bytes have arrived, in wire
 * order, so a peer can never make the caller buffer a packet over the
 * limit, and the first fault of the stream is the one reported whatever way
 * the bytes were cut. An error poisons the parser for good (hiredis).
 *
 * Error codes are small negative numbers (-1 to -99), as libstomp's are, so
 * they never collide with -errno values or the gateway's codes.
 */
#ifndef LONGLINK_LONGLINK_H
#define LONGLINK_LONGLINK_H

#include <stddef.h>    /* size_t */
#include <stdint.h>    /* uint32_t */
#include <sys/types.h> /* ssize_t */

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Constants, codes, operations                                              */
/* ------------------------------------------------------------------------ */

#define LL_HEADER_LEN 16 /* bytes of the header; also its header length */
#define LL_VERSION 1     /* the one protocol version there is */

/* The largest packet length the 4-byte field can carry. */
#define LL_MAX_PACKET_LEN UINT32_MAX

enum ll_err {
    LL_OK = 0,
    LL_AGAIN = 0,              /* ll_parse() only: need more bytes */
    LL_E_LENGTH_TOO_SHORT = -1, /* packet length below 16 */
    LL_E_BAD_HEADER_LENGTH = -2, /* header length other than 16 */
    LL_E_BAD_VERSION = -3,     /* protocol version other than 1 */
    LL_E_UNKNOWN_OP = -4,      /* operation not in enum ll_op */
    LL_E_TOO_LARGE = -5,       /* body over max_body */
    LL_E_NOSPACE = -6          /* encoder: output buffer too small, or a
                                  body the length field cannot carry */
};

/* Operations. "c>s" is a request from the client: its sequence is the
 * client's, and its answer (the next operation, "s>c") echoes it. The
 * operations the server sends by itself (push, notify, close) carry
 * sequence 0. Bodies are UTF-8 JSON, the shapes of the STOMP destinations
 * of PROTOCOL.md section 4; the long-link section of PROTOCOL.md has them
 * all. Gaps in the numbering are left for growth: the values are the wire
 * contract and never change. */
enum ll_op {
    LL_OP_AUTH = 1,            /* c>s {"token":T} */
    LL_OP_AUTH_ANSWER = 2,     /* s>c {"code":200,...} or a failure */
    LL_OP_SEND = 3,            /* c>s the /socket/chat/send body */
    LL_OP_SEND_STATUS = 4,     /* s>c the send/status body */
    LL_OP_PUSH = 5,            /* s>c a chat message (seq 0) */
    LL_OP_CONFIRM = 6,         /* c>s the /socket/chat/recive body */
    LL_OP_CONFIRM_STATUS = 7,  /* s>c the recive/status body */
    LL_OP_INIT = 8,            /* c>s empty body */
    LL_OP_INIT_END = 9,        /* s>c the init/status body */
    LL_OP_SYNC = 10,           /* c>s {"syncKey":K} */
    LL_OP_SYNC_END = 11,       /* s>c the init/status body of a sync */
    LL_OP_NOTIFY = 12,         /* s>c {"syncKey":K}: something new (seq 0) */
    LL_OP_HEARTBEAT = 13,      /* c>s empty body */
    LL_OP_HEARTBEAT_ANSWER = 14, /* s>c empty body */
    LL_OP_CLOSE = 15,          /* s>c {"code":C,"reason":R}, then the close
                                  (seq 0) */
    LL_OP_PUSH_AGAIN = 16,     /* s>c a chat message pushed before: what
                                  STOMP marks redelivered:true (seq 0) */
    LL_OP_DELIVERED = 17,      /* s>c the /user/queue/delivered body (seq 0) */
    LL_OP_MIN = LL_OP_AUTH,
    LL_OP_MAX = LL_OP_DELIVERED
};

struct ll_limits;

/* Who sends an operation. */
enum ll_dir {
    LL_DIR_CLIENT = 1, /* a request: only a client sends it */
    LL_DIR_SERVER = 2  /* an answer or a push: only the server sends it */
};

/* Returns the operation's name in lower case ("send_status"), or NULL for a
 * value outside enum ll_op. The string is static. */
const char *ll_op_name(uint32_t op);

/* Returns who sends op (enum ll_dir), or 0 for a value outside enum ll_op.
 * The parser accepts every operation in both directions, as libstomp
 * accepts every command: which packets a peer may send is the caller's
 * business. */
int ll_op_dir(uint32_t op);

/* Returns a static line of text for an LL_E_* code ("packet length below
 * 16"), "success" for LL_OK and "unknown error" for anything else. */
const char *ll_strerror(int code);

/* Words code for a close reason, as snprintf() would into buf[0..cap)
 * (truncated, NUL-terminated when cap > 0), and returns what snprintf()
 * returns. LL_E_TOO_LARGE names the limit's value ("packet body exceeds
 * 65536 bytes (max_body)") when lim is not NULL; other codes give
 * ll_strerror()'s line. */
int ll_strerror_limit(int code, const struct ll_limits *lim, char *buf,
                      size_t cap);

/* Returns the code's name as written here ("LL_E_TOO_LARGE"), "LL_OK", or
 * NULL for a value that is no code. The string is static. */
const char *ll_errname(int code);

/* ------------------------------------------------------------------------ */
/* Parser                                                                    */
/* ------------------------------------------------------------------------ */

struct ll_limits {
    size_t max_body; /* body bytes of one packet: the packet length minus 16;
                        at most LL_MAX_PACKET_LEN - 16 counts (larger values
                        mean "anything the field can carry") */
};

/* 64 KiB of body, the default STOMP frame limit. */
#define LL_LIMITS_DEFAULT { .max_body = 65536 }

/* A parsed packet. body BORROWS the buffer given to ll_parse(): it stays
 * valid until the caller reuses, moves or frees those bytes. */
struct ll_packet {
    uint32_t op;      /* one of enum ll_op */
    uint32_t seq;     /* the sequence field */
    const char *body; /* buf + 16; never NULL, even for an empty body */
    size_t body_len;  /* the packet length minus 16 */
};

/* Embed in the connection. Fields are private; the parser never allocates
 * and needs no cleanup. */
struct ll_parser {
    struct ll_limits lim; /* in force for the next packet */
    int err;              /* sticky LL_E_* once poisoned, else 0 */
};

/* Initializes p to parse packets from the start of a stream with a copy of
 * *lim (NULL means LL_LIMITS_DEFAULT). */
void ll_parser_init(struct ll_parser *p, const struct ll_limits *lim);

/* Replaces the limits for the next packets (e.g. tight ones until the
 * client has authenticated). Call it between packets. */
void ll_parser_set_limits(struct ll_parser *p, const struct ll_limits *lim);

/* Returns the parser's sticky error, or LL_OK while it is not poisoned. */
int ll_parser_error(const struct ll_parser *p);

/* Parses the packet that starts at buf[0], from buf[0..len).
 *
 * Returns > 0: a whole packet was parsed; it used that many bytes (its
 *              packet length). *out describes it.
 *         LL_AGAIN (0): buf holds only part of a packet, and nothing in it
 *              is wrong so far. Call again with the same bytes at buf[0]
 *              (they may have moved) plus what arrived since.
 *         < 0: an LL_E_* code: the first header field that is wrong, in
 *              wire order (length too short, length over the limit,
 *              header length, version, operation). The parser is poisoned:
 *              every later call returns the same code.
 *
 * A field is checked as soon as its bytes are in buf: a 4-byte prefix with
 * a length over the limit fails at once. buf is never written; out is
 * written only when the result is > 0. Costs O(1) per call plus nothing
 * per body byte: a packet cut into n pieces costs O(n). Never allocates;
 * may be called from any callback. */
ssize_t ll_parse(struct ll_parser *p, const void *buf, size_t len,
                 struct ll_packet *out);

/* How many bytes of buf[0..len) the packet starting there needs in all,
 * once its length field has arrived: the packet length, or 0 when fewer
 * than 4 bytes are there. Checks nothing; for a caller that wants to size
 * its read. */
size_t ll_packet_len(const void *buf, size_t len);

/* ------------------------------------------------------------------------ */
/* Encoder                                                                   */
/* ------------------------------------------------------------------------ */

/* Writes the 16-byte header of a packet (op, seq, a body of body_len
 * bytes) into out[0..16).
 *
 * Returns LL_HEADER_LEN, LL_E_UNKNOWN_OP for an op outside enum ll_op, or
 * LL_E_NOSPACE when 16 + body_len does not fit the 4-byte length field.
 * Nothing is written on an error. */
int ll_encode_header(unsigned char out[LL_HEADER_LEN], uint32_t op,
                     uint32_t seq, size_t body_len);

/* Writes a whole packet, header and a copy of body[0..body_len), into
 * out[0..cap). body may be NULL when body_len is 0.
 *
 * Returns the packet length (16 + body_len), or an error of
 * ll_encode_header(), or LL_E_NOSPACE when cap is too small. Nothing is
 * written on an error. With out == NULL and cap == 0 it only measures. */
ssize_t ll_encode(void *out, size_t cap, uint32_t op, uint32_t seq,
                  const void *body, size_t body_len);

#ifdef __cplusplus
}
#endif

#endif /* LONGLINK_LONGLINK_H */
