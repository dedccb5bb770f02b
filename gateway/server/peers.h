/* peers.h - TCP connections per client address on a listener (peers.c):
 * the cap of max_addr_sockets, counted from accept to close, whatever the
 * connection turns into (a request head still arriving, an HTTP request
 * with its body trickling in, a WebSocket before or after its session).
 * The session-level cap (max_addr_connections, registry.c) counts sessions
 * only; this one stops one address from holding the process's descriptors.
 *
 * Keys are cg_proxies_limit_key()'s (an IPv6 address counts by its /64).
 * Trusted proxies are not counted: every client behind them shares their
 * address. */
#ifndef CG_PEERS_H
#define CG_PEERS_H

#include <stddef.h>
#include <stdint.h>

struct cg_peers;
struct cg_peer;                  /* one address's count */

/* Destroy: at once when nothing is counted, else once the last
 * connection gives its count back (lws may destroy connections after its
 * context, on later loop turns). */
int  cg_peers_create(struct cg_peers **out);
void cg_peers_destroy(struct cg_peers *p);

/* Count one more connection of key, unless key already has max: returns 0
 * and the entry to give back in *out, CG_E_LIMIT (nothing counted), or
 * CG_E_NOMEM. */
int  cg_peers_take(struct cg_peers *p, const char *key, uint32_t max, struct cg_peer **out);

/* One connection of e's address is gone (e may be freed). */
void cg_peers_give(struct cg_peers *p, struct cg_peer *e);

/* Connections counted for key now (tests, logs). */
uint32_t cg_peers_count(const struct cg_peers *p, const char *key);

#endif
