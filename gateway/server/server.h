/* server.h - start and stop the gateway: server.c creates every part on
 * the libuv loop, owns the lws context, and hands each lws event to the
 * part that owns the connection. The context itself is core/context.h. */
#ifndef CHATGATE_SERVER_H
#define CHATGATE_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "core/context.h"

struct uv_loop_s;
struct cg_config;

/* Create every component on loop and start listening. On failure logs what
 * went wrong and what to do, cleans up and returns < 0. */
int cg_server_start(struct cg_server *srv, struct uv_loop_s *loop,
                    const struct cg_config *cfg);

/* Begin a graceful stop: close the listen socket, close sessions (1001 /
 * SockJS c[3000,"Go away!"]), wait until they are gone and no Redis call
 * is in flight, or until drain_ms passed, then release everything.
 * done(data) fires once everything is closed; the caller then runs the loop
 * until uv_loop_close() succeeds. */
void cg_server_stop(struct cg_server *srv, void (*done)(void *data), void *data);

#endif
