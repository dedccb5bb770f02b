/* proxies.c - which X-Forwarded-For entry is the client (trusted_proxies).
 *
 * Behind nginx every connection comes from nginx, so the login rate limit
 * (per client address) and the session logs need the address nginx saw.
 * nginx appends it to X-Forwarded-For ($proxy_add_x_forwarded_for); any
 * entries to its left came from the client and can be forged. So the
 * header is believed only when the direct peer is listed in
 * trusted_proxies (exact addresses, no ranges), and then only from the
 * right: the right-most entry that is not itself a trusted proxy is the
 * client. Chains of trusted proxies (a load balancer in front of nginx)
 * work when each of them is listed.
 *
 * Addresses are compared in binary (inet_pton), so "::ffff:10.0.0.1" (an
 * IPv4 peer on a dual-stack socket) matches "10.0.0.1". The list is small
 * (a handful of proxies), so lookup is a linear scan.
 *
 * Per-address limits (the login limit) count an IPv6 client by its /64
 * network, not by its full address: cg_proxies_limit_key(). */
#include "fmacros.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "core/common.h"
#include "core/proxies.h"

/* 16 bytes: an IPv6 address, or an IPv4 one as ::ffff:a.b.c.d. */
struct ip {
    unsigned char b[16];
};

struct cg_proxies {
    size_t     n;
    struct ip *list;
};

/* Parse one address (len bytes, not NUL-terminated). */
static int
parse_ip(const char *s, size_t len, struct ip *out)
{
    char buf[INET6_ADDRSTRLEN + 2];
    unsigned char v4[4];

    while (len > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {    /* "[v6]" */
        s++;
        len -= 2;
    }
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (inet_pton(AF_INET, buf, v4) == 1) {
        memset(out->b, 0, 10);
        out->b[10] = out->b[11] = 0xff;
        memcpy(out->b + 12, v4, 4);
        return 0;
    }
    return inet_pton(AF_INET6, buf, out->b) == 1 ? 0 : -1;
}

/* An IPv4 address (stored as ::ffff:a.b.c.d)? */
static int
is_v4(const struct ip *a)
{
    static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

    return memcmp(a->b, mapped, sizeof mapped) == 0;
}

static void
format_ip(const struct ip *a, char *out, size_t cap)
{
    char buf[INET6_ADDRSTRLEN];

    if (is_v4(a))
        inet_ntop(AF_INET, a->b + 12, buf, sizeof buf);
    else
        inet_ntop(AF_INET6, a->b, buf, sizeof buf);
    snprintf(out, cap, "%s", buf);
}

static int
listed(const struct cg_proxies *p, const struct ip *a)
{
    for (size_t i = 0; p != NULL && i < p->n; i++)
        if (memcmp(p->list[i].b, a->b, sizeof a->b) == 0)
            return 1;
    return 0;
}

int
cg_proxies_parse(const char *list, struct cg_proxies **out, char *why, size_t cap)
{
    struct cg_proxies *p;
    const char *s = list;
    size_t n = 1;

    *out = NULL;
    if ((p = cg_calloc(1, sizeof *p)) == NULL) {
        snprintf(why, cap, "out of memory");
        return CG_E_NOMEM;
    }
    for (const char *c = list; *c; c++)
        n += *c == ',';
    if (list[strspn(list, " ")] != '\0' &&
        (p->list = cg_calloc(n, sizeof *p->list)) == NULL) {
        cg_free(p);
        snprintf(why, cap, "out of memory");
        return CG_E_NOMEM;
    }
    while (p->list != NULL) {
        size_t len = strcspn(s, ",");

        if (len == strspn(s, " \t")) {
            snprintf(why, cap, "expected comma-separated IP addresses");
            cg_proxies_destroy(p);
            return CG_E_INVAL;
        }
        if (parse_ip(s, len, &p->list[p->n]) < 0) {
            while (len > 0 && (*s == ' ' || *s == '\t'))
                s++, len--;
            while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
                len--;
            snprintf(why, cap, "'%.*s' is not an IP address", (int)(len > 64 ? 64 : len), s);
            cg_proxies_destroy(p);
            return CG_E_INVAL;
        }
        p->n++;
        s += len;
        if (*s == '\0')
            break;
        s++;                          /* ',' */
    }
    *out = p;
    return 0;
}

int
cg_proxies_create(const char *list, struct cg_proxies **out)
{
    char why[128];

    return cg_proxies_parse(list, out, why, sizeof why);
}

void
cg_proxies_destroy(struct cg_proxies *p)
{
    if (p == NULL)
        return;
    cg_free(p->list);
    cg_free(p);
}

int
cg_proxies_trusted(const struct cg_proxies *p, const char *addr)
{
    struct ip a;

    return parse_ip(addr, strlen(addr), &a) == 0 && listed(p, &a);
}

void
cg_proxies_client_addr(const struct cg_proxies *p, const char *peer,
                       const char *xff, size_t xff_len, char *out, size_t cap)
{
    struct ip a, first;
    const char *end = xff + xff_len, *start;
    int have_first = 0;

    if (cap == 0)
        return;
    if (parse_ip(peer, strlen(peer), &a) < 0 || !listed(p, &a) ||
        xff == NULL || xff_len == 0) {
        snprintf(out, cap, "%s", peer);
        return;
    }
    /* Walk the entries right to left. */
    while (end > xff) {
        start = end;
        while (start > xff && start[-1] != ',')
            start--;
        if (parse_ip(start, (size_t)(end - start), &a) < 0)
            break;                     /* not an address: nothing left of it counts */
        if (!listed(p, &a)) {
            format_ip(&a, out, cap);
            return;
        }
        first = a;
        have_first = 1;
        end = start > xff ? start - 1 : xff;
    }
    /* Only trusted proxies (up to the start, or up to an entry that is not
     * an address): the left-most of them is the nearest thing to a client. */
    if (have_first)
        format_ip(&first, out, cap);
    else
        snprintf(out, cap, "%s", peer);
}

void
cg_proxies_limit_key(const char *addr, char *out, size_t cap)
{
    char buf[INET6_ADDRSTRLEN];
    struct ip a;

    if (cap == 0)
        return;
    if (parse_ip(addr, strlen(addr), &a) < 0) {
        snprintf(out, cap, "%s", addr);
        return;
    }
    if (is_v4(&a)) {
        format_ip(&a, out, cap);
        return;
    }
    memset(a.b + 8, 0, 8);             /* keep the /64 network */
    inet_ntop(AF_INET6, a.b, buf, sizeof buf);
    snprintf(out, cap, "%s/64", buf);
}
