/* registry.c - live sessions of this node, by session id and by user, and
 * the fan-out of pushes from the users' Redis channels.
 *
 * Sessions by id. An open-addressing hash map (linear probing, power-of-
 * two capacity, load <= 1/2, backward-shift deletion so there are no
 * tombstones) from the 64-bit id to the session. Ids come from a counter
 * and are never reused, so a stale id held by an asynchronous callback can
 * only miss, never find somebody else (Redis lookupClientByID). 16 bytes a
 * slot, at most 4 slots per session.
 *
 * Users. A chained hash map uid -> user: the ids of the user's sessions on
 * this node (a small array) and the state of the user's channel
 * cg:u:<uid>:
 *
 *             attach (first session)           store confirms
 *     NONE ------------------------> SUBSCRIBING ------------> SUBSCRIBED
 *      ^  (no store: straight to          |   store fails:         |
 *      |   SUBSCRIBED)                    |   waiters get err,     |
 *      |                                  v   back to NONE         |
 *      +---------- last session detaches (UNSUBSCRIBE) ------------+
 *
 * An attach while SUBSCRIBING waits in the user's waiter list; an attach
 * while SUBSCRIBED waits in the registry's ready list, answered on the next
 * loop turn (cg_store_defer()), so the callback never runs inside
 * cg_registry_attach(). Only with no store (unit tests) is an attach
 * answered before the call returns. A user whose sessions all detached
 * while SUBSCRIBING is kept until the store answers, then unsubscribed and
 * freed.
 *
 * Store callbacks carry a small request object, not the registry: when the
 * registry is destroyed first (server stop destroys it before closing the
 * store), the request is marked orphaned and the late callback only frees
 * it.
 *
 * Pushes (the records of store/push_record.h, decoded there). A message
 * (M) becomes ONE cg_buf shared by every session of the user (each queues
 * a reference); a delivered notice (D) likewise for /user/queue/delivered;
 * a logout (L) closes the sessions logged in with that token (1008 "logged
 * out") and makes auth forget the token; a kick (K: the user was disabled
 * or deleted) closes every session of the user (1008, the record's
 * reason); a re-init (I: an operator's redeliver) makes every session of
 * the user read its pending inbox again (cg_session_resync()).
 *
 * Limits. A user has at most max_user_sessions sessions attached here: a
 * further attach is CG_E_LIMIT (session_connect.c answers CONNECT with
 * ERROR). Sessions by client address: a chained hash map address ->
 * count, taken and given back by session.c for each session's life
 * (cg_registry_addr_take/_give), read by the transports before they open a
 * session (max_addr_connections, via cg_session_admit()).
 *
 * Invariants: every session in the id map was created by session.c and
 * leaves it in cg_session_on_closed(); a user exists while it has sessions
 * or a subscribe request in flight. */
#include "fmacros.h"

#include <inttypes.h>
#include <string.h>

#include "chat/auth.h"
#include "core/buf.h"
#include "core/common.h"
#include "core/config.h"
#include "core/context.h"
#include "core/log.h"
#include "core/metrics.h"
#include "session/close_codes.h"
#include "session/registry.h"
#include "session/registry_internal.h"
#include "session/session.h"
#include "store/push_record.h"
#include "store/store.h"

#define MAP_MIN_CAP   64u       /* slots; grows by doubling, never shrinks */
#define USERS_MIN_CAP 64u       /* buckets */
#define ADDR_BUCKETS  1024u     /* address buckets; chains stay short: an
                                   address needs a session to be here */

enum user_state { U_NONE = 0, U_SUBSCRIBING, U_SUBSCRIBED };

struct slot {
    uint64_t    id;             /* 0: empty */
    cg_session *s;
};

struct waiter {
    struct waiter         *next;
    uint64_t               sid;
    cg_registry_attach_cb  cb;
    void                  *data;
};

struct sub_req {
    cg_registry *r;             /* NULL once the registry is gone */
    uint64_t     uid;
};

/* The registry's turn in the store's deferred queue: one at a time, for
 * every attach of the ready list. Its own allocation, so that a registry
 * destroyed first leaves it orphaned (r NULL) for the store to run. */
struct ready_turn {
    struct cg_store_defer d;    /* first: the callback casts back */
    cg_registry          *r;    /* NULL once the registry is gone */
};

/* Sessions from one client address (exists while n > 0). */
struct addr_count {
    struct addr_count *next;
    uint32_t           n;
    char               addr[];
};

