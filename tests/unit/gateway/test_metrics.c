/* test_metrics.c - metrics.c: histogram bucketing and the Prometheus text
 * exposition, checked by parsing the rendered text back: every line is a
 * "# HELP"/"# TYPE" comment or "name{labels} value", every sample belongs
 * to a family typed before it, and histogram buckets are cumulative. */
#include "fmacros.h"

#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "core/common.h"
#include "core/metrics.h"

static void
reset_alloc_hook(void)
{
    cg_alloc_fail_after(0);
}

TestSuite(cg_hist, .fini = reset_alloc_hook);
TestSuite(cg_metrics, .fini = reset_alloc_hook);

/* ------------------------------------------------------------------------ */
/* Histograms                                                                */
/* ------------------------------------------------------------------------ */

Test(cg_hist, bounds_are_the_documented_sixteen)
{
    static const double want[CG_HIST_BUCKETS] = {
        0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500,
        5000, 10000,
    };

    for (size_t i = 0; i < CG_HIST_BUCKETS; i++)
        cr_assert(eq(dbl, cg_hist_bounds_ms[i], want[i]), "bound %zu", i);
}

Test(cg_hist, a_value_lands_in_the_first_bucket_whose_bound_holds_it)
{
    static const struct { double ms; size_t bucket; } rows[] = {
        { 0, 0 }, { 0.1, 0 }, { 0.1001, 1 }, { 1, 3 }, { 1.5, 4 },
        { 10000, CG_HIST_BUCKETS - 1 }, { 10000.5, CG_HIST_BUCKETS },
        { 1e9, CG_HIST_BUCKETS },
    };

    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct cg_hist h = { { 0 }, 0, 0 };

        cg_hist_observe(&h, rows[i].ms);
        cr_assert(eq(u64, h.bucket[rows[i].bucket], 1), "%g ms", rows[i].ms);
        cr_assert(eq(u64, h.count, 1));
        cr_assert(eq(dbl, h.sum_ms, rows[i].ms));
    }
}

Test(cg_hist, negative_and_nan_count_as_zero)
{
    struct cg_hist h = { { 0 }, 0, 0 };

    cg_hist_observe(&h, -5);
    cg_hist_observe(&h, NAN);
    cr_assert(eq(u64, h.bucket[0], 2));
    cr_assert(eq(u64, h.count, 2));
    cr_assert(eq(dbl, h.sum_ms, 0));
}

/* ------------------------------------------------------------------------ */
/* Parsing the exposition back                                               */
/* ------------------------------------------------------------------------ */

#define MAX_SAMPLES 256
#define MAX_FAMILIES 64

struct sample {
    char   name[96];
    char   labels[96];   /* between the braces, or "" */
    double value;
};

struct family {
    char name[96];
    char type[16];
    int  help;
};

struct exposition {
    struct sample s[MAX_SAMPLES];
    size_t        ns;
    struct family f[MAX_FAMILIES];
    size_t        nf;
};

static struct family *
find_family(struct exposition *e, const char *name)
{
    for (size_t i = 0; i < e->nf; i++)
        if (strcmp(e->f[i].name, name) == 0)
            return &e->f[i];
    return NULL;
}

/* The family a sample belongs to: its own name, or for histograms the name
 * without _bucket/_sum/_count. */
static struct family *
family_of(struct exposition *e, const char *sample)
{
    static const char *const suffixes[] = { "_bucket", "_sum", "_count" };
    struct family *f = find_family(e, sample);
    char base[96];

    for (size_t i = 0; f == NULL && i < 3; i++) {
        size_t n = strlen(sample), k = strlen(suffixes[i]);

        if (n > k && strcmp(sample + n - k, suffixes[i]) == 0) {
            snprintf(base, sizeof base, "%.*s", (int)(n - k), sample);
            f = find_family(e, base);
            if (f != NULL && strcmp(f->type, "histogram") != 0)
                f = NULL;
        }
    }
    return f;
}

static int
valid_name(const char *s)
{
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_' || *s == ':'))
        return 0;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:") ==
           strlen(s);
}

