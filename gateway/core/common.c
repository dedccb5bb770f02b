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
 * Heap gauge. The wrappers also count the bytes of the blocks they hand out
 * (malloc_usable_size: the block's real size, under ASan too) in one atomic
 * counter, cg_heap_bytes(): /metrics shows it (chatgate_heap_bytes) and
 * memory_budget_bytes compares against it. Only the gateway's own
 * allocations count, not those of libwebsockets, hiredis or jansson. The
 * counter is updated with relaxed atomics: the thread pool allocates too.
 *
 * Clocks. cg_now_ms() is wall-clock time for timestamps that leave the
 * process (message times, token expiry); cg_mono_ms() is for measuring
 * intervals, and never jumps when the system clock is set. */
#include "fmacros.h"

#include <malloc.h>
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

static int64_t heap_bytes;       /* bytes of the blocks handed out (atomic) */

static void
heap_add(int64_t n)
{
    __atomic_fetch_add(&heap_bytes, n, __ATOMIC_RELAXED);
}

static void *
counted(void *p)
{
    if (p != NULL)
        heap_add((int64_t)malloc_usable_size(p));
    return p;
}

int64_t
cg_heap_bytes(void)
{
    return __atomic_load_n(&heap_bytes, __ATOMIC_RELAXED);
}

void *
cg_malloc(size_t n)
{
    return inject_failure() ? NULL : counted(malloc(n));
}

void *
cg_calloc(size_t nmemb, size_t size)
{
    return inject_failure() ? NULL : counted(calloc(nmemb, size));
}

void *
cg_realloc(void *p, size_t n)
{
    size_t old;
    void *q;

    if (inject_failure())
        return NULL;
    old = p != NULL ? malloc_usable_size(p) : 0;
    /* Never realloc(p, 0): glibc frees p then, other allocators do not. */
    if ((q = realloc(p, n ? n : 1)) == NULL)
        return NULL;                    /* p is untouched */
    heap_add((int64_t)malloc_usable_size(q) - (int64_t)old);
    return q;
}

void
cg_free(void *p)
{
    if (p != NULL)
        heap_add(-(int64_t)malloc_usable_size(p));
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
