/* peers.c - TCP connections per client address (peers.h): a chained hash
 * map key -> count; an entry exists while its count is above 0. */
#include "fmacros.h"

#include <string.h>

#include "core/common.h"
#include "server/peers.h"

#define BUCKETS 1024u           /* chains stay short: an entry needs an
                                   open connection to exist */

struct cg_peer {
    struct cg_peer *next;
    uint32_t        n;
    char            key[];
};

struct cg_peers {
    struct cg_peer *buckets[BUCKETS];
    uint64_t        total;      /* connections counted */
    int             closing;    /* destroyed while some were still counted */
};

static size_t
hash_key(const char *s)
{
    size_t h = 2166136261u;     /* FNV-1a */

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % BUCKETS;
}

int
cg_peers_create(struct cg_peers **out)
{
    return (*out = cg_calloc(1, sizeof **out)) != NULL ? 0 : CG_E_NOMEM;
}

static void
peers_free(struct cg_peers *p)
{
    for (size_t i = 0; i < BUCKETS; i++) {
        struct cg_peer *e = p->buckets[i], *next;

        for (; e != NULL; e = next) {
            next = e->next;
            cg_free(e);
        }
    }
    cg_free(p);
}

void
cg_peers_destroy(struct cg_peers *p)
{
    if (p == NULL)
        return;
    /* lws may destroy its last connections after its context (libuv
     * closes handles on later turns): they give back first. */
    if (p->total > 0)
        p->closing = 1;
    else
        peers_free(p);
}

static struct cg_peer **
slot(struct cg_peers *p, const char *key)
{
    struct cg_peer **pp = &p->buckets[hash_key(key)];

    while (*pp != NULL && strcmp((*pp)->key, key) != 0)
        pp = &(*pp)->next;
    return pp;
}

int
cg_peers_take(struct cg_peers *p, const char *key, uint32_t max, struct cg_peer **out)
{
    struct cg_peer **pp = slot(p, key), *e = *pp;

    *out = NULL;
    if (e != NULL && e->n >= max)
        return CG_E_LIMIT;
    if (e == NULL) {
        size_t len = strlen(key);

        if (max == 0)
            return CG_E_LIMIT;
        if ((e = cg_calloc(1, sizeof *e + len + 1)) == NULL)
            return CG_E_NOMEM;
        memcpy(e->key, key, len + 1);
        *pp = e;
    }
    e->n++;
    p->total++;
    *out = e;
    return 0;
}

void
cg_peers_give(struct cg_peers *p, struct cg_peer *e)
{
    struct cg_peer **pp;

    if (e == NULL)
        return;
    p->total--;
    if (--e->n == 0) {
        for (pp = &p->buckets[hash_key(e->key)]; *pp != NULL; pp = &(*pp)->next)
            if (*pp == e) {
                *pp = e->next;
                break;
            }
        cg_free(e);
    }
    if (p->closing && p->total == 0)
        peers_free(p);
}

uint32_t
cg_peers_count(const struct cg_peers *p, const char *key)
{
    const struct cg_peer *e = p->buckets[hash_key(key)];

    for (; e != NULL; e = e->next)
        if (strcmp(e->key, key) == 0)
            return e->n;
    return 0;
}
