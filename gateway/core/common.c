/* common.c - error strings, the allocation wrappers and the clocks.
 *
 * Error codes. Three code spaces meet in the gateway:
 *
 *     0                      success
 *     -1 .. -999             -errno from a system call (libuv style)
 *     CG_E_BASE (-1000) ...  the gateway's own codes, from CG_E_BASE down
 *     STOMP_E_* (-1 .. -99)  libstomp's codes
 *
 * libstomp's codes overlap -errno (STOMP_E_FRAME_TOO_LARGE == -1 == -EPERM),
 * so no function can tell them apart from the value alone. The rule is
 * therefore: a STOMP_E_* code never travels beyond the code that called
 * libstomp. session.c turns it into ERROR-frame text with
 * stomp_strerror_limit() at its one mapping point, and into CG_E_PROTO or
 * CG_E_LIMIT where it must be returned further up. cg_strerror() reads
 * every value above CG_E_BASE as -errno.
 *
 * Allocation. cg_malloc() and friends are the libc calls plus one test hook:
 * cg_alloc_fail_after(n) makes the n-th allocation from now and every later
 * one return NULL, so a unit test can fail each allocation of a scenario in
 * turn (curl torture, sqlite faultsim). The hook's two counters are the only
 * file-scope mutable state here. They are written only by single-threaded
 * unit tests; in production they stay zero and are only ever read, so the
 * thread pool may allocate through these wrappers too.
 *
 * Clocks. cg_now_ms() is wall-clock time for timestamps that leave the
 * process (message times, token expiry); cg_mono_ms() is for measuring
 * intervals, and never jumps when the system clock is set. */
#include "fmacros.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/common.h"

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

/* Indexed by CG_E_BASE - err; CG_E_BASE itself is not an error we return,
 * but a stray use of it still gets a readable string. */
static const char *const cg_errors[] = {
    "gateway error",                      /* CG_E_BASE */
    "protocol violation",                 /* CG_E_PROTO */
    "limit exceeded",                     /* CG_E_LIMIT */
    "authentication failed",              /* CG_E_AUTH */
    "forbidden",                          /* CG_E_FORBIDDEN */
    "store unavailable",                  /* CG_E_STORE */
    "closed",                             /* CG_E_CLOSED */
    "not found",                          /* CG_E_NOTFOUND */
    "already exists",                     /* CG_E_EXISTS */
    "invalid argument",                   /* CG_E_INVAL */
    "out of memory",                      /* CG_E_NOMEM */
    "credentials expired",                /* CG_E_EXPIRED */
};

#define CG_NERRORS (sizeof cg_errors / sizeof cg_errors[0])

_Static_assert(CG_E_BASE - CG_E_EXPIRED + 1 == CG_NERRORS,
               "cg_errors[] must name every CG_E_* code");

const char *
cg_strerror(int err)
{
    if (err == 0)
        return "success";
    if (err <= CG_E_BASE) {
        unsigned idx = (unsigned)(CG_E_BASE - err);

        return idx < CG_NERRORS ? cg_errors[idx] : "unknown gateway error";
    }
    if (err < 0) {
        /* strerrordesc_np (glibc 2.32) is thread-safe and locale-free;
         * strerror() may format unknown codes into a static buffer. */
        const char *s = strerrordesc_np(-err);

        return s != NULL ? s : "unknown system error";
    }
    return "unknown error";      /* positive values are counts, not errors */
}

/* ------------------------------------------------------------------------ */
/* Allocation                                                                */
/* ------------------------------------------------------------------------ */

static unsigned long fail_at;    /* 0: injection off; else fail call #fail_at onwards */
static unsigned long calls;      /* allocations since cg_alloc_fail_after() */

/* True when this allocation must fail. */
static int
inject_failure(void)
{
    if (fail_at == 0)
        return 0;
    return ++calls >= fail_at;
}

void
cg_alloc_fail_after(unsigned long n)
{
    fail_at = n;
    calls = 0;
}

void *
cg_malloc(size_t n)
{
    return inject_failure() ? NULL : malloc(n);
}

void *
cg_calloc(size_t nmemb, size_t size)
{
    return inject_failure() ? NULL : calloc(nmemb, size);
}

void *
cg_realloc(void *p, size_t n)
{
    return inject_failure() ? NULL : realloc(p, n);
}

void
cg_free(void *p)
{
    free(p);
}

char *
cg_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *d = cg_malloc(len + 1);

    if (d == NULL)
        return NULL;
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

/* ------------------------------------------------------------------------ */
/* Clocks                                                                    */
/* ------------------------------------------------------------------------ */

int64_t
cg_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);   /* cannot fail for this clock id */
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t
cg_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------------ */
/* Numbers                                                                   */
/* ------------------------------------------------------------------------ */

size_t
cg_u64_str(char *buf, uint64_t v)
{
    char tmp[CG_U64_STR_MAX];
    char *p = tmp + sizeof tmp;
    size_t n;

    do
        *--p = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    n = (size_t)(tmp + sizeof tmp - p);
    memcpy(buf, p, n);
    buf[n] = '\0';
    return n;
}
