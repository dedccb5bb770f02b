/* subs.c - the subscription table of one session.
 *
 * What it does. Holds a session's SUBSCRIBEs (at most max_subscriptions,
 * 64 by default) and answers the three questions the session asks: is this
 * id taken, which subscription does a topic's answer go to, and where does a
 * queued MESSAGE go (by key). It also decides which destinations a user may
 * subscribe to at all (cg_subs_classify).
 *
 * Layout. One array of small entries (24 bytes) in subscription order,
 * grown by doubling from 4, plus one allocation per entry holding
 * "id\0destination\0". An idle stomp.js client subscribes to five
 * destinations: about 120 + 5 * 48 bytes. Linear search is right at this
 * size (64 entries at most) and keeps the order that "first subscription of
 * a topic" relies on.
 *
 * Keys. Every subscription gets a key from a per-session counter that is
 * never reused, so a MESSAGE queued for a subscription that is then
 * removed (and maybe re-added under the same id) is recognised as stale at
 * pop time instead of going to the new one.
 *
 * Table states:
 *
 *     empty (v == NULL) --add--> 1..max entries --remove last--> empty
 *                                 (array freed)
 *
 * Invariants: ids are unique; n <= cap; v == NULL iff cap == 0. */
#include "fmacros.h"

#include <string.h>
#include <strings.h>

#include "core/common.h"
#include "session/subs.h"

void
cg_subs_init(struct cg_subs *t)
{
    memset(t, 0, sizeof *t);
    t->next_key = 1;
}

void
cg_subs_cleanup(struct cg_subs *t)
{
    uint32_t i;

    for (i = 0; i < t->n; i++)
        cg_free(t->v[i].id);
    cg_free(t->v);
    t->v = NULL;
    t->n = t->cap = 0;
}

static int
id_eq(const struct cg_sub *s, struct stomp_str id)
{
    return s->id_len == id.len && memcmp(s->id, id.ptr, id.len) == 0;
}

const struct cg_sub *
cg_subs_by_id(const struct cg_subs *t, struct stomp_str id)
{
    uint32_t i;

    for (i = 0; i < t->n; i++)
        if (id_eq(&t->v[i], id))
            return &t->v[i];
    return NULL;
}

const struct cg_sub *
cg_subs_by_key(const struct cg_subs *t, uint32_t key)
{
    uint32_t i;

    for (i = 0; i < t->n; i++)
        if (t->v[i].key == key)
            return &t->v[i];
    return NULL;
}

const struct cg_sub *
cg_subs_by_topic(const struct cg_subs *t, enum cg_chat_topic topic)
{
    uint32_t i;

    for (i = 0; i < t->n; i++)
        if (t->v[i].topic == topic)
            return &t->v[i];
    return NULL;
}

int
cg_subs_topic_client_ack(const struct cg_subs *t, enum cg_chat_topic topic)
{
    uint32_t i;

    for (i = 0; i < t->n; i++)
        if (t->v[i].topic == topic && t->v[i].ack != CG_SUB_ACK_AUTO)
            return 1;
    return 0;
}

int
cg_subs_add(struct cg_subs *t, struct stomp_str id, struct stomp_str dest,
            enum cg_chat_topic topic, enum cg_sub_ack ack, size_t max,
            uint32_t *key_out)
{
    struct cg_sub *s;
    char *strs;

    if (id.len > CG_SUB_STR_MAX || dest.len > CG_SUB_STR_MAX)
        return CG_E_INVAL;
    if (cg_subs_by_id(t, id) != NULL)
        return CG_E_EXISTS;
    if (t->n >= max)
        return CG_E_LIMIT;
    if (t->n == t->cap) {
        uint32_t cap = t->cap ? t->cap * 2 : 4;
        struct cg_sub *v;

        if (cap > max && max >= t->n + 1)
            cap = (uint32_t)max;
        v = cg_realloc(t->v, cap * sizeof *v);
        if (v == NULL)
            return CG_E_NOMEM;
        t->v = v;
        t->cap = cap;
    }
    strs = cg_malloc(id.len + 1 + dest.len + 1);
    if (strs == NULL)
        return CG_E_NOMEM;
    memcpy(strs, id.ptr, id.len);
    strs[id.len] = '\0';
    memcpy(strs + id.len + 1, dest.ptr, dest.len);
    strs[id.len + 1 + dest.len] = '\0';

    s = &t->v[t->n++];
    s->id = strs;
    s->id_len = (uint16_t)id.len;
    s->dest_len = (uint16_t)dest.len;
    s->topic = (uint8_t)topic;
    s->ack = (uint8_t)ack;
    s->key = t->next_key++;
    if (t->next_key == 0)          /* 2^32 subscriptions later: skip 0 */
        t->next_key = 1;
    *key_out = s->key;
    return 0;
}

