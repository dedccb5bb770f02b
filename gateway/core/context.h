/* context.h - the one server context passed down to every module
 * (nothing is global). server/main.c creates it and server/server.c fills
 * it in; every part below the server reaches the others' objects through
 * it. Only pointers to the parts' types: this header depends on nothing
 * but the metrics it embeds. */
#ifndef CHATGATE_CONTEXT_H
#define CHATGATE_CONTEXT_H

#include <stddef.h>
#include <stdint.h>

#include "core/metrics.h"

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
#define CG_API_BUCKETS 64 /* = CG_API_KEYS_MAX (api_keys.h) */

/* A backend API key's rate-limit bucket on this node (backend_api.c). */
struct cg_rate_bucket {
    double  tokens;
    int64_t at_ms;     /* last refill (monotonic); 0: never used, full */
};

struct cg_server {
    struct uv_loop_s        *loop;
    const struct cg_config  *cfg;
    struct lws_context      *lws;
    struct lws_vhost        *vhost;
    struct cg_store         *store;
    struct cg_chat          *chat;
    struct cg_auth          *auth;
    struct cg_registry      *registry;   /* sessions by id and by user */
    struct cg_origins       *origins;    /* cfg->origins (borrowed) */
    struct cg_sockjs        *sockjs;     /* SockJS session table (sockjs_session.c) */
    struct cg_listener      *listener;   /* our listen socket (listener.c); NULL
                                            once stopping */
    struct cg_listener      *metrics_listener; /* metrics_listen's socket, or
                                            NULL (then {base}/metrics is on the
                                            main port) */
    struct lws_vhost        *metrics_vhost; /* what it adopts into: serves only
                                            GET /metrics */
    struct cg_listener      *longlink_listener; /* longlink_listen's socket, or
                                            NULL (no long link, or stopping) */
    struct cg_longlink      *longlink;   /* the long-link transport
                                            (transport_ll.c), or NULL */
    struct cg_proxies       *proxies;    /* cfg->proxies (borrowed) */
    struct cg_inbox_stats   *inbox_stats;/* pending-inbox sampler (inbox_stats.c) */
    struct cg_linger        *linger;     /* refused requests' lingering close (linger.c) */
    struct cg_peers         *peers;      /* TCP connections per client address
                                            on the main listener (peers.c) */
    struct lws_retry_bo     *idle_policy;/* the vhost's idle policy (server.c);
                                            lives as long as the lws context */
    struct lws_protocols    *ws_protocols[CG_WS_NPROTO]; /* the vhost's own
                                            entries (transport_ws.c) */
    struct cg_rate_bucket    api_bucket[CG_API_BUCKETS]; /* per api_keys entry */
    struct cg_metrics        metrics;
    char                     node_id[128];
    int                      stopping;   /* SIGTERM/SIGINT seen: draining */
    int                      store_ready;/* commands, scripts and pub/sub all up
                                            (the store's state callback) */
};

#endif
