/* metrics.h - counters, gauges and histograms, rendered as Prometheus text.
 *
 * Plain integers updated on the loop thread; no locking. Each limit hit and
 * forced close increments its counter where it is logged (STYLE.md 8). */
#ifndef CHATGATE_METRICS_H
#define CHATGATE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define CG_HIST_BUCKETS 16

/* Latency histogram in milliseconds; bucket bounds are cg_hist_bounds_ms. */
struct cg_hist {
    uint64_t bucket[CG_HIST_BUCKETS + 1];   /* last one is +Inf */
    uint64_t count;
    double   sum_ms;
};

extern const double cg_hist_bounds_ms[CG_HIST_BUCKETS];

void cg_hist_observe(struct cg_hist *h, double ms);

enum cg_transport_kind {
    CG_TR_WS = 0,
    CG_TR_SOCKJS_WS,
    CG_TR_SOCKJS_RAW_WS,
    CG_TR_SOCKJS_XHR,
    CG_TR_SOCKJS_XHR_STREAMING,
    CG_TR_SOCKJS_EVENTSOURCE,
    CG_TR_SOCKJS_HTMLFILE,
    CG_TR_SOCKJS_JSONP,
    CG_TR_LONGLINK,
    CG_TR_KIND_MAX,
};

/* Result codes of /socket/chat/send counted by code. */
enum cg_send_result {
    CG_SEND_200 = 0, CG_SEND_400, CG_SEND_404, CG_SEND_409, CG_SEND_413,
    CG_SEND_429, CG_SEND_503, CG_SEND_507, CG_SEND_RESULT_MAX,
};

/* First request heads refused before lws reads them (listener.c). */
enum cg_head_refusal {
    CG_HEAD_400 = 0, CG_HEAD_414, CG_HEAD_431, CG_HEAD_REFUSAL_MAX,
};

struct cg_metrics {
    uint64_t connections[CG_TR_KIND_MAX];        /* gauge: open sessions */
    uint64_t connections_total[CG_TR_KIND_MAX];  /* counter */
    uint64_t frames_in, frames_out;
    uint64_t bytes_in, bytes_out;
    uint64_t sends[CG_SEND_RESULT_MAX];
    uint64_t deliveries;              /* MESSAGE frames queued to sessions */
    uint64_t redeliveries;            /* ... of which redelivered:true */
    uint64_t confirmations;           /* recive 200 */
    uint64_t stomp_errors;            /* ERROR frames sent */
    uint64_t output_cap_closes;
    uint64_t rate_limited;            /* 429 answers */
    uint64_t auth_failures;
    uint64_t login_limited;
    uint64_t register_limited;
    uint64_t password_checks;       /* PBKDF2 runs of a login, real or decoy */
    uint64_t redis_errors;
    uint64_t redis_reconnects;
    uint64_t redis_batches;           /* chat script calls (batches) */
    uint64_t redis_batch_ops;         /* chat operations in them */
    uint64_t http_requests;
    uint64_t http_heads_refused[CG_HEAD_REFUSAL_MAX];
    uint64_t addr_sockets_refused;    /* accepts closed: max_addr_sockets */
    /* Pending inboxes of the users connected here, as of the last sample
     * (inbox_stats.c says what exactly is sampled and why). */
    uint64_t pending_messages;        /* gauge: their pending messages */
    uint64_t pending_sampled_users;   /* gauge: users the sample covered */
    int64_t  pending_oldest_ms;       /* stored time of the oldest one; 0 none
                                         (the age is computed when rendered) */
    struct cg_hist send_ack_ms;       /* SEND received -> send/status 200 queued */
    struct cg_hist send_deliver_ms;   /* stored time -> MESSAGE queued (this node) */
    struct cg_hist confirm_ms;        /* stored time -> receiver confirmed */
    struct cg_hist redis_rtt_ms;      /* command round trip */
};

/* Append the Prometheus text exposition of m to out (a growable string:
 * *out / *len / *cap, realloc'd with cg_realloc). extra is appended
 * verbatim (gauges computed elsewhere) and may be NULL. Returns 0 or
 * CG_E_NOMEM. */
int cg_metrics_render(const struct cg_metrics *m, const char *extra,
                      char **out, size_t *len, size_t *cap);

#endif
