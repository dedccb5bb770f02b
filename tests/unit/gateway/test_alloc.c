/* test_alloc.c - common.c: the allocation wrappers and their fail-after-N
 * hook, the torture loop that fails each allocation of a config load in
 * turn (curl torture, sqlite faultsim), cg_strerror() and the clocks.
 *
 * The torture loop runs twice: once with jansson on libc's allocator, where
 * every failure must come back as CG_E_NOMEM, and once with jansson's
 * allocations routed through cg_malloc too, so the failures inside
 * json_load_file() are part of the scenario. Leaks are checked by
 * LeakSanitizer at the end of each loop when the build has it
 * (CHATGATE_SANITIZE=ON, which is how the tests run in CI). */
#include "fmacros.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <jansson.h>

#include "core/common.h"
#include "core/config.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define LEAKS_FOUND() __lsan_do_recoverable_leak_check()
#else
#define LEAKS_FOUND() 0
#endif

static void
reset_alloc_hook(void)
{
    cg_alloc_fail_after(0);
}

TestSuite(cg_alloc, .fini = reset_alloc_hook);

/* ------------------------------------------------------------------------ */
/* The hook                                                                  */
/* ------------------------------------------------------------------------ */

Test(cg_alloc, fail_after_n_fails_the_nth_call_and_every_later_one)
{
    void *a, *b;

    cg_alloc_fail_after(3);
    a = cg_malloc(8);
    b = cg_malloc(8);
    cr_assert(not(zero(ptr, a)));
    cr_assert(not(zero(ptr, b)));
    cr_assert(zero(ptr, cg_malloc(8)));
    cr_assert(zero(ptr, cg_malloc(8)));
    cr_assert(zero(ptr, cg_calloc(1, 8)));
    cg_free(a);
    cg_free(b);
}

Test(cg_alloc, zero_turns_injection_off)
{
    void *p;

    cg_alloc_fail_after(1);
    cr_assert(zero(ptr, cg_malloc(1)));
    cg_alloc_fail_after(0);
    p = cg_malloc(1);
    cr_assert(not(zero(ptr, p)));
    cg_free(p);
}

Test(cg_alloc, every_wrapper_counts_as_one_allocation)
{
    char *s = NULL, *r;
    void *c;

    cg_alloc_fail_after(4);
    c = cg_calloc(2, 4);
    cr_assert(not(zero(ptr, c)));
    cr_assert(eq(int, ((int *)c)[1], 0));
    s = cg_strndup("hello", 5);
    cr_assert(eq(str, s, "hello"));
    r = cg_realloc(s, 64);
    cr_assert(not(zero(ptr, r)));
    s = r;
    cr_assert(zero(ptr, cg_realloc(s, 128)));   /* the 4th: fails, s kept */
    cr_assert(eq(str, s, "hello"));
    cg_free(s);
    cg_free(c);
}

Test(cg_alloc, strndup_copies_at_most_n_bytes)
{
    char *s = cg_strndup("abcdef", 3), *t = cg_strndup("ab", 10);

    cr_assert(eq(str, s, "abc"));
    cr_assert(eq(str, t, "ab"));
    cg_free(s);
    cg_free(t);
}

Test(cg_alloc, free_of_null_is_a_noop)
{
    void *p;

    cg_alloc_fail_after(2);                  /* the 2nd allocation from now fails */
    cg_free(NULL);                           /* no crash, and not an allocation: */
    cg_free(NULL);                           /* the hook's count does not move */
    p = cg_malloc(1);
    cr_assert(not(zero(ptr, p)));            /* the 1st allocation */
    cr_assert(zero(ptr, cg_malloc(1)));      /* the 2nd */
    cg_free(p);
}

/* ------------------------------------------------------------------------ */
/* Torture: fail each allocation of a config load in turn                    */
/* ------------------------------------------------------------------------ */

/* A load that allocates in every source: strings from the file (through
 * jansson), from the environment and from flags, then the node_id. */
