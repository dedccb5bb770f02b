/* push_record.h - the records published on a user's channel cg:u:<uid>
 * (store.h): their format, written down here once, and their one codec.
 *
 * Two are written by gateway/store/lua/chat.lua (in Lua, necessarily; its
 * comments point here), the third by auth.c; registry.c reads all three.
 * The first byte is the type:
 *
 *   M<id>:<time>:<body>   a new chat message for the channel's user.
 *                         id: its message id; time: when it was stored, ms
 *                         since the epoch, at most INT64_MAX; both decimal,
 *                         1-20 digits, no sign, no leading zero ("0" is
 *                         itself). body: every byte after the second ':',
 *                         at least one: the MESSAGE body JSON exactly as
 *                         stored (it may hold ':').
 *   D<notice>             a message the channel's user sent was confirmed
 *                         by its receiver, who asked for the notice.
 *                         notice: every byte after the 'D', at least one:
 *                         {"msgID":"..","id":N,"reciverId":R,"time":T},
 *                         passed on to /user/queue/delivered as is.
 *   L<token hash>         the login token whose SHA-256 is <token hash>
 *                         (64 lowercase hex digits, as auth.c makes it)
 *                         was revoked: close its sessions, forget it.
 *   K<reason>             the channel's user was disabled or deleted
 *                         (the backend API, auth_admin.c): close every
 *                         session of the user. reason: 1-64 bytes of
 *                         [a-z ], the close reason ("account disabled").
 *   I<reason>             an operator asked for the user's pending
 *                         messages to be delivered again (the backend
 *                         API): every session of the user with a recive
 *                         subscription runs an init, as after a Redis
 *                         reconnect. reason: as for K ("redeliver").
 *
 * Anything else is malformed and refused: an empty record, another type
 * byte, a missing ':', an empty, signed, zero-padded or overflowing number,
 * an empty body or notice, a hash of another length or alphabet. Nothing
 * in a record ends in NUL. */
#ifndef CHATGATE_PUSH_RECORD_H
#define CHATGATE_PUSH_RECORD_H

#include <stddef.h>
#include <stdint.h>

enum cg_push_type {
    CG_PUSH_MESSAGE   = 'M',
    CG_PUSH_DELIVERED = 'D',
    CG_PUSH_LOGOUT    = 'L',
    CG_PUSH_KICK      = 'K',
    CG_PUSH_REINIT    = 'I',
};

#define CG_PUSH_REASON_MAX 64       /* K and I: the reason's bytes */

#define CG_PUSH_HASH_LEN 64        /* hex SHA-256 of a token */

/* One decoded record. data is borrowed from the bytes it was decoded from
 * (not NUL-terminated): the body (M), the notice (D), the token hash (L) or
 * the reason (K, I). */
struct cg_push_record {
    enum cg_push_type type;
    uint64_t          id;          /* M only */
    int64_t           time_ms;     /* M only */
    const char       *data;
    size_t            len;
};

/* Decode the record p[0..len) into out. Returns 0, or CG_E_INVAL for a
 * malformed record (see the top; out is then unspecified). Pure: no
 * allocation, p may be anything, NULL with len 0 included. */
int cg_push_record_decode(const char *p, size_t len, struct cg_push_record *out);

/* Write rec into buf (cap bytes) and a NUL after it. Returns the record's
 * length (< cap), or CG_E_INVAL when rec is not a well-formed record (the
 * same rules as the decoder) or does not fit. */
int cg_push_record_encode(const struct cg_push_record *rec, char *buf, size_t cap);

#endif
