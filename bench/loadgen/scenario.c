/* scenario.c - the four scenarios of chatgate_loadgen on top of conn.c.
 *
 * Phases of every run (one libuv loop, a 10 ms tick drives the clock):
 *
 *   ACCOUNTS  gateway only: register (201, or 409 when the name exists)
 *             and log in every user, `concurrency` requests at a time,
 *             each login from its own 127.1.x.y source address (the
 *             gateway rate-limits logins per address)
 *   [FILL]    backlog only: bring the user's pending inbox to N with the
 *             gateway's own chat.lua, EVALSHA pipelined over a few Redis
 *             connections (hiredis)
 *   CONNECT   every session: TCP, WebSocket, CONNECT, SUBSCRIBEs with a
 *             receipt on the last; `concurrency` in flight
 *   RUN       p2p/fanout: warmup, then the measured window, then drain
 *             (no new sends; wait for answers and deliveries);
 *             idle: settle, measure RSS, hold; backlog: init and drain
 *   REPORT    text summary and one "RESULT {json}" line
 *
 * Message accounting (p2p, fanout). Each sender keeps, per sequence
 * number, the send time and a state byte (sent, answered 200, answered
 * with an error) plus a delivery count. The msgID (gateway) or the body's
 * msgID (RabbitMQ) is "lg<run nonce>-<sender>-<seq>", so an answer or a
 * delivery finds its record without any map. lost = answered 200 (or
 * RECEIPT) but delivered to fewer sessions than expected once the drain
 * ends; duplicates are counted apart. Latencies go into the histograms
 * only for sends made inside the measured window; the throughput is the
 * number of 200s (RECEIPTs) that arrived inside the window, per second.
 *
 * The receiving side confirms each message like a real client: the
 * gateway's /socket/chat/recive (fanout: only device 0 confirms; the
 * others only receive), RabbitMQ's ACK (client-individual). */
#include "fmacros.h"

#include <inttypes.h>
#include <stdarg.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "lg.h"

#define ST_SENT 0x01
#define ST_OK   0x02
#define ST_ERR  0x04
#define MAX_CODE 1000
#define TICK_MS 10

struct user;

struct device {
    struct lg_conn c;
    struct user   *u;
    int            k;            /* index among the user's devices */
    int            up;           /* reached READY */
};

struct user {
    int             idx;
    char            name[48];
    uint64_t        uid;
    char            token[160];
    struct device  *dev;
    int             ndev;
    int             sender;      /* sends in this scenario */
    uint32_t        inflight;
    uint64_t        next_seq;
    uint64_t       *ts;          /* per seq: send time, ns */
    uint8_t        *st;          /* per seq: ST_* */
    uint8_t        *dc;          /* per seq: deliveries seen */
    size_t          cap;
};

enum phase { PH_ACCOUNTS, PH_FILL, PH_CONNECT, PH_WARMUP, PH_WINDOW, PH_DRAIN,
             PH_SETTLE, PH_HOLD, PH_INIT, PH_DONE };

struct cpu_snap {
    uint64_t t_ns;
    long long server, redis;
    long long server_wait, redis_wait;   /* run-queue wait, ns */
    double    load1;                     /* /proc/loadavg */
    double    self_s;
    long long rss_kib;
};

struct run {
    const struct lg_opts *o;
    uv_loop_t      loop;
    struct lg_ctx  ctx;
    uv_timer_t     tick;
    enum phase     phase;
    uint32_t       nonce;
    uint64_t       rng;
    int            exit_code;
    char           fatal[320];

    struct user   *users;
    int            nusers;
    int            target;       /* fanout: the receiving user */
    int            expected;     /* deliveries expected per message */
    char           content[4096];

    /* accounts */
    int            acc_next, acc_done, acc_fail, acc_inflight;
    char           acc_err[160];

    /* connect */
    struct device **all;
    int            ndev, dev_next, dev_ready, dev_failed, dev_inflight;
    uint64_t       t_connect0, t_connect1;

    /* run */
    uint64_t       t_run0, t_win0, t_win1, t_drain_end, t_phase;
    uint64_t       t_progress, progress_mark;   /* drain: last answer or delivery */
    uint64_t       rate_sent;    /* rate mode: sends made since t_run0 */
    int            rr;           /* rate mode: round-robin cursor */
    uint64_t       sent, ok, err_answers, dlv, dup, stale, confirms, err_frames;
    uint64_t       ok_win, dlv_win, sent_win, dlv_needed_got;
    uint64_t       errors[MAX_CODE];
    struct lg_hist h_ack, h_dlv;
    struct cpu_snap c0, c1;
    long long      rss_base, rss_peak, rss_after;
    long long      cmd0_eval, cmd0_pub, cmd1_eval, cmd1_pub;
    uint64_t       ok_at_c0, ok_at_c1;
    redisContext  *info_rc;

    /* backlog */
    uint64_t       bl_have, bl_got, bl_count, t_init0, t_init1;
    uv_timer_t     rss_timer;
    int            rss_timer_on;
    uint64_t       rss_samples;
};

static double
secs(uint64_t ns)
{
    return (double)ns / 1e9;
}

__attribute__((format(printf, 2, 3))) static void
fatal(struct run *r, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    if (r->fatal[0] == '\0')
        vsnprintf(r->fatal, sizeof r->fatal, fmt, ap);
    va_end(ap);
    r->exit_code = 1;
    r->phase = PH_DONE;
}

static long long
server_ticks(const struct run *r)
{
    long long sum = 0, v;

    for (int i = 0; i < r->o->nserver; i++)
        if ((v = lg_proc_cpu_ticks(r->o->server_pids[i])) > 0)
            sum += v;
    return sum;
}

static long long
server_rss(const struct run *r)
{
    long long sum = 0, v;

    for (int i = 0; i < r->o->nserver; i++)
        if ((v = lg_proc_status_kib(r->o->server_pids[i], "VmRSS")) > 0)
            sum += v;
    return r->o->nserver ? sum : -1;
}

