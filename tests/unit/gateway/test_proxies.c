/* test_proxies.c - proxies.c: which address is the client behind trusted
 * reverse proxies (X-Forwarded-For, right-most untrusted entry). One row
 * per case: the trusted list, the direct peer, the header, the answer. */
#include "fmacros.h"

#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>

#include "core/common.h"
#include "core/proxies.h"

/* By value: Criterion runs each parameter in a fresh worker process. */
struct xff_case {
    char trusted[96];
    char peer[48];
    char xff[160];          /* "-" for no header */
    char want[48];
};

static const struct xff_case cases[] = {
    /* Nobody trusted: the header is ignored. */
    { "", "10.0.0.5", "203.0.113.9", "10.0.0.5" },
    /* An untrusted peer cannot make us believe anything. */
    { "10.0.0.1", "10.0.0.5", "203.0.113.9", "10.0.0.5" },
    /* Behind nginx: nginx appended the address it saw. */
    { "10.0.0.1", "10.0.0.1", "203.0.113.9", "203.0.113.9" },
    /* A client-forged entry on the left is not believed. */
    { "10.0.0.1", "10.0.0.1", "1.2.3.4, 203.0.113.9", "203.0.113.9" },
    { "10.0.0.1", "10.0.0.1", "1.2.3.4,203.0.113.9", "203.0.113.9" },
    /* A chain of trusted proxies: the first untrusted from the right. */
    { "10.0.0.1,10.0.0.2", "10.0.0.1", "1.2.3.4, 203.0.113.9, 10.0.0.2", "203.0.113.9" },
    /* Every entry trusted: the left-most of them. */
    { "10.0.0.1,10.0.0.2", "10.0.0.1", "10.0.0.2", "10.0.0.2" },
    /* Trusted peer, no header (a health check from the proxy itself). */
    { "10.0.0.1", "10.0.0.1", "-", "10.0.0.1" },
    { "10.0.0.1", "10.0.0.1", "", "10.0.0.1" },
    /* Garbage where the proxy's entry should be: the peer. */
    { "10.0.0.1", "10.0.0.1", "1.2.3.4, not-an-ip", "10.0.0.1" },
    /* Garbage left of trusted entries: nothing left of it counts. */
    { "10.0.0.1,10.0.0.2", "10.0.0.1", "evil, 10.0.0.2", "10.0.0.2" },
    /* IPv6: canonical form out; brackets and v4-mapped peers in. */
    { "::1", "::1", "2001:DB8::1", "2001:db8::1" },
    { "::1", "::1", "[2001:db8::2]", "2001:db8::2" },
    { "10.0.0.1", "::ffff:10.0.0.1", "198.51.100.7", "198.51.100.7" },
    { " 10.0.0.1 , ::1", "::1", "198.51.100.8", "198.51.100.8" },
    /* Spaces and tabs around entries. */
    { "127.0.0.1", "127.0.0.1", "  198.51.100.9\t", "198.51.100.9" },
};

ParameterizedTestParameters(cg_proxies, client_address)
{
    return cr_make_param_array(struct xff_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(const struct xff_case *c, cg_proxies, client_address)
{
    struct cg_proxies *p = NULL;
    char out[64];
    int none = strcmp(c->xff, "-") == 0;

    cr_assert(eq(int, cg_proxies_create(c->trusted, &p), 0));
    cg_proxies_client_addr(p, c->peer, none ? NULL : c->xff, none ? 0 : strlen(c->xff),
                           out, sizeof out);
    cr_assert(eq(str, out, (char *)c->want), "trusted \"%s\" peer %s xff \"%s\"",
              c->trusted, c->peer, c->xff);
    cg_proxies_destroy(p);
}

Test(cg_proxies, trusted_compares_addresses_not_strings)
{
    struct cg_proxies *p = NULL;

    cr_assert(eq(int, cg_proxies_create("10.0.0.1,2001:db8::1", &p), 0));
    cr_assert(cg_proxies_trusted(p, "10.0.0.1"));
    cr_assert(cg_proxies_trusted(p, "::ffff:10.0.0.1"));
    cr_assert(cg_proxies_trusted(p, "2001:DB8:0::1"));
    cr_assert(not(cg_proxies_trusted(p, "10.0.0.10")));
    cr_assert(not(cg_proxies_trusted(p, "")));
    cg_proxies_destroy(p);
}

Test(cg_proxies, bad_list_is_refused)
{
    struct cg_proxies *p = (struct cg_proxies *)1;

    cr_assert(eq(int, cg_proxies_create("10.0.0.1,nginx", &p), CG_E_INVAL));
    cr_assert(eq(ptr, p, NULL));
}

Test(cg_proxies, output_is_cut_to_the_buffer)
{
    struct cg_proxies *p = NULL;
    char out[8];

    cr_assert(eq(int, cg_proxies_create("10.0.0.1", &p), 0));
    cg_proxies_client_addr(p, "10.0.0.1", "198.51.100.200", 14, out, sizeof out);
    cr_assert(eq(str, out, "198.51."));
    cg_proxies_destroy(p);
}

Test(cg_proxies, every_allocation_failure_is_clean)
{
    struct cg_proxies *p;

    for (unsigned long n = 1; n <= 2; n++) {
        p = NULL;
        cg_alloc_fail_after(n);
        cr_assert(eq(int, cg_proxies_create("10.0.0.1,10.0.0.2", &p), CG_E_NOMEM));
        cg_alloc_fail_after(0);
        cr_assert(eq(ptr, p, NULL));
    }
}

/* cg_proxies_limit_key: what a per-address limit counts. */
struct key_case {
    char addr[64];
    char want[64];
};

static const struct key_case key_cases[] = {
    /* IPv4, also as a v4-mapped IPv6 address (a dual-stack socket). */
    { "203.0.113.9", "203.0.113.9" },
    { "::ffff:203.0.113.9", "203.0.113.9" },
    /* IPv6: every address of one /64 is one key... */
    { "2001:db8:1:2::1", "2001:db8:1:2::/64" },
    { "2001:DB8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64" },
    /* ...and the next /64 is another. */
    { "2001:db8:1:3::1", "2001:db8:1:3::/64" },
    { "::1", "::/64" },
    /* Not an address (a unix socket peer, say): as given. */
    { "", "" },
    { "localhost", "localhost" },
};

ParameterizedTestParameters(cg_proxies, limit_key)
{
    return cr_make_param_array(struct key_case, key_cases,
                               sizeof key_cases / sizeof key_cases[0]);
}

ParameterizedTest(const struct key_case *c, cg_proxies, limit_key)
{
    char out[64];

    cg_proxies_limit_key(c->addr, out, sizeof out);
    cr_assert(eq(str, out, (char *)c->want), "address \"%s\"", c->addr);
}

Test(cg_proxies, limit_key_is_cut_to_the_buffer)
{
    char out[8];

    cg_proxies_limit_key("2001:db8:1:2::1", out, sizeof out);
    cr_assert(eq(str, out, "2001:db"));
    cg_proxies_limit_key("198.51.100.200", out, sizeof out);
    cr_assert(eq(str, out, "198.51."));
}