int
cg_subs_remove(struct cg_subs *t, struct stomp_str id)
{
    uint32_t i;

    for (i = 0; i < t->n; i++) {
        if (!id_eq(&t->v[i], id))
            continue;
        cg_free(t->v[i].id);
        memmove(&t->v[i], &t->v[i + 1], (t->n - i - 1) * sizeof t->v[0]);
        if (--t->n == 0) {
            cg_free(t->v);          /* an unsubscribed session holds nothing */
            t->v = NULL;
            t->cap = 0;
        }
        return 0;
    }
    return CG_E_NOTFOUND;
}

/* ------------------------------------------------------------------------ */
/* Destinations                                                              */
/* ------------------------------------------------------------------------ */

static int
str_is(struct stomp_str s, const char *lit)
{
    size_t n = strlen(lit);

    return s.len == n && memcmp(s.ptr, lit, n) == 0;
}

/* s is the canonical decimal form of v (no sign, no leading zeros). */
static int
is_decimal_of(const char *p, size_t len, uint64_t v)
{
    uint64_t x = 0;
    size_t i;

    if (len == 0 || len > 20 || (len > 1 && p[0] == '0'))
        return 0;
    for (i = 0; i < len; i++) {
        unsigned d = (unsigned char)p[i] - '0';

        if (d > 9 || x > (UINT64_MAX - d) / 10)
            return 0;
        x = x * 10 + d;
    }
    return x == v;
}

int
cg_subs_classify(struct stomp_str dest, uint64_t uid, const char *name,
                 enum cg_chat_topic *out)
{
    static const struct {
        const char        *dest;
        enum cg_chat_topic topic;
    } queues[] = {
        { "/user/queue/status",         CG_TOPIC_STATUS },
        { "/user/queue/send/status",    CG_TOPIC_SEND_STATUS },
        { "/user/queue/recive/status",  CG_TOPIC_RECIVE_STATUS },
        { "/user/queue/init/status",    CG_TOPIC_INIT_STATUS },
        { "/user/queue/delivered",      CG_TOPIC_DELIVERED },
    };
    static const char prefix[] = "/user/", suffix[] = "/recive";
    const size_t plen = sizeof prefix - 1, slen = sizeof suffix - 1;
    size_t i, mlen, nlen = strlen(name);
    const char *mid;

    for (i = 0; i < sizeof queues / sizeof queues[0]; i++) {
        if (str_is(dest, queues[i].dest)) {
            *out = queues[i].topic;
            return 0;
        }
    }
    /* /user/{name}/recive or /user/{uid}/recive. Usernames are unique
     * case-insensitively ([A-Za-z0-9_.-], ASCII), so a case-insensitive
     * match cannot name another user. */
    if (dest.len <= plen + slen || memcmp(dest.ptr, prefix, plen) != 0 ||
        memcmp(dest.ptr + dest.len - slen, suffix, slen) != 0)
        return CG_E_FORBIDDEN;
    mid = dest.ptr + plen;
    mlen = dest.len - plen - slen;
    if ((nlen > 0 && mlen == nlen && strncasecmp(mid, name, nlen) == 0) ||
        (uid != 0 && is_decimal_of(mid, mlen, uid))) {
        *out = CG_TOPIC_RECIVE;
        return 0;
    }
    return CG_E_FORBIDDEN;
}

int
cg_subs_parse_ack(struct stomp_str v, enum cg_sub_ack *out)
{
    if (str_is(v, "auto"))
        *out = CG_SUB_ACK_AUTO;
    else if (str_is(v, "client"))
        *out = CG_SUB_ACK_CLIENT;
    else if (str_is(v, "client-individual"))
        *out = CG_SUB_ACK_CLIENT_INDIVIDUAL;
    else
        return CG_E_INVAL;
    return 0;
}