static double
self_cpu_s(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void
snap(const struct run *r, struct cpu_snap *s)
{
    s->t_ns = lg_now_ns();
    s->server = server_ticks(r);
    s->redis = r->o->redis_pid > 0 ? lg_proc_cpu_ticks(r->o->redis_pid) : -1;
    s->self_s = self_cpu_s();
    s->rss_kib = server_rss(r);
    s->server_wait = r->o->nserver ? lg_proc_wait_ns(r->o->server_pids[0]) : -1;
    s->redis_wait = lg_proc_wait_ns(r->o->redis_pid);
    s->load1 = -1;
    {
        FILE *f = fopen("/proc/loadavg", "r");

        if (f) {
            if (fscanf(f, "%lf", &s->load1) != 1)
                s->load1 = -1;
            fclose(f);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Redis (INFO commandstats, backlog fill)                                   */
/* ------------------------------------------------------------------------ */

static redisContext *
redis_open(const char *url)
{
    struct timeval tv = { 5, 0 };
    char host[256];
    const char *p;
    int port = 6379;

    if (url == NULL)
        return NULL;
    if (strncmp(url, "unix://", 7) == 0)
        return redisConnectUnixWithTimeout(url + 7, tv);
    p = strncmp(url, "redis://", 8) == 0 ? url + 8 : url;
    snprintf(host, sizeof host, "%s", p);
    if (strchr(host, '/'))
        *strchr(host, '/') = '\0';
    if (strchr(host, ':')) {
        port = atoi(strchr(host, ':') + 1);
        *strchr(host, ':') = '\0';
    }
    if (strncmp(host, "127.", 4) != 0 && strcmp(host, "localhost") != 0) {
        fprintf(stderr, "loadgen: --redis must be on the loopback (127.x or unix://)\n");
        return NULL;
    }
    return redisConnectWithTimeout(host, port, tv);
}

/* calls= of one command in INFO commandstats, or -1. */
static long long
cmd_calls(const char *info, const char *cmd)
{
    char key[64];
    const char *p;

    snprintf(key, sizeof key, "cmdstat_%s:calls=", cmd);
    if ((p = strstr(info, key)) == NULL)
        return 0;
    return strtoll(p + strlen(key), NULL, 10);
}

static void
commandstats(struct run *r, long long *eval, long long *pub)
{
    redisReply *rep;

    *eval = *pub = -1;
    if (r->info_rc == NULL)
        return;
    rep = redisCommand(r->info_rc, "INFO commandstats");
    if (rep == NULL || rep->type != REDIS_REPLY_STRING) {
        if (rep)
            freeReplyObject(rep);
        return;
    }
    *eval = cmd_calls(rep->str, "evalsha") + cmd_calls(rep->str, "eval");
    *pub = cmd_calls(rep->str, "publish");
    freeReplyObject(rep);
}

/* ------------------------------------------------------------------------ */
/* Message tags                                                              */
/* ------------------------------------------------------------------------ */

static size_t
make_msgid(const struct run *r, int sender, uint64_t seq, char *out, size_t cap)
{
    int n = snprintf(out, cap, "lg%08x-%x-%" PRIx64, r->nonce, (unsigned)sender, seq);

    return n > 0 ? (size_t)n : 0;
}

/* "lg<nonce>-<sender>-<seq>" -> 0 and the parts, 1 for another run's
 * message, -1 for anything else. */
static int
parse_msgid(const struct run *r, const char *p, size_t n, int *sender, uint64_t *seq)
{
    char buf[80], *end, *dash;
    unsigned long nonce, s;

    if (n < 12 || n >= sizeof buf || p[0] != 'l' || p[1] != 'g')
        return -1;
    memcpy(buf, p, n);
    buf[n] = '\0';
    nonce = strtoul(buf + 2, &end, 16);
    if (*end != '-')
        return -1;
    s = strtoul(end + 1, &dash, 16);
    if (*dash != '-')
        return -1;
    *seq = strtoull(dash + 1, &end, 16);
    if (*end != '\0')
        return -1;
    if ((uint32_t)nonce != r->nonce)
        return 1;
    *sender = (int)s;
    return 0;
}

static int
track_grow(struct user *u, uint64_t seq)
{
    size_t cap;

    if (seq < u->cap)
        return 0;
    cap = u->cap ? u->cap * 2 : 1024;
    while (cap <= seq)
        cap *= 2;
    if ((u->ts = realloc(u->ts, cap * sizeof *u->ts)) == NULL ||
        (u->st = realloc(u->st, cap)) == NULL || (u->dc = realloc(u->dc, cap)) == NULL)
        return -1;
    memset(u->st + u->cap, 0, cap - u->cap);
    memset(u->dc + u->cap, 0, cap - u->cap);
    u->cap = cap;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Sending                                                                   */
/* ------------------------------------------------------------------------ */

static int
sending(const struct run *r)
{
    return r->phase == PH_WARMUP || r->phase == PH_WINDOW;
}

static void
send_one(struct run *r, struct user *u)
{
    struct device *d = &u->dev[0];
    char msgid[64], body[4500], dest[64], rcpt[24];
    struct stomp_header h[6];
    size_t ml, bl, nh = 0;
    uint64_t seq = u->next_seq, now;
    int to;

    if (!d->up || d->c.state != LG_C_READY || track_grow(u, seq) < 0)
        return;
    if (r->o->scenario == LG_FANOUT) {
        to = r->target;
    } else {
        to = (int)(lg_rand(&r->rng) % (uint64_t)(r->nusers - 1));
        if (to >= u->idx)
            to++;
    }
    ml = make_msgid(r, u->idx, seq, msgid, sizeof msgid);
    bl = (size_t)snprintf(body, sizeof body,
                          "{\"msgID\":\"%.*s\",\"reciverId\":%" PRIu64 ",\"content\":\"%s\"}",
                          (int)ml, msgid,
                          r->o->target == LG_GATEWAY ? r->users[to].uid : (uint64_t)to,
                          r->content);
    if (r->o->target == LG_GATEWAY) {
        h[nh++] = (struct stomp_header){ STOMP_STR("destination"),
                                         STOMP_STR("/socket/chat/send") };
    } else {
        int dl = snprintf(dest, sizeof dest, "/queue/u%d", to);
        int rl = snprintf(rcpt, sizeof rcpt, "%" PRIx64, seq);

        h[nh++] = (struct stomp_header){ STOMP_STR("destination"), { dest, (size_t)dl } };
        h[nh++] = (struct stomp_header){ STOMP_STR("persistent"), STOMP_STR("true") };
        h[nh++] = (struct stomp_header){ STOMP_STR("durable"), STOMP_STR("true") };
        h[nh++] = (struct stomp_header){ STOMP_STR("auto-delete"), STOMP_STR("false") };
        h[nh++] = (struct stomp_header){ STOMP_STR("content-type"),
                                         STOMP_STR("application/json") };
        h[nh++] = (struct stomp_header){ STOMP_STR("receipt"), { rcpt, (size_t)rl } };
    }
    now = lg_now_ns();
    u->ts[seq] = now;
    u->st[seq] = ST_SENT;
    u->dc[seq] = 0;
    u->next_seq++;
    u->inflight++;
    r->sent++;
    if (r->phase == PH_WINDOW)
        r->sent_win++;
    lg_conn_send_frame(&d->c, STOMP_CMD_SEND, h, nh, body, bl);
}

/* Window mode: keep W sends unanswered per user. */
static void
pump(struct run *r, struct user *u)
{
    if (!sending(r) || !u->sender || r->o->rate > 0)
        return;
    while (u->inflight < (uint32_t)r->o->window && u->dev[0].c.state == LG_C_READY)
        send_one(r, u);
}

/* Rate mode: sends due since the start, spread round-robin over senders
 * whose window is not full. */
static void
pump_rate(struct run *r)
{
    uint64_t due, now = lg_now_ns();
    int scanned = 0;

    if (!sending(r) || r->o->rate <= 0)
        return;
    due = (uint64_t)(r->o->rate * secs(now - r->t_run0));
    while (r->rate_sent < due && scanned < r->nusers) {
        struct user *u = &r->users[r->rr];

        r->rr = (r->rr + 1) % r->nusers;
        if (!u->sender || u->inflight >= (uint32_t)r->o->window ||
            u->dev[0].c.state != LG_C_READY) {
            scanned++;
            continue;
        }
        scanned = 0;
        send_one(r, u);
        r->rate_sent++;
    }
}

/* The answer to one of u's sends: 200 (or RECEIPT), or an error code. */
static void
answered(struct run *r, struct user *u, uint64_t seq, int code)
{
    uint64_t now = lg_now_ns();

    if (seq >= u->next_seq || !(u->st[seq] & ST_SENT) || (u->st[seq] & (ST_OK | ST_ERR)))
        return;
    if (u->inflight > 0)
        u->inflight--;
    if (code == 200) {
        u->st[seq] |= ST_OK;
        r->ok++;
        if (r->phase == PH_WINDOW)
            r->ok_win++;
        if (u->ts[seq] >= r->t_win0 && u->ts[seq] < r->t_win1)
            lg_hist_add(&r->h_ack, now - u->ts[seq]);
    } else {
        u->st[seq] |= ST_ERR;
        r->err_answers++;
        r->errors[code > 0 && code < MAX_CODE ? code : 0]++;
    }
    pump(r, u);
}

/* ------------------------------------------------------------------------ */
/* Receiving                                                                 */
/* ------------------------------------------------------------------------ */

static void
delivered(struct run *r, struct device *d, const char *id, size_t idlen)
{
    struct user *s;
    uint64_t seq, now = lg_now_ns();
    int sender, rc = parse_msgid(r, id, idlen, &sender, &seq);

    (void)d;
    if (rc == 1) {
        r->stale++;
        return;
    }
    if (rc < 0 || sender < 0 || sender >= r->nusers)
        return;
    s = &r->users[sender];
    if (seq >= s->next_seq || !(s->st[seq] & ST_SENT))
        return;
    if (s->dc[seq] >= r->expected) {
        r->dup++;
        return;
    }
    s->dc[seq]++;
    r->dlv++;
    if (r->phase == PH_WINDOW)
        r->dlv_win++;
    if (s->ts[seq] >= r->t_win0 && s->ts[seq] < r->t_win1)
        lg_hist_add(&r->h_dlv, now - s->ts[seq]);
}

static void backlog_frame(struct run *r, struct device *d, const struct stomp_frame *f);

static struct run *
run_of(struct lg_conn *c)
{
    return (struct run *)((char *)c->ctx - offsetof(struct run, ctx));
}

static void
on_frame(struct lg_conn *c, const struct stomp_frame *f)
{
    struct device *d = c->owner;
    struct run *r = run_of(c);
    const struct stomp_str *sub, *v;
    const char *id;
    size_t idlen;
    uint64_t code = 0, seq;
    int sender;

    if (r->o->scenario == LG_BACKLOG) {
        backlog_frame(r, d, f);
        return;
    }
    switch (f->command) {
    case STOMP_CMD_MESSAGE:
        sub = lg_hdr(f, "subscription");
        if (sub == NULL || sub->len != 1)
            return;
        if (sub->ptr[0] == 'i') {
            id = lg_json_str(f->body.ptr, f->body.len,
                             r->o->target == LG_GATEWAY ? "\"chatID\"" : "\"msgID\"", &idlen);
            if (id == NULL)
                return;
            delivered(r, d, id, idlen);
            if (r->o->target == LG_GATEWAY) {
                char body[128];
                int bl;
                struct stomp_header h[1] = {
                    { STOMP_STR("destination"), STOMP_STR("/socket/chat/recive") } };

                if (d->k != 0 || idlen > 80)
                    return;
                bl = snprintf(body, sizeof body, "{\"msgID\":\"%.*s\"}", (int)idlen, id);
                lg_conn_send_frame(c, STOMP_CMD_SEND, h, 1, body, (size_t)bl);
            } else {
                struct stomp_header h[1];

                if ((v = lg_hdr(f, "ack")) == NULL)
                    return;
                h[0] = (struct stomp_header){ STOMP_STR("id"), *v };
                lg_conn_send_frame(c, STOMP_CMD_ACK, h, 1, NULL, 0);
            }
            r->confirms++;
        } else if (sub->ptr[0] == 's') {
            id = lg_json_str(f->body.ptr, f->body.len, "\"msgID\"", &idlen);
            if (id == NULL || lg_json_uint(f->body.ptr, f->body.len, "\"code\"", &code) < 0 ||
                parse_msgid(r, id, idlen, &sender, &seq) != 0 || sender != d->u->idx)
                return;
            answered(r, d->u, seq, (int)code);
        }
        return;
    case STOMP_CMD_RECEIPT:
        if ((v = lg_hdr(f, "receipt-id")) != NULL && v->len < 20) {
            char buf[24];

            memcpy(buf, v->ptr, v->len);
            buf[v->len] = '\0';
            seq = strtoull(buf, NULL, 16);
            answered(r, d->u, seq, 200);
        }
        return;
    case STOMP_CMD_ERROR:
        r->err_frames++;
        if ((v = lg_hdr(f, "message")) != NULL && r->ctx.first_error[0] == '\0')
            snprintf(r->ctx.first_error, sizeof r->ctx.first_error, "ERROR frame: %.*s",
                     (int)(v->len > 120 ? 120 : v->len), v->ptr);
        return;
    default:
        return;
    }
}

/* ------------------------------------------------------------------------ */
/* Connecting                                                                */
/* ------------------------------------------------------------------------ */

static void connect_more(struct run *r);
static void all_ready(struct run *r);

static void
on_ready(struct lg_conn *c)
{
    struct run *r = run_of(c);
    struct device *d = c->owner;

    d->up = 1;
    r->dev_ready++;
    r->dev_inflight--;
    r->t_connect1 = lg_now_ns();
    if (r->phase == PH_CONNECT)
        connect_more(r);
}

static void
on_closed(struct lg_conn *c, const char *err)
{
    struct run *r = run_of(c);
    struct device *d = c->owner;

    (void)err;
    if (!d->up) {
        r->dev_failed++;
        r->dev_inflight--;
        if (r->phase == PH_CONNECT)
            connect_more(r);
    } else if (r->phase != PH_DONE) {
        d->up = 0;
    }
}

static const struct lg_conn_events events = { on_ready, on_frame, on_closed };

static void
device_setup(struct run *r, struct device *d)
{
    const struct lg_opts *o = r->o;
    struct user *u = d->u;
    static const char *ids[] = { "i", "s", "r", "q", "n", "d" };
    int n = 0;

    d->c.owner = d;
    d->c.sub_ids = (char (*)[8])calloc(6, 8);
    d->c.subs = (char (*)[160])calloc(6, 160);
    if (o->target == LG_RABBIT) {
        snprintf(d->c.path, sizeof d->c.path, "%s", o->ws_path);
        snprintf(d->c.subs[n], 160, "/queue/u%d", u->idx);
        strcpy(d->c.sub_ids[n++], "i");
    } else {
        snprintf(d->c.path, sizeof d->c.path, "%s/client?srect=%s", o->base, u->token);
        snprintf(d->c.subs[n], 160, "/user/%s/recive", u->name);
        strcpy(d->c.sub_ids[n++], ids[0]);
        if (o->scenario == LG_BACKLOG) {
            strcpy(d->c.subs[n], "/user/queue/init/status");
            strcpy(d->c.sub_ids[n++], "n");
            strcpy(d->c.subs[n], "/user/queue/status");
            strcpy(d->c.sub_ids[n++], "q");
        } else {
            strcpy(d->c.subs[n], "/user/queue/send/status");
            strcpy(d->c.sub_ids[n++], "s");
            if (o->scenario == LG_IDLE) {
                strcpy(d->c.subs[n], "/user/queue/status");
                strcpy(d->c.sub_ids[n++], "q");
                strcpy(d->c.subs[n], "/user/queue/recive/status");
                strcpy(d->c.sub_ids[n++], "r");
            }
        }
    }
    d->c.nsubs = n;
}

static void
connect_more(struct run *r)
{
    while (r->dev_next < r->ndev && r->dev_inflight < r->o->concurrency) {
        struct device *d = r->all[r->dev_next++];
        int rc;

        device_setup(r, d);
        r->dev_inflight++;
        if ((rc = lg_conn_start(&r->ctx, &d->c)) < 0) {
            r->dev_inflight--;
            r->dev_failed++;
            if (r->ctx.first_error[0] == '\0')
                snprintf(r->ctx.first_error, sizeof r->ctx.first_error, "connect: %s",
                         uv_strerror(rc));
        }
    }
    if (r->dev_next == r->ndev && r->dev_inflight == 0)
        all_ready(r);
}

static void
start_connect(struct run *r)
{
    int k = 0;

    r->phase = PH_CONNECT;
    r->ndev = 0;
    for (int i = 0; i < r->nusers; i++)
        r->ndev += r->users[i].ndev;
    r->all = calloc((size_t)r->ndev, sizeof *r->all);
    for (int i = 0; i < r->nusers; i++)
        for (int j = 0; j < r->users[i].ndev; j++)
            r->all[k++] = &r->users[i].dev[j];
    r->rss_base = server_rss(r);
    r->t_connect0 = lg_now_ns();
    if (r->o->verbose)
        fprintf(stderr, "loadgen: connecting %d sessions\n", r->ndev);
    connect_more(r);
}

/* ------------------------------------------------------------------------ */
/* Accounts                                                                  */
/* ------------------------------------------------------------------------ */

struct acc_req {
    struct run *r;
    int         i;
    int         login;
};

static void accounts_more(struct run *r);
static void after_accounts(struct run *r);

/* 8 logins per address, under the gateway's burst of 10 per address; the
 * run's nonce picks where in 127.1.0.0/16 .. 127.250.0.0/16 to start, so
 * consecutive runs do not drain the same addresses' buckets. */
static void
http_src(const struct run *r, int k, char *out, size_t cap)
{
    unsigned a = ((unsigned)k / 8 + r->nonce) % (250u * 250u * 250u);

    snprintf(out, cap, "127.%u.%u.%u", a / 62500 + 1, (a / 250) % 250 + 1, a % 250 + 1);
}

static void on_http(const struct lg_http_result *res, void *data);

static int
acc_send(struct run *r, int i, int login)
{
    struct acc_req *q = malloc(sizeof *q);
    char body[256], path[320], src[32];

    if (q == NULL)
        return -1;
    q->r = r;
    q->i = i;
    q->login = login;
    snprintf(body, sizeof body, "{\"username\":\"%s\",\"password\":\"%s\"}",
             r->users[i].name, r->o->password);
    snprintf(path, sizeof path, "%s/api/%s", r->o->base, login ? "login" : "register");
    http_src(r, i, src, sizeof src);
    if (lg_http_post(&r->loop, r->o->host, r->o->port, src, path, body, on_http, q) < 0) {
        free(q);
        return -1;
    }
    r->acc_inflight++;
    return 0;
}

static void
on_http(const struct lg_http_result *res, void *data)
{
    struct acc_req *q = data;
    struct run *r = q->r;
    struct user *u = &r->users[q->i];
    const char *t;
    size_t tl;

    r->acc_inflight--;
    if (!q->login) {
        if (res->status == 201 || res->status == 409) {
            free(q);
            if (acc_send(r, u->idx, 1) < 0) {
                r->acc_fail++;
                accounts_more(r);
            }
            return;
        }
    } else if (res->status == 200 && (t = lg_json_str(res->body, res->body_len,
                                                       "\"token\"", &tl)) != NULL &&
               tl < sizeof u->token &&
               lg_json_uint(res->body, res->body_len, "\"uid\"", &u->uid) == 0) {
        memcpy(u->token, t, tl);
        u->token[tl] = '\0';
        r->acc_done++;
        free(q);
        accounts_more(r);
        return;
    }
    r->acc_fail++;
    if (r->acc_err[0] == '\0')
        snprintf(r->acc_err, sizeof r->acc_err, "%s %s: HTTP %d %.*s",
                 q->login ? "login" : "register", u->name, res->status,
                 (int)(res->body_len > 80 ? 80 : res->body_len), res->body ? res->body : "");
    free(q);
    accounts_more(r);
}

static void
accounts_more(struct run *r)
{
    /* Users that share a login (fanout devices) were expanded already. */
    while (r->acc_next < r->nusers && r->acc_inflight < r->o->concurrency) {
        if (acc_send(r, r->acc_next++, 0) < 0)
            r->acc_fail++;
    }
    if (r->acc_inflight == 0 && r->acc_next == r->nusers) {
        if (r->acc_fail > 0) {
            fatal(r, "accounts failed: %s (is the gateway up, started with "
                  "--password-iterations 1000?)", r->acc_err);
            return;
        }
        if (r->o->verbose)
            fprintf(stderr, "loadgen: %d accounts ready\n", r->acc_done);
        after_accounts(r);
    }
}

/* ------------------------------------------------------------------------ */
/* Backlog                                                                   */
/* ------------------------------------------------------------------------ */

static char *
read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (n < 0 || (buf = malloc((size_t)n + 1)) == NULL) {
        fclose(f);
        return NULL;
    }
    *len = fread(buf, 1, (size_t)n, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

/* Bring R's pending inbox to o->backlog with chat.lua (one send operation
 * per call), pipelined over fill_conns connections: each round appends up
 * to 200 EVALSHAs to every
 * connection, flushes them all, then reads all the replies, so Redis
 * always has several clients' worth of commands per event-loop turn
 * (Redis reads at most 16 KiB per client per turn, and appendfsync
 * always costs one fsync per turn). */
static int
backlog_fill(struct run *r)
{
    const struct lg_opts *o = r->o;
    struct user *rcv = &r->users[0], *snd = &r->users[1];
    redisContext *rc[16] = { 0 };
    redisReply *rep;
    char sha[48], keys[4][64], msgid[64], p1[256], p2[4500], p3[128], sid[24],
         maxp[24], chan[48];
    static const char *suffix[4] = { "user", "msg", "pending", "seq" };
    const char *argv[3 + 4 + 10];
    size_t lens[3 + 4 + 10], src_len;
    char *src;
    int nconn = o->fill_conns < 1 ? 1 : o->fill_conns > 16 ? 16 : o->fill_conns;
    long long have;
    uint64_t todo, done = 0, i = 0, t0 = lg_now_ns();
    int ok = -1;

    if ((src = read_file(o->chat_lua, &src_len)) == NULL) {
        fprintf(stderr, "loadgen: cannot read %s (--chat-lua)\n", o->chat_lua);
        return -1;
    }
    for (int k = 0; k < nconn; k++)
        if ((rc[k] = redis_open(o->redis)) == NULL || rc[k]->err) {
            fprintf(stderr, "loadgen: cannot connect to Redis at %s\n", o->redis);
            goto out;
        }
    rep = redisCommand(rc[0], "SCRIPT LOAD %b", src, src_len);
    if (rep == NULL || rep->type != REDIS_REPLY_STRING) {
        fprintf(stderr, "loadgen: SCRIPT LOAD failed\n");
        goto out;
    }
    snprintf(sha, sizeof sha, "%s", rep->str);
    freeReplyObject(rep);
    for (int k = 0; k < 4; k++)
        snprintf(keys[k], sizeof keys[k], "{u:%" PRIu64 "}:%s", rcv->uid, suffix[k]);
    rep = redisCommand(rc[0], "ZCARD %s", keys[2]);
    have = rep && rep->type == REDIS_REPLY_INTEGER ? rep->integer : 0;
    if (rep)
        freeReplyObject(rep);
    r->bl_have = (uint64_t)have;
    todo = (uint64_t)o->backlog > (uint64_t)have ? (uint64_t)o->backlog - (uint64_t)have : 0;
    snprintf(sid, sizeof sid, "%" PRIu64, snd->uid);
    snprintf(maxp, sizeof maxp, "%d", o->backlog);
    snprintf(chan, sizeof chan, "cg:u:%" PRIu64, rcv->uid);
    snprintf(p3, sizeof p3, ",\"senderId\":%" PRIu64 ",\"reciverId\":%" PRIu64 "}",
             snd->uid, rcv->uid);
    snprintf(p2, sizeof p2, "\",\"content\":\"%s\",\"time\":", r->content);
    fprintf(stderr, "loadgen: backlog: %lld pending, filling %" PRIu64 " with EVALSHA "
            "chat.lua over %d connections\n", have, todo, nconn);
    while (done < todo) {
        uint64_t per[16] = { 0 };

        for (int k = 0; k < nconn && i < todo; k++) {
            for (int j = 0; j < 200 && i < todo; j++, i++) {
                int n = 0;
                int ml = snprintf(msgid, sizeof msgid, "lgfill%08x%" PRIx64, r->nonce, i);
                int pl = snprintf(p1, sizeof p1, ",\"chatID\":\"%s\",\"sender\":\"%s\","
                                  "\"reciver\":\"", msgid, snd->name);

                argv[n] = "EVALSHA"; lens[n++] = 7;
                argv[n] = sha; lens[n++] = strlen(sha);
                argv[n] = "4"; lens[n++] = 1;
                for (int q = 0; q < 4; q++) {
                    argv[n] = keys[q];
                    lens[n++] = strlen(keys[q]);
                }
                argv[n] = "send"; lens[n++] = 4;
                argv[n] = sid; lens[n++] = strlen(sid);
                argv[n] = msgid; lens[n++] = (size_t)ml;
                argv[n] = maxp; lens[n++] = strlen(maxp);
                argv[n] = "1000"; lens[n++] = 4;
                argv[n] = chan; lens[n++] = strlen(chan);
                argv[n] = p1; lens[n++] = (size_t)pl;
                argv[n] = p2; lens[n++] = strlen(p2);
                argv[n] = p3; lens[n++] = strlen(p3);
                argv[n] = "0"; lens[n++] = 1;        /* no delivered notice */
                redisAppendCommandArgv(rc[k], n, argv, lens);
                per[k]++;
            }
        }
        for (int k = 0; k < nconn; k++) {
            int wdone = 0;

            while (per[k] && !wdone)
                if (redisBufferWrite(rc[k], &wdone) != REDIS_OK)
                    goto out;
        }
        for (int k = 0; k < nconn; k++)
            for (uint64_t j = 0; j < per[k]; j++) {
                if (redisGetReply(rc[k], (void **)&rep) != REDIS_OK || rep == NULL)
                    goto out;
                /* One operation per call: {{code, id, time}}. */
                const redisReply *op = rep->type == REDIS_REPLY_ARRAY && rep->elements == 1
                                     ? rep->element[0] : NULL;
                if (op == NULL || op->type != REDIS_REPLY_ARRAY || op->elements < 1 ||
                    op->element[0]->integer != 200) {
                    fprintf(stderr, "loadgen: fill: unexpected reply (code %lld)\n",
                            op && op->type == REDIS_REPLY_ARRAY && op->elements ?
                            op->element[0]->integer : -1LL);
                    freeReplyObject(rep);
                    goto out;
                }
                freeReplyObject(rep);
                done++;
            }
    }
    fprintf(stderr, "loadgen: backlog: filled %" PRIu64 " in %.2f s\n", done,
            secs(lg_now_ns() - t0));
    ok = 0;
out:
    for (int k = 0; k < nconn; k++)
        if (rc[k])
            redisFree(rc[k]);
    free(src);
    return ok;
}

static void
on_rss_sample(uv_timer_t *t)
{
    struct run *r = t->data;
    long long v = server_rss(r);

    r->rss_samples++;
    if (v > r->rss_peak)
        r->rss_peak = v;
}

static void
backlog_frame(struct run *r, struct device *d, const struct stomp_frame *f)
{
    const struct stomp_str *sub;
    uint64_t n = 0;

    if (f->command == STOMP_CMD_ERROR) {
        r->err_frames++;
        return;
    }
    if (f->command != STOMP_CMD_MESSAGE || (sub = lg_hdr(f, "subscription")) == NULL ||
        sub->len != 1)
        return;
    if (sub->ptr[0] == 'i') {
        r->bl_got++;
        if (r->o->confirm) {
            const char *id;
            size_t idlen;
            char body[128];
            struct stomp_header h[1] = {
                { STOMP_STR("destination"), STOMP_STR("/socket/chat/recive") } };

            if ((id = lg_json_str(f->body.ptr, f->body.len, "\"chatID\"", &idlen)) &&
                idlen < 80) {
                int bl = snprintf(body, sizeof body, "{\"msgID\":\"%.*s\"}", (int)idlen, id);
                lg_conn_send_frame(&d->c, STOMP_CMD_SEND, h, 1, body, (size_t)bl);
                r->confirms++;
            }
        }
    } else if (sub->ptr[0] == 'n' && r->phase == PH_INIT) {
        (void)lg_json_uint(f->body.ptr, f->body.len, "\"count\"", &n);
        r->bl_count = n;
        r->t_init1 = lg_now_ns();
        on_rss_sample(&r->rss_timer);
        r->rss_after = server_rss(r);
        snap(r, &r->c1);
        r->phase = PH_DONE;
    } else if (sub->ptr[0] == 'q') {
        r->err_frames++;
        if (r->ctx.first_error[0] == '\0')
            snprintf(r->ctx.first_error, sizeof r->ctx.first_error, "status: %.*s",
                     (int)(f->body.len > 120 ? 120 : f->body.len), f->body.ptr);
    }
}

/* ------------------------------------------------------------------------ */
/* Phases                                                                    */
/* ------------------------------------------------------------------------ */

static void
after_accounts(struct run *r)
{
    if (r->o->scenario == LG_BACKLOG) {
        r->phase = PH_FILL;
        if (backlog_fill(r) < 0) {
            fatal(r, "backlog fill failed");
            return;
        }
        /* Only the receiver connects. */
        r->users[1].ndev = 0;
    }
    start_connect(r);
}

static void
all_ready(struct run *r)
{
    uint64_t now = lg_now_ns();

    if (r->phase != PH_CONNECT)
        return;
    if (r->dev_failed > 0 && r->o->scenario != LG_IDLE) {
        fatal(r, "some sessions could not connect: %s", r->ctx.first_error);
        return;
    }
    if (r->o->verbose)
        fprintf(stderr, "loadgen: %d sessions ready (%d failed) in %.2f s\n",
                r->dev_ready, r->dev_failed, secs(now - r->t_connect0));
    r->t_phase = now;
    switch (r->o->scenario) {
    case LG_IDLE:
        r->phase = PH_SETTLE;
        return;
    case LG_BACKLOG: {
        struct device *d = &r->users[0].dev[0];
        struct stomp_header h[1] = {
            { STOMP_STR("destination"), STOMP_STR("/socket/chat/init") } };

        r->phase = PH_INIT;
        r->rss_base = server_rss(r);
        r->rss_peak = r->rss_base;
        snap(r, &r->c0);
        uv_timer_init(&r->loop, &r->rss_timer);
        r->rss_timer.data = r;
        uv_timer_start(&r->rss_timer, on_rss_sample, 10, 10);
        r->rss_timer_on = 1;
        r->t_init0 = lg_now_ns();
        lg_conn_send_frame(&d->c, STOMP_CMD_SEND, h, 1, "", 0);
        return;
    }
    default:
        r->phase = PH_WARMUP;
        r->t_run0 = now;
        r->t_win0 = now + (uint64_t)(r->o->warmup * 1e9);
        r->t_win1 = r->t_win0 + (uint64_t)(r->o->duration * 1e9);
        if (r->o->warmup <= 0) {
            r->phase = PH_WINDOW;
            snap(r, &r->c0);
            commandstats(r, &r->cmd0_eval, &r->cmd0_pub);
            r->ok_at_c0 = r->ok;
        }
        for (int i = 0; i < r->nusers; i++)
            pump(r, &r->users[i]);
        pump_rate(r);
        return;
    }
}

static int
drained(const struct run *r)
{
    uint64_t inflight = 0;

    for (int i = 0; i < r->nusers; i++)
        inflight += r->users[i].inflight;
    return inflight == 0 && r->dlv >= r->ok * (uint64_t)r->expected;
}

static void
on_tick(uv_timer_t *t)
{
    struct run *r = t->data;
    uint64_t now = lg_now_ns();
    static uint64_t last_print;

    switch (r->phase) {
    case PH_WARMUP:
        if (now >= r->t_win0) {
            r->phase = PH_WINDOW;
            snap(r, &r->c0);
            commandstats(r, &r->cmd0_eval, &r->cmd0_pub);
            r->ok_at_c0 = r->ok;
        }
        pump_rate(r);
        break;
    case PH_WINDOW:
        if (now >= r->t_win1) {
            snap(r, &r->c1);
            r->ok_at_c1 = r->ok;
            commandstats(r, &r->cmd1_eval, &r->cmd1_pub);
            r->phase = PH_DRAIN;
            r->t_progress = now;
            r->progress_mark = r->ok + r->err_answers + r->dlv;
            /* Hard bound of the drain, however long progress goes on. */
            r->t_drain_end = now + (uint64_t)((r->o->drain > 120 ? r->o->drain : 120) * 1e9);
            break;
        }
        pump_rate(r);
        break;
    case PH_DRAIN:
        /* Wait while answers or deliveries still arrive: the drain ends
         * when everything arrived, or after --drain seconds without any
         * progress (then what is missing counts as lost/unanswered). */
        if (r->ok + r->err_answers + r->dlv != r->progress_mark) {
            r->progress_mark = r->ok + r->err_answers + r->dlv;
            r->t_progress = now;
        }
        if (drained(r) || now >= r->t_drain_end ||
            now - r->t_progress >= (uint64_t)(r->o->drain * 1e9))
            r->phase = PH_DONE;
        break;
    case PH_SETTLE:
        /* Let the gateway's allocator settle before reading RSS. */
        if (now - r->t_phase >= 2000000000ull) {
            snap(r, &r->c0);
            r->rss_after = r->c0.rss_kib;
            r->phase = PH_HOLD;
            r->t_phase = now;
        }
        break;
    case PH_HOLD:
        if (now - r->t_phase >= (uint64_t)(r->o->hold * 1e9)) {
            snap(r, &r->c1);
            r->phase = PH_DONE;
        }
        break;
    case PH_INIT:
        if (now - r->t_phase >= (uint64_t)(r->o->duration * 1e9)) {
            fatal(r, "init did not finish within --duration");
            r->t_init1 = now;
            r->rss_after = server_rss(r);
            snap(r, &r->c1);
        }
        break;
    default:
        break;
    }
    if (r->o->verbose && now - last_print >= 1000000000ull &&
        (r->phase == PH_WARMUP || r->phase == PH_WINDOW || r->phase == PH_DRAIN ||
         r->phase == PH_INIT)) {
        last_print = now;
        fprintf(stderr, "loadgen: t=%.1fs sent=%" PRIu64 " ok=%" PRIu64 " dlv=%" PRIu64
                " err=%" PRIu64 " backlog_got=%" PRIu64 "\n", secs(now - r->t_connect0),
                r->sent, r->ok, r->dlv, r->err_answers, r->bl_got);
    }
    if (r->phase == PH_DONE) {
        uv_timer_stop(t);
        if (r->rss_timer_on) {
            uv_timer_stop(&r->rss_timer);
            uv_close((uv_handle_t *)&r->rss_timer, NULL);
            r->rss_timer_on = 0;
        }
        uv_stop(&r->loop);
    }
}

/* ------------------------------------------------------------------------ */
/* Report                                                                    */
/* ------------------------------------------------------------------------ */

static const char *
scen_name(enum lg_scenario s)
{
    static const char *n[] = { "p2p", "fanout", "idle", "backlog" };

    return n[s];
}

static void
pct_line(const char *name, const struct lg_hist *h)
{
    printf("  %-14s n=%-9" PRIu64 " p50 %8.3f  p90 %8.3f  p99 %8.3f  p99.9 %8.3f  max %8.3f ms\n",
           name, h->count, lg_hist_pct(h, .5) / 1e6, lg_hist_pct(h, .9) / 1e6,
           lg_hist_pct(h, .99) / 1e6, lg_hist_pct(h, .999) / 1e6, (double)h->max / 1e6);
}

static void
pct_json(const char *name, const struct lg_hist *h)
{
    printf(",\"%s\":{\"n\":%" PRIu64 ",\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,"
           "\"p999\":%.3f,\"max\":%.3f}", name, h->count, lg_hist_pct(h, .5) / 1e6,
           lg_hist_pct(h, .9) / 1e6, lg_hist_pct(h, .99) / 1e6, lg_hist_pct(h, .999) / 1e6,
           (double)h->max / 1e6);
}

static void
report(struct run *r)
{
    const struct lg_opts *o = r->o;
    double tps = lg_ticks_per_sec(), win = secs(r->c1.t_ns - r->c0.t_ns);
    double cpu_srv = -1, cpu_redis = -1, cpu_self = -1, wait_srv = -1, wait_redis = -1;
    uint64_t lost = 0, unanswered = 0, ok_total = 0;
    char errs[512] = "";
    size_t el = 0;

    if (win > 0) {
        if (r->c0.server >= 0 && o->nserver)
            cpu_srv = (double)(r->c1.server - r->c0.server) / tps / win;
        if (r->c0.redis >= 0 && o->redis_pid > 0)
            cpu_redis = (double)(r->c1.redis - r->c0.redis) / tps / win;
        cpu_self = (r->c1.self_s - r->c0.self_s) / win;
        if (r->c0.server_wait >= 0 && r->c1.server_wait >= 0)
            wait_srv = (double)(r->c1.server_wait - r->c0.server_wait) / 1e9 / win;
        if (r->c0.redis_wait >= 0 && r->c1.redis_wait >= 0)
            wait_redis = (double)(r->c1.redis_wait - r->c0.redis_wait) / 1e9 / win;
    }
    for (int i = 0; i < r->nusers; i++) {
        struct user *u = &r->users[i];

        for (uint64_t s = 0; s < u->next_seq; s++) {
            if (u->st[s] & ST_OK) {
                ok_total++;
                if (u->dc[s] < r->expected)
                    lost++;
            } else if (!(u->st[s] & ST_ERR)) {
                unanswered++;
            }
        }
    }
    for (int c = 0; c < MAX_CODE; c++)
        if (r->errors[c] && el < sizeof errs - 32)
            el += (size_t)snprintf(errs + el, sizeof errs - el, "%s\"%d\":%" PRIu64,
                                   el ? "," : "", c, r->errors[c]);

    printf("\n== chatgate_loadgen %s, target %s%s%s ==\n", scen_name(o->scenario),
           o->target == LG_GATEWAY ? "gateway" : "rabbitmq", o->label ? ", " : "",
           o->label ? o->label : "");
    if (r->fatal[0])
        printf("  FAILED: %s\n", r->fatal);
    if (r->ctx.first_error[0])
        printf("  first error: %s\n", r->ctx.first_error);
    printf("  sessions %d ready, %d failed; connect %.2f s (%.0f sessions/s)\n",
           r->dev_ready, r->dev_failed, secs(r->t_connect1 - r->t_connect0),
           r->t_connect1 > r->t_connect0 ? r->dev_ready / secs(r->t_connect1 - r->t_connect0) : 0);

    if (o->scenario == LG_P2P || o->scenario == LG_FANOUT) {
        printf("  users %d, window %d, rate %s%.0f, content %d B, warmup %.0f s, window %.2f s\n",
               r->nusers, o->window, o->rate > 0 ? "" : "max ", o->rate, o->content_bytes,
               o->warmup, win);
        printf("  confirmed %.0f msg/s (%" PRIu64 " in window), delivered %.0f/s, "
               "sent %" PRIu64 " total\n", win > 0 ? (double)(r->ok_at_c1 - r->ok_at_c0) / win : 0,
               r->ok_at_c1 - r->ok_at_c0, win > 0 ? (double)r->dlv_win / win : 0, r->sent);
        pct_line("send->200", &r->h_ack);
        pct_line("send->deliver", &r->h_dlv);
        printf("  errors {%s}, ERROR frames %" PRIu64 ", connection errors %" PRIu64 "\n",
               errs, r->err_frames, r->ctx.conn_errors);
        printf("  lost %" PRIu64 " (confirmed %" PRIu64 ", each expected on %d session%s), "
               "unanswered %" PRIu64 ", duplicates %" PRIu64 ", stale %" PRIu64 "\n",
               lost, ok_total, r->expected, r->expected > 1 ? "s" : "", unanswered, r->dup,
               r->stale);
        if (r->cmd0_eval >= 0 && r->cmd1_eval >= 0 && r->ok_at_c1 > r->ok_at_c0)
            printf("  redis per confirmed message: %.3f script calls, %.3f PUBLISH "
                   "(INFO commandstats delta over the window)\n",
                   (double)(r->cmd1_eval - r->cmd0_eval) / (double)(r->ok_at_c1 - r->ok_at_c0),
                   (double)(r->cmd1_pub - r->cmd0_pub) / (double)(r->ok_at_c1 - r->ok_at_c0));
    } else if (o->scenario == LG_IDLE) {
        printf("  connections %d: server RSS %lld KiB before, %lld KiB after "
               "(+%.2f KiB per connection)\n", r->dev_ready, r->rss_base, r->rss_after,
               r->dev_ready ? (double)(r->rss_after - r->rss_base) / r->dev_ready : 0);
    } else {
        printf("  backlog %d (had %" PRIu64 " before the fill): init delivered %" PRIu64
               " (init/status count %" PRIu64 ") in %.3f s = %.0f msg/s\n", o->backlog,
               r->bl_have, r->bl_got, r->bl_count, secs(r->t_init1 - r->t_init0),
               r->t_init1 > r->t_init0 ? (double)r->bl_got / secs(r->t_init1 - r->t_init0) : 0);
        printf("  server RSS %lld KiB before, peak %lld KiB (+%.1f MiB), %lld KiB at the end; "
               "%" PRIu64 " samples every 10 ms\n", r->rss_base, r->rss_peak,
               (double)(r->rss_peak - r->rss_base) / 1024.0, r->rss_after, r->rss_samples);
    }
    printf("  CPU (cores) server %.2f, redis %.2f, generator %.2f over %.2f s\n",
           cpu_srv, cpu_redis, cpu_self, win);
    printf("  machine: load average %.2f -> %.2f; run-queue wait (s per s) server %.2f, "
           "redis %.2f (waiting for a CPU, not counted as CPU)\n", r->c0.load1, r->c1.load1,
           wait_srv, wait_redis);

    /* One line for scripts. */
    printf("RESULT {\"scenario\":\"%s\",\"target\":\"%s\",\"label\":\"%s\","
           "\"ok\":%s,\"sessions\":%d,\"failed_sessions\":%d,\"connect_s\":%.3f",
           scen_name(o->scenario), o->target == LG_GATEWAY ? "gateway" : "rabbitmq",
           o->label ? o->label : "", r->fatal[0] ? "false" : "true", r->dev_ready,
           r->dev_failed, secs(r->t_connect1 - r->t_connect0));
    if (o->scenario == LG_P2P || o->scenario == LG_FANOUT) {
        printf(",\"users\":%d,\"window\":%d,\"rate\":%.0f,\"window_s\":%.3f,"
               "\"confirmed_per_s\":%.1f,\"delivered_per_s\":%.1f,\"sent\":%" PRIu64
               ",\"confirmed\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"unanswered\":%" PRIu64
               ",\"duplicates\":%" PRIu64 ",\"error_frames\":%" PRIu64 ",\"errors\":{%s}",
               r->nusers, o->window, o->rate, win,
               win > 0 ? (double)(r->ok_at_c1 - r->ok_at_c0) / win : 0,
               win > 0 ? (double)r->dlv_win / win : 0, r->sent, ok_total, lost, unanswered,
               r->dup, r->err_frames, errs);
        pct_json("send_200_ms", &r->h_ack);
        pct_json("send_deliver_ms", &r->h_dlv);
        if (r->cmd0_eval >= 0 && r->cmd1_eval >= 0 && r->ok_at_c1 > r->ok_at_c0)
            printf(",\"redis_scripts_per_msg\":%.3f,\"redis_publish_per_msg\":%.3f",
                   (double)(r->cmd1_eval - r->cmd0_eval) / (double)(r->ok_at_c1 - r->ok_at_c0),
                   (double)(r->cmd1_pub - r->cmd0_pub) / (double)(r->ok_at_c1 - r->ok_at_c0));
    } else if (o->scenario == LG_IDLE) {
        printf(",\"rss_before_kib\":%lld,\"rss_after_kib\":%lld,\"rss_per_conn_kib\":%.3f,"
               "\"connect_per_s\":%.1f", r->rss_base, r->rss_after,
               r->dev_ready ? (double)(r->rss_after - r->rss_base) / r->dev_ready : 0,
               r->t_connect1 > r->t_connect0 ? r->dev_ready / secs(r->t_connect1 - r->t_connect0) : 0);
    } else {
        printf(",\"backlog\":%d,\"delivered\":%" PRIu64 ",\"init_count\":%" PRIu64
               ",\"drain_s\":%.3f,\"rss_before_kib\":%lld,\"rss_peak_kib\":%lld,"
               "\"rss_growth_mib\":%.2f", o->backlog, r->bl_got, r->bl_count,
               secs(r->t_init1 - r->t_init0), r->rss_base, r->rss_peak,
               (double)(r->rss_peak - r->rss_base) / 1024.0);
    }
    printf(",\"cpu_server\":%.3f,\"cpu_redis\":%.3f,\"cpu_generator\":%.3f,"
           "\"runq_wait_server\":%.3f,\"runq_wait_redis\":%.3f,\"load1_start\":%.2f,"
           "\"load1_end\":%.2f}\n", cpu_srv, cpu_redis, cpu_self, wait_srv, wait_redis,
           r->c0.load1, r->c1.load1);
    fflush(stdout);
    if (lost > 0 && r->exit_code == 0)
        r->exit_code = 3;
}

/* ------------------------------------------------------------------------ */
/* Entry                                                                     */
/* ------------------------------------------------------------------------ */

static void
close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int
lg_run(const struct lg_opts *o)
{
    struct run *r = calloc(1, sizeof *r);
    int devs_per_user = 1, rc;

    if (r == NULL)
        return 2;
    r->o = o;
    r->rng = o->seed ? o->seed : (lg_now_ns() ^ (uint64_t)getpid()) | 1;
    r->nonce = (uint32_t)lg_rand(&r->rng);
    r->expected = 1;
    if (o->content_bytes < 1 || o->content_bytes >= (int)sizeof r->content) {
        fprintf(stderr, "loadgen: --content-bytes must be 1..%zu\n", sizeof r->content - 1);
        return 2;
    }
    /* Content: printable ASCII that needs no JSON escaping. */
    for (int i = 0; i < o->content_bytes; i++)
        r->content[i] = (char)('a' + i % 26);
    uv_loop_init(&r->loop);
    lg_ctx_init(&r->ctx, &r->loop);
    r->ctx.rng = lg_rand(&r->rng) | 1;
    r->ctx.target = o->target;
    r->ctx.host = o->host;
    r->ctx.port = o->port;
    r->ctx.nports = o->nports;
    memcpy(r->ctx.ports, o->ports, sizeof r->ctx.ports);
    r->ctx.nsrc = o->nsrc;
    r->ctx.ev = &events;
    r->ctx.verbose = o->verbose;
    if (o->rabbit_prefetch > 0)
        snprintf(r->ctx.prefetch, sizeof r->ctx.prefetch, "%d", o->rabbit_prefetch);
    if (o->redis && o->scenario != LG_BACKLOG)
        r->info_rc = redis_open(o->redis);

    switch (o->scenario) {
    case LG_P2P:
        r->nusers = o->users;
        break;
    case LG_FANOUT:
        r->nusers = o->senders + 1;
        r->target = o->senders;
        r->expected = o->devices;
        break;
    case LG_IDLE:
        devs_per_user = o->conns_per_user < 1 ? 1 : o->conns_per_user;
        r->nusers = (o->conns + devs_per_user - 1) / devs_per_user;
        break;
    case LG_BACKLOG:
        r->nusers = 2;
        break;
    }
    if (r->nusers < 2 && o->scenario == LG_P2P) {
        fprintf(stderr, "loadgen: p2p needs at least 2 users\n");
        return 2;
    }
    r->users = calloc((size_t)r->nusers, sizeof *r->users);
    for (int i = 0; i < r->nusers; i++) {
        struct user *u = &r->users[i];
        int nd = devs_per_user;

        u->idx = i;
        snprintf(u->name, sizeof u->name, "%s%d", o->prefix, i);
        if (o->scenario == LG_FANOUT)
            nd = i == r->target ? o->devices : 1;
        if (o->scenario == LG_IDLE && i == r->nusers - 1 && o->conns % devs_per_user)
            nd = o->conns % devs_per_user;
        u->ndev = nd;
        u->dev = calloc((size_t)nd, sizeof *u->dev);
        for (int k = 0; k < nd; k++) {
            u->dev[k].u = u;
            u->dev[k].k = k;
        }
        u->sender = o->scenario == LG_P2P || (o->scenario == LG_FANOUT && i != r->target);
    }

    uv_timer_init(&r->loop, &r->tick);
    r->tick.data = r;
    uv_timer_start(&r->tick, on_tick, TICK_MS, o->rate > 0 ? 1 : TICK_MS);
    if (o->target == LG_GATEWAY) {
        r->phase = PH_ACCOUNTS;
        accounts_more(r);
    } else {
        for (int i = 0; i < r->nusers; i++)
            r->users[i].uid = (uint64_t)i;
        start_connect(r);
    }
    if (r->phase != PH_DONE)
        uv_run(&r->loop, UV_RUN_DEFAULT);
    report(r);
    rc = r->exit_code;

    /* Close everything; the loop runs the close callbacks. */
    r->phase = PH_DONE;
    uv_walk(&r->loop, close_walk, NULL);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    (void)uv_loop_close(&r->loop);
    if (r->info_rc)
        redisFree(r->info_rc);
    for (int i = 0; i < r->nusers; i++) {
        struct user *u = &r->users[i];

        for (int k = 0; k < u->ndev; k++) {
            lg_conn_release(&u->dev[k].c);
            free(u->dev[k].c.subs);
            free(u->dev[k].c.sub_ids);
        }
        free(u->dev);
        free(u->ts);
        free(u->st);
        free(u->dc);
    }
    free(r->users);
    free(r->all);
    free(r);
    lg_conn_global_cleanup();
    return rc;
}
