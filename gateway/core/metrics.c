/* metrics.c - latency histograms and the Prometheus text exposition.
 *
 * The counters themselves are plain uint64_t fields of struct cg_metrics,
 * bumped in place by the module that logs the event (STYLE.md 8); this file
 * only observes histogram samples and renders everything as Prometheus text
 * format 0.0.4, for GET {base}/metrics.
 *
 * Rendering is driven by two tables: families (a name, a type, a help line
 * and the samples, each a label set plus the offset of its field in struct
 * cg_metrics) and histograms. Adding a metric is one row; nothing else
 * changes. All names carry the "chatgate_" prefix, counters end in
 * "_total", and latencies are exported in seconds (the Prometheus base
 * unit) although they are kept in milliseconds.
 *
 * Histograms store per-bucket counts (observing touches one bucket); the
 * renderer makes them cumulative, as "le" requires, and ends with the
 * +Inf bucket, which equals _count.
 *
 * The output string is built with a sticky error (sqlite JsonString): the
 * first failed allocation stops all further appends, and the caller's
 * string is then restored to what it was before the call. */
#include "fmacros.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/common.h"
#include "core/metrics.h"

/* ------------------------------------------------------------------------ */
/* Histograms                                                                */
/* ------------------------------------------------------------------------ */

/* From 100 us (a pipelined Redis round trip on loopback) to 10 s (the
 * Redis timeout region); the 1-2.5-5 steps give a usable quantile estimate
 * in every decade. */
const double cg_hist_bounds_ms[CG_HIST_BUCKETS] = {
    0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000,
    10000,
};

void
cg_hist_observe(struct cg_hist *h, double ms)
{
    size_t i = 0;

    /* A latency computed from two nodes' wall clocks can come out negative;
     * count it as 0 rather than corrupt _sum. NaN fails the test too. */
    if (!(ms >= 0))
        ms = 0;
    while (i < CG_HIST_BUCKETS && ms > cg_hist_bounds_ms[i])
        i++;
    h->bucket[i]++;
    h->count++;
    h->sum_ms += ms;
}

/* ------------------------------------------------------------------------ */
/* The metric tables                                                         */
/* ------------------------------------------------------------------------ */

struct sample {
    const char *labels;        /* 'transport="ws"', or NULL for none */
    size_t      off;           /* offset of the uint64_t in struct cg_metrics */
};

struct family {
    const char          *name;
    const char          *type; /* "counter" or "gauge" */
    const char          *help;
    const struct sample *samples;
    size_t               nsamples;
};

struct histogram {
    const char *name;
    const char *help;
    size_t      off;           /* offset of the struct cg_hist */
};

#define OFF(field) offsetof(struct cg_metrics, field)
#define COUNT(a)   (sizeof(a) / sizeof((a)[0]))

/* One sample per transport kind, labelled as the session logs name them. */
#define PER_TRANSPORT(field) {                                                     \
    { "transport=\"ws\"",                   OFF(field[CG_TR_WS]) },                \
    { "transport=\"sockjs-websocket\"",     OFF(field[CG_TR_SOCKJS_WS]) },         \
    { "transport=\"sockjs-raw-websocket\"", OFF(field[CG_TR_SOCKJS_RAW_WS]) },     \
    { "transport=\"sockjs-xhr\"",           OFF(field[CG_TR_SOCKJS_XHR]) },        \
    { "transport=\"sockjs-xhr-streaming\"", OFF(field[CG_TR_SOCKJS_XHR_STREAMING]) }, \
    { "transport=\"sockjs-eventsource\"",   OFF(field[CG_TR_SOCKJS_EVENTSOURCE]) },  \
    { "transport=\"sockjs-htmlfile\"",      OFF(field[CG_TR_SOCKJS_HTMLFILE]) },   \
    { "transport=\"sockjs-jsonp\"",         OFF(field[CG_TR_SOCKJS_JSONP]) },      \
    { "transport=\"longlink\"",             OFF(field[CG_TR_LONGLINK]) },          \
}

_Static_assert(CG_TR_KIND_MAX == 9, "PER_TRANSPORT must list every transport kind");
_Static_assert(CG_SEND_RESULT_MAX == 8, "send_samples must list every send result");

static const struct sample connections_samples[] = PER_TRANSPORT(connections);
static const struct sample connections_total_samples[] = PER_TRANSPORT(connections_total);

static const struct sample frames_samples[] = {
    { "direction=\"in\"",  OFF(frames_in) },
    { "direction=\"out\"", OFF(frames_out) },
};

static const struct sample bytes_samples[] = {
    { "direction=\"in\"",  OFF(bytes_in) },
    { "direction=\"out\"", OFF(bytes_out) },
};

