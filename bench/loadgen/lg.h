/* lg.h - shared declarations of chatgate_loadgen (bench/loadgen/).
 *
 * The generator is one process, one libuv loop, no threads. Modules:
 *   hist.c     log-bucket latency histogram (HdrHistogram-like, ~3 %)
 *   util.c     clocks, PRNG, /proc readers, tiny JSON field extraction
 *   http.c     parallel HTTP/1.1 POSTs (register, login) on the loop
 *   conn.c     one client connection: TCP -> RFC 6455 client handshake and
 *              framing -> STOMP (libstomp parser and writer)
 *   scenario.c p2p, fanout, idle and backlog on top of conn.c
 *   main.c     command line and the summary
 * Nothing here is shared with the gateway but libstomp. */
#ifndef LG_H
#define LG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <uv.h>

#include "stomp/stomp.h"

#define LG_MAX_PIDS 16   /* also: most ports of --port */

/* ------------------------------------------------------------------------ */
/* Histogram                                                                 */
/* ------------------------------------------------------------------------ */

/* Values are nanoseconds. Below 64 every value has its own bucket; above,
 * each power of two is split in 32 buckets, so a reported percentile is at
 * most ~3 % above the true value (it is the bucket's upper bound). */
#define LG_HIST_BUCKETS (64 + 58 * 32)

struct lg_hist {
    uint64_t count;
    uint64_t max;
    uint64_t sum;
    uint64_t b[LG_HIST_BUCKETS];
};

void lg_hist_add(struct lg_hist *h, uint64_t v);
/* The value at or below which a fraction p (0..1) of the samples lie. */
uint64_t lg_hist_pct(const struct lg_hist *h, double p);

/* ------------------------------------------------------------------------ */
/* Utilities                                                                 */
/* ------------------------------------------------------------------------ */

uint64_t lg_now_ns(void);                  /* CLOCK_MONOTONIC */
uint64_t lg_rand(uint64_t *state);         /* xorshift64* */
/* utime + stime of pid in clock ticks, or -1. */
long long lg_proc_cpu_ticks(int pid);
/* VmRSS (or another "Name:" line of /proc/pid/status) in KiB, or -1. */
long long lg_proc_status_kib(int pid, const char *field);
double lg_ticks_per_sec(void);
/* Nanoseconds pid spent runnable but waiting for a CPU (schedstat), or -1. */
long long lg_proc_wait_ns(int pid);
/* Finds "key": in body and returns a view of its string value (without
 * quotes, escapes left as they are) or NULL. key includes its quotes. */
const char *lg_json_str(const char *body, size_t len, const char *key, size_t *out_len);
/* Same for an unsigned integer value; returns 0 and sets *out, or -1. */
int lg_json_uint(const char *body, size_t len, const char *key, uint64_t *out);
/* Parses a comma-separated list of pids into out (at most max); returns n. */
int lg_parse_pids(const char *s, int *out, int max);

/* ------------------------------------------------------------------------ */
/* HTTP (register, login)                                                    */
/* ------------------------------------------------------------------------ */

struct lg_http_result {
    int         status;      /* HTTP status, or -errno / -1 on failure */
    const char *body;        /* borrowed until the callback returns */
    size_t      body_len;
};

typedef void (*lg_http_cb)(const struct lg_http_result *res, void *data);

/* POST a JSON body to http://host:port path from source address src (NULL:
 * any). The callback runs exactly once. Returns 0 or a libuv error. */
int lg_http_post(uv_loop_t *loop, const char *host, int port, const char *src,
                 const char *path, const char *body, lg_http_cb cb, void *data);

/* ------------------------------------------------------------------------ */
/* Connections                                                               */
/* ------------------------------------------------------------------------ */

enum lg_target { LG_GATEWAY = 0, LG_RABBIT = 1 };

enum lg_conn_state {
    LG_C_IDLE = 0,     /* not started */
    LG_C_TCP,          /* TCP connect in progress */
    LG_C_UPGRADE,      /* WebSocket handshake sent */
    LG_C_CONNECT,      /* STOMP CONNECT sent */
    LG_C_SUBSCRIBE,    /* SUBSCRIBEs sent, waiting for the last receipt */
    LG_C_READY,
    LG_C_CLOSING,
    LG_C_CLOSED,
};

struct lg_conn;

/* Events a connection reports to its owner (scenario.c). */
struct lg_conn_events {
    void (*on_ready)(struct lg_conn *c);
    /* A STOMP frame (not a heart-beat); views live during the call. */
    void (*on_frame)(struct lg_conn *c, const struct stomp_frame *f);
    /* The connection failed or closed; err is a short reason. */
    void (*on_closed)(struct lg_conn *c, const char *err);
};

