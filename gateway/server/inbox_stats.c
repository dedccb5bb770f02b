/* inbox_stats.c - the pending-inbox gauges of /metrics, sampled.
 *
 * What the gauges mean (and why that definition). The exact answer - the
 * unconfirmed messages of every user - would need a counter outside the
 * users' hash tags (one key every send touches: no longer Cluster-safe,
 * and a hot key) or a SCAN of the keyspace. Neither is acceptable on the
 * message path. What an operator of one node needs is whether the users it
 * serves are keeping up, so the sample covers the users with a session on
 * this node:
 *
 *   every metrics_sample_ms, for at most SAMPLE_USERS of them (taken in
 *   turn, like Redis SCAN, when the node has more), one EVALSHA of
 *   pending.lua per user (ZCARD + the first member's stored time,
 *   pipelined; O(log n) each) ->
 *     chatgate_pending_messages              sum of their pending counts
 *     chatgate_pending_sampled_users         how many users that covers
 *     chatgate_pending_oldest_age_seconds    now - stored time of the
 *                                            oldest pending message among
 *                                            them (0 when none)
 *
 * Consequences, also in docs/OPERATIONS.md "Metrics": offline users' inboxes are not
 * in the figure (their messages wait by design); a user connected to two
 * nodes is counted by both, so take the max across nodes, not the sum;
 * between samples the age keeps growing from the sampled time (a message
 * confirmed meanwhile leaves the figure at the next sample).
 *
 * One round at a time: a tick while the previous round still waits for
 * Redis is skipped, so a slow Redis never piles up samples. A round owns
 * its replies; when the sampler is destroyed first (server stop), the round
 * is orphaned and frees itself when the store has answered every request
 * (the store calls each callback exactly once, CG_E_CLOSED at its close). */
#include "fmacros.h"

#include <uv.h>

#include "core/common.h"
#include "core/config.h"
#include "core/metrics.h"
#include "server/inbox_stats.h"
#include "session/registry.h"
#include "store/store.h"

/* Users per round: bounds the Redis work of one sample (256 short
 * read-only scripts every 10 s by default, ~25 a second). */
#define SAMPLE_USERS 256

struct round {
    struct cg_inbox_stats *st;      /* NULL once the sampler is gone */
    size_t                 left;    /* replies still due */
    uint64_t               users, total;
    int64_t                oldest;  /* stored time ms, 0 = none */
};

struct cg_inbox_stats {
    const struct cg_config *cfg;
    struct cg_store        *store;
    struct cg_registry     *registry;
    struct cg_metrics      *m;
    uv_timer_t              timer;
    size_t                  cursor;
    struct round           *round;  /* in flight */
};

static void
publish(struct cg_metrics *m, const struct round *r)
{
    m->pending_messages = r->total;
    m->pending_sampled_users = r->users;
    m->pending_oldest_ms = r->oldest;
}

static void
round_done(struct round *r)
{
    if (r->st != NULL) {
        publish(r->st->m, r);
        r->st->round = NULL;
    }
    cg_free(r);
}

static void
on_reply(const struct cg_store_reply *reply, int err, void *data)
{
    struct round *r = data;
    /* [pending count, oldest stored time ms] (pending.lua) */
    const struct cg_store_reply *count = cg_store_reply_element(reply, 0);
    const struct cg_store_reply *oldest = cg_store_reply_element(reply, 1);

    if (err == 0 && cg_store_reply_count(reply) == 2 &&
        cg_store_reply_type(count) == CG_STORE_REPLY_INTEGER &&
        cg_store_reply_type(oldest) == CG_STORE_REPLY_INTEGER &&
        cg_store_reply_integer(count) >= 0) {
        long long t = cg_store_reply_integer(oldest);

        r->users++;
        r->total += (uint64_t)cg_store_reply_integer(count);
        if (t > 0 && (r->oldest == 0 || t < r->oldest))
            r->oldest = t;
    }
    /* Failures are counted by the store (redis_errors); the user is simply
     * not in this sample. */
    if (--r->left == 0)
        round_done(r);
}

static void
on_tick(uv_timer_t *t)
{
    struct cg_inbox_stats *st = t->data;
    uint64_t uids[SAMPLE_USERS];
    char keys[2][CG_STORE_KEY_MAX];
    const char *argv[2] = { keys[0], keys[1] };
    size_t n, lens[2];
    struct round *r;

    if (st->round != NULL || !cg_store_ready(st->store))
        return;                     /* the last round is still out; or no Redis */
    n = cg_registry_scan_users(st->registry, &st->cursor, uids, SAMPLE_USERS);
    if ((r = cg_calloc(1, sizeof *r)) == NULL)
        return;
    r->st = st;
    r->left = 1;                    /* held while submitting */
    st->round = r;
    for (size_t i = 0; i < n; i++) {
        int l0 = cg_store_key(keys[0], sizeof keys[0], uids[i], "pending");
        int l1 = cg_store_key(keys[1], sizeof keys[1], uids[i], "msg");

        if (l0 < 0 || l1 < 0)
            continue;
        lens[0] = (size_t)l0;
        lens[1] = (size_t)l1;
        if (cg_store_eval(st->store, CG_SCRIPT_PENDING, 2, 2, argv, lens,
                          on_reply, r) == 0)
            r->left++;
    }
    if (--r->left == 0)             /* nothing submitted, or all answered */
        round_done(r);
}

int
cg_inbox_stats_create(uv_loop_t *loop, const struct cg_config *cfg,
                      struct cg_store *store, struct cg_registry *registry,
                      struct cg_metrics *metrics, struct cg_inbox_stats **out)
{
    struct cg_inbox_stats *st = cg_calloc(1, sizeof *st);

    *out = NULL;
    if (st == NULL)
        return CG_E_NOMEM;
    st->cfg = cfg;
    st->store = store;
    st->registry = registry;
    st->m = metrics;
    uv_timer_init(loop, &st->timer);
    st->timer.data = st;
    if (cfg->metrics_sample_ms > 0)
        uv_timer_start(&st->timer, on_tick, (uint64_t)cfg->metrics_sample_ms,
                       (uint64_t)cfg->metrics_sample_ms);
    *out = st;
    return 0;
}

static void
on_timer_closed(uv_handle_t *h)
{
    cg_free(h->data);
}

void
cg_inbox_stats_destroy(struct cg_inbox_stats *st)
{
    if (st == NULL)
        return;
    if (st->round != NULL)
        st->round->st = NULL;       /* it frees itself when answered */
    uv_timer_stop(&st->timer);
    uv_close((uv_handle_t *)&st->timer, on_timer_closed);
}