struct cg_registry {
    struct cg_server *srv;
    struct addr_count **addrs;  /* ADDR_BUCKETS chains */
    uint64_t          next_id;
    struct slot      *slots;
    size_t            cap, n;
    struct user     **buckets;
    size_t            ucap, un;
    struct waiter    *ready, *ready_tail; /* attaches answered next turn */
    struct ready_turn *turn;    /* deferred, while ready is not empty */
};

static size_t
hash64(uint64_t x)
{
    /* splitmix64 finalizer: ids are sequential, so mix them. */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return (size_t)x;
}

/* ------------------------------------------------------------------------ */
/* Life cycle                                                                */
/* ------------------------------------------------------------------------ */

/* Call and free each waiter of the list w, in order. */
static void
answer_waiters(struct waiter *w, int err)
{
    while (w != NULL) {
        struct waiter *next = w->next;

        w->cb(w->sid, err, w->data);
        cg_free(w);
        w = next;
    }
}

int
cg_registry_create(struct cg_server *srv, cg_registry **out)
{
    cg_registry *r = cg_calloc(1, sizeof *r);

    if (r == NULL)
        return CG_E_NOMEM;
    r->srv = srv;
    r->slots = cg_calloc(MAP_MIN_CAP, sizeof *r->slots);
    r->buckets = cg_calloc(USERS_MIN_CAP, sizeof *r->buckets);
    r->addrs = cg_calloc(ADDR_BUCKETS, sizeof *r->addrs);
    if (r->slots == NULL || r->buckets == NULL || r->addrs == NULL) {
        cg_free(r->addrs);
        cg_free(r->slots);
        cg_free(r->buckets);
        cg_free(r);
        return CG_E_NOMEM;
    }
    r->cap = MAP_MIN_CAP;
    r->ucap = USERS_MIN_CAP;
    *out = r;
    return 0;
}

static void
user_free(struct user *u)
{
    cg_free(u->sids);
    cg_free(u);
}

void
cg_registry_destroy(cg_registry *r)
{
    size_t i;

    if (r == NULL)
        return;
    /* Waiting attach callbacks fire once, with CG_E_CLOSED, while lookups
     * still work. */
    answer_waiters(r->ready, CG_E_CLOSED);
    r->ready = r->ready_tail = NULL;
    if (r->turn != NULL)
        r->turn->r = NULL;         /* the store's late callback frees it */
    for (i = 0; i < r->ucap; i++) {
        struct user *u;

        for (u = r->buckets[i]; u != NULL; u = u->next) {
            struct waiter *w = u->waiters;

            u->waiters = u->waiters_tail = NULL;
            answer_waiters(w, CG_E_CLOSED);
            if (u->req != NULL) {
                u->req->r = NULL;      /* the store's late callback frees it */
                u->req = NULL;
            }
        }
    }
    for (i = 0; i < r->ucap; i++) {
        struct user *u = r->buckets[i];

        while (u != NULL) {
            struct user *next = u->next;

            user_free(u);
            u = next;
        }
    }
    for (i = 0; i < ADDR_BUCKETS; i++) {
        struct addr_count *a = r->addrs[i];

        while (a != NULL) {
            struct addr_count *next = a->next;

            cg_free(a);
            a = next;
        }
    }
    cg_free(r->addrs);
    cg_free(r->buckets);
    cg_free(r->slots);
    cg_free(r);
}

/* ------------------------------------------------------------------------ */
/* Sessions by id                                                            */
/* ------------------------------------------------------------------------ */

static int
map_grow(cg_registry *r)
{
    size_t cap = r->cap * 2, i, j;
    struct slot *slots = cg_calloc(cap, sizeof *slots);

    if (slots == NULL)
        return CG_E_NOMEM;
    for (i = 0; i < r->cap; i++) {
        if (r->slots[i].id == 0)
            continue;
        for (j = hash64(r->slots[i].id) & (cap - 1); slots[j].id != 0; j = (j + 1) & (cap - 1))
            ;
        slots[j] = r->slots[i];
    }
    cg_free(r->slots);
    r->slots = slots;
    r->cap = cap;
    return 0;
}