struct lg_conn {
    uv_tcp_t       tcp;
    uv_connect_t   creq;
    uv_write_t     wreq;
    struct lg_ctx *ctx;
    void          *owner;        /* scenario's object (a device) */
    int            state;        /* enum lg_conn_state */
    int            writing;      /* a uv_write is in flight */
    int            dirty;        /* on the flush list */
    struct lg_conn *next_dirty;
    int            port;         /* server port of this session */
    uint64_t       t_start;      /* connect started (ns) */
    uint64_t       t_ready;

    /* Input: bytes of an incomplete WebSocket frame (or of the HTTP
     * answer); an incomplete fragmented message; unparsed STOMP bytes. */
    char   *rbuf;  size_t rlen, rcap;
    char   *mbuf;  size_t mlen, mcap;
    char   *sbuf;  size_t slen, soff, scap;
    struct stomp_parser parser;

    /* Output: frames are appended to out; a write in flight owns wbuf. */
    char   *out;   size_t olen, ocap;
    char   *wbuf;  size_t wcap;

    /* Setup. */
    char    path[320];           /* request path with query */
    char    key[32];             /* Sec-WebSocket-Key */
    char  (*subs)[160];          /* destinations to SUBSCRIBE */
    char  (*sub_ids)[8];
    int     nsubs;
};

/* Global state of the generator shared by conn.c and scenario.c. */
struct lg_ctx {
    uv_loop_t     *loop;
    enum lg_target target;
    const char    *host;
    int            port;
    int            ports[LG_MAX_PIDS];   /* sessions go round-robin over these */
    int            nports;
    unsigned       port_next;
    int            nsrc;         /* source addresses 127.0.0.1..nsrc (0/1: any) */
    unsigned       src_next;
    const struct lg_conn_events *ev;
    struct lg_conn *dirty;       /* connections with output to flush */
    uv_check_t     flusher;
    uint64_t       rng;
    int            verbose;
    char           prefetch[16]; /* rabbitmq prefetch-count header, or "" */
    /* Counters. */
    uint64_t       frames_in, frames_out, bytes_in, bytes_out, ws_msgs_in;
    uint64_t       conn_errors;
    char           first_error[160];
};

void lg_ctx_init(struct lg_ctx *ctx, uv_loop_t *loop);
/* Start connecting c (zeroed by the caller, path/subs set). 0 or uv error. */
int  lg_conn_start(struct lg_ctx *ctx, struct lg_conn *c);
/* Append one STOMP frame (as one WebSocket text message) to c's output; it
 * leaves at the end of this loop iteration with everything else queued. */
void lg_conn_send_frame(struct lg_conn *c, enum stomp_command cmd,
                        const struct stomp_header *h, size_t nh,
                        const char *body, size_t body_len);
void lg_conn_close(struct lg_conn *c);
/* Frees buffers of a closed connection. */
void lg_conn_release(struct lg_conn *c);
/* Frees the buffers shared by all connections (at exit). */
void lg_conn_global_cleanup(void);
const struct stomp_str *lg_hdr(const struct stomp_frame *f, const char *name);

/* ------------------------------------------------------------------------ */
/* Options and scenarios                                                     */
/* ------------------------------------------------------------------------ */

enum lg_scenario { LG_P2P = 0, LG_FANOUT, LG_IDLE, LG_BACKLOG };

struct lg_opts {
    enum lg_scenario scenario;
    enum lg_target   target;
    const char *host;            /* 127.x.y.z only */
    int         port;            /* the first of ports[] (HTTP goes there) */
    int         ports[LG_MAX_PIDS];
    int         nports;
    const char *base;            /* gateway {base} */
    const char *ws_path;         /* rabbitmq: /ws */
    const char *prefix;          /* user names: <prefix><i> */
    const char *password;
    const char *label;           /* free text copied into the JSON line */
    int         users;
    int         window;          /* unconfirmed sends per user */
    double      rate;            /* total sends/s; 0 = window only */
    double      warmup, duration, drain;   /* seconds */
    int         content_bytes;
    int         conns;           /* idle: connections */
    int         conns_per_user;  /* idle */
    int         concurrency;     /* connects (and HTTP requests) in flight */
    int         nsrc;            /* source addresses for WebSocket connections */
    int         devices;         /* fanout: sessions of the receiving user */
    int         senders;         /* fanout: sending users */
    int         backlog;         /* backlog: pending messages to have */
    int         fill_conns;      /* backlog: Redis connections used to fill */
    int         confirm;         /* backlog: confirm each message */
    const char *redis;           /* unix:///path or host:port (backlog fill, INFO) */
    const char *chat_lua;        /* backlog: path of gateway/store/lua/chat.lua */
    double      hold;            /* idle: seconds to stay connected */
    int         server_pids[LG_MAX_PIDS];
    int         nserver;
    int         redis_pid;
    int         rabbit_prefetch; /* 0 = header not sent */
    int         verbose;
    uint64_t    seed;
};

/* Runs the scenario; prints the summary (text + one "RESULT {json}" line).
 * Returns the process exit status. */
int lg_run(const struct lg_opts *o);

#endif
