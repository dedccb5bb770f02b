/* util.c - small helpers of the load generator: the monotonic clock, a
 * PRNG, /proc readers (CPU ticks and RSS of the processes under test) and
 * extraction of one field from a flat JSON object.
 *
 * The JSON helpers are deliberately naive: they find the first occurrence
 * of "key": and read the value after it. That is enough for the bodies the
 * gateway writes (flat objects whose string values are ours: msgIDs,
 * fixed ASCII content), and it keeps the generator's own CPU low. */
#include "fmacros.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lg.h"

uint64_t
lg_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t
lg_rand(uint64_t *s)
{
    uint64_t x = *s;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

double
lg_ticks_per_sec(void)
{
    long t = sysconf(_SC_CLK_TCK);

    return t > 0 ? (double)t : 100.0;
}

long long
lg_proc_cpu_ticks(int pid)
{
    char path[64], buf[1024], *p;
    unsigned long long ut, st;
    FILE *f;
    size_t n;

    if (pid <= 0)
        return -1;
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name may hold spaces: fields resume after the last ')'. */
    if ((p = strrchr(buf, ')')) == NULL)
        return -1;
    /* ") S ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
     *  utime stime": utime is the 12th field after ')'. */
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
               &ut, &st) != 2)
        return -1;
    return (long long)(ut + st);
}

long long
lg_proc_wait_ns(int pid)
{
    char path[64];
    unsigned long long run, wait;
    FILE *f;
    int n;

    if (pid <= 0)
        return -1;
    snprintf(path, sizeof path, "/proc/%d/schedstat", pid);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    n = fscanf(f, "%llu %llu", &run, &wait);
    fclose(f);
    return n == 2 ? (long long)wait : -1;
}

long long
lg_proc_status_kib(int pid, const char *field)
{
    char path[64], line[256];
    size_t flen = strlen(field);
    long long v = -1;
    FILE *f;

    if (pid <= 0)
        return -1;
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
            v = strtoll(line + flen + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

const char *
lg_json_str(const char *body, size_t len, const char *key, size_t *out_len)
{
    size_t klen = strlen(key);
    const char *p = memmem(body, len, key, klen), *end = body + len, *q;

    if (p == NULL)
        return NULL;
    p += klen;
    while (p < end && (*p == ' ' || *p == ':'))
        p++;
    if (p >= end || *p != '"')
        return NULL;
    p++;
    for (q = p; q < end && *q != '"'; q++)
        if (*q == '\\')
            q++;
    if (q >= end)
        return NULL;
    *out_len = (size_t)(q - p);
    return p;
}

int
lg_json_uint(const char *body, size_t len, const char *key, uint64_t *out)
{
    size_t klen = strlen(key);
    const char *p = memmem(body, len, key, klen), *end = body + len;
    uint64_t v = 0;
    int digits = 0;

    if (p == NULL)
        return -1;
    p += klen;
    while (p < end && (*p == ' ' || *p == ':'))
        p++;
    for (; p < end && *p >= '0' && *p <= '9'; p++, digits++)
        v = v * 10 + (uint64_t)(*p - '0');
    if (digits == 0)
        return -1;
    *out = v;
    return 0;
}

int
lg_parse_pids(const char *s, int *out, int max)
{
    int n = 0;
    char *end;

    while (s && *s && n < max) {
        long v = strtol(s, &end, 10);

        if (end == s)
            break;
        if (v > 0)
            out[n++] = (int)v;
        s = end;
        while (*s == ',' || *s == ' ')
            s++;
    }
    return n;
}
