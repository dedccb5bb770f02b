/* subs.h - the subscription table of one session (private to the session
 * part; see the design comment in subs.c). */
#ifndef CG_SUBS_H
#define CG_SUBS_H

#include <stddef.h>
#include <stdint.h>

#include "chat/chat.h"
#include "core/common.h"
#include "stomp/str.h"

enum cg_sub_ack {
    CG_SUB_ACK_AUTO = 0,
    CG_SUB_ACK_CLIENT,
    CG_SUB_ACK_CLIENT_INDIVIDUAL,
};

struct cg_sub {
    char     *id;        /* NUL-terminated; the destination follows its NUL
                            in the same allocation */
    uint32_t  key;       /* never reused within the session: queued MESSAGEs
                            refer to their subscription by key */
    uint16_t  id_len;
    uint16_t  dest_len;
    uint8_t   topic;     /* enum cg_chat_topic */
    uint8_t   ack;       /* enum cg_sub_ack */
};

static inline const char *cg_sub_dest(const struct cg_sub *s)
{
    return s->id + s->id_len + 1;
}

struct cg_subs {
    struct cg_sub *v;    /* in subscription order; NULL while empty */
    uint32_t       n, cap;
    uint32_t       next_key;
};

/* Longest id or destination kept. Ids are the client's (stomp.js: "sub-0"),
 * destinations are ours ("/user/<32-char name>/recive"); both fit easily,
 * and the bound keeps 16-bit lengths honest. */
#define CG_SUB_STR_MAX 1024

void cg_subs_init(struct cg_subs *t);
void cg_subs_cleanup(struct cg_subs *t);

/* Add a subscription. Copies id and dest. Returns 0 and its key in
 * *key_out, CG_E_EXISTS (the id is taken), CG_E_LIMIT (already max
 * subscriptions), CG_E_INVAL (id or destination longer than
 * CG_SUB_STR_MAX) or CG_E_NOMEM. */
int cg_subs_add(struct cg_subs *t, struct stomp_str id, struct stomp_str dest,
                enum cg_chat_topic topic, enum cg_sub_ack ack, size_t max,
                uint32_t *key_out);

/* Remove the subscription with that id: 0 or CG_E_NOTFOUND. */
int cg_subs_remove(struct cg_subs *t, struct stomp_str id);

/* Lookups; NULL when there is none. The pointer is valid until the next
 * add or remove. by_topic returns the first (oldest) such subscription. */
const struct cg_sub *cg_subs_by_key(const struct cg_subs *t, uint32_t key);
const struct cg_sub *cg_subs_by_id(const struct cg_subs *t, struct stomp_str id);
const struct cg_sub *cg_subs_by_topic(const struct cg_subs *t,
                                      enum cg_chat_topic topic);

/* 1 if some subscription of that topic uses client or client-individual
 * acknowledgement. */
int cg_subs_topic_client_ack(const struct cg_subs *t, enum cg_chat_topic topic);

/* Which topic a SUBSCRIBE destination is for user (uid, name), or
 * CG_E_FORBIDDEN when it is not one of the user's own destinations
 * (PROTOCOL.md section 4). */
int cg_subs_classify(struct stomp_str dest, uint64_t uid, const char *name,
                     enum cg_chat_topic *out);

/* Parse an ack header value: 0 or CG_E_INVAL. */
int cg_subs_parse_ack(struct stomp_str v, enum cg_sub_ack *out);

#endif