uint64_t
cg_registry_add(cg_registry *r, cg_session *s)
{
    uint64_t id;
    size_t j;

    if ((r->n + 1) * 2 > r->cap && map_grow(r) < 0)
        return 0;
    id = ++r->next_id;
    for (j = hash64(id) & (r->cap - 1); r->slots[j].id != 0; j = (j + 1) & (r->cap - 1))
        ;
    r->slots[j].id = id;
    r->slots[j].s = s;
    r->n++;
    return id;
}

static size_t
map_find(const cg_registry *r, uint64_t id)
{
    size_t j;

    if (id == 0)
        return SIZE_MAX;
    for (j = hash64(id) & (r->cap - 1); r->slots[j].id != 0; j = (j + 1) & (r->cap - 1))
        if (r->slots[j].id == id)
            return j;
    return SIZE_MAX;
}

cg_session *
cg_registry_get(const cg_registry *r, uint64_t sid)
{
    size_t j = map_find(r, sid);

    return j == SIZE_MAX ? NULL : r->slots[j].s;
}

void
cg_registry_remove(cg_registry *r, uint64_t sid)
{
    size_t i = map_find(r, sid), j, k, mask = r->cap - 1;

    if (i == SIZE_MAX)
        return;
    /* Backward-shift deletion: move later members of the probe run into
     * the hole when their home slot allows it. */
    r->slots[i].id = 0;
    r->slots[i].s = NULL;
    for (j = (i + 1) & mask; r->slots[j].id != 0; j = (j + 1) & mask) {
        k = hash64(r->slots[j].id) & mask;
        /* Leave slot j when its home k lies cyclically in (i, j]. */
        if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
            continue;
        r->slots[i] = r->slots[j];
        r->slots[j].id = 0;
        r->slots[j].s = NULL;
        i = j;
    }
    r->n--;
}

/* ------------------------------------------------------------------------ */
/* Sessions by client address                                                */
/* ------------------------------------------------------------------------ */

static struct addr_count **
addr_slot(const cg_registry *r, const char *addr)
{
    uint64_t h = 0xcbf29ce484222325ULL;           /* FNV-1a */
    struct addr_count **pp;

    for (const unsigned char *p = (const unsigned char *)addr; *p; p++)
        h = (h ^ *p) * 0x100000001b3ULL;
    pp = &r->addrs[hash64(h) & (ADDR_BUCKETS - 1)];
    while (*pp != NULL && strcmp((*pp)->addr, addr) != 0)
        pp = &(*pp)->next;
    return pp;
}

size_t
cg_registry_addr_count(const cg_registry *r, const char *addr)
{
    const struct addr_count *a;

    if (r == NULL || addr == NULL)
        return 0;
    a = *addr_slot(r, addr);
    return a != NULL ? a->n : 0;
}

int
cg_registry_addr_take(cg_registry *r, const char *addr)
{
    struct addr_count **pp = addr_slot(r, addr), *a = *pp;
    size_t len;

    if (a == NULL) {
        len = strlen(addr);
        if ((a = cg_calloc(1, sizeof *a + len + 1)) == NULL)
            return CG_E_NOMEM;
        memcpy(a->addr, addr, len + 1);
        *pp = a;
    }
    a->n++;
    return 0;
}

void
cg_registry_addr_give(cg_registry *r, const char *addr)
{
    struct addr_count **pp = addr_slot(r, addr), *a = *pp;

    if (a == NULL)
        return;
    if (--a->n == 0) {
        *pp = a->next;
        cg_free(a);
    }
}

size_t
cg_registry_count(const cg_registry *r)
{
    return r != NULL ? r->n : 0;
}

void
cg_registry_foreach(cg_registry *r, void (*fn)(cg_session *s, void *data), void *data)
{
    size_t i;

    /* fn may close sessions (closing is deferred) but never removes one
     * from the map: removal happens in the transport's closed event. */
    for (i = 0; i < r->cap; i++)
        if (r->slots[i].id != 0)
            fn(r->slots[i].s, data);
}

/* ------------------------------------------------------------------------ */
/* Users                                                                     */
/* ------------------------------------------------------------------------ */

static struct user **
user_slot(const cg_registry *r, uint64_t uid)
{
    struct user **pp = &r->buckets[hash64(uid) & (r->ucap - 1)];

    while (*pp != NULL && (*pp)->uid != uid)
        pp = &(*pp)->next;
    return pp;
}

struct user *
cg_registry__user_find(const cg_registry *r, uint64_t uid)
{
    return *user_slot(r, uid);
}

