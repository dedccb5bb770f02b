/* common.h - error codes, allocation and clocks shared by every gateway
 * module. (The string view is libstomp's struct stomp_str, stomp/str.h.)
 *
 * Error convention (STYLE.md section 3): functions that can fail return 0 or a
 * negative code. System failures are -errno (libuv style); gateway errors
 * start at CG_E_BASE and go down, so they never collide with -errno.
 * The stomp library's STOMP_E_* codes are small negatives that DO overlap
 * -errno (STOMP_E_FRAME_TOO_LARGE == -1 == -EPERM), so they never travel
 * beyond the caller of libstomp: session.c words them with
 * stomp_strerror_limit() and returns CG_E_PROTO / CG_E_LIMIT upward.
 * cg_strerror() understands CG_E_* and -errno. */
#ifndef CHATGATE_COMMON_H
#define CHATGATE_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define CG_E_BASE        (-1000)
#define CG_E_PROTO       (CG_E_BASE - 1)   /* peer broke the protocol */
#define CG_E_LIMIT       (CG_E_BASE - 2)   /* a configured limit was hit */
#define CG_E_AUTH        (CG_E_BASE - 3)   /* missing, bad, expired or revoked credentials */
#define CG_E_FORBIDDEN   (CG_E_BASE - 4)   /* authenticated but not allowed */
#define CG_E_STORE       (CG_E_BASE - 5)   /* Redis unavailable or failed */
#define CG_E_CLOSED      (CG_E_BASE - 6)   /* the object went away (shutdown, disconnect) */
#define CG_E_NOTFOUND    (CG_E_BASE - 7)   /* no such user / message */
#define CG_E_EXISTS      (CG_E_BASE - 8)   /* name taken */
#define CG_E_INVAL       (CG_E_BASE - 9)   /* invalid argument or input value */
#define CG_E_NOMEM       (CG_E_BASE - 10)  /* allocation failed */
#define CG_E_EXPIRED     (CG_E_BASE - 11)  /* credentials that were valid ran out (token expiry) */

/* One static line describing err: a CG_E_* code or -errno (every value
 * above CG_E_BASE is read as -errno; never pass a STOMP_E_* code). */
const char *cg_strerror(int err);

/* Allocation. Every gateway allocation goes through these so that tests can
 * fail the Nth call (cg_alloc_fail_after) and check that every failure path
 * is clean. They behave like malloc/calloc/realloc/free/strndup. */
void *cg_malloc(size_t n);
void *cg_calloc(size_t nmemb, size_t size);
void *cg_realloc(void *p, size_t n);
void  cg_free(void *p);
char *cg_strndup(const char *s, size_t n);

/* Bytes of the blocks the functions above have handed out and not yet
 * freed (their usable sizes): the gauge memory_budget_bytes is compared
 * with. Any thread. */
int64_t cg_heap_bytes(void);

/* Test hook: make the n-th allocation from now (1-based) and every later one
 * fail until reset; n == 0 disables failure injection. Not thread-safe; used
 * only by single-threaded unit tests. */
void cg_alloc_fail_after(unsigned long n);

/* Milliseconds since the Unix epoch (wall clock) and a monotonic clock. */
int64_t cg_now_ms(void);
uint64_t cg_mono_ms(void);

/* v in decimal, NUL-terminated, into buf (at least CG_U64_STR_MAX bytes);
 * returns the number of digits. For hot paths, where snprintf's parsing of
 * its format shows in profiles. */
#define CG_U64_STR_MAX 21
size_t cg_u64_str(char *buf, uint64_t v);

#endif
