/* listener.h - the gateway's own listen socket (listener.c); used by
 * server.c only.
 *
 * Lifetime: open (bind + listen, nothing accepted yet) -> start (accepted
 * connections go to an lws vhost) -> close (the socket is closed at once,
 * the memory after libuv's close callbacks). */
#ifndef CG_LISTENER_H
#define CG_LISTENER_H

#include <stdint.h>

#include "http/http_head.h"

struct uv_loop_s;
struct lws;
struct lws_vhost;
struct cg_listener;
struct cg_listen_addr;
struct cg_linger;
struct cg_metrics;

/* The check of each connection's first request head (listener.c's top
 * comment): check 0 hands every connection to lws at once (TLS). */
struct cg_listener_heads {
    int                        check;
    struct cg_http_head_limits limits;
    struct cg_linger          *linger;   /* refused heads linger here */
    struct cg_metrics         *metrics;  /* http_heads_refused; may be NULL */
};

/* Connections per client address (peers.h): counted from accept until
 * the listener or lws closes them; past max_per_addr a new connection is
 * closed at once. peers NULL: nothing counted. */
struct cg_peers;
struct cg_proxies;
struct cg_listener_peers {
    struct cg_peers         *peers;
    const struct cg_proxies *proxies;      /* not counted: trusted proxies */
    uint32_t                 max_per_addr; /* max_addr_sockets */
    uint64_t                *refused;      /* counter; may be NULL */
};

/* Bind addr (config.c parsed it from option, "listen", "metrics_listen"
 * or "longlink_listen"; an empty host means every IPv4 address) and
 * listen; listen is the option's text, for logs, and option names the
 * flag an error tells the operator to change. reuse_port sets
 * SO_REUSEPORT so that several processes can share the port. Nothing is
 * accepted until cg_listener_start(). Logs what went wrong and returns a
 * negative code (CG_E_INVAL for a bad address, -errno from bind/listen). */
int cg_listener_open(struct uv_loop_s *loop, const struct cg_listen_addr *addr,
                     const char *option, const char *listen, int reuse_port,
                     struct cg_listener **out);

/* Port actually bound (useful with port 0). */
int cg_listener_port(const struct cg_listener *l);

/* Start accepting; every accepted connection is adopted by vh (lws owns it
 * from then on, TLS included when vh serves TLS), once its first request
 * head has passed the check of heads (copied), which answers the heads it
 * refuses itself. heads->linger and metrics must outlive l. */
void cg_listener_start(struct cg_listener *l, struct lws_vhost *vh,
                       const struct cg_listener_heads *heads);

/* Count l's connections per client address (before cg_listener_start();
 * *p is copied, what it points to must outlive l). */
void cg_listener_set_peers(struct cg_listener *l, const struct cg_listener_peers *p);

/* lws creates wsi (LWS_CALLBACK_WSI_CREATE) and destroys it
 * (LWS_CALLBACK_WSI_DESTROY): on destroy, give its address's count back
 * and free what the listener attached to it. */
void cg_listener_on_create(struct lws *wsi);
void cg_listener_on_destroy(struct lws *wsi);

/* The CG_HTTP_HEAD_F_* flags the check found in wsi's first request head,
 * the first time this is called for wsi (the caller routes that request);
 * 0 on every later call, and for connections that were not checked. */
unsigned cg_listener_take_head_flags(struct lws *wsi);

/* As cg_listener_start(), but every accepted connection (non-blocking,
 * TCP_NODELAY) is handed to on_fd(data, fd), which owns the descriptor from
 * then on; on_fd may not close the listener. */
void cg_listener_start_fd(struct cg_listener *l, void (*on_fd)(void *data, int fd),
                          void *data);

/* Stop accepting and close the socket: connections already waiting in the
 * kernel's accept queue, and those whose first head is still awaited, are
 * handed over to lws unchecked first (they would be reset otherwise), later ones are refused by the kernel, or - with
 * SO_REUSEPORT - go to the other processes on the port. Frees l once
 * libuv has closed its handles. Call once; l is invalid afterwards. */
void cg_listener_close(struct cg_listener *l);

#endif
