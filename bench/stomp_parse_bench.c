#include "fmacros.h"

/* stomp_parse_bench.c - libstomp throughput on chat-sized frames.
 *
 * Builds a stream of the frames a chat gateway sees, in a fixed mix:
 *
 *     40%  SEND     4 headers, ~128 B JSON body, content-length
 *     30%  MESSAGE  6 headers, ~250 B JSON body, content-length
 *     20%  ACK      1 header, no body (the small control frames)
 *     10%  heart-beat (a bare LF)
 *
 * and measures:
 *
 *  - parse, 4 KiB reads: what a session does. Bytes arrive in 4 KiB reads
 *    (copied from the stream, as recv() would), the parser runs until it
 *    wants more, consumed bytes are dropped, and the buffer is compacted
 *    only once the consumed prefix passes 1 KiB (hiredis's rule).
 *  - parse, in memory: the whole stream already in one buffer; the parser
 *    alone.
 *  - write MESSAGE: what fan-out does per receiving session: measure, then
 *    serialize into a buffer of exactly that size.
 *
 * Each measurement runs ROUNDS rounds and reports the best one (the least
 * disturbed by whatever else the machine runs) and the median.
 *
 * Usage: bench_stomp_parse [seconds per measurement, default 5]
 * Build it without sanitizers (CMAKE_BUILD_TYPE=Release) for numbers worth
 * recording.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stomp/stomp.h"

#define STREAM_BYTES (8u << 20)
#define READ_SIZE 4096
#define COMPACT_AFTER 1024
#define ROUNDS 5 /* the machine may be busy: report the best round */

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
die(const char *what)
{
    fprintf(stderr, "bench_stomp_parse: %s\n", what);
    exit(1);
}

/* ------------------------------------------------------------------------ */
/* The traffic                                                               */
/* ------------------------------------------------------------------------ */

struct stream {
    char *p;
    size_t len;
    size_t frames, heartbeats;
};

static void
put(struct stream *s, const char *src, size_t n)
{
    if (s->len + n > STREAM_BYTES + 4096)
        die("stream overflow");
    memcpy(s->p + s->len, src, n);
    s->len += n;
}

static size_t
json_send(char *buf, size_t cap, unsigned i)
{
    /* ~128 bytes, like the original client's send. */
    return (size_t)snprintf(buf, cap,
                            "{\"msgID\":\"%08x%08x%08x%08x%08x\",\"reciverId\":%u,"
                            "\"content\":\"起来聊天 see you at %02u:%02u\"}",
                            i * 2654435761u, i, ~i, i ^ 0x5bd1e995u, i * 7u,
                            i % 100000u, i % 24u, i % 60u);
}

static size_t
json_message(char *buf, size_t cap, unsigned i)
{
    /* ~250 bytes: the stored message as it is pushed to the receiver. */
    return (size_t)snprintf(buf, cap,
                            "{\"id\":%u,\"chatID\":\"%08x%08x%08x%08x%08x\","
                            "\"sender\":\"wususu\",\"reciver\":\"liaojiekx\","
                            "\"content\":\"起来聊天, the meeting moved to room %u, "
                            "bring the slides\",\"time\":1504712402000,"
                            "\"senderId\":1,\"reciverId\":2}",
                            i, i * 2654435761u, i, ~i, i ^ 0x5bd1e995u, i * 7u,
                            i % 1000u);
}

