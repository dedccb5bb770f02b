/* test_peers.c - server/peers.c: TCP connections counted per client
 * address, the cap, and a table destroyed while connections still count. */
#include "fmacros.h"

#include <stdio.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "core/common.h"
#include "server/peers.h"

Test(peers, counts_per_key_up_to_max_and_gives_back)
{
    struct cg_peers *p;
    struct cg_peer *a[3], *b, *x;

    cr_assert(eq(int, cg_peers_create(&p), 0));
    for (int i = 0; i < 3; i++)
        cr_assert(eq(int, cg_peers_take(p, "10.0.0.1", 3, &a[i]), 0));
    cr_assert(eq(u32, cg_peers_count(p, "10.0.0.1"), 3));
    cr_assert(eq(int, cg_peers_take(p, "10.0.0.1", 3, &x), CG_E_LIMIT));
    cr_assert(x == NULL);
    cr_assert(eq(u32, cg_peers_count(p, "10.0.0.1"), 3), "a refusal counts nothing");
    cr_assert(eq(int, cg_peers_take(p, "2001:db8::/64", 3, &b), 0), "another key");
    cg_peers_give(p, a[0]);
    cr_assert(eq(int, cg_peers_take(p, "10.0.0.1", 3, &a[0]), 0), "a place again");
    for (int i = 0; i < 3; i++)
        cg_peers_give(p, a[i]);
    cr_assert(eq(u32, cg_peers_count(p, "10.0.0.1"), 0));
    cg_peers_give(p, NULL);             /* an uncounted connection */
    cg_peers_give(p, b);
    cg_peers_destroy(p);
}

Test(peers, many_keys_share_the_buckets)
{
    struct cg_peers *p;
    struct cg_peer *e[4096];
    char key[32];

    cr_assert(eq(int, cg_peers_create(&p), 0));
    for (int i = 0; i < 4096; i++) {
        snprintf(key, sizeof key, "10.0.%d.%d", i / 256, i % 256);
        cr_assert(eq(int, cg_peers_take(p, key, 1, &e[i]), 0));
    }
    for (int i = 0; i < 4096; i++) {
        snprintf(key, sizeof key, "10.0.%d.%d", i / 256, i % 256);
        cr_assert(eq(u32, cg_peers_count(p, key), 1));
        cg_peers_give(p, e[i]);
        cr_assert(eq(u32, cg_peers_count(p, key), 0));
    }
    cg_peers_destroy(p);
}

/* lws may destroy its last connections after the server destroyed the
 * table: the table lives until the last one gives back (LeakSanitizer
 * checks it is then freed). */
Test(peers, destroyed_while_counted_lives_until_the_last_give)
{
    struct cg_peers *p;
    struct cg_peer *a, *b;

    cr_assert(eq(int, cg_peers_create(&p), 0));
    cr_assert(eq(int, cg_peers_take(p, "10.0.0.1", 5, &a), 0));
    cr_assert(eq(int, cg_peers_take(p, "10.0.0.2", 5, &b), 0));
    cg_peers_destroy(p);
    cg_peers_give(p, a);
    cg_peers_give(p, b);                /* frees the table */
}

Test(peers, max_zero_counts_nothing)
{
    struct cg_peers *p;
    struct cg_peer *e;

    cr_assert(eq(int, cg_peers_create(&p), 0));
    cr_assert(eq(int, cg_peers_take(p, "10.0.0.1", 0, &e), CG_E_LIMIT));
    cr_assert(eq(u32, cg_peers_count(p, "10.0.0.1"), 0));
    cg_peers_destroy(p);
}
