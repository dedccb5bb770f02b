/* push_record.c - the codec of the records on a user's channel: decode for
 * the registry, encode for auth.c's L (chat.lua writes M and D itself).
 * push_record.h has the format.
 *
 * A pure function of bytes, as the STOMP parser is: no I/O, no allocation,
 * and the decoder refuses what the encoder could not have written, so a
 * record that decodes encodes back to the same bytes. */
#include "fmacros.h"

#include <limits.h>
#include <string.h>

#include "core/common.h"
#include "store/push_record.h"

/* Strict unsigned decimal: 1-20 digits, no sign, no leading zero, no
 * overflow. Returns 0 or -1. */
static int
parse_u64(const char *p, size_t len, uint64_t *out)
{
    uint64_t v = 0;

    if (len == 0 || len > 20 || (len > 1 && p[0] == '0'))
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned char)p[i] - '0';

        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static int
is_hash(const char *p, size_t len)
{
    if (len != CG_PUSH_HASH_LEN)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
            return 0;
    return 1;
}

/* K's and I's reason: 1-CG_PUSH_REASON_MAX of [a-z ]. */
static int
is_reason(const char *p, size_t len)
{
    if (len < 1 || len > CG_PUSH_REASON_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((p[i] >= 'a' && p[i] <= 'z') || p[i] == ' '))
            return 0;
    return 1;
}

/* M's "<id>:<time>:<body>" */
static int
decode_message(const char *p, size_t len, struct cg_push_record *out)
{
    const char *c1 = memchr(p, ':', len), *c2;
    uint64_t t;

    if (c1 == NULL || (c2 = memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - p))) == NULL ||
        parse_u64(p, (size_t)(c1 - p), &out->id) < 0 ||
        parse_u64(c1 + 1, (size_t)(c2 - c1 - 1), &t) < 0 || t > INT64_MAX ||
        c2 + 1 == p + len)
        return CG_E_INVAL;
    out->time_ms = (int64_t)t;
    out->data = c2 + 1;
    out->len = len - (size_t)(c2 + 1 - p);
    return 0;
}

int
cg_push_record_decode(const char *p, size_t len, struct cg_push_record *out)
{
    memset(out, 0, sizeof *out);
    if (len < 2)                       /* a type and at least one byte */
        return CG_E_INVAL;
    out->type = (enum cg_push_type)(unsigned char)p[0];
    out->data = p + 1;
    out->len = len - 1;
    switch (p[0]) {
    case CG_PUSH_MESSAGE:
        return decode_message(p + 1, len - 1, out);
    case CG_PUSH_DELIVERED:
        return 0;
    case CG_PUSH_LOGOUT:
        return is_hash(p + 1, len - 1) ? 0 : CG_E_INVAL;
    case CG_PUSH_KICK:
    case CG_PUSH_REINIT:
        return is_reason(p + 1, len - 1) ? 0 : CG_E_INVAL;
    default:
        return CG_E_INVAL;
    }
}

int
cg_push_record_encode(const struct cg_push_record *rec, char *buf, size_t cap)
{
    char id[CG_U64_STR_MAX], t[CG_U64_STR_MAX];
    size_t idl = 0, tl = 0, n;

    if (rec->data == NULL || rec->len == 0 || rec->len > INT_MAX / 2)
        return CG_E_INVAL;
    switch (rec->type) {
    case CG_PUSH_MESSAGE:
        if (rec->time_ms < 0)
            return CG_E_INVAL;
        idl = cg_u64_str(id, rec->id);
        tl = cg_u64_str(t, (uint64_t)rec->time_ms);
        n = 1 + idl + 1 + tl + 1 + rec->len;
        break;
    case CG_PUSH_DELIVERED:
        n = 1 + rec->len;
        break;
    case CG_PUSH_LOGOUT:
        if (!is_hash(rec->data, rec->len))
            return CG_E_INVAL;
        n = 1 + rec->len;
        break;
    case CG_PUSH_KICK:
    case CG_PUSH_REINIT:
        if (!is_reason(rec->data, rec->len))
            return CG_E_INVAL;
        n = 1 + rec->len;
        break;
    default:
        return CG_E_INVAL;
    }
    if (n >= cap)
        return CG_E_INVAL;
    buf[0] = (char)rec->type;
    if (rec->type == CG_PUSH_MESSAGE) {
        memcpy(buf + 1, id, idl);
        buf[1 + idl] = ':';
        memcpy(buf + 2 + idl, t, tl);
        buf[2 + idl + tl] = ':';
    }
    memcpy(buf + n - rec->len, rec->data, rec->len);
    buf[n] = '\0';
    return (int)n;
}
