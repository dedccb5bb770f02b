#include "fmacros.h"

/* fuzz_stomp_roundtrip.c - libFuzzer target: the writer and the parser
 * agree, both ways.
 *
 * Input layout: as fuzz_stomp_parse.c (byte 0 configuration, byte 1 and
 * the chunk sizes, then the payload), so that both share a seed corpus.
 * Here byte 0 picks the version (c % 3) and the direction ((c / 3) % 2):
 *
 *  parse -> write -> parse: the first frame of the payload, if it parses,
 *      is written back (every header but content-length, which the writer
 *      owns, and always a body) and must parse to the same frame. A frame
 *      the parser accepted can always be written in the same version, so
 *      the writer must not fail.
 *
 *  write -> parse: the payload is cut at 0xff bytes into a command byte,
 *      header names and values and a body. The writer either refuses the
 *      frame, exactly when a header holds bytes the version cannot carry,
 *      or writes a frame that parses back to the same command, headers and
 *      body.
 *
 * Each write measures first, then writes into an exactly sized heap block
 * (ASan catches one byte too many), and writing into one byte less must be
 * STOMP_E_NOSPACE.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stomp/stomp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                           \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,  \
                    #cond);                                                   \
            abort();                                                          \
        }                                                                     \
    } while (0)

static const enum stomp_version versions[3] = {STOMP_V1_0, STOMP_V1_1,
                                               STOMP_V1_2};

/* A frame to write: headers to send (content-length excluded), and a body
 * when has_body. */
struct spec {
    enum stomp_command cmd;
    struct stomp_header *h;
    size_t nh;
    int has_body;
    struct stomp_str body;
};