static void
users_grow(cg_registry *r)
{
    size_t cap = r->ucap * 2, i;
    struct user **b = cg_calloc(cap, sizeof *b);

    if (b == NULL)
        return;                    /* longer chains, still correct */
    for (i = 0; i < r->ucap; i++) {
        struct user *u = r->buckets[i];

        while (u != NULL) {
            struct user *next = u->next;
            size_t k = hash64(u->uid) & (cap - 1);

            u->next = b[k];
            b[k] = u;
            u = next;
        }
    }
    cg_free(r->buckets);
    r->buckets = b;
    r->ucap = cap;
}

static struct user *
user_get_or_create(cg_registry *r, uint64_t uid)
{
    struct user **pp = user_slot(r, uid), *u;

    if (*pp != NULL)
        return *pp;
    if ((u = cg_calloc(1, sizeof *u)) == NULL)
        return NULL;
    u->uid = uid;
    *pp = u;
    if (++r->un > r->ucap)
        users_grow(r);
    return u;
}

static void
user_unlink(cg_registry *r, struct user *u)
{
    struct user **pp = user_slot(r, u->uid);

    if (*pp == u) {
        *pp = u->next;
        r->un--;
    }
    user_free(u);
}

static int
user_add_sid(struct user *u, uint64_t sid)
{
    uint32_t i;

    for (i = 0; i < u->n; i++)
        if (u->sids[i] == sid)
            return 0;
    if (u->n == u->cap) {
        uint32_t cap = u->cap ? u->cap * 2 : 2;
        uint64_t *v = cg_realloc(u->sids, cap * sizeof *v);

        if (v == NULL)
            return CG_E_NOMEM;
        u->sids = v;
        u->cap = cap;
    }
    u->sids[u->n++] = sid;
    return 0;
}

static void
user_remove_sid(struct user *u, uint64_t sid)
{
    uint32_t i;

    for (i = 0; i < u->n; i++) {
        if (u->sids[i] == sid) {
            u->sids[i] = u->sids[--u->n];
            return;
        }
    }
}

size_t
cg_registry_scan_users(const cg_registry *r, size_t *cursor, uint64_t *out, size_t max)
{
    size_t i = *cursor, n = 0;

    for (; i < r->ucap && n < max; i++) {
        const struct user *u;
        size_t in_bucket = 0;

        for (u = r->buckets[i]; u != NULL; u = u->next)
            in_bucket += u->n > 0;
        /* A bucket is taken whole, unless it alone is more than max. */
        if (n > 0 && n + in_bucket > max)
            break;
        for (u = r->buckets[i]; u != NULL && n < max; u = u->next)
            if (u->n > 0)
                out[n++] = u->uid;
    }
    *cursor = i < r->ucap ? i : 0;
    return n;
}

size_t
cg_registry_user_count(const cg_registry *r)
{
    size_t n = 0;

    for (size_t i = 0; r != NULL && i < r->ucap; i++)
        for (const struct user *u = r->buckets[i]; u != NULL; u = u->next)
            n += u->n > 0;
    return n;
}

static void
on_subscribed(const struct cg_store_reply *reply, int err, void *data)
{
    struct sub_req *req = data;
    cg_registry *r = req->r;
    struct user *u;
    struct waiter *w;

    (void)reply;
    if (r == NULL) {               /* the registry went first */
        cg_free(req);
        return;
    }
    u = cg_registry__user_find(r, req->uid);
    cg_free(req);
    if (u == NULL)
        return;                    /* not reached: kept while req is set */
    u->req = NULL;
    w = u->waiters;
    u->waiters = u->waiters_tail = NULL;
    u->state = err < 0 ? U_NONE : U_SUBSCRIBED;
    if (err < 0)
        cg_log(CG_LOG_WARN, "subscribing to cg:u:%" PRIu64 " failed: %s; its "
               "sessions are refused", u->uid, cg_strerror(err));
    if (u->n == 0) {
        /* Everybody left while we were subscribing. */
        if (err == 0 && r->srv->store != NULL)
            cg_store_unsubscribe(r->srv->store, u->uid);
        user_unlink(r, u);
    }
    answer_waiters(w, err < 0 ? err : 0);
}

static void
on_ready_turn(struct cg_store_defer *d, int err)
{
    struct ready_turn *t = (struct ready_turn *)d;
    cg_registry *r = t->r;
    struct waiter *w;

    cg_free(t);
    if (r == NULL)
        return;                    /* the registry went first */
    r->turn = NULL;
    w = r->ready;
    r->ready = r->ready_tail = NULL;
    answer_waiters(w, err);
}

