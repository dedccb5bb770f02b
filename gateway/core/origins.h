/* origins.h - the Origin allow-list of PROTOCOL.md section 2 (origins.c).
 * Pure: no lws, no I/O. config.c parses allowed_origins into it once; the
 * transports match each handshake's Origin header against it. */
#ifndef CG_ORIGINS_H
#define CG_ORIGINS_H

#include <stddef.h>

/* Most entries in allowed_origins. */
#define CG_ORIGINS_MAX 32

struct cg_origins;

/* Parse allowed_origins: "" (own origin and loopback), "*" (any), or a
 * comma-separated list of exact origins http(s)://host[:port]. Returns 0,
 * CG_E_INVAL with the reason in why (cap bytes), or CG_E_NOMEM. */
int  cg_origins_parse(const char *list, struct cg_origins **out, char *why, size_t cap);
void cg_origins_destroy(struct cg_origins *o);

/* 1 if the Origin header value (origin, len) is admitted; host is the
 * request's Host header (same-origin requests are admitted by default). */
int  cg_origins_allowed(const struct cg_origins *o, const char *origin, size_t len,
                        const char *host, size_t host_len);

#endif
