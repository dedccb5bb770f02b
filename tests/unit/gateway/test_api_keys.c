/* test_api_keys.c - api_keys.h: the option's grammar, the key file, the
 * lookup of a presented secret, and its redaction in the config dump. */
#include "fmacros.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>

#include "core/api_keys.h"
#include "core/common.h"
#include "core/config.h"

#define S1 "s3cret-0123456789abcdef"
#define S2 "an0ther/secret+value=="

Test(api_keys, parses_names_scopes_and_hashes_only)
{
    struct cg_api_keys *k = NULL;
    char why[256];

    cr_assert(eq(int, cg_api_keys_parse("ops:users:write,pending:read:" S1 "; crm:tokens:mint:" S2,
                                        &k, why, sizeof why), 0), "%s", why);
    cr_assert(eq(sz, k->n, 2));
    cr_assert(eq(str, k->key[0].name, "ops"));
    cr_assert(eq(u32, k->key[0].scopes, CG_SCOPE_USERS_WRITE | CG_SCOPE_PENDING_READ));
    cr_assert(eq(str, k->key[1].name, "crm"));
    cr_assert(eq(u32, k->key[1].scopes, CG_SCOPE_TOKENS_MINT));
    cr_assert(memmem(k, sizeof *k, S1, strlen(S1)) == NULL, "the secret is not kept");
    cr_assert(cg_api_keys_find(k, S1, strlen(S1)) == &k->key[0]);
    cr_assert(cg_api_keys_find(k, S2, strlen(S2)) == &k->key[1]);
    cr_assert(cg_api_keys_find(k, S1, strlen(S1) - 1) == NULL);
    cr_assert(cg_api_keys_find(k, "", 0) == NULL);
    cr_assert(cg_api_keys_find(NULL, S1, strlen(S1)) == NULL);
    cr_assert(eq(sz, cg_api_keys_index(k, &k->key[1]), 1));
    cg_api_keys_destroy(k);
    cr_assert(eq(int, cg_api_keys_parse("", &k, why, sizeof why), 0));
    cr_assert(k == NULL);
}

/* Arrays, not pointers: parameters are copied between processes. */
struct bad { char v[96]; char why[48]; };

ParameterizedTestParameters(api_keys, refuses_bad_entries)
{
    static struct bad cases[] = {
        { "ops", "expected name:scope" },
        { "ops:" S1, "expected name:scope" },
        { ":users:write:" S1, "a key name is 1-32" },
        { "a b:users:write:" S1, "a key name is of" },
        { "ops::" S1, "no scope" },
        { "ops:users:write,:" S1, "unknown scope" },
        { "ops:users:read:" S1, "unknown scope \"users:read\"" },
        { "ops:users:write:short", "a secret is 16-256" },
        { "ops:users:write:" S1 " x", "a secret is of" },
        { "ops:users:write:" S1 ";ops:pending:read:" S2, "named twice" },
        { " ; ", "no key" },
        { "@/nonexistent/keys", "cannot read the key file" },
    };
    return cr_make_param_array(struct bad, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct bad *c, api_keys, refuses_bad_entries)
{
    struct cg_api_keys *k = (void *)1;
    char why[256] = "";

    cr_assert(eq(int, cg_api_keys_parse(c->v, &k, why, sizeof why), CG_E_INVAL), "%s", c->v);
    cr_assert(k == NULL);
    cr_assert(strstr(why, c->why) != NULL, "why: %s (expected %s)", why, c->why);
    cr_assert(strstr(why, S1) == NULL && strstr(why, S2) == NULL, "no secret in: %s", why);
}

Test(api_keys, reads_a_key_file_with_comments)
{
    char path[] = "/tmp/cg_api_keys_XXXXXX", arg[64], why[256];
    struct cg_api_keys *k = NULL;
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");

    fprintf(f, "# the keys\n\nops:users:write:%s\n  support:pending:read,pending:write:%s  \n", S1, S2);
    fclose(f);
    snprintf(arg, sizeof arg, "@%s", path);
    cr_assert(eq(int, cg_api_keys_parse(arg, &k, why, sizeof why), 0), "%s", why);
    unlink(path);
    cr_assert(eq(sz, k->n, 2));
    cr_assert(eq(u32, k->key[1].scopes, CG_SCOPE_PENDING_READ | CG_SCOPE_PENDING_WRITE));
    cr_assert(cg_api_keys_find(k, S2, strlen(S2)) == &k->key[1]);
    cg_api_keys_destroy(k);
}

Test(api_keys, the_config_dump_hides_an_inline_secret)
{
    struct cg_config cfg;
    char *argv[] = { "chatgate", "--api-keys", "ops:users:write:" S1, NULL };
    char *env[] = { NULL }, err[256], *buf = NULL;
    size_t len = 0;
    int help = 0, print = 0;
    FILE *out;

    cr_assert(eq(int, cg_config_init(&cfg), 0));
    cr_assert(eq(int, cg_config_load(&cfg, 3, argv, env, &help, &print, err, sizeof err), 0),
              "%s", err);
    cr_assert(cfg.api_keys_parsed != NULL);
    out = open_memstream(&buf, &len);
    cg_config_dump(&cfg, out, 1);
    fclose(out);
    cr_assert(strstr(buf, S1) == NULL, "the secret is in the dump");
    cr_assert(strstr(buf, "\"api_keys\": \"***\"") != NULL, "%s", buf);
    free(buf);
    cg_config_cleanup(&cfg);
}