static int
load_scenario(const char *path, char *err, size_t cap)
{
    struct cg_config cfg;
    char *argv[] = {
        "chatgate", "--config", (char *)path, "--listen", "0.0.0.0:9000",
        "--base-path=/Mimi", "--redis", "redis://:pw@127.0.0.1:6380/1",
        "--reuse-port", "--max-headers", "100", NULL,
    };
    char *envp[] = {
        "CHATGATE_ALLOWED_ORIGINS=http://a.example,https://b.example:8443",
        "CHATGATE_LOG_LEVEL=debug", "CHATGATE_SEND_RATE=20", NULL,
    };
    int rc, help, print;

    rc = cg_config_init(&cfg);
    if (rc < 0) {
        snprintf(err, cap, "init: %s", cg_strerror(rc));
        return rc;
    }
    rc = cg_config_load(&cfg, (int)(sizeof argv / sizeof argv[0]) - 1, argv, envp,
                        &help, &print, err, cap);
    cg_config_cleanup(&cfg);
    return rc;
}

static const char scenario_json[] =
    "{\n  \"web_root\": \"/srv/chat/web\",\n  \"trusted_proxies\": \"10.0.0.1\",\n"
    "  \"tls_cert\": \"/etc/c.pem\", \"tls_key\": \"/etc/k.pem\",\n"
    "  \"max_frame_bytes\": 131072, \"sockjs_jsonp\": true\n}\n";

/* Run the scenario failing allocation 1, 2, ... until it needs fewer than
 * n; check each failure with check(). Returns how many were failed. */
static unsigned long
torture(void (*check)(unsigned long n, int rc, const char *err))
{
    char path[] = "/tmp/cg_test_alloc_XXXXXX";
    char err[512];
    unsigned long n;
    int fd, rc;

    fd = mkstemp(path);
    cr_assert(ge(int, fd, 0));
    cr_assert(eq(sz, (size_t)write(fd, scenario_json, strlen(scenario_json)),
                 strlen(scenario_json)));
    close(fd);
    cr_assert(eq(int, load_scenario(path, err, sizeof err), 0), "%s", err);
    for (n = 1;; n++) {
        cg_alloc_fail_after(n);
        err[0] = '\0';
        rc = load_scenario(path, err, sizeof err);
        cg_alloc_fail_after(0);
        if (rc == 0)
            break;                           /* the scenario needs < n allocations */
        check(n, rc, err);
    }
    unlink(path);
    cr_assert(zero(int, LEAKS_FOUND()));
    return n - 1;
}

/* Our own allocations: every failure is reported as exactly that. */
static void
expect_nomem(unsigned long n, int rc, const char *err)
{
    cr_assert(eq(int, rc, CG_E_NOMEM), "allocation %lu: rc %d: %s", n, rc, err);
    cr_assert(not(zero(ptr, strstr(err, "out of memory"))), "allocation %lu: %s", n, err);
}

/* cg_heap_bytes(): every block counts with at least its requested size
 * while it is held, and nothing once freed, through realloc too. */
Test(cg_alloc, heap_gauge_follows_every_wrapper)
{
    int64_t base = cg_heap_bytes();
    char *a = cg_malloc(1000), *b = cg_calloc(10, 100), *c;

    cr_assert(not(zero(ptr, a)));
    cr_assert(not(zero(ptr, b)));
    cr_assert(ge(i64, cg_heap_bytes() - base, 2000));
    cr_assert(lt(i64, cg_heap_bytes() - base, 2200));
    c = cg_realloc(a, 100000);
    cr_assert(not(zero(ptr, c)));
    cr_assert(ge(i64, cg_heap_bytes() - base, 101000));
    c = cg_realloc(c, 10);
    cr_assert(not(zero(ptr, c)));
    cr_assert(lt(i64, cg_heap_bytes() - base, 100000));
    cg_free(c);
    cg_free(b);
    cg_free(NULL);
    cr_assert(eq(i64, cg_heap_bytes(), base));
    cg_alloc_fail_after(1);
    cr_assert(zero(ptr, cg_malloc(10)));
    cr_assert(eq(i64, cg_heap_bytes(), base));
}