static const struct sample send_samples[] = {
    { "code=\"200\"", OFF(sends[CG_SEND_200]) },
    { "code=\"400\"", OFF(sends[CG_SEND_400]) },
    { "code=\"404\"", OFF(sends[CG_SEND_404]) },
    { "code=\"409\"", OFF(sends[CG_SEND_409]) },
    { "code=\"413\"", OFF(sends[CG_SEND_413]) },
    { "code=\"429\"", OFF(sends[CG_SEND_429]) },
    { "code=\"503\"", OFF(sends[CG_SEND_503]) },
    { "code=\"507\"", OFF(sends[CG_SEND_507]) },
};

static const struct sample head_refused_samples[] = {
    { "code=\"400\"", OFF(http_heads_refused[CG_HEAD_400]) },
    { "code=\"414\"", OFF(http_heads_refused[CG_HEAD_414]) },
    { "code=\"431\"", OFF(http_heads_refused[CG_HEAD_431]) },
};

/* Families with a single unlabelled sample. */
#define SCALAR(field) static const struct sample field##_sample[] = { { NULL, OFF(field) } }
SCALAR(deliveries);
SCALAR(redeliveries);
SCALAR(confirmations);
SCALAR(stomp_errors);
SCALAR(output_cap_closes);
SCALAR(rate_limited);
SCALAR(auth_failures);
SCALAR(login_limited);
SCALAR(register_limited);
SCALAR(password_checks);
SCALAR(redis_errors);
SCALAR(redis_reconnects);
SCALAR(redis_batches);
SCALAR(redis_batch_ops);
SCALAR(http_requests);
SCALAR(addr_sockets_refused);
SCALAR(pending_messages);
SCALAR(pending_sampled_users);

#define FAMILY(name, type, help, samples) \
    { "chatgate_" name, type, help, samples, COUNT(samples) }

static const struct family families[] = {
    FAMILY("connections", "gauge", "Open sessions by transport.",
           connections_samples),
    FAMILY("connections_total", "counter", "Sessions opened by transport.",
           connections_total_samples),
    FAMILY("frames_total", "counter", "STOMP frames received and sent.",
           frames_samples),
    FAMILY("bytes_total", "counter", "Transport payload bytes received and sent.",
           bytes_samples),
    FAMILY("sends_total", "counter", "Results of /socket/chat/send by status code.",
           send_samples),
    FAMILY("deliveries_total", "counter", "MESSAGE frames queued to sessions.",
           deliveries_sample),
    FAMILY("redeliveries_total", "counter",
           "MESSAGE frames queued with redelivered:true.", redeliveries_sample),
    FAMILY("confirmations_total", "counter",
           "Messages confirmed by their receiver (recive 200).", confirmations_sample),
    FAMILY("stomp_errors_total", "counter", "STOMP ERROR frames sent.",
           stomp_errors_sample),
    FAMILY("output_cap_closes_total", "counter",
           "Sessions closed for exceeding the output queue limits.",
           output_cap_closes_sample),
    FAMILY("rate_limited_total", "counter", "Sends answered 429 by the rate limit.",
           rate_limited_sample),
    FAMILY("auth_failures_total", "counter",
           "Rejected tokens and failed logins.", auth_failures_sample),
    FAMILY("login_limited_total", "counter",
           "Login attempts refused by the login rate limit.", login_limited_sample),
    FAMILY("register_limited_total", "counter",
           "Registrations refused by the registration rate limit.",
           register_limited_sample),
    FAMILY("password_checks_total", "counter",
           "Password hashes computed for logins, including the decoy hash of "
           "unknown names.", password_checks_sample),
    FAMILY("redis_errors_total", "counter",
           "Redis commands that failed or timed out.", redis_errors_sample),
    FAMILY("redis_reconnects_total", "counter",
           "Reconnections to Redis after a lost connection.", redis_reconnects_sample),
    FAMILY("redis_batches_total", "counter",
           "Calls of the chat script (each a batch of sends and confirmations).",
           redis_batches_sample),
    FAMILY("redis_batch_ops_total", "counter",
           "Sends and confirmations carried by those calls.", redis_batch_ops_sample),
    FAMILY("http_requests_total", "counter", "HTTP API requests served.",
           http_requests_sample),
    FAMILY("http_heads_refused_total", "counter",
           "First request heads of connections refused before lws read them, "
           "by status code.", head_refused_samples),
    FAMILY("addr_sockets_refused_total", "counter",
           "Connections closed at accept: their address had max_addr_sockets open.",
           addr_sockets_refused_sample),
    FAMILY("pending_messages", "gauge",
           "Unconfirmed messages of the users connected to this node, as of the "
           "last sample.", pending_messages_sample),
    FAMILY("pending_sampled_users", "gauge",
           "Users connected to this node that the last pending sample covered.",
           pending_sampled_users_sample),
};