static void
parse_comment(struct exposition *e, char *line)
{
    char kind[8], name[96], rest[256];
    struct family *f;

    cr_assert(eq(int, sscanf(line, "# %7s %95s %255[^\n]", kind, name, rest), 3),
              "comment: %s", line);
    cr_assert(valid_name(name), "name: %s", name);
    f = find_family(e, name);
    if (f == NULL) {
        cr_assert(lt(sz, e->nf, MAX_FAMILIES));
        f = &e->f[e->nf++];
        snprintf(f->name, sizeof f->name, "%s", name);
    }
    if (strcmp(kind, "HELP") == 0) {
        cr_assert(zero(int, f->help), "second HELP for %s", name);
        f->help = 1;
    } else {
        cr_assert(eq(str, kind, "TYPE"));
        cr_assert(zero(chr, f->type[0]), "second TYPE for %s", name);
        cr_assert(strcmp(rest, "counter") == 0 || strcmp(rest, "gauge") == 0 ||
                  strcmp(rest, "histogram") == 0, "type %s", rest);
        snprintf(f->type, sizeof f->type, "%.15s", rest);
    }
}

/* "name{labels} value" or "name value"; labels are k="v" pairs. */
static void
parse_sample(struct exposition *e, char *line)
{
    char *sp = strrchr(line, ' '), *brace, *end;
    struct family *f;
    struct sample *s;
    regex_t rx;

    cr_assert(lt(sz, e->ns, MAX_SAMPLES));
    s = &e->s[e->ns++];
    cr_assert(not(zero(ptr, sp)), "no value: %s", line);
    *sp = '\0';
    s->value = strtod(sp + 1, &end);
    cr_assert(end != sp + 1 && *end == '\0', "value of %s: '%s'", line, sp + 1);
    brace = strchr(line, '{');
    if (brace != NULL) {
        size_t n = strlen(line);

        cr_assert(eq(chr, line[n - 1], '}'), "%s", line);
        line[n - 1] = '\0';
        *brace = '\0';
        snprintf(s->labels, sizeof s->labels, "%s", brace + 1);
        cr_assert(eq(int, regcomp(&rx, "^[a-zA-Z_][a-zA-Z0-9_]*=\"[^\"]*\""
                                  "(,[a-zA-Z_][a-zA-Z0-9_]*=\"[^\"]*\")*$",
                                  REG_EXTENDED | REG_NOSUB), 0));
        cr_assert(eq(int, regexec(&rx, s->labels, 0, NULL, 0), 0), "labels %s", s->labels);
        regfree(&rx);
    }
    snprintf(s->name, sizeof s->name, "%s", line);
    cr_assert(valid_name(s->name), "name: %s", s->name);
    f = family_of(e, s->name);
    cr_assert(not(zero(ptr, f)), "sample %s has no # TYPE before it", s->name);
    cr_assert(f->help && f->type[0], "family %s lacks HELP or TYPE", f->name);
}

