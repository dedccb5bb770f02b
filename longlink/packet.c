#include "fmacros.h"

/* packet.c - the long-link packet parser and encoder.
 *
 * The parser has no scanning state beyond its sticky error: a packet's
 * header has fixed offsets, so each call looks at the fields whose bytes
 * have arrived, in wire order, and stops at the first one missing. A call
 * costs O(1) whatever the body's size, so a packet cut into n pieces costs
 * O(n) in all, and nothing is ever scanned twice in a way that grows.
 *
 *     bytes in buf   checked
 *     0..3           nothing yet                      -> AGAIN
 *     4..5           length >= 16, body <= max_body   -> AGAIN or error
 *     6..7           + header length == 16
 *     8..11          + version == 1
 *     12..15         + operation known
 *     16..length-1   whole header good, body partial  -> AGAIN
 *     >= length      the packet                       -> length
 *
 * Since a field is checked only after every field before it passed, the
 * error reported is the first fault in wire order for any split of the
 * input; tests/unit/longlink/test_parser.c checks that for every offset.
 *
 * The encoder writes the same layout. It refuses an unknown operation (a
 * bug in the caller, never peer input) and a body the length field cannot
 * carry.
 */

#include <string.h>

#include "longlink/longlink.h"

/* ------------------------------------------------------------------------ */
/* Big-endian fields                                                         */
/* ------------------------------------------------------------------------ */

static uint32_t
get32(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 |
           (uint32_t)b[3];
}

static uint32_t
get16(const unsigned char *b)
{
    return (uint32_t)b[0] << 8 | (uint32_t)b[1];
}

static void
put32(unsigned char *b, uint32_t v)
{
    b[0] = (unsigned char)(v >> 24);
    b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8);
    b[3] = (unsigned char)v;
}

static void
put16(unsigned char *b, uint32_t v)
{
    b[0] = (unsigned char)(v >> 8);
    b[1] = (unsigned char)v;
}

/* ------------------------------------------------------------------------ */
/* Parser                                                                    */
/* ------------------------------------------------------------------------ */

static const struct ll_limits default_limits = LL_LIMITS_DEFAULT;

void
ll_parser_init(struct ll_parser *p, const struct ll_limits *lim)
{
    p->lim = lim != NULL ? *lim : default_limits;
    p->err = LL_OK;
}

void
ll_parser_set_limits(struct ll_parser *p, const struct ll_limits *lim)
{
    p->lim = lim != NULL ? *lim : default_limits;
}

int
ll_parser_error(const struct ll_parser *p)
{
    return p->err;
}

static ssize_t
fail(struct ll_parser *p, int code)
{
    p->err = code;
    return code;
}

ssize_t
ll_parse(struct ll_parser *p, const void *buf, size_t len,
         struct ll_packet *out)
{
    const unsigned char *b = buf;
    uint32_t plen, op;

    if (p->err != LL_OK)
        return p->err;
    if (len < 4)
        return LL_AGAIN;
    plen = get32(b);
    if (plen < LL_HEADER_LEN)
        return fail(p, LL_E_LENGTH_TOO_SHORT);
    if ((size_t)(plen - LL_HEADER_LEN) > p->lim.max_body)
        return fail(p, LL_E_TOO_LARGE);
    if (len < 6)
        return LL_AGAIN;
    if (get16(b + 4) != LL_HEADER_LEN)
        return fail(p, LL_E_BAD_HEADER_LENGTH);
    if (len < 8)
        return LL_AGAIN;
    if (get16(b + 6) != LL_VERSION)
        return fail(p, LL_E_BAD_VERSION);
    if (len < 12)
        return LL_AGAIN;
    op = get32(b + 8);
    if (ll_op_dir(op) == 0)
        return fail(p, LL_E_UNKNOWN_OP);
    if (len < plen)
        return LL_AGAIN;
    out->op = op;
    out->seq = get32(b + 12);
    out->body = (const char *)b + LL_HEADER_LEN;
    out->body_len = (size_t)(plen - LL_HEADER_LEN);
    /* plen <= UINT32_MAX <= SSIZE_MAX on every platform we build for. */
    return (ssize_t)plen;
}

size_t
ll_packet_len(const void *buf, size_t len)
{
    return len < 4 ? 0 : (size_t)get32(buf);
}

/* ------------------------------------------------------------------------ */
/* Encoder                                                                   */
/* ------------------------------------------------------------------------ */

int
ll_encode_header(unsigned char out[LL_HEADER_LEN], uint32_t op, uint32_t seq,
                 size_t body_len)
{
    if (ll_op_dir(op) == 0)
        return LL_E_UNKNOWN_OP;
    if (body_len > (size_t)(LL_MAX_PACKET_LEN - LL_HEADER_LEN))
        return LL_E_NOSPACE;
    put32(out, (uint32_t)(body_len + LL_HEADER_LEN));
    put16(out + 4, LL_HEADER_LEN);
    put16(out + 6, LL_VERSION);
    put32(out + 8, op);
    put32(out + 12, seq);
    return LL_HEADER_LEN;
}

ssize_t
ll_encode(void *out, size_t cap, uint32_t op, uint32_t seq, const void *body,
          size_t body_len)
{
    unsigned char hdr[LL_HEADER_LEN];
    int rc = ll_encode_header(hdr, op, seq, body_len);

    if (rc < 0)
        return rc;
    if (out == NULL && cap == 0)
        return (ssize_t)(body_len + LL_HEADER_LEN);
    if (out == NULL || cap < body_len + LL_HEADER_LEN)
        return LL_E_NOSPACE;
    memcpy(out, hdr, LL_HEADER_LEN);
    if (body_len > 0)
        memcpy((unsigned char *)out + LL_HEADER_LEN, body, body_len);
    return (ssize_t)(body_len + LL_HEADER_LEN);
}
