/* registry_internal.h - a user of the registry (the sessions of one uid
 * on this node, and its channel's state), for registry.c and the test
 * support's cg_registry_user_sessions() (tests/support/session_test.c).
 * Not an API: everybody else uses registry.h. */
#ifndef CG_REGISTRY_INTERNAL_H
#define CG_REGISTRY_INTERNAL_H

#include <stdint.h>

#include "session/registry.h"

struct waiter;    /* an attach waiting for the channel (registry.c) */
struct sub_req;   /* a subscribe in flight (registry.c) */

struct user {
    struct user    *next;       /* bucket chain */
    uint64_t        uid;
    uint64_t       *sids;       /* the sessions attached here ... */
    uint32_t        n, cap;     /* ... n of them */
    uint8_t         state;      /* enum user_state (registry.c) */
    struct waiter  *waiters, *waiters_tail;
    struct sub_req *req;        /* subscribe in flight */
};

/* The user uid, or NULL when none of its sessions is attached here (and
 * no subscribe of its channel is in flight). */
struct user *cg_registry__user_find(const cg_registry *r, uint64_t uid);

#endif
