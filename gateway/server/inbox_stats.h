/* inbox_stats.h - periodic sample of the pending inboxes of the users
 * connected to this node, for /metrics (inbox_stats.c). Used by server.c. */
#ifndef CG_INBOX_STATS_H
#define CG_INBOX_STATS_H

struct uv_loop_s;
struct cg_config;
struct cg_store;
struct cg_registry;
struct cg_metrics;

struct cg_inbox_stats;

/* Start sampling every cfg->metrics_sample_ms (0: never; *out is still
 * set). Everything passed in must outlive the sampler, except that the
 * store may answer after cg_inbox_stats_destroy(): late answers are
 * dropped. Returns 0 or CG_E_NOMEM. */
int cg_inbox_stats_create(struct uv_loop_s *loop, const struct cg_config *cfg,
                          struct cg_store *store, struct cg_registry *registry,
                          struct cg_metrics *metrics, struct cg_inbox_stats **out);

/* Stop sampling; frees once the timer is closed. NULL is fine. */
void cg_inbox_stats_destroy(struct cg_inbox_stats *st);

#endif
