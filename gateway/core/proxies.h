/* proxies.h - trusted reverse proxies and the client address behind them
 * (proxies.c). Pure: no lws, no I/O, so tests drive it with strings. */
#ifndef CG_PROXIES_H
#define CG_PROXIES_H

#include <stddef.h>

struct cg_proxies;

/* Parse trusted_proxies (comma-separated IP addresses, "" trusts nobody):
 * config.c does it once, when the option is set. Returns 0, or CG_E_INVAL
 * with the reason in why (cap bytes), or CG_E_NOMEM.
 * cg_proxies_create() is the same without the reason. */
int  cg_proxies_parse(const char *list, struct cg_proxies **out, char *why, size_t cap);
int  cg_proxies_create(const char *list, struct cg_proxies **out);
void cg_proxies_destroy(struct cg_proxies *p);

/* 1 if addr (an IP address in text form) is a trusted proxy. */
int cg_proxies_trusted(const struct cg_proxies *p, const char *addr);

/* The client address to log and rate-limit by. peer is the direct peer's
 * address; xff the X-Forwarded-For header value (xff_len bytes, not
 * NUL-terminated; NULL/0 when absent). When peer is trusted, the answer is
 * the right-most X-Forwarded-For entry that is not a trusted proxy (each
 * proxy appends the address it saw, so everything left of that entry was
 * written by the client and proves nothing). When every entry up to the
 * start (or up to one that is not an IP address) is a trusted proxy, it is
 * the left-most of those; when peer is not trusted, the header is absent
 * or its right-most entry is not an IP address, it is peer. Written to out (cap bytes, NUL-terminated, canonical form). */
void cg_proxies_client_addr(const struct cg_proxies *p, const char *peer,
                            const char *xff, size_t xff_len,
                            char *out, size_t cap);

/* The part of a client address (as cg_proxies_client_addr() gives it) that
 * per-address limits count: an IPv4 address as is (also when written as
 * ::ffff:a.b.c.d), an IPv6 address as its /64 network ("2001:db8:1:2::/64"),
 * because one subscriber is routinely given a whole /64 and could otherwise
 * use a fresh address for every attempt; anything that is not an IP
 * address as given. Written to out (cap bytes, NUL-terminated). */
void cg_proxies_limit_key(const char *addr, char *out, size_t cap);

#endif