static void
make_stream(struct stream *s)
{
    char head[512], body[512];
    unsigned i;

    s->p = malloc(STREAM_BYTES + 4096);
    if (s->p == NULL)
        die("out of memory");
    s->len = s->frames = s->heartbeats = 0;

    for (i = 0; s->len < STREAM_BYTES; i++) {
        size_t hn, bn;

        switch (i % 10) {
        case 0: case 1: case 2: case 3:
            bn = json_send(body, sizeof(body), i);
            hn = (size_t)snprintf(head, sizeof(head),
                                  "SEND\ndestination:/socket/chat/send\n"
                                  "content-type:application/json;charset=UTF-8\n"
                                  "receipt:r-%u\ncontent-length:%zu\n\n",
                                  i, bn);
            put(s, head, hn);
            put(s, body, bn + 1); /* with the NUL snprintf left */
            s->frames++;
            break;
        case 4: case 5: case 6:
            bn = json_message(body, sizeof(body), i);
            hn = (size_t)snprintf(head, sizeof(head),
                                  "MESSAGE\ndestination:/user/liaojiekx/recive\n"
                                  "subscription:sub-0\nmessage-id:%u\n"
                                  "content-type:application/json;charset=UTF-8\n"
                                  "redelivered:false\ncontent-length:%zu\n\n",
                                  i, bn);
            put(s, head, hn);
            put(s, body, bn + 1);
            s->frames++;
            break;
        case 7: case 8:
            hn = (size_t)snprintf(head, sizeof(head), "ACK\nid:%u\n\n", i);
            put(s, head, hn + 1);
            s->frames++;
            break;
        default:
            put(s, "\n", 1);
            s->heartbeats++;
            break;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Measurements                                                              */
/* ------------------------------------------------------------------------ */

struct result {
    double seconds;
    size_t bytes, frames;
    uint64_t sink; /* keeps the work observable */
};

/* What a pass works on. */
struct ctx {
    const struct stream *s;
    char *buf; /* session read buffer, or the stream's copy, or output */
    size_t cap;
};

static const struct stomp_limits limits = STOMP_LIMITS_DEFAULT;

/* One pass over the stream the way a session reads a socket. */
static void
parse_reads(struct ctx *c, struct result *r)
{
    const struct stream *s = c->s;
    char *buf = c->buf;
    size_t cap = c->cap;
    struct stomp_header hdrs[64];
    struct stomp_frame f = {.headers = hdrs};
    struct stomp_parser p;
    size_t in = 0, start = 0, end = 0;
    double t0 = now();

    stomp_parser_init(&p, &limits);
    while (in < s->len) {
        size_t n = s->len - in < READ_SIZE ? s->len - in : READ_SIZE;

        if (end + n > cap)
            die("read buffer overflow");
        memcpy(buf + end, s->p + in, n); /* recv() */
        in += n;
        end += n;
        for (;;) {
            ssize_t used = stomp_parse(&p, buf + start, end - start, &f);

            if (used == STOMP_AGAIN)
                break;
            if (used < 0)
                die(stomp_strerror((int)used));
            r->sink += (uint64_t)f.command + f.nheaders + f.body.len;
            r->frames += f.command != STOMP_CMD_HEARTBEAT;
            start += (size_t)used;
        }
        if (start == end) {
            start = end = 0;
        } else if (start >= COMPACT_AFTER) {
            memmove(buf, buf + start, end - start);
            end -= start;
            start = 0;
        }
    }
    r->seconds += now() - t0;
    r->bytes += s->len;
}

/* One pass over a copy of the stream that is already in memory. */
static void
parse_memory(struct ctx *c, struct result *r)
{
    char *buf = c->buf;
    size_t len = c->s->len;
    struct stomp_header hdrs[64];
    struct stomp_frame f = {.headers = hdrs};
    struct stomp_parser p;
    size_t off = 0;
    double t0;

    memcpy(buf, c->s->p, len); /* parsing unescapes in place */
    t0 = now();
    stomp_parser_init(&p, &limits);
    while (off < len) {
        ssize_t used = stomp_parse(&p, buf + off, len - off, &f);

        if (used <= 0)
            die(used < 0 ? stomp_strerror((int)used) : "truncated stream");
        r->sink += (uint64_t)f.command + f.nheaders + f.body.len;
        r->frames += f.command != STOMP_CMD_HEARTBEAT;
        off += (size_t)used;
    }
    r->seconds += now() - t0;
    r->bytes += len;
}

static void
build_message(struct stomp_writer *w, const char *id, const char *body,
              size_t body_len)
{
    stomp_writer_command(w, STOMP_CMD_MESSAGE);
    stomp_writer_header(w, STOMP_STR("destination"),
                        STOMP_STR("/user/liaojiekx/recive"));
    stomp_writer_header(w, STOMP_STR("subscription"), STOMP_STR("sub-0"));
    stomp_writer_header(w, STOMP_STR("message-id"),
                        (struct stomp_str){id, strlen(id)});
    stomp_writer_header(w, STOMP_STR("content-type"),
                        STOMP_STR("application/json;charset=UTF-8"));
    stomp_writer_header(w, STOMP_STR("redelivered"), STOMP_STR("false"));
    stomp_writer_body(w, (struct stomp_str){body, body_len});
}

#define NMESSAGES 1024

/* The bodies and ids of the MESSAGE frames to write, made once. */
static char message_body[NMESSAGES][320];
static size_t message_len[NMESSAGES];
static char message_id[NMESSAGES][16];

static void
make_messages(void)
{
    unsigned i;

    for (i = 0; i < NMESSAGES; i++) {
        message_len[i] = json_message(message_body[i], sizeof(message_body[i]), i);
        snprintf(message_id[i], sizeof(message_id[i]), "%u", i);
    }
}

/* Renders the MESSAGE frames: measure, then write into exactly that. */
static void
write_messages(struct ctx *c, struct result *r)
{
    char *out = c->buf;
    size_t cap = c->cap;
    double t0 = now();
    unsigned i;

    for (i = 0; i < NMESSAGES; i++) {
        const char *body = message_body[i], *id = message_id[i];
        size_t bn = message_len[i];
        struct stomp_writer w;
        size_t need, n;

        stomp_writer_init(&w, NULL, 0, STOMP_V1_2);
        build_message(&w, id, body, bn);
        if (stomp_writer_finish(&w, &need) != STOMP_OK || need > cap)
            die("measure failed");
        stomp_writer_init(&w, out, need, STOMP_V1_2);
        build_message(&w, id, body, bn);
        if (stomp_writer_finish(&w, &n) != STOMP_OK)
            die("write failed");
        r->sink += (uint64_t)(unsigned char)out[n / 2];
        r->bytes += n;
        r->frames++;
    }
    r->seconds += now() - t0;
}

static double
rate(const struct result *r)
{
    return (double)r->bytes / r->seconds;
}

static int
by_rate(const void *a, const void *b)
{
    double x = rate(a), y = rate(b);

    return (x > y) - (x < y);
}

/* Runs pass for ROUNDS rounds of budget / ROUNDS seconds each and prints
 * the best round and the median throughput. Returns the work's sink. */
static uint64_t
measure(const char *what, void (*pass)(struct ctx *, struct result *),
        struct ctx *c, double budget)
{
    struct result rounds[ROUNDS] = {{0}};
    uint64_t sink = 0;
    int k;

    for (k = 0; k < ROUNDS; k++) {
        do
            pass(c, &rounds[k]);
        while (rounds[k].seconds < budget / ROUNDS);
        sink += rounds[k].sink;
    }
    qsort(rounds, ROUNDS, sizeof(rounds[0]), by_rate);
    printf("%-32s %8.1f MB/s %6.2f M frames/s %6.1f ns/frame"
           "   (median %.1f MB/s)\n",
           what, rate(&rounds[ROUNDS - 1]) / 1e6,
           (double)rounds[ROUNDS - 1].frames / rounds[ROUNDS - 1].seconds / 1e6,
           rounds[ROUNDS - 1].seconds * 1e9 / (double)rounds[ROUNDS - 1].frames,
           rate(&rounds[ROUNDS / 2]) / 1e6);
    return sink;
}

int
main(int argc, char **argv)
{
    double budget = argc > 1 ? atof(argv[1]) : 5.0;
    struct stream s;
    struct ctx reads, memory, writes;
    uint64_t sink = 0;

    if (budget <= 0)
        die("usage: bench_stomp_parse [seconds per measurement]");
    make_stream(&s);
    make_messages();
    reads = (struct ctx){&s, malloc(limits.max_frame_bytes + READ_SIZE),
                         limits.max_frame_bytes + READ_SIZE};
    memory = (struct ctx){&s, malloc(s.len), s.len};
    writes = (struct ctx){&s, malloc(4096), 4096};
    if (reads.buf == NULL || memory.buf == NULL || writes.buf == NULL)
        die("out of memory");

    printf("stream: %.2f MiB, %zu frames + %zu heart-beats, %.0f bytes/frame "
           "(SEND 40%%, MESSAGE 30%%, ACK 20%%, heart-beat 10%%)\n",
           (double)s.len / (1 << 20), s.frames, s.heartbeats,
           (double)s.len / (double)s.frames);
    sink += measure("parse, 4 KiB reads", parse_reads, &reads, budget);
    sink += measure("parse, in memory", parse_memory, &memory, budget);
    sink += measure("write MESSAGE (measure + write)", write_messages, &writes,
                    budget);
    if (sink == 42)
        printf("(sink %llu)\n", (unsigned long long)sink);

    free(reads.buf);
    free(memory.buf);
    free(writes.buf);
    free(s.p);
    return 0;
}
