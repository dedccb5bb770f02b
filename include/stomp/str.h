/* str.h - the byte string view of libstomp, and of the gateway.
 *
 * Its own header so that code which needs only the view (the gateway's
 * subscription table, SockJS URL parsing, the Origin check) does not take
 * the whole codec with it. stomp.h includes it. libc only. */
#ifndef STOMP_STR_H
#define STOMP_STR_H

#include <stddef.h> /* size_t */

/* A byte string that is not NUL-terminated (ngx_str_t). Wire strings never
 * are: read exactly len bytes from ptr. */
struct stomp_str {
    const char *ptr;
    size_t len;
};

/* A string literal as a stomp_str: STOMP_STR("destination"). */
#define STOMP_STR(lit) ((struct stomp_str){(lit), sizeof(lit) - 1})

#endif /* STOMP_STR_H */
