/* server.h - the one server context passed down to every module
 * (STYLE.md principle 5: nothing is global). main.c creates it; server.c
 * owns the lws context on the shared libuv loop; the registry tracks live
 * sessions by id and by user. */
#ifndef CHATGATE_SERVER_H
#define CHATGATE_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "chatgate/metrics.h"

struct uv_loop_s;
struct lws_context;
struct lws_vhost;
struct cg_config;
struct cg_store;
struct cg_chat;
struct cg_auth;
struct cg_registry;
struct cg_origins;
struct cg_sockjs;
struct lws_protocols;
struct cg_listener;
struct cg_proxies;
struct cg_inbox_stats;
struct cg_linger;
struct lws_retry_bo;

#define CG_WS_NPROTO 3   /* v12.stomp, v11.stomp, v10.stomp */

struct cg_server {
    struct uv_loop_s        *loop;
    const struct cg_config  *cfg;
    struct lws_context      *lws;
    struct lws_vhost        *vhost;
    struct cg_store         *store;
    struct cg_chat          *chat;
    struct cg_auth          *auth;
    struct cg_registry      *registry;   /* sessions by id and by user */
    struct cg_origins       *origins;    /* parsed allowed_origins */
    struct cg_sockjs        *sockjs;     /* SockJS session table (transport_sockjs.c) */
    struct cg_listener      *listener;   /* our listen socket (listener.c); NULL
                                            once stopping */
    struct cg_proxies       *proxies;    /* parsed trusted_proxies (proxies.c) */
    struct cg_inbox_stats   *inbox_stats;/* pending-inbox sampler (inbox_stats.c) */
    struct cg_linger        *linger;     /* refused requests' lingering close (linger.c) */
    struct lws_retry_bo     *idle_policy;/* the vhost's idle policy (server.c);
                                            lives as long as the lws context */
    struct lws_protocols    *ws_protocols[CG_WS_NPROTO]; /* the vhost's own
                                            entries (transport_ws.c) */
    struct cg_metrics        metrics;
    char                     node_id[128];
    int                      stopping;   /* SIGTERM/SIGINT seen: draining */
    int                      store_ready;/* commands, scripts and pub/sub all up
                                            (the store's state callback) */
};

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