Test(cg_alloc, config_load_reports_nomem_at_every_allocation)
{
    unsigned long n = torture(expect_nomem);

    /* Init alone makes one copy per string option; the file, env and flags
     * add more. A small count means the hook is not wired in. */
    cr_assert(gt(ulong, n, 20), "only %lu allocations", n);
}

/* jansson words some allocation failures inside its lexer as syntax errors
 * ("string or '}' expected"), so with its allocations failing too we ask
 * only for a clean error: an error code, a message, no leak, no crash. */
static unsigned long nomem_seen;

static void
expect_clean_error(unsigned long n, int rc, const char *err)
{
    cr_assert(lt(int, rc, 0), "allocation %lu", n);
    cr_assert(not(zero(chr, err[0])), "allocation %lu: no error text", n);
    nomem_seen += rc == CG_E_NOMEM;
}

Test(cg_alloc, config_load_fails_cleanly_inside_jansson_too)
{
    unsigned long n;

    json_set_alloc_funcs(cg_malloc, cg_free);
    n = torture(expect_clean_error);
    cr_assert(gt(ulong, n, 30), "only %lu allocations", n);
    cr_assert(gt(ulong, nomem_seen, n / 2), "%lu of %lu were CG_E_NOMEM", nomem_seen, n);
}

/* ------------------------------------------------------------------------ */
/* cg_strerror                                                               */
/* ------------------------------------------------------------------------ */

Test(cg_strerror, names_every_gateway_code_distinctly)
{
    static const int codes[] = {
        CG_E_PROTO, CG_E_LIMIT, CG_E_AUTH, CG_E_FORBIDDEN, CG_E_STORE,
        CG_E_CLOSED, CG_E_NOTFOUND, CG_E_EXISTS, CG_E_INVAL, CG_E_NOMEM,
        CG_E_EXPIRED,
    };
    const size_t n = sizeof codes / sizeof codes[0];

    for (size_t i = 0; i < n; i++) {
        char *s = (char *)cg_strerror(codes[i]);

        cr_assert(not(zero(ptr, s)));
        cr_assert(not(zero(chr, s[0])));
        cr_assert(zero(ptr, strstr(s, "unknown")), "code %d: %s", codes[i], s);
        for (size_t j = 0; j < i; j++)
            cr_assert(ne(str, s, (char *)cg_strerror(codes[j])));
    }
    cr_assert(eq(str, (char *)cg_strerror(CG_E_NOMEM), "out of memory"));
    cr_assert(eq(str, (char *)cg_strerror(CG_E_LIMIT), "limit exceeded"));
}

Test(cg_strerror, reads_other_negatives_as_errno)
{
    cr_assert(eq(str, (char *)cg_strerror(-ENOENT), "No such file or directory"));
    cr_assert(eq(str, (char *)cg_strerror(-ECONNREFUSED), "Connection refused"));
    /* -1 is -EPERM, never STOMP_E_FRAME_TOO_LARGE: stomp codes are worded
     * by stomp_strerror() where they occur (see common.h). */
    cr_assert(eq(str, (char *)cg_strerror(-EPERM), "Operation not permitted"));
}

Test(cg_strerror, never_returns_null)
{
    cr_assert(eq(str, (char *)cg_strerror(0), "success"));
    cr_assert(eq(str, (char *)cg_strerror(CG_E_BASE - 500), "unknown gateway error"));
    cr_assert(eq(str, (char *)cg_strerror(-999), "unknown system error"));
    cr_assert(eq(str, (char *)cg_strerror(7), "unknown error"));
}

/* ------------------------------------------------------------------------ */
/* Clocks                                                                    */
/* ------------------------------------------------------------------------ */

Test(cg_clock, now_is_epoch_milliseconds)
{
    int64_t t = cg_now_ms();
    time_t s = time(NULL);

    /* Within a minute of time(2): the unit is ms, the origin the epoch. */
    cr_assert(ge(i64, t / 1000, (int64_t)s - 60));
    cr_assert(le(i64, t / 1000, (int64_t)s + 60));
}

Test(cg_clock, monotonic_never_goes_back)
{
    uint64_t a = cg_mono_ms(), b = cg_mono_ms();

    cr_assert(ge(u64, b, a));
}