/* Parse the text into e, asserting the format line by line. */
static void
parse_exposition(const char *text, struct exposition *e)
{
    char *copy = strdup(text), *save = NULL;

    cr_assert(not(zero(ptr, copy)));
    cr_assert(eq(chr, text[strlen(text) - 1], '\n'));
    memset(e, 0, sizeof *e);
    for (char *line = strtok_r(copy, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#')
            parse_comment(e, line);
        else
            parse_sample(e, line);
    }
    free(copy);
}

static const struct sample *
get(const struct exposition *e, const char *name, const char *labels)
{
    for (size_t i = 0; i < e->ns; i++)
        if (strcmp(e->s[i].name, name) == 0 && strcmp(e->s[i].labels, labels) == 0)
            return &e->s[i];
    cr_fatal("no sample %s{%s}", name, labels);
    return NULL;
}

static double
value(const struct exposition *e, const char *name, const char *labels)
{
    return get(e, name, labels)->value;
}

/* ------------------------------------------------------------------------ */
/* Rendering                                                                 */
/* ------------------------------------------------------------------------ */

static struct exposition ex;   /* large: keep it off the stack */

/* Metrics with a distinct value in every field. */
static void
fill(struct cg_metrics *m)
{
    memset(m, 0, sizeof *m);
    for (int i = 0; i < CG_TR_KIND_MAX; i++) {
        m->connections[i] = 10 + (uint64_t)i;
        m->connections_total[i] = 100 + (uint64_t)i;
    }
    for (int i = 0; i < CG_SEND_RESULT_MAX; i++)
        m->sends[i] = 200 + (uint64_t)i;
    m->frames_in = 1;
    m->frames_out = 2;
    m->bytes_in = 3;
    m->bytes_out = 4;
    m->deliveries = 5;
    m->redeliveries = 6;
    m->confirmations = 7;
    m->stomp_errors = 8;
    m->output_cap_closes = 9;
    m->rate_limited = 11;
    m->auth_failures = 12;
    m->login_limited = 13;
    m->redis_errors = 14;
    m->redis_reconnects = 15;
    m->http_requests = 16;
    m->pending_messages = 17;
    m->pending_sampled_users = 18;
    cg_hist_observe(&m->send_ack_ms, 0.05);
    cg_hist_observe(&m->send_ack_ms, 3);
    cg_hist_observe(&m->send_ack_ms, 3);
    cg_hist_observe(&m->send_ack_ms, 20000);
    cg_hist_observe(&m->redis_rtt_ms, 1);
}

static char *
render(const struct cg_metrics *m, const char *extra)
{
    char *out = NULL;
    size_t len = 0, cap = 0;

    cr_assert(eq(int, cg_metrics_render(m, extra, &out, &len, &cap), 0));
    cr_assert(eq(sz, strlen(out), len));
    cr_assert(lt(sz, len, cap));
    return out;
}

Test(cg_metrics, every_line_is_a_comment_or_a_sample)
{
    struct cg_metrics m;
    char *text;

    fill(&m);
    text = render(&m, NULL);
    parse_exposition(text, &ex);
    cr_assert(ge(sz, ex.nf, 20));
    for (size_t i = 0; i < ex.nf; i++) {
        cr_assert(eq(int, strncmp(ex.f[i].name, "chatgate_", 9), 0), "%s", ex.f[i].name);
        cr_assert(ex.f[i].help && ex.f[i].type[0], "%s", ex.f[i].name);
        if (strcmp(ex.f[i].type, "counter") == 0) {
            size_t n = strlen(ex.f[i].name);

            cr_assert(n > 6 && strcmp(ex.f[i].name + n - 6, "_total") == 0,
                      "counter %s lacks _total", ex.f[i].name);
        }
    }
    free(text);
}

Test(cg_metrics, counters_and_gauges_carry_their_fields)
{
    static const char *const transports[CG_TR_KIND_MAX] = {
        "ws", "sockjs-websocket", "sockjs-raw-websocket", "sockjs-xhr",
        "sockjs-xhr-streaming", "sockjs-eventsource", "sockjs-htmlfile",
        "sockjs-jsonp", "longlink",
    };
    static const char *const codes[CG_SEND_RESULT_MAX] = {
        "200", "400", "404", "409", "413", "429", "503", "507",
    };
    static const struct { const char *name; double v; } scalars[] = {
        { "chatgate_deliveries_total", 5 }, { "chatgate_redeliveries_total", 6 },
        { "chatgate_confirmations_total", 7 }, { "chatgate_stomp_errors_total", 8 },
        { "chatgate_output_cap_closes_total", 9 }, { "chatgate_rate_limited_total", 11 },
        { "chatgate_auth_failures_total", 12 }, { "chatgate_login_limited_total", 13 },
        { "chatgate_redis_errors_total", 14 }, { "chatgate_redis_reconnects_total", 15 },
        { "chatgate_http_requests_total", 16 },
    };
    struct cg_metrics m;
    char labels[64], *text;

    fill(&m);
    text = render(&m, NULL);
    parse_exposition(text, &ex);
    for (int i = 0; i < CG_TR_KIND_MAX; i++) {
        snprintf(labels, sizeof labels, "transport=\"%s\"", transports[i]);
        cr_assert(eq(dbl, value(&ex, "chatgate_connections", labels), 10 + i));
        cr_assert(eq(dbl, value(&ex, "chatgate_connections_total", labels), 100 + i));
    }
    cr_assert(eq(str, find_family(&ex, "chatgate_connections")->type, "gauge"));
    for (int i = 0; i < CG_SEND_RESULT_MAX; i++) {
        snprintf(labels, sizeof labels, "code=\"%s\"", codes[i]);
        cr_assert(eq(dbl, value(&ex, "chatgate_sends_total", labels), 200 + i));
    }
    cr_assert(eq(dbl, value(&ex, "chatgate_frames_total", "direction=\"in\""), 1));
    cr_assert(eq(dbl, value(&ex, "chatgate_frames_total", "direction=\"out\""), 2));
    cr_assert(eq(dbl, value(&ex, "chatgate_bytes_total", "direction=\"in\""), 3));
    cr_assert(eq(dbl, value(&ex, "chatgate_bytes_total", "direction=\"out\""), 4));
    for (size_t i = 0; i < sizeof scalars / sizeof scalars[0]; i++) {
        cr_assert(eq(dbl, value(&ex, scalars[i].name, ""), scalars[i].v), "%s",
                  scalars[i].name);
        cr_assert(eq(str, find_family(&ex, scalars[i].name)->type, "counter"));
    }
    cr_assert(eq(dbl, value(&ex, "chatgate_pending_messages", ""), 17));
    cr_assert(eq(dbl, value(&ex, "chatgate_pending_sampled_users", ""), 18));
    cr_assert(eq(str, find_family(&ex, "chatgate_pending_messages")->type, "gauge"));
    cr_assert(eq(str, find_family(&ex, "chatgate_pending_sampled_users")->type, "gauge"));
    free(text);
}

/* Check one histogram: le bounds in seconds, increasing, cumulative
 * counts, +Inf equal to _count, and _sum in seconds. */
static void
check_histogram(const char *name, const struct cg_hist *h)
{
    char sample[128], labels[32];
    double prev_le = -1, prev = 0;
    uint64_t cum = 0;

    cr_assert(eq(str, find_family(&ex, name)->type, "histogram"));
    snprintf(sample, sizeof sample, "%s_bucket", name);
    for (size_t i = 0; i < CG_HIST_BUCKETS; i++) {
        double le = cg_hist_bounds_ms[i] / 1000;
        const struct sample *s;

        snprintf(labels, sizeof labels, "le=\"%g\"", le);
        s = get(&ex, sample, labels);
        cum += h->bucket[i];
        cr_assert(gt(dbl, le, prev_le));
        cr_assert(ge(dbl, s->value, prev), "%s not cumulative", labels);
        cr_assert(eq(dbl, s->value, (double)cum), "%s{%s}", sample, labels);
        prev_le = le;
        prev = s->value;
    }
    cr_assert(eq(dbl, value(&ex, sample, "le=\"+Inf\""), (double)h->count));
    snprintf(sample, sizeof sample, "%s_count", name);
    cr_assert(eq(dbl, value(&ex, sample, ""), (double)h->count));
    snprintf(sample, sizeof sample, "%s_sum", name);
    cr_assert(epsilon_eq(dbl, value(&ex, sample, ""), h->sum_ms / 1000, 1e-9));
}

Test(cg_metrics, histograms_are_cumulative_and_in_seconds)
{
    struct cg_metrics m;
    char *text;

    fill(&m);
    text = render(&m, NULL);
    parse_exposition(text, &ex);
    check_histogram("chatgate_send_ack_seconds", &m.send_ack_ms);
    check_histogram("chatgate_send_deliver_seconds", &m.send_deliver_ms);
    check_histogram("chatgate_confirm_seconds", &m.confirm_ms);
    check_histogram("chatgate_redis_rtt_seconds", &m.redis_rtt_ms);
    cr_assert(eq(dbl, value(&ex, "chatgate_send_ack_seconds_bucket", "le=\"0.0001\""), 1));
    cr_assert(eq(dbl, value(&ex, "chatgate_send_ack_seconds_bucket", "le=\"0.005\""), 3));
    cr_assert(eq(dbl, value(&ex, "chatgate_send_ack_seconds_bucket", "le=\"10\""), 3));
    cr_assert(eq(dbl, value(&ex, "chatgate_send_ack_seconds_bucket", "le=\"+Inf\""), 4));
    free(text);
}

Test(cg_metrics, render_appends_and_extra_goes_last_verbatim)
{
    struct cg_metrics m;
    char *out = strdup("# before\n");
    size_t len = strlen(out), cap = len + 1;
    const char *extra = "# HELP chatgate_x X.\n# TYPE chatgate_x gauge\nchatgate_x 42\n";

    memset(&m, 0, sizeof m);
    cr_assert(eq(int, cg_metrics_render(&m, extra, &out, &len, &cap), 0));
    cr_assert(eq(int, strncmp(out, "# before\n# HELP chatgate_connections ", 37), 0));
    cr_assert(eq(str, out + len - strlen(extra), (char *)extra));
    parse_exposition(out + strlen("# before\n"), &ex);
    cr_assert(eq(dbl, value(&ex, "chatgate_x", ""), 42));
    free(out);
}

Test(cg_metrics, allocation_failure_leaves_the_string_as_it_was)
{
    struct cg_metrics m;
    char *out = NULL;
    size_t len = 0, cap = 0, n;

    fill(&m);
    /* Fail the 1st, 2nd, ... allocation until a render needs fewer. */
    for (n = 1;; n++) {
        int rc;

        free(out);
        out = strdup("keep");
        len = 4;
        cap = 5;
        cg_alloc_fail_after(n);
        rc = cg_metrics_render(&m, NULL, &out, &len, &cap);
        cg_alloc_fail_after(0);
        if (rc == 0)
            break;
        cr_assert(eq(int, rc, CG_E_NOMEM));
        cr_assert(eq(sz, len, 4));
        cr_assert(eq(str, out, "keep"));
    }
    cr_assert(gt(sz, n, 1));
    cr_assert(eq(int, strncmp(out, "keep# HELP", 10), 0));
    free(out);
}