/* Queue w on the ready list, answered on the next loop turn. */
static int
ready_push(cg_registry *r, struct waiter *w)
{
    if (r->turn == NULL) {
        struct ready_turn *t = cg_malloc(sizeof *t);
        int rc;

        if (t == NULL)
            return CG_E_NOMEM;
        t->r = r;
        if ((rc = cg_store_defer(r->srv->store, &t->d, on_ready_turn)) < 0) {
            cg_free(t);
            return rc;
        }
        r->turn = t;
    }
    if (r->ready_tail)
        r->ready_tail->next = w;
    else
        r->ready = w;
    r->ready_tail = w;
    return 0;
}

int
cg_registry_attach(cg_registry *r, uint64_t sid, uint64_t uid,
                   cg_registry_attach_cb cb, void *data)
{
    struct user *u = user_get_or_create(r, uid);
    struct waiter *w = NULL;
    struct sub_req *req = NULL;
    int rc;

    if (u == NULL)
        return CG_E_NOMEM;
    if ((int64_t)u->n >= r->srv->cfg->max_user_sessions)
        return CG_E_LIMIT;         /* u has sessions: nothing to unlink */
    if ((rc = user_add_sid(u, sid)) < 0)
        goto fail;
    if (r->srv->store == NULL) {
        /* No store (unit tests): nothing to wait for, nothing to defer by. */
        u->state = U_SUBSCRIBED;
        cb(sid, 0, data);
        return 0;
    }
    if ((w = cg_calloc(1, sizeof *w)) == NULL) {
        rc = CG_E_NOMEM;
        goto fail;
    }
    w->sid = sid;
    w->cb = cb;
    w->data = data;
    if (u->state == U_SUBSCRIBED) {
        if ((rc = ready_push(r, w)) < 0)
            goto fail;
        return 0;
    }
    if (u->waiters_tail)
        u->waiters_tail->next = w;
    else
        u->waiters = w;
    u->waiters_tail = w;
    if (u->state == U_SUBSCRIBING)
        return 0;                  /* the subscribe in flight answers us too */

    /* First session here: subscribe. Everything is in place before the
     * call, in case the store answers before it returns. */
    if ((req = cg_malloc(sizeof *req)) == NULL) {
        rc = CG_E_NOMEM;
        goto unlink;
    }
    req->r = r;
    req->uid = uid;
    u->req = req;
    u->state = U_SUBSCRIBING;
    if ((rc = cg_store_subscribe(r->srv->store, uid, on_subscribed, req)) == 0)
        return 0;
    u->req = NULL;
    u->state = U_NONE;
    cg_free(req);
    req = NULL;
unlink:
    /* w is the only waiter: the user was NONE, so nobody else waits. */
    u->waiters = u->waiters_tail = NULL;
fail:
    cg_free(req);
    cg_free(w);
    user_remove_sid(u, sid);
    if (u->n == 0 && u->state == U_NONE)
        user_unlink(r, u);
    return rc;
}

void
cg_registry_detach(cg_registry *r, uint64_t sid, uint64_t uid)
{
    struct user *u = cg_registry__user_find(r, uid);

    if (u == NULL)
        return;
    user_remove_sid(u, sid);
    if (u->n > 0 || u->state == U_SUBSCRIBING)
        return;                    /* SUBSCRIBING: on_subscribed cleans up */
    if (u->state == U_SUBSCRIBED && r->srv->store != NULL)
        cg_store_unsubscribe(r->srv->store, uid);
    user_unlink(r, u);
}

/* ------------------------------------------------------------------------ */
/* Pushes                                                                    */
/* ------------------------------------------------------------------------ */

/* A decoded L record holds an auth.c token hash. */
_Static_assert(CG_PUSH_HASH_LEN == CG_TOKEN_HASH_LEN, "an L record's hash is a token hash");

/* Deliver body to every session of u; returns how many took it. */
static size_t
fan_out(cg_registry *r, const struct user *u, enum cg_chat_topic topic,
        struct cg_buf *body, uint64_t id, int64_t time_ms)
{
    size_t i, n = 0;

