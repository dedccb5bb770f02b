/* hist.c - a log-bucket latency histogram, in the spirit of HdrHistogram.
 *
 * Values (nanoseconds) below 64 get one bucket each; above that every
 * power of two [2^k, 2^(k+1)) is cut into 32 equal buckets, so the bucket
 * width is at most 1/32 of its values. Recording is O(1) with no
 * allocation (one clz, one shift); a percentile walks the ~1.9k buckets
 * once. Reported values are the upper bound of the bucket (never below
 * the true value, at most ~3 % above), capped by the exact maximum. */
#include "fmacros.h"

#include "lg.h"

static unsigned
bucket_of(uint64_t v)
{
    unsigned msb, shift;

    if (v < 64)
        return (unsigned)v;
    msb = 63u - (unsigned)__builtin_clzll(v);          /* >= 6 */
    shift = msb - 5u;
    return 64u + (msb - 6u) * 32u + (unsigned)((v >> shift) - 32u);
}

static uint64_t
bucket_top(unsigned i)
{
    unsigned k, msb, shift;
    uint64_t top;

    if (i < 64)
        return i;
    k = i - 64u;
    msb = 6u + k / 32u;
    shift = msb - 5u;
    top = 32u + k % 32u;
    return ((top + 1u) << shift) - 1u;
}

void
lg_hist_add(struct lg_hist *h, uint64_t v)
{
    unsigned i = bucket_of(v);

    if (i >= LG_HIST_BUCKETS)
        i = LG_HIST_BUCKETS - 1;
    h->b[i]++;
    h->count++;
    h->sum += v;
    if (v > h->max)
        h->max = v;
}

uint64_t
lg_hist_pct(const struct lg_hist *h, double p)
{
    uint64_t want, seen = 0, v;

    if (h->count == 0)
        return 0;
    want = (uint64_t)(p * (double)h->count + 0.5);
    if (want < 1)
        want = 1;
    if (want > h->count)
        want = h->count;
    for (unsigned i = 0; i < LG_HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= want) {
            v = bucket_top(i);
            return v < h->max ? v : h->max;
        }
    }
    return h->max;
}