static const struct histogram histograms[] = {
    { "chatgate_send_ack_seconds",
      "SEND received to send/status 200 queued.", OFF(send_ack_ms) },
    { "chatgate_send_deliver_seconds",
      "Message stored to MESSAGE queued on this node.", OFF(send_deliver_ms) },
    { "chatgate_confirm_seconds",
      "Message stored to confirmed by the receiver.", OFF(confirm_ms) },
    { "chatgate_redis_rtt_seconds",
      "Redis command round trip.", OFF(redis_rtt_ms) },
};

/* ------------------------------------------------------------------------ */
/* Output string                                                             */
/* ------------------------------------------------------------------------ */

struct out {
    char  **buf;
    size_t *len, *cap;
    int     err;               /* sticky: first error, then appends are no-ops */
};

static void put(struct out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    size_t need, cap;
    char *p;
    int n;

    if (o->err)
        return;
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        o->err = CG_E_INVAL;                 /* a bad format; cannot happen */
        return;
    }
    need = *o->len + (size_t)n + 1;          /* + NUL */
    if (need > *o->cap) {
        cap = *o->cap ? *o->cap : 4096;      /* a full exposition is ~7 KiB */
        while (cap < need)
            cap *= 2;
        if ((p = cg_realloc(*o->buf, cap)) == NULL) {
            o->err = CG_E_NOMEM;
            return;
        }
        *o->buf = p;
        *o->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(*o->buf + *o->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    *o->len += (size_t)n;
}

/* A sample value as Prometheus spells floats. */
static void
put_float(struct out *o, double v)
{
    if (isnan(v))
        put(o, "NaN");
    else if (isinf(v))
        put(o, v > 0 ? "+Inf" : "-Inf");
    else
        put(o, "%.9g", v);
}

/* ------------------------------------------------------------------------ */
/* Rendering                                                                 */
/* ------------------------------------------------------------------------ */

static uint64_t
field_at(const struct cg_metrics *m, size_t off)
{
    uint64_t v;

    memcpy(&v, (const char *)m + off, sizeof v);
    return v;
}

static void
render_family(struct out *o, const struct cg_metrics *m, const struct family *f)
{
    put(o, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, f->type);
    for (size_t i = 0; i < f->nsamples; i++) {
        const struct sample *s = &f->samples[i];

        if (s->labels != NULL)
            put(o, "%s{%s} %llu\n", f->name, s->labels,
                (unsigned long long)field_at(m, s->off));
        else
            put(o, "%s %llu\n", f->name, (unsigned long long)field_at(m, s->off));
    }
}

static void
render_histogram(struct out *o, const struct cg_metrics *m,
                 const struct histogram *hd)
{
    const struct cg_hist *h = (const struct cg_hist *)((const char *)m + hd->off);
    uint64_t cum = 0;

    put(o, "# HELP %s %s\n# TYPE %s histogram\n", hd->name, hd->help, hd->name);
    for (size_t i = 0; i < CG_HIST_BUCKETS; i++) {
        cum += h->bucket[i];
        put(o, "%s_bucket{le=\"%g\"} %llu\n", hd->name,
            cg_hist_bounds_ms[i] / 1000.0, (unsigned long long)cum);
    }
    cum += h->bucket[CG_HIST_BUCKETS];
    put(o, "%s_bucket{le=\"+Inf\"} %llu\n", hd->name, (unsigned long long)cum);
    put(o, "%s_sum ", hd->name);
    put_float(o, h->sum_ms / 1000.0);
    put(o, "\n%s_count %llu\n", hd->name, (unsigned long long)h->count);
}

int
cg_metrics_render(const struct cg_metrics *m, const char *extra,
                  char **out, size_t *len, size_t *cap)
{
    struct out o = { out, len, cap, 0 };
    size_t start = *len;

    for (size_t i = 0; i < COUNT(families); i++)
        render_family(&o, m, &families[i]);
    /* Process-wide, not per server: common.c's allocation gauge. */
    {
        int64_t heap = cg_heap_bytes();

        put(&o, "# HELP chatgate_heap_bytes Bytes the gateway allocated and holds "
            "(its own allocations; not those of its libraries).\n"
            "# TYPE chatgate_heap_bytes gauge\nchatgate_heap_bytes %lld\n",
            (long long)(heap > 0 ? heap : 0));
    }
    for (size_t i = 0; i < COUNT(histograms); i++)
        render_histogram(&o, m, &histograms[i]);
    if (extra != NULL)
        put(&o, "%s", extra);
    if (o.err) {
        *len = start;                        /* as if nothing was appended */
        if (*out != NULL && start < *cap)
            (*out)[start] = '\0';
        return o.err;
    }
    return 0;
}
