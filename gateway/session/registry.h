/* registry.h - live sessions of this node: by session id and by user id,
 * and the fan-out of pushes that arrive on the users' Redis channels.
 *
 * A user's channel (cg:u:<uid>) is subscribed while at least one session of
 * that user is attached on this node, and unsubscribed when the last one
 * detaches. Session ids are never reused within a process. */
#ifndef CHATGATE_REGISTRY_H
#define CHATGATE_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "session/session.h"

struct cg_server;

typedef struct cg_registry cg_registry;

int  cg_registry_create(struct cg_server *srv, cg_registry **out);
void cg_registry_destroy(cg_registry *r);

/* Register a new session; returns its id (> 0, never reused) or 0 on
 * allocation failure. */
uint64_t cg_registry_add(cg_registry *r, cg_session *s);
void cg_registry_remove(cg_registry *r, uint64_t sid);
cg_session *cg_registry_get(const cg_registry *r, uint64_t sid);
size_t cg_registry_count(const cg_registry *r);

/* Sessions from one client address (as ops->peer names it): session.c
 * takes a count when it creates a session and gives it back when the
 * session leaves the registry; cg_session_admit() reads it. take returns 0
 * or CG_E_NOMEM. */
int    cg_registry_addr_take(cg_registry *r, const char *addr);
void   cg_registry_addr_give(cg_registry *r, const char *addr);
size_t cg_registry_addr_count(const cg_registry *r, const char *addr);

/* Called once the user's channel is subscribed (err 0) or could not be
 * (err < 0). The session may have gone: look it up by sid. */
typedef void (*cg_registry_attach_cb)(uint64_t sid, int err, void *data);

/* Attach session sid to user uid, subscribing the user's channel if this is
 * its first session here. cb fires exactly once if 0 is returned, never
 * inside this call: on the next loop turn when the channel is already
 * subscribed, otherwise once the store answers (with CG_E_CLOSED if the
 * registry is destroyed first). Only when srv->store is NULL (unit tests)
 * does cb run before cg_registry_attach() returns.
 * Returns CG_E_LIMIT when uid already has max_user_sessions sessions
 * attached here, CG_E_NOMEM, or the store's error when subscribing cannot
 * start (then sid is not attached). */
int cg_registry_attach(cg_registry *r, uint64_t sid, uint64_t uid,
                       cg_registry_attach_cb cb, void *data);
void cg_registry_detach(cg_registry *r, uint64_t sid, uint64_t uid);

/* Users with a session attached on this node, a few at a time (for
 * sampling, as Redis SCAN): copies the uids of the user table's buckets
 * from *cursor on into out (at most max) and advances *cursor; *cursor is
 * 0 again once the walk reached the end. Returns the number copied. A table
 * that grew between calls may make one walk skip or repeat a user. */
size_t cg_registry_scan_users(const cg_registry *r, size_t *cursor,
                              uint64_t *out, size_t max);

/* Users with at least one session attached on this node. */
size_t cg_registry_user_count(const cg_registry *r);

/* The store's push callback (register with cg_store_set_push_cb, data = r):
 * parses "M..." / "D..." / "L..." payloads and hands them to the user's
 * sessions; the chat body is copied once into one shared cg_buf. */
void cg_registry_on_push(uint64_t uid, const char *payload, size_t len, void *data);

/* Call fn for every live session (shutdown, logout). fn may close sessions
 * but must not free them. */
void cg_registry_foreach(cg_registry *r, void (*fn)(cg_session *s, void *data),
                         void *data);

#endif