static int
str_eq(struct stomp_str a, struct stomp_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static int
is_content_length(struct stomp_str name)
{
    return str_eq(name, STOMP_STR("content-length"));
}

static void
build(struct stomp_writer *w, const struct spec *s)
{
    size_t i;

    stomp_writer_command(w, s->cmd);
    for (i = 0; i < s->nh; i++)
        stomp_writer_header(w, s->h[i].name, s->h[i].value);
    if (s->has_body)
        stomp_writer_body(w, s->body);
}

/* Measures and writes s. Returns the writer's result; on STOMP_OK *out is
 * a heap block of exactly *len bytes holding the frame. */
static int
write_spec(enum stomp_version v, const struct spec *s, char **out, size_t *len)
{
    struct stomp_writer w;
    size_t n = 0, m = 0;
    char *buf;
    int rc;

    stomp_writer_init(&w, NULL, 0, v);
    build(&w, s);
    rc = stomp_writer_finish(&w, &n);
    if (rc != STOMP_OK)
        return rc;
    CHECK(n > 0);

    buf = malloc(n);
    CHECK(buf != NULL);
    if (n > 1) {
        stomp_writer_init(&w, buf, n - 1, v);
        build(&w, s);
        CHECK(stomp_writer_finish(&w, &m) == STOMP_E_NOSPACE && m == 0);
    }
    stomp_writer_init(&w, buf, n, v);
    build(&w, s);
    CHECK(stomp_writer_finish(&w, &m) == STOMP_OK);
    CHECK(m == n);
    *out = buf;
    *len = n;
    return STOMP_OK;
}

/* Parses buf[0..len) as exactly one frame and checks it is s. */
static void
check_parses_to(enum stomp_version v, char *buf, size_t len,
                const struct spec *s)
{
    struct stomp_limits lim = {
        .max_frame_bytes = len, /* exactly enough: the limit is inclusive */
        .max_headers = s->nh + 1,
        .max_header_line = len,
        .max_header_bytes = len,
    };
    struct stomp_header *hdrs = calloc(lim.max_headers, sizeof(*hdrs));
    struct stomp_frame f = {.headers = hdrs};
    struct stomp_parser p;
    const struct stomp_str *cl;
    size_t i;

    CHECK(hdrs != NULL);
    stomp_parser_init(&p, &lim);
    stomp_parser_set_version(&p, v);
    CHECK(stomp_parse(&p, buf, len, &f) == (ssize_t)len);
    CHECK(f.command == s->cmd);
    if (s->cmd == STOMP_CMD_HEARTBEAT) {
        free(hdrs);
        return;
    }
    CHECK(f.nheaders == s->nh + (s->has_body ? 1 : 0));
    for (i = 0; i < s->nh; i++) {
        CHECK(str_eq(hdrs[i].name, s->h[i].name));
        CHECK(str_eq(hdrs[i].value, s->h[i].value));
    }
    cl = stomp_frame_header(&f, "content-length");
    CHECK((cl != NULL) == (s->has_body != 0));
    CHECK(str_eq(f.body, s->has_body ? s->body : STOMP_STR("")));
    free(hdrs);
}

/* Can byte c sit in a header name (in_name) or value of a cmd frame in
 * version v? The table at the top of escape.c, restated independently. */
static int
representable(enum stomp_version v, enum stomp_command cmd, int in_name,
              unsigned char c)
{
    int raw = v == STOMP_V1_0 || cmd == STOMP_CMD_CONNECT ||
              cmd == STOMP_CMD_STOMP || cmd == STOMP_CMD_CONNECTED;

    switch (c) {
    case '\0':
        return 0;
    case '\n':
        return !raw;
    case '\r':
        return !raw && v == STOMP_V1_2;
    case ':':
        return !raw || !in_name;
    default:
        return 1;
    }
}

static int
writable(enum stomp_version v, const struct spec *s)
{
    size_t i, j;

    if (s->cmd == STOMP_CMD_HEARTBEAT)
        return s->nh == 0 && !s->has_body;
    for (i = 0; i < s->nh; i++) {
        const struct stomp_header *h = &s->h[i];

        if (h->name.len == 0 || is_content_length(h->name))
            return 0;
        for (j = 0; j < h->name.len; j++)
            if (!representable(v, s->cmd, 1, (unsigned char)h->name.ptr[j]))
                return 0;
        for (j = 0; j < h->value.len; j++)
            if (!representable(v, s->cmd, 0, (unsigned char)h->value.ptr[j]))
                return 0;
    }
    return 1;
}

/* parse -> write -> parse */
static void
round_trip_parsed(enum stomp_version v, const uint8_t *payload, size_t len)
{
    struct stomp_limits lim = STOMP_LIMITS_DEFAULT;
    struct stomp_header *hdrs = calloc(lim.max_headers, sizeof(*hdrs));
    struct stomp_frame f = {.headers = hdrs};
    struct stomp_parser p;
    struct spec s = {0};
    char *in = malloc(len > 0 ? len : 1), *out = NULL;
    size_t i, n;
    ssize_t rc;

    CHECK(hdrs != NULL && in != NULL);
    if (len > 0)
        memcpy(in, payload, len);
    stomp_parser_init(&p, &lim);
    stomp_parser_set_version(&p, v);
    rc = stomp_parse(&p, in, len, &f);
    if (rc > 0 && f.command != STOMP_CMD_HEARTBEAT) {
        s.cmd = f.command;
        s.h = calloc(f.nheaders + 1, sizeof(*s.h));
        CHECK(s.h != NULL);
        for (i = 0; i < f.nheaders; i++)
            if (!is_content_length(hdrs[i].name))
                s.h[s.nh++] = hdrs[i];
        s.has_body = 1;
        s.body = f.body;
        CHECK(write_spec(v, &s, &out, &n) == STOMP_OK);
        check_parses_to(v, out, n, &s);
        free(out);
        free(s.h);
    }
    free(in);
    free(hdrs);
}

/* write -> parse */
static void
round_trip_built(enum stomp_version v, const uint8_t *payload, size_t len)
{
    struct spec s = {0};
    struct stomp_str fields[64];
    size_t nf = 0, start = 1, i, n;
    char *out = NULL;
    int rc;

    if (len == 0)
        return;
    s.cmd = (enum stomp_command)(payload[0] % STOMP_CMD_COUNT);
    /* Cut the rest at 0xff: name, value, name, value, ..., [body]. */
    for (i = 1; i <= len && nf < 64; i++) {
        if (i == len || payload[i] == 0xff) {
            fields[nf++] = (struct stomp_str){(const char *)payload + start,
                                              i - start};
            start = i + 1;
        }
    }
    s.h = calloc(nf / 2 + 1, sizeof(*s.h));
    CHECK(s.h != NULL);
    for (i = 0; i + 1 < nf; i += 2)
        s.h[s.nh++] = (struct stomp_header){fields[i], fields[i + 1]};
    if (nf % 2 == 1) {
        s.has_body = 1;
        s.body = fields[nf - 1];
    }
    if (s.cmd == STOMP_CMD_HEARTBEAT)
        s.nh = 0, s.has_body = 0;

    rc = write_spec(v, &s, &out, &n);
    if (!writable(v, &s)) {
        CHECK(rc == STOMP_E_BAD_VALUE);
    } else {
        CHECK(rc == STOMP_OK);
        check_parses_to(v, out, n, &s);
        free(out);
    }
    free(s.h);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum stomp_version v;
    size_t skip;

    if (size < 2)
        return 0;
    v = versions[data[0] % 3];
    skip = 2 + data[1] % 16;
    if (skip > size)
        skip = size;
    if ((data[0] / 3) % 2 == 0)
        round_trip_parsed(v, data + skip, size - skip);
    else
        round_trip_built(v, data + skip, size - skip);
    return 0;
}
