/* store_pubsub.c - the per-user channels cg:u:<uid> on the subscriber
 * connection: the set of subscribed uids (a hash table that survives
 * reconnects and is subscribed again, in batches, whenever the subscriber
 * comes back), the confirmations callers wait for, and the payloads handed
 * to the push callback.
 *
 * Subscription confirmations are struct waiter lists on the subscription
 * entries; completions that must not run before the caller's function
 * returns are deferred to the next loop turn (cg_store__defer_push()).
 *
 * Pub/sub payloads on cg:u:<uid> are passed to the push callback only for
 * uids still in the set (a message can race an UNSUBSCRIBE). */
#include "fmacros.h"

#include <string.h>

#include <uv.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "core/common.h"
#include "core/log.h"
#include "store/store_internal.h"

#define SUB_BATCH             256     /* channels per SUBSCRIBE when resyncing */

/* uid of a channel name "cg:u:<digits>", or 0. */
static uint64_t
channel_uid(const char *s, size_t len)
{
    static const size_t plen = sizeof(CG_STORE_CHANNEL_PREFIX) - 1;
    uint64_t v = 0;

    if (len <= plen || len - plen > 20 || memcmp(s, CG_STORE_CHANNEL_PREFIX, plen) != 0)
        return 0;
    for (size_t i = plen; i < len; i++) {
        unsigned d = (unsigned char)s[i] - '0';
        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    return v;
}

static size_t
sub_hash(const cg_store *st, uint64_t uid)
{
    return (size_t)((uid * 0x9E3779B97F4A7C15ULL) >> 17) & (st->nbuckets - 1);
}

static struct sub_entry **
sub_link(cg_store *st, uint64_t uid)
{
    struct sub_entry **l = &st->buckets[sub_hash(st, uid)];

    while (*l && (*l)->uid != uid)
        l = &(*l)->next;
    return l;
}

static struct sub_entry *
sub_find(cg_store *st, uint64_t uid)
{
    return *sub_link(st, uid);
}

static int
sub_grow(cg_store *st)
{
    size_t n = st->nbuckets * 2;
    struct sub_entry **nb = cg_calloc(n, sizeof *nb);

    if (nb == NULL)
        return CG_E_NOMEM;
    for (size_t i = 0; i < st->nbuckets; i++) {
        struct sub_entry *e = st->buckets[i], *next;
        for (; e; e = next) {
            size_t h = (size_t)((e->uid * 0x9E3779B97F4A7C15ULL) >> 17) & (n - 1);
            next = e->next;
            e->next = nb[h];
            nb[h] = e;
        }
    }
    cg_free(st->buckets);
    st->buckets = nb;
    st->nbuckets = n;
    return 0;
}

static struct sub_entry *
sub_add(cg_store *st, uint64_t uid)
{
    struct sub_entry *e;

    if (st->nsubs >= st->nbuckets)
        (void)sub_grow(st);   /* a full table still works, only slower */
    if ((e = cg_calloc(1, sizeof *e)) == NULL)
        return NULL;
    e->uid = uid;
    e->wtail = &e->waiters;
    struct sub_entry **l = &st->buckets[sub_hash(st, uid)];
    e->next = *l;
    *l = e;
    st->nsubs++;
    return e;
}

/* Unlink and return the entry of uid (caller frees), or NULL. */
static struct sub_entry *
sub_remove(cg_store *st, uint64_t uid)
{
    struct sub_entry **l = sub_link(st, uid), *e = *l;

    if (e) {
        *l = e->next;
        st->nsubs--;
    }
    return e;
}

static void
waiter_append(struct sub_entry *e, struct waiter *w)
{
    w->next = NULL;
    *e->wtail = w;
    e->wtail = &w->next;
}

/* ---- deferred completions ------------------------------------------- */

static void
on_waiter_deferred(struct cg_store_defer *d, int err)
{
    struct waiter *w = (struct waiter *)d;    /* its first member */

    w->cb(NULL, err < 0 ? err : w->err, w->data);
    cg_free(w);
}

/* Queue the waiters of list (a NULL-terminated chain) to fire with err on
 * the next loop turn. */
static void
defer_chain(cg_store *st, struct waiter *list, int err)
{
    struct waiter *next;

    for (; list; list = next) {
        next = list->next;
        list->next = NULL;
        list->err = err;
        cg_store__defer_push(st, &list->later, on_waiter_deferred);
    }
}

/* Fire every waiter of a chain now. */
static void
fire_chain(cg_store *st, struct waiter *list, int err)
{
    struct waiter *next;

    for (; list; list = next) {
        next = list->next;
        list->cb(NULL, st->closing ? CG_E_CLOSED : err, list->data);
        cg_free(list);
    }
}

/* Waiters learn of the failure. A uid nobody was ever told about leaves
 * the set with them (its callers now believe it is not subscribed); the
 * others stay and are subscribed again. */
void
cg_store__subs_conn_lost(cg_store *st)
{
    for (size_t i = 0; i < st->nbuckets; i++) {
        struct sub_entry **l = &st->buckets[i];
        while (*l) {
            struct sub_entry *e = *l;
            struct waiter *w = e->waiters;

            e->confirmed = 0;
            e->waiters = NULL;
            e->wtail = &e->waiters;
            if (!st->closing)
                defer_chain(st, w, CG_E_STORE);
            else
                fire_chain(st, w, CG_E_CLOSED);
            if (w && !e->ever_confirmed) {
                *l = e->next;
                st->nsubs--;
                cg_free(e);
            } else {
                l = &e->next;
            }
        }
    }
}

/* Every subscription waiter (what was deferred is store.c's). */
void
cg_store__subs_close(cg_store *st)
{
    struct waiter *fail = NULL, **ftail = &fail;

    for (size_t i = 0; i < st->nbuckets; i++) {
        struct sub_entry *e = st->buckets[i], *next;
        for (; e; e = next) {
            next = e->next;
            if (e->waiters) {
                *ftail = e->waiters;
                ftail = e->wtail;
            }
            cg_free(e);
        }
        st->buckets[i] = NULL;
    }
    st->nsubs = 0;
    *ftail = NULL;
    fire_chain(st, fail, CG_E_CLOSED);
}

static void
sub_confirmed(cg_store *st, uint64_t uid)
{
    struct conn *c = SUB_CONN(st);
    struct sub_entry *e = sub_find(st, uid);

    cg_store__conn_progress(c);
    if (e && !e->confirmed) {
        struct waiter *w = e->waiters;
        e->confirmed = 1;
        e->ever_confirmed = 1;
        e->waiters = NULL;
        e->wtail = &e->waiters;
        fire_chain(st, w, 0);
    }
    if (c->resub_left > 0 && --c->resub_left == 0 && c->ac) {
        c->synced = 1;
        cg_log(CG_LOG_INFO, "redis: %zu channels subscribed again", st->nsubs);
        cg_store__notify_state(st);
    }
}

static void
on_sub_reply(redisAsyncContext *ac, void *rv, void *priv)
{
    struct conn *c = ac->data;
    cg_store *st = c->st;
    redisReply *r = rv, *type, *chan;
    uint64_t uid;

    (void)priv;
    if (r == NULL) {
        if (c->ac == ac)
            cg_store__conn_lost(c, ac->c.errstr[0] ? ac->c.errstr : "connection closed");
        return;
    }
    if (c->ac != ac || r->type != REDIS_REPLY_ARRAY || r->elements < 3)
        return;
    /* Any reply shows the connection alive: a SUBSCRIBE's confirmation
     * queued behind a backlog of messages is late, not lost, and must not
     * make the watchdog drop every channel of the node. */
    cg_store__conn_alive(c);
    type = r->element[0];
    chan = r->element[1];
    if (type->type != REDIS_REPLY_STRING || chan->type != REDIS_REPLY_STRING)
        return;
    uid = channel_uid(chan->str, chan->len);
    if (uid == 0)
        return;
    if (type->len == 7 && memcmp(type->str, "message", 7) == 0) {
        if (r->element[2]->type == REDIS_REPLY_STRING && st->push_cb && sub_find(st, uid))
            st->push_cb(uid, r->element[2]->str, r->element[2]->len, st->push_data);
    } else if (type->len == 9 && memcmp(type->str, "subscribe", 9) == 0) {
        sub_confirmed(st, uid);
    }
    /* "unsubscribe" needs nothing. */
}

/* SUBSCRIBE every uid of the set again, in batches. */
int
cg_store__sub_resubscribe(struct conn *c)
{
    cg_store *st = c->st;
    const char *argv[SUB_BATCH + 1];
    char (*names)[32] = NULL;
    size_t n = 0;
    int rc = 0;

    c->synced = 0;
    c->resub_left = st->nsubs;
    if (st->nsubs == 0) {
        c->synced = 1;
        return 0;
    }
    if ((names = cg_malloc(SUB_BATCH * sizeof *names)) == NULL)
        return CG_E_NOMEM;
    argv[0] = "SUBSCRIBE";
    for (size_t i = 0; i < st->nbuckets && rc == 0; i++)
        for (struct sub_entry *e = st->buckets[i]; e && rc == 0; e = e->next) {
            cg_store_channel(names[n], sizeof names[n], e->uid);
            argv[n + 1] = names[n];
            if (++n == SUB_BATCH) {
                if (redisAsyncCommandArgv(c->ac, on_sub_reply, NULL, (int)n + 1, argv,
                                          NULL) != REDIS_OK)
                    rc = CG_E_STORE;
                n = 0;
            }
        }
    if (rc == 0 && n > 0 &&
        redisAsyncCommandArgv(c->ac, on_sub_reply, NULL, (int)n + 1, argv, NULL) != REDIS_OK)
        rc = CG_E_STORE;
    cg_free(names);
    if (rc == 0)
        cg_store__conn_expect(c, st->nsubs);
    return rc;
}

int
cg_store_subscribe(cg_store *st, uint64_t uid, cg_store_reply_cb cb, void *data)
{
    struct conn *c = SUB_CONN(st);
    struct sub_entry *e;
    struct waiter *w = NULL;
    char ch[32];
    const char *argv[2] = { "SUBSCRIBE", ch };

    if (st->closing)
        return CG_E_CLOSED;
    if (uid == 0)
        return CG_E_INVAL;
    if (c->state != CONN_UP || c->ac == NULL)
        return CG_E_STORE;
    if (cb) {
        if ((w = cg_calloc(1, sizeof *w)) == NULL)
            return CG_E_NOMEM;
        w->cb = cb;
        w->data = data;
    }
    if ((e = sub_find(st, uid)) != NULL) {
        if (w == NULL)
            return 0;
        if (e->confirmed)
            defer_chain(st, w, 0);       /* "at once", on the next loop turn */
        else
            waiter_append(e, w);
        return 0;
    }
    if ((e = sub_add(st, uid)) == NULL) {
        cg_free(w);
        return CG_E_NOMEM;
    }
    cg_store_channel(ch, sizeof ch, uid);
    if (redisAsyncCommandArgv(c->ac, on_sub_reply, NULL, 2, argv, NULL) != REDIS_OK) {
        cg_free(sub_remove(st, uid));
        cg_free(w);
        return CG_E_STORE;
    }
    cg_store__conn_expect(c, 1);
    if (w)
        waiter_append(e, w);
    return 0;
}

void
cg_store_unsubscribe(cg_store *st, uint64_t uid)
{
    struct conn *c = SUB_CONN(st);
    struct sub_entry *e;
    char ch[32];
    const char *argv[2] = { "UNSUBSCRIBE", ch };

    if (st->closing || (e = sub_remove(st, uid)) == NULL)
        return;
    defer_chain(st, e->waiters, CG_E_CLOSED);
    cg_free(e);
    if (c->state == CONN_UP && c->ac) {
        cg_store_channel(ch, sizeof ch, uid);
        /* No callback: hiredis routes the confirmation to the channel's
         * on_sub_reply, which ignores it. Fails harmlessly if hiredis has
         * already left subscribed mode. */
        (void)redisAsyncCommandArgv(c->ac, NULL, NULL, 2, argv, NULL);
    }
}

void
cg_store_set_push_cb(cg_store *st, cg_store_push_cb cb, void *data)
{
    st->push_cb = cb;
    st->push_data = data;
}