    /* cg_session_deliver never detaches (detaching happens in the
     * transport's closed event), so u->sids is stable here. */
    for (i = 0; i < u->n; i++) {
        cg_session *s = cg_registry_get(r, u->sids[i]);

        if (s != NULL) {
            cg_session_deliver(s, topic, body, id, time_ms, 0);
            n++;
        }
    }
    return n;
}

static void
push_message(cg_registry *r, const struct user *u, const struct cg_push_record *rec)
{
    struct cg_buf *body;
    int64_t age;

    body = cg_buf_create(rec->data, rec->len);
    if (body == NULL) {
        cg_log(CG_LOG_WARN, "push for uid %" PRIu64 " dropped: out of memory "
               "(message %" PRIu64 " stays pending)", u->uid, rec->id);
        return;
    }
    if (fan_out(r, u, CG_TOPIC_RECIVE, body, rec->id, rec->time_ms) > 0) {
        age = cg_now_ms() - rec->time_ms;
        cg_hist_observe(&r->srv->metrics.send_deliver_ms, age > 0 ? (double)age : 0.0);
    }
    cg_buf_unref(body);
}

/* h: the token's hash, NUL-terminated. */
static void
push_logout(cg_registry *r, const struct user *u, const char *h)
{
    uint32_t i;

    for (i = 0; i < u->n; i++) {
        cg_session *s = cg_registry_get(r, u->sids[i]);

        if (s != NULL && strcmp(cg_session_token_hash(s), h) == 0)
            cg_session_close(s, CG_CLOSE_POLICY, "logged out");
    }
    if (r->srv->auth != NULL)
        cg_auth_forget(r->srv->auth, h);
}

/* K: close every session of u with the record's reason; I: every session
 * reads its pending inbox again. */
static void
push_kick_or_reinit(const struct user *u, const struct cg_push_record *rec, cg_registry *r)
{
    char why[CG_PUSH_REASON_MAX + 1];

    memcpy(why, rec->data, rec->len);
    why[rec->len] = '\0';
    cg_log(CG_LOG_INFO, "uid %" PRIu64 ": %s %u session%s here (%s)", u->uid,
           rec->type == CG_PUSH_KICK ? "closing" : "redelivering to", u->n,
           u->n == 1 ? "" : "s", why);
    /* Closing and resyncing never detach (detaching happens in the
     * transport's closed event), so u->sids is stable here. */
    for (uint32_t i = 0; i < u->n; i++) {
        cg_session *s = cg_registry_get(r, u->sids[i]);

        if (s == NULL)
            continue;
        if (rec->type == CG_PUSH_KICK)
            cg_session_close(s, CG_CLOSE_POLICY, why);
        else
            cg_session_resync(s);
    }
}

void
cg_registry_on_push(uint64_t uid, const char *payload, size_t len, void *data)
{
    cg_registry *r = data;
    const struct user *u = cg_registry__user_find(r, uid);
    struct cg_push_record rec;
    struct cg_buf *body;
    char h[CG_TOKEN_HASH_LEN + 1];

    if (cg_push_record_decode(payload, len, &rec) < 0) {
        if (u != NULL)
            cg_log(CG_LOG_WARN, "malformed push (type 0x%02x, %zu bytes) for uid %" PRIu64
                   " ignored", len > 0 ? (unsigned char)payload[0] : 0, len, uid);
        return;
    }
    if (rec.type == CG_PUSH_LOGOUT) {
        /* Forget the token even with no session of it here: this node's
         * token cache must not keep admitting it. */
        memcpy(h, rec.data, CG_TOKEN_HASH_LEN);
        h[CG_TOKEN_HASH_LEN] = '\0';
        if (u != NULL)
            push_logout(r, u, h);
        else if (r->srv->auth != NULL)
            cg_auth_forget(r->srv->auth, h);
        return;
    }
    if (u == NULL || u->n == 0)
        return;                    /* nobody here any more */
    if (rec.type == CG_PUSH_KICK || rec.type == CG_PUSH_REINIT) {
        push_kick_or_reinit(u, &rec, r);
        return;
    }
    if (rec.type == CG_PUSH_MESSAGE) {
        push_message(r, u, &rec);
        return;
    }
    if ((body = cg_buf_create(rec.data, rec.len)) == NULL) {
        cg_log(CG_LOG_WARN, "delivered notice for uid %" PRIu64 " dropped: "
               "out of memory", uid);
        return;
    }
    fan_out(r, u, CG_TOPIC_DELIVERED, body, 0, 0);
    cg_buf_unref(body);
}
