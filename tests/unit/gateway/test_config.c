/* test_config.c - config.c: defaults, the four sources and their
 * precedence, every integer at and one past each bound with the exact error
 * line, string rules, cross-field rules, --help, --print-config round trips
 * and redaction.
 *
 * The tables below are the contract (PROTOCOL.md, the brief for config.c),
 * written out independently of config.c's own table: changing a default or
 * a bound means changing it here too, on purpose. A row missing here is
 * caught by help_lists_every_option_once, which counts the options --help
 * prints. */
#include "fmacros.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>
#include <jansson.h>

#include "core/common.h"
#include "core/config.h"
#include "core/origins.h"
#include "core/proxies.h"

/* ------------------------------------------------------------------------ */
/* The contract                                                              */
/* ------------------------------------------------------------------------ */

/* Parameter rows hold their strings by value: Criterion runs each
 * parameterized test in a fresh worker process, where pointers into the
 * runner's static data do not point at the same bytes. */
struct int_opt {
    char      name[32];
    long long def, min, max;
};

static const struct int_opt int_opts[] = {
    { "redis_timeout_ms",        2000,    100,  60000 },
    { "redis_reconnect_max_ms",  5000,    100,  300000 },
    { "redis_connections",       4,       1,      64 },
    { "redis_batch_max",         128,     1,    4096 },
    { "token_ttl_s",             604800,  1,    31536000 },
    { "api_rate",                20,      1,    100000 },
    { "api_burst",               40,      1,    1000000 },
    { "password_iterations",     100000,  1000, 10000000 },
    { "login_account_addr_max",  10,      1,    1000000 },
    { "login_account_addr_window_s", 300, 1,    86400 },
    { "login_addr_max",          30,      1,    1000000 },
    { "login_addr_window_s",     300,     1,    86400 },
    { "login_account_max",       100,     1,    1000000 },
    { "login_account_window_s",  900,     1,    86400 },
    { "register_addr_max",       30,      1,    100000000 },
    { "register_addr_window_s",  600,     1,    86400 },
    { "register_max",            300,     1,    100000000 },
    { "register_window_s",       60,      1,    86400 },
    { "max_frame_bytes",         65536,   4096, 16777216 },
    { "max_headers",             64,      8,    1024 },
    { "max_header_line",         8192,    256,  1048576 },
    { "max_subscriptions",       64,      6,    4096 },
    { "unauth_max_frame_bytes",  8192,    1024, 16777216 },
    { "max_tx_frames",           128,     1,    65536 },
    { "max_tx_bytes",            1048576, 4096, 1073741824 },
    { "max_inflight",            256,     1,    65536 },
    { "max_user_sessions",       64,      1,    1000000 },
    { "max_addr_connections",    256,     1,    1000000 },
    { "max_addr_sockets",        1024,    1,    1000000 },
    { "connect_timeout_ms",      10000,   100,  600000 },
    { "frame_timeout_ms",        30000,   100,  3600000 },
    { "heartbeat_ms",            10000,   0,    3600000 },
    { "heartbeat_max_ms",        300000,  1000, 3600000 },
    { "out_max_bytes",           4194304, 65536, 1073741824 },
    { "out_soft_bytes",          1048576, 4096, 1073741824 },
    { "out_soft_seconds",        10,      1,    3600 },
    { "max_content_bytes",       16384,   1,    1048576 },
    { "send_rate",               50,      1,    100000 },
    { "send_burst",              100,     1,    1000000 },
    { "max_pending",             100000,  1,    100000000 },
    { "max_pending_per_sender",  1000,    1,    100000000 },
    { "history_max",             1000,    1,    1000000 },
    { "sync_batch",              100,     1,    10000 },
    { "init_batch",              256,     1,    10000 },
    { "http_max_body",           65536,   1024, 16777216 },
    { "http_max_request_line",   4096,    256,  32768 },
    { "http_max_head_bytes",     8192,    1024, 32768 },
    { "http_max_headers",        64,      8,    64 },
    { "http_request_timeout_ms", 30000,   1000, 3600000 },
    { "http_body_grace_ms",      5000,    100,  3600000 },
    { "http_body_min_rate",      500,     0,    1073741824 },
    { "sockjs_heartbeat_ms",     25000,   100,  3600000 },
    { "sockjs_disconnect_ms",    5000,    100,  3600000 },
    { "sockjs_stream_bytes",     131072,  4096, 1073741824 },
    { "sockjs_max_queue_bytes",  4194304, 65536, 1073741824 },
    { "drain_ms",                10000,   0,    600000 },
    { "metrics_sample_ms",       10000,   0,    3600000 },
    { "memory_budget_bytes",     1073741824, 0, 1099511627776 },
    { "jwt_leeway_s",            30,      0,    600 },
};

#define N_INT (sizeof int_opts / sizeof int_opts[0])

static const struct { const char *name, *def; } str_opts[] = {
    { "listen", "127.0.0.1:8080" },
    { "base_path", "" },
    { "allowed_origins", "" },
    { "node_id", NULL },                 /* filled: hostname-pid */
    { "web_root", NULL },                /* CG_DEFAULT_WEB_ROOT from the build */
    { "redis_url", "redis://127.0.0.1:6379/0" },
    { "log_level", "info" },
    { "trusted_proxies", "" },
    { "tls_cert", "" },
    { "tls_key", "" },
    { "metrics_listen", "127.0.0.1:9464" },
    { "api_keys", "" },
    { "longlink_listen", "" },
    { "jwt_hs256_secret", "" },
    { "jwt_public_key", "" },
    { "jwt_alg", "" },
    { "jwt_jwks", "" },
    { "jwt_audience", "" },
    { "jwt_issuer", "" },
};

#define N_STR (sizeof str_opts / sizeof str_opts[0])

static const char *const bool_opts[] = { "reuse_port", "sockjs_jsonp", "msgid_unique_per_sender",
                                         "jwt_create_users" };

#define N_BOOL (sizeof bool_opts / sizeof bool_opts[0])

/* ------------------------------------------------------------------------ */
/* Fixture and helpers                                                       */
/* ------------------------------------------------------------------------ */

static struct cg_config cfg;
static char err[1024];
static int help, print;
static char path[64];                    /* the temporary config file, if any */
static char *no_env[] = { NULL };

static void
setup(void)
{
    cr_assert(eq(int, cg_config_init(&cfg), 0));
    err[0] = '\0';
    help = print = -1;
}

static void
teardown(void)
{
    cg_config_cleanup(&cfg);
    if (path[0] != '\0')
        unlink(path);
    path[0] = '\0';
}

TestSuite(cg_config, .init = setup, .fini = teardown);

/* cg_config_load on fresh defaults with argv = { "chatgate", args... } and
 * the given environment (never the test runner's own). */
static int
load_v(char **env, const char *const *args)
{
    char *argv[64];
    int argc = 0;

    cg_config_cleanup(&cfg);
    cr_assert(eq(int, cg_config_init(&cfg), 0));

    argv[argc++] = "chatgate";
    for (; *args != NULL; args++)
        argv[argc++] = (char *)*args;
    argv[argc] = NULL;
    return cg_config_load(&cfg, argc, argv, env != NULL ? env : no_env, &help, &print,
                          err, sizeof err);
}

#define LOAD(...)          load_v(NULL, (const char *[]){ __VA_ARGS__, NULL })
#define LOAD_ENV(env, ...) load_v((env), (const char *[]){ __VA_ARGS__, NULL })
#define ENV(...)           ((char *[]){ __VA_ARGS__, NULL })

/* Write a config file; returns its path. */
static const char *
config_file(const char *content)
{
    int fd;

    if (path[0] != '\0')
        unlink(path);
    snprintf(path, sizeof path, "/tmp/cg_test_config_XXXXXX");
    fd = mkstemp(path);
    cr_assert(ge(int, fd, 0));
    cr_assert(eq(sz, (size_t)write(fd, content, strlen(content)), strlen(content)));
    close(fd);
    return path;
}

/* The dump as text (caller frees). */
static char *
dump_text(int redact)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    cr_assert(not(zero(ptr, f)));
    cg_config_dump(&cfg, f, redact);
    fclose(f);
    return text;
}

/* The dump parsed back (caller decrefs): how the tests read fields by name. */
static json_t *
dump_json(int redact)
{
    char *text = dump_text(redact);
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);

    cr_assert(not(zero(ptr, j)), "dump is not JSON: %s\n%s", jerr.text, text);
    free(text);
    return j;
}

static long long
int_of(const char *name)
{
    json_t *j = dump_json(0), *v = json_object_get(j, name);
    long long n;

    cr_assert(eq(int, json_is_integer(v), 1), "%s is not an integer in the dump", name);
    n = json_integer_value(v);
    json_decref(j);
    return n;
}

static int
bool_of(const char *name)
{
    json_t *j = dump_json(0), *v = json_object_get(j, name);
    int b;

    cr_assert(eq(int, json_is_boolean(v), 1), "%s is not a boolean in the dump", name);
    b = json_is_true(v);
    json_decref(j);
    return b;
}

/* "max_frame_bytes" -> "--max-frame-bytes" */
static const char *
flag_of(const char *name, char *buf, size_t cap)
{
    size_t i;

    snprintf(buf, cap, "--%s", name);
    for (i = 2; buf[i] != '\0'; i++)
        if (buf[i] == '_')
            buf[i] = '-';
    return buf;
}

#define assert_ok(rc) cr_assert(eq(int, (rc), 0), "%s", err)

static void
assert_err(int rc, const char *want)
{
    cr_assert(eq(int, rc, CG_E_INVAL), "rc %d, err %s", rc, err);
    cr_assert(eq(str, err, (char *)want));
}

/* ------------------------------------------------------------------------ */
/* Defaults                                                                  */
/* ------------------------------------------------------------------------ */

Test(cg_config, defaults_are_the_documented_ones)
{
    assert_ok(LOAD(NULL));
    for (size_t i = 0; i < N_INT; i++)
        cr_assert(eq(llong, int_of(int_opts[i].name), int_opts[i].def), "%s",
                  int_opts[i].name);
    for (size_t i = 0; i < N_BOOL; i++)
        cr_assert(zero(int, bool_of(bool_opts[i])), "%s", bool_opts[i]);
    cr_assert(eq(str, cfg.listen, "127.0.0.1:8080"));
    cr_assert(eq(str, cfg.base_path, ""));
    cr_assert(eq(str, cfg.allowed_origins, ""));
    cr_assert(eq(str, cfg.web_root, CG_DEFAULT_WEB_ROOT));
    cr_assert(eq(str, cfg.redis_url, "redis://127.0.0.1:6379/0"));
    cr_assert(eq(str, cfg.log_level, "info"));
    cr_assert(eq(str, cfg.trusted_proxies, ""));
    cr_assert(eq(str, cfg.tls_cert, ""));
    cr_assert(eq(str, cfg.tls_key, ""));
    cr_assert(eq(int, help, 0));
    cr_assert(eq(int, print, 0));
}

Test(cg_config, struct_fields_match_the_table)
{
    /* Spot checks that each row writes its own field. */
    assert_ok(LOAD("--max-frame-bytes", "70000", "--sockjs-jsonp", "--drain-ms", "5",
                   "--tls-cert", "/c", "--tls-key", "/k"));
    cr_assert(eq(i64, cfg.max_frame_bytes, 70000));
    cr_assert(eq(int, cfg.sockjs_jsonp, 1));
    cr_assert(eq(int, cfg.reuse_port, 0));
    cr_assert(eq(i64, cfg.drain_ms, 5));
    cr_assert(eq(str, cfg.tls_cert, "/c"));
    cr_assert(eq(str, cfg.tls_key, "/k"));
}

Test(cg_config, node_id_defaults_to_hostname_and_pid)
{
    char host[256], want[320];

    assert_ok(LOAD(NULL));
    cr_assert(eq(int, gethostname(host, sizeof host), 0));
    snprintf(want, sizeof want, "%s-%ld", host, (long)getpid());
    cr_assert(eq(str, cfg.node_id, want));
}

Test(cg_config, explicit_node_id_is_kept)
{
    assert_ok(LOAD("--node-id", "gw-1"));
    cr_assert(eq(str, cfg.node_id, "gw-1"));
}

/* ------------------------------------------------------------------------ */
/* Precedence: default < file < environment < flag                          */
/* ------------------------------------------------------------------------ */

Test(cg_config, file_beats_default)
{
    assert_ok(LOAD("--config", config_file("{\"max_headers\": 10, \"base_path\": \"/f\"}")));
    cr_assert(eq(i64, cfg.max_headers, 10));
    cr_assert(eq(str, cfg.base_path, "/f"));
}

Test(cg_config, env_beats_default)
{
    assert_ok(LOAD_ENV(ENV("CHATGATE_MAX_HEADERS=11", "CHATGATE_BASE_PATH=/e"), NULL));
    cr_assert(eq(i64, cfg.max_headers, 11));
    cr_assert(eq(str, cfg.base_path, "/e"));
}

Test(cg_config, flag_beats_default)
{
    assert_ok(LOAD("--max-headers", "12", "--base-path", "/g"));
    cr_assert(eq(i64, cfg.max_headers, 12));
    cr_assert(eq(str, cfg.base_path, "/g"));
}

Test(cg_config, env_beats_file)
{
    const char *f = config_file("{\"max_headers\": 10, \"base_path\": \"/f\"}");

    assert_ok(LOAD_ENV(ENV("CHATGATE_MAX_HEADERS=11", "CHATGATE_BASE_PATH=/e"),
                       "--config", f));
    cr_assert(eq(i64, cfg.max_headers, 11));
    cr_assert(eq(str, cfg.base_path, "/e"));
}

Test(cg_config, flag_beats_file_wherever_config_appears)
{
    const char *f = config_file("{\"max_headers\": 10, \"base_path\": \"/f\"}");

    assert_ok(LOAD("--max-headers", "12", "--base-path", "/g", "--config", f));
    cr_assert(eq(i64, cfg.max_headers, 12));
    cr_assert(eq(str, cfg.base_path, "/g"));
}

Test(cg_config, flag_beats_env)
{
    assert_ok(LOAD_ENV(ENV("CHATGATE_MAX_HEADERS=11", "CHATGATE_BASE_PATH=/e"),
                       "--max-headers=12", "--base-path=/g"));
    cr_assert(eq(i64, cfg.max_headers, 12));
    cr_assert(eq(str, cfg.base_path, "/g"));
}

Test(cg_config, last_flag_wins)
{
    assert_ok(LOAD("--max-headers", "10", "--max-headers=20"));
    cr_assert(eq(i64, cfg.max_headers, 20));
}

Test(cg_config, envp_null_reads_the_process_environment)
{
    char *argv[] = { "chatgate", NULL };

    cr_assert(eq(int, setenv("CHATGATE_SYNC_BATCH", "77", 1), 0));
    assert_ok(cg_config_load(&cfg, 1, argv, NULL, &help, &print, err, sizeof err));
    unsetenv("CHATGATE_SYNC_BATCH");
    cr_assert(eq(i64, cfg.sync_batch, 77));
}

/* ------------------------------------------------------------------------ */
/* Integer bounds: min and max accepted, min-1 and max+1 rejected exactly   */
/* ------------------------------------------------------------------------ */

/* Cross-field rules stay satisfied whatever single option is pushed to a
 * bound: the smaller side of each pair at its minimum, the larger at its
 * maximum. The option under test comes last and overrides its entry. */
#define RELAXED                                                              \
    "--unauth-max-frame-bytes", "1024", "--max-frame-bytes", "16777216",    \
    "--out-soft-bytes", "4096", "--out-max-bytes", "1073741824",            \
    "--heartbeat-ms", "0", "--heartbeat-max-ms", "3600000",                 \
    "--http-max-request-line", "256", "--http-max-head-bytes", "32768", \
    "--max-pending-per-sender", "1", "--max-pending", "100000000"

ParameterizedTestParameters(cg_config, int_bounds_are_enforced_exactly)
{
    return cr_make_param_array(struct int_opt, (void *)int_opts, N_INT);
}

ParameterizedTest(const struct int_opt *o, cg_config, int_bounds_are_enforced_exactly)
{
    char flag[64], v[32], want[256];

    flag_of(o->name, flag, sizeof flag);

    snprintf(v, sizeof v, "%lld", o->min);
    assert_ok(LOAD(RELAXED, flag, v));
    cr_assert(eq(llong, int_of(o->name), o->min));

    snprintf(v, sizeof v, "%lld", o->max);
    assert_ok(LOAD(RELAXED, flag, v));
    cr_assert(eq(llong, int_of(o->name), o->max));

    snprintf(v, sizeof v, "%lld", o->min - 1);
    snprintf(want, sizeof want, "%s=%lld: below minimum %lld (flag %s)", o->name,
             o->min - 1, o->min, flag);
    assert_err(LOAD(RELAXED, flag, v), want);

    snprintf(v, sizeof v, "%lld", o->max + 1);
    snprintf(want, sizeof want, "%s=%lld: above maximum %lld (flag %s)", o->name,
             o->max + 1, o->max, flag);
    assert_err(LOAD(RELAXED, flag, v), want);
}

Test(cg_config, bound_errors_name_the_environment_variable)
{
    assert_err(LOAD_ENV(ENV("CHATGATE_MAX_FRAME_BYTES=10"), NULL),
               "max_frame_bytes=10: below minimum 4096 (environment CHATGATE_MAX_FRAME_BYTES)");
}

Test(cg_config, bound_errors_name_the_config_file)
{
    char want[256];
    const char *f = config_file("{\n  \"max_frame_bytes\": 10\n}\n");

    snprintf(want, sizeof want, "max_frame_bytes=10: below minimum 4096 (config file %s)", f);
    assert_err(LOAD("--config", f), want);
}

Test(cg_config, integers_are_strict_decimals)
{
    static const char *const bad[] = {
        "", "010", "1e3", "12abc", " 12", "12 ", "+12", "-0", "0x10", "1.5",
        "9223372036854775808", "-9223372036854775809",
    };
    char want[128];

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(want, sizeof want, "max_headers=%s: not an integer (flag --max-headers)",
                 bad[i]);
        assert_err(LOAD("--max-headers", bad[i]), want);
    }
    assert_err(LOAD("--max-headers", "9223372036854775807"),
               "max_headers=9223372036854775807: above maximum 1024 (flag --max-headers)");
    assert_err(LOAD("--heartbeat-ms", "-5"),
               "heartbeat_ms=-5: below minimum 0 (flag --heartbeat-ms)");
    assert_ok(LOAD("--heartbeat-ms", "0"));
}

/* ------------------------------------------------------------------------ */
/* Flags                                                                     */
/* ------------------------------------------------------------------------ */

Test(cg_config, value_may_follow_or_be_joined_with_equals)
{
    assert_ok(LOAD("--listen", "0.0.0.0:1", "--max-headers=100", "--node-id=", "--base-path="));
    cr_assert(eq(str, cfg.listen, "0.0.0.0:1"));
    cr_assert(eq(i64, cfg.max_headers, 100));
    cr_assert(eq(str, cfg.base_path, ""));
    cr_assert(not(zero(chr, cfg.node_id[0])));        /* empty: filled in */
}

Test(cg_config, equals_splits_at_the_first_sign_only)
{
    assert_ok(LOAD("--allowed-origins=http://a.example:1"));
    cr_assert(eq(str, cfg.allowed_origins, "http://a.example:1"));
    assert_ok(LOAD("--redis=redis://:p=w@h:1/0"));
    cr_assert(eq(str, cfg.redis_url, "redis://:p=w@h:1/0"));
}

Test(cg_config, unknown_flag_is_rejected)
{
    assert_err(LOAD("--bogus", "1"), "unknown flag --bogus (see --help)");
    assert_err(LOAD("--max-frame-bytes=70000", "--bogus=1"), "unknown flag --bogus (see --help)");
    assert_err(LOAD("--max_frame_bytes", "70000"),
               "unknown flag --max_frame_bytes (see --help)");
}

Test(cg_config, stray_argument_is_rejected)
{
    assert_err(LOAD("serve"), "unexpected argument 'serve' (options start with --; see --help)");
    assert_err(LOAD("-x"), "unexpected argument '-x' (options start with --; see --help)");
    assert_err(LOAD("--"), "unexpected argument '--' (options start with --; see --help)");
}

Test(cg_config, missing_value_is_rejected)
{
    assert_err(LOAD("--listen"), "flag --listen needs a value");
    assert_err(LOAD("--base-path", "--listen", "h:1"), "flag --base-path needs a value");
    assert_err(LOAD("--config"), "flag --config needs a value");
}

Test(cg_config, redis_has_the_protocol_flag_and_its_long_form)
{
    assert_ok(LOAD("--redis", "redis://10.0.0.1:6390/3"));
    cr_assert(eq(str, cfg.redis_url, "redis://10.0.0.1:6390/3"));
    assert_ok(LOAD("--redis-url", "unix:///run/redis.sock"));
    cr_assert(eq(str, cfg.redis_url, "unix:///run/redis.sock"));
    assert_ok(LOAD_ENV(ENV("CHATGATE_REDIS_URL=redis://e:1"), NULL));
    cr_assert(eq(str, cfg.redis_url, "redis://e:1"));
    assert_err(LOAD("--redis", "http://x"),
               "redis_url=http://x: scheme must be redis:// or unix:// (flag --redis)");
}

/* The option is checked by the parser the store connects with
 * (core/redis_url.c): what the config accepts, the store can use. */
Test(cg_config, redis_url_is_checked_by_the_stores_parser)
{
    assert_err(LOAD("--redis", "unix:///tmp/s?what=1"),
               "redis_url=unix:///tmp/s?what=1: expected ?db=N or &password=P after the path (flag --redis)");
    assert_err(LOAD("--redis", "unix:///tmp/s?db=x"),
               "redis_url=unix:///tmp/s?db=x: database must be a number 0..100000 (flag --redis)");
    assert_err(LOAD("--redis", "redis://:bad%zz@h"),
               "redis_url=redis://:***@h: bad %XX escape in the user or password (flag --redis)");
    assert_err(LOAD("--redis", "redis://[::1/0"),
               "redis_url=redis://[::1/0: expected an IPv6 address in brackets after redis:// (flag --redis)");
    assert_err(LOAD("--redis", "redis://h st:1"),
               "redis_url=redis://h st:1: expected a host after redis:// (flag --redis)");
    assert_ok(LOAD("--redis", "redis://user:p%40ss@[::1]:6379/1"));
    assert_ok(LOAD("--redis", "unix://:pw@/tmp/redis.sock?db=4&password=x"));
}

struct bool_case {
    char word[8];
    int  value;
};

ParameterizedTestParameters(cg_config, bool_words_are_accepted_everywhere)
{
    static struct bool_case cases[] = {
        { "true", 1 }, { "false", 0 }, { "1", 1 }, { "0", 0 }, { "yes", 1 },
        { "no", 0 }, { "on", 1 }, { "off", 0 }, { "TRUE", 1 }, { "Off", 0 },
    };

    return cr_make_param_array(struct bool_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct bool_case *c, cg_config, bool_words_are_accepted_everywhere)
{
    char joined[64], env[64], json[64];

    snprintf(joined, sizeof joined, "--reuse-port=%s", c->word);
    assert_ok(LOAD(joined));
    cr_assert(eq(int, cfg.reuse_port, c->value), "%s", joined);

    assert_ok(LOAD("--reuse-port", c->word));
    cr_assert(eq(int, cfg.reuse_port, c->value), "--reuse-port %s", c->word);

    snprintf(env, sizeof env, "CHATGATE_SOCKJS_JSONP=%s", c->word);
    assert_ok(LOAD_ENV(ENV(env), NULL));
    cr_assert(eq(int, cfg.sockjs_jsonp, c->value), "%s", env);

    /* The JSON file takes JSON booleans only. */
    snprintf(json, sizeof json, "{\"reuse_port\": %s}", c->value ? "true" : "false");
    assert_ok(LOAD("--config", config_file(json)));
    cr_assert(eq(int, cfg.reuse_port, c->value));
}

Test(cg_config, bare_bool_flag_means_true)
{
    assert_ok(LOAD("--reuse-port", "--sockjs-jsonp", "--max-headers", "9"));
    cr_assert(eq(int, cfg.reuse_port, 1));
    cr_assert(eq(int, cfg.sockjs_jsonp, 1));
    cr_assert(eq(i64, cfg.max_headers, 9));
    assert_ok(LOAD("--sockjs-jsonp=no", "--reuse-port"));
    cr_assert(eq(int, cfg.sockjs_jsonp, 0));
    cr_assert(eq(int, cfg.reuse_port, 1));
}

Test(cg_config, bad_bool_is_rejected)
{
    assert_err(LOAD("--reuse-port", "maybe"),
               "reuse_port=maybe: not a boolean (true/false/1/0/yes/no/on/off) (flag --reuse-port)");
    assert_err(LOAD("--reuse-port="),
               "reuse_port=: not a boolean (true/false/1/0/yes/no/on/off) (flag --reuse-port)");
}

/* ------------------------------------------------------------------------ */
/* --help and --print-config                                                 */
/* ------------------------------------------------------------------------ */

static char *
help_text(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    cr_assert(not(zero(ptr, f)));
    cg_config_help(f, "chatgate");
    fclose(f);
    return text;
}

/* Assert that the help names the option's flag and environment variable. */
static void
assert_documented(const char *text, const char *name)
{
    char flag[64], env[80], entry[160];

    flag_of(name, flag, sizeof flag);
    snprintf(env, sizeof env, "CHATGATE_%s", name);
    for (char *c = env; *c != '\0'; c++)
        if (*c >= 'a' && *c <= 'z')
            *c = (char)(*c - 'a' + 'A');
    /* "--flag METAVAR  (CHATGATE_NAME)" on one line */
    snprintf(entry, sizeof entry, "(%s)\n", env);
    cr_assert(not(zero(ptr, strstr(text, entry))), "no %s in --help", env);
    cr_assert(not(zero(ptr, strstr(text, flag))), "no %s in --help", flag);
}

Test(cg_config, help_lists_every_option_once)
{
    char *text = help_text();
    size_t n = 0;

    for (size_t i = 0; i < N_INT; i++)
        assert_documented(text, int_opts[i].name);
    for (size_t i = 0; i < N_STR; i++)
        assert_documented(text, str_opts[i].name);
    for (size_t i = 0; i < N_BOOL; i++)
        assert_documented(text, bool_opts[i]);
    for (const char *p = text; (p = strstr(p, "(CHATGATE_")) != NULL; p++)
        n++;
    cr_assert(eq(sz, n, N_INT + N_STR + N_BOOL), "options in --help vs this test's tables");
    cr_assert(not(zero(ptr, strstr(text, "--redis, --redis-url"))));
    cr_assert(not(zero(ptr, strstr(text, "4096..16777216"))));
    cr_assert(not(zero(ptr, strstr(text, "--config FILE"))));
    cr_assert(not(zero(ptr, strstr(text, "--print-config"))));
    for (const char *line = text; *line != '\0'; line = strchr(line, '\n') + 1)
        cr_assert(le(sz, strcspn(line, "\n"), 79), "long line: %.*s",
                  (int)strcspn(line, "\n"), line);
    free(text);
}

Test(cg_config, help_wins_over_everything_else)
{
    assert_ok(LOAD("--max-frame-bytes", "1", "--help"));
    cr_assert(eq(int, help, 1));
    assert_ok(LOAD("-h", "--config", "/nonexistent/cg.json"));
    cr_assert(eq(int, help, 1));
    assert_err(LOAD("--help=yes"), "flag --help takes no value");
}

Test(cg_config, print_config_is_reported)
{
    assert_ok(LOAD("--print-config"));
    cr_assert(eq(int, print, 1));
    cr_assert(eq(int, help, 0));
}

Test(cg_config, print_config_round_trips_through_config)
{
    char *first, *second;
    FILE *f;

    assert_ok(LOAD_ENV(ENV("CHATGATE_ALLOWED_ORIGINS=https://a.example,http://b:81"),
                       "--base-path", "/Mimi", "--redis", "redis://u:p\"w@h:1/2",
                       "--reuse-port", "--heartbeat-ms", "0", "--web-root", "/w \\x",
                       "--tls-cert", "/c.pem", "--tls-key", "/k.pem", "--log-level",
                       "debug", "--node-id", "n1"));
    first = dump_text(0);
    f = fopen(config_file(""), "w");
    cr_assert(not(zero(ptr, f)));
    fputs(first, f);
    fclose(f);

    assert_ok(LOAD("--config", path));
    second = dump_text(0);
    cr_assert(eq(str, second, first));
    free(first);
    free(second);
}

Test(cg_config, dump_is_json_with_every_option_typed)
{
    json_t *j;

    assert_ok(LOAD(NULL));
    j = dump_json(0);
    cr_assert(eq(sz, json_object_size(j), N_INT + N_STR + N_BOOL));
    for (size_t i = 0; i < N_INT; i++)
        cr_assert(eq(int, json_is_integer(json_object_get(j, int_opts[i].name)), 1),
                  "%s", int_opts[i].name);
    for (size_t i = 0; i < N_STR; i++)
        cr_assert(eq(int, json_is_string(json_object_get(j, str_opts[i].name)), 1),
                  "%s", str_opts[i].name);
    for (size_t i = 0; i < N_BOOL; i++)
        cr_assert(eq(int, json_is_boolean(json_object_get(j, bool_opts[i])), 1),
                  "%s", bool_opts[i]);
    json_decref(j);
}

/* ------------------------------------------------------------------------ */
/* Redaction                                                                 */
/* ------------------------------------------------------------------------ */

struct redact_case {
    char url[48], shown[48];
};

ParameterizedTestParameters(cg_config, dump_redacts_the_redis_password)
{
    static struct redact_case cases[] = {
        { "redis://:s3cret@db.example:6380/2", "redis://:***@db.example:6380/2" },
        { "redis://app:s3cret@db.example", "redis://app:***@db.example" },
        { "redis://s3cret@db.example", "redis://***@db.example" },
        { "unix://:s3cret@/run/redis.sock", "unix://:***@/run/redis.sock" },
        { "redis://db.example:6379/0", "redis://db.example:6379/0" },
        { "unix:///run/redis.sock", "unix:///run/redis.sock" },
        { "unix:///r.sock?db=1&password=s3cret", "unix:///r.sock?db=1&password=***" },
        { "unix:///r?password=&password=s3cret", "unix:///r?password=***&password=***" },
        { "unix://:a@/r?password=s3cret&db=2", "unix://:***@/r?password=***&db=2" },
    };

    return cr_make_param_array(struct redact_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct redact_case *c, cg_config, dump_redacts_the_redis_password)
{
    json_t *j;

    assert_ok(LOAD("--redis", c->url));
    j = dump_json(1);
    cr_assert(eq(str, (char *)json_string_value(json_object_get(j, "redis_url")),
                 (char *)c->shown));
    json_decref(j);
    j = dump_json(0);
    cr_assert(eq(str, (char *)json_string_value(json_object_get(j, "redis_url")),
                 (char *)c->url));
    json_decref(j);
}

Test(cg_config, errors_redact_the_redis_password)
{
    assert_err(LOAD("--redis", "redis://:s3cret@h:99999/0"),
               "redis_url=redis://:***@h:99999/0: port must be 1..65535 (flag --redis)");
}

/* ------------------------------------------------------------------------ */
/* String rules                                                              */
/* ------------------------------------------------------------------------ */

struct str_case {
    char flag[24], value[48], why[64];   /* why "": accepted */
};

ParameterizedTestParameters(cg_config, string_values_are_checked)
{
    static struct str_case cases[] = {
        { "--listen", "[::1]:8080", "" },
        { "--listen", "0.0.0.0:1", "" },
        { "--listen", "chat.example.com:65535", "" },
        { "--listen", "8080", "expected host:port or [ipv6]:port" },
        { "--listen", ":8080", "expected host:port or [ipv6]:port" },
        { "--listen", "::1:8080", "expected host:port or [ipv6]:port" },
        { "--listen", "h:0", "port must be 1..65535" },
        { "--listen", "h:65536", "port must be 1..65535" },
        { "--listen", "h:", "port must be 1..65535" },
        { "--base-path", "", "" },
        { "--base-path", "/Mimi", "" },
        { "--base-path", "/a/b.c_d-e", "" },
        { "--base-path", "Mimi", "must start with '/'" },
        { "--base-path", "/Mimi/", "must not end with '/' (use \"\" for the root)" },
        { "--base-path", "/", "must not end with '/' (use \"\" for the root)" },
        { "--base-path", "/Mi mi", "contains ' '; allowed: A-Z a-z 0-9 _ . / -" },
        { "--base-path", "/a?b", "contains '?'; allowed: A-Z a-z 0-9 _ . / -" },
        { "--base-path", "/a//b", "has an empty, '.' or '..' segment" },
        { "--base-path", "/a/../b", "has an empty, '.' or '..' segment" },
        { "--base-path", "/.", "has an empty, '.' or '..' segment" },
        { "--redis", "redis://127.0.0.1:6379/0", "" },
        { "--redis", "redis://[::1]:6379/15", "" },
        { "--redis", "redis://h", "" },
        { "--redis", "redis://:pw@h/", "" },
        { "--redis", "unix:///tmp/redis.sock", "" },
        { "--redis", "rediss://h", "scheme must be redis:// or unix://" },
        { "--redis", "unix://tmp/redis.sock", "expected unix:///absolute/path" },
        { "--redis", "unix://", "expected unix:///absolute/path" },
        { "--redis", "redis:///0", "expected a host after redis://" },
        { "--redis", "redis://h:0", "port must be 1..65535" },
        { "--redis", "redis://redis_1:6379/100000", "" },
        { "--redis", "unix:///run/r.sock?db=2&password=x", "" },
        { "--redis", "unix:///?db=2", "expected unix:///absolute/path" },
        { "--redis", "redis://h/db1", "database must be a number 0..100000" },
        { "--redis", "redis://h/100001", "database must be a number 0..100000" },
        { "--log-level", "debug", "" },
        { "--log-level", "verbose", "expected error, warn, notice, info or debug" },
        { "--node-id", "gw_1.eu-west", "" },
        { "--node-id", "gw 1", "contains ' '; allowed: A-Z a-z 0-9 _ . -" },
        { "--web-root", "", "must not be empty" },
        { "--allowed-origins", "*", "" },
        { "--allowed-origins", "http://a:1, https://b", "" },
        { "--allowed-origins", "http://a,,http://b", "has an empty entry" },
        { "--allowed-origins", "http://a,", "has an empty entry" },
        { "--trusted-proxies", "10.0.0.1, ::1,192.168.1.2", "" },
        { "--trusted-proxies", "10.0.0.1,nope", "'nope' is not an IP address" },
        { "--trusted-proxies", "10.0.0.0/8", "'10.0.0.0/8' is not an IP address" },
        { "--trusted-proxies", "10.0.0.1,", "expected comma-separated IP addresses" },
        { "--tls-cert", "/c\tx", "contains a control character" },
        { "--tls-cert", "/caf\xc3\xa9.pem", "" },
        { "--tls-cert", "/caf\xc3(.pem", "is not valid UTF-8" },
        { "--tls-cert", "/\xed\xa0\x80", "is not valid UTF-8" },          /* surrogate */
        { "--tls-cert", "/\xe0\x80\xaf", "is not valid UTF-8" },          /* overlong */
    };

    return cr_make_param_array(struct str_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct str_case *c, cg_config, string_values_are_checked)
{
    char name[64], want[512];
    int rc;

    /* The TLS pair must be complete to be accepted. */
    if (strcmp(c->flag, "--tls-cert") == 0)
        rc = LOAD("--tls-key", "/k", c->flag, c->value);
    else
        rc = LOAD(c->flag, c->value);
    if (c->why[0] == '\0') {
        assert_ok(rc);
        return;
    }
    snprintf(name, sizeof name, "%s", strcmp(c->flag, "--redis") == 0 ? "redis-url" : c->flag + 2);
    for (char *p = name; *p != '\0'; p++)
        if (*p == '-')
            *p = '_';
    snprintf(want, sizeof want, "%s=%s: %s (flag %s)", name, c->value, c->why, c->flag);
    assert_err(rc, want);
}

Test(cg_config, string_length_bounds_are_enforced)
{
    char v[300], want[512];

    v[0] = '/';
    memset(v + 1, 'a', 255);
    v[256] = '\0';
    assert_ok(LOAD("--base-path", v));           /* 256 bytes */
    v[256] = 'a';
    v[257] = '\0';
    snprintf(want, sizeof want, "base_path=%s: longer than 256 bytes (flag --base-path)", v);
    assert_err(LOAD("--base-path", v), want);
}

Test(cg_config, too_many_origins_are_rejected)
{
    char v[2048] = "", want[2200];

    for (int i = 0; i < CG_CONFIG_MAX_ORIGINS; i++)
        snprintf(v + strlen(v), sizeof v - strlen(v), "%shttp://h%d", i ? "," : "", i);
    assert_ok(LOAD("--allowed-origins", v));
    strcat(v, ",http://one-more");
    snprintf(want, sizeof want, "allowed_origins=%s: more than %d origins (flag --allowed-origins)",
             v, CG_CONFIG_MAX_ORIGINS);
    assert_err(LOAD("--allowed-origins", v), want);
}

/* ------------------------------------------------------------------------ */
/* Cross-field rules                                                         */
/* ------------------------------------------------------------------------ */

Test(cg_config, unauth_frame_cap_must_not_exceed_frame_cap)
{
    /* Set on purpose above the frame cap: an error naming both sources. */
    assert_err(LOAD("--max-frame-bytes", "4096", "--unauth-max-frame-bytes", "8192"),
               "unauth_max_frame_bytes=8192 (flag --unauth-max-frame-bytes) must not "
               "exceed max_frame_bytes=4096 (flag --max-frame-bytes)");
    assert_ok(LOAD("--max-frame-bytes", "8192"));   /* equal is fine */
    cr_assert(eq(i64, cfg.unauth_max_frame_bytes, 8192));
}

Test(cg_config, unauth_frame_cap_left_at_default_follows_a_smaller_frame_cap)
{
    assert_ok(LOAD("--max-frame-bytes", "4096"));
    cr_assert(eq(i64, cfg.unauth_max_frame_bytes, 4096));
    assert_ok(LOAD("--max-frame-bytes", "65536"));
    cr_assert(eq(i64, cfg.unauth_max_frame_bytes, 8192));
}

Test(cg_config, request_line_limit_follows_a_smaller_head_limit)
{
    assert_ok(LOAD("--http-max-head-bytes", "2048"));
    cr_assert(eq(i64, cfg.http_max_request_line, 2048));
    assert_err(LOAD("--http-max-head-bytes", "2048", "--http-max-request-line", "3000"),
               "http_max_request_line=3000 (flag --http-max-request-line) must not "
               "exceed http_max_head_bytes=2048 (flag --http-max-head-bytes)");
}

Test(cg_config, sender_share_must_not_exceed_the_inbox)
{
    assert_err(LOAD("--max-pending", "500", "--max-pending-per-sender", "501"),
               "max_pending_per_sender=501 (flag --max-pending-per-sender) must not "
               "exceed max_pending=500 (flag --max-pending)");
    assert_ok(LOAD("--max-pending", "500", "--max-pending-per-sender", "500"));
    cr_assert(eq(i64, cfg.max_pending_per_sender, 500));
}

Test(cg_config, sender_share_left_at_default_follows_a_smaller_inbox)
{
    assert_ok(LOAD("--max-pending", "3"));
    cr_assert(eq(i64, cfg.max_pending_per_sender, 3));
    assert_ok(LOAD("--max-pending", "200000"));
    cr_assert(eq(i64, cfg.max_pending_per_sender, 1000));
}

Test(cg_config, soft_output_cap_must_not_exceed_hard_cap)
{
    assert_err(LOAD("--out-soft-bytes", "5000000"),
               "out_soft_bytes=5000000 (flag --out-soft-bytes) must not exceed "
               "out_max_bytes=4194304 (default)");
}

Test(cg_config, heartbeat_must_not_exceed_its_maximum)
{
    assert_err(LOAD_ENV(ENV("CHATGATE_HEARTBEAT_MS=400000"), NULL),
               "heartbeat_ms=400000 (environment CHATGATE_HEARTBEAT_MS) must not "
               "exceed heartbeat_max_ms=300000 (default)");
}

Test(cg_config, send_burst_must_be_positive)
{
    assert_err(LOAD("--send-burst", "0"), "send_burst=0: below minimum 1 (flag --send-burst)");
}

Test(cg_config, tls_cert_and_key_come_together)
{
    assert_err(LOAD("--tls-cert", "/c.pem"),
               "tls_cert and tls_key must be set together: tls_cert=/c.pem "
               "(flag --tls-cert), tls_key= (default)");
    assert_err(LOAD("--tls-key", "/k.pem"),
               "tls_cert and tls_key must be set together: tls_cert= (default), "
               "tls_key=/k.pem (flag --tls-key)");
    assert_ok(LOAD("--tls-cert", "/c.pem", "--tls-key", "/k.pem"));
}

Test(cg_config, jwt_secret_is_checked_and_never_shown)
{
    assert_err(LOAD("--jwt-hs256-secret", "too-short-a-secret"),
               "jwt_hs256_secret=***: an HS256 secret needs at least 32 bytes "
               "(flag --jwt-hs256-secret)");
    assert_ok(LOAD("--jwt-hs256-secret", "0123456789abcdef0123456789abcdef"));
    cr_assert(eq(sz, cfg.jwt_secret->len, 32));
    cr_assert(eq(int, memcmp(cfg.jwt_secret->bytes, "0123456789abcdef", 16), 0));
    {
        char *text = dump_text(1);

        cr_assert(strstr(text, "0123456789abcdef") == NULL, "%s", text);
        free(text);
    }
}

Test(cg_config, jwt_alg_is_the_public_keys_and_comes_with_it)
{
    assert_err(LOAD("--jwt-alg", "HS256"),
               "jwt_alg=HS256: expected RS256 or ES256 (HS256 is jwt_hs256_secret's) "
               "(flag --jwt-alg)");
    assert_err(LOAD("--jwt-alg", "none"),
               "jwt_alg=none: expected RS256 or ES256 (HS256 is jwt_hs256_secret's) "
               "(flag --jwt-alg)");
    assert_err(LOAD("--jwt-alg", "RS256"),
               "jwt_public_key and jwt_alg must be set together: jwt_public_key= "
               "(default), jwt_alg=RS256 (flag --jwt-alg)");
    assert_err(LOAD("--jwt-public-key", "/nonexistent/k.pem"),
               "jwt_public_key=/nonexistent/k.pem: cannot read /nonexistent/k.pem: "
               "No such file or directory (flag --jwt-public-key)");
}

/* ------------------------------------------------------------------------ */
/* The JSON file                                                             */
/* ------------------------------------------------------------------------ */

Test(cg_config, unknown_key_in_file_is_named)
{
    char want[256];
    const char *f = config_file("{\"listen\": \"h:1\", \"max_frames\": 3}");

    snprintf(want, sizeof want, "config file %s: unknown option \"max_frames\"", f);
    assert_err(LOAD("--config", f), want);
}

Test(cg_config, bad_json_reports_the_line)
{
    char want[256];
    const char *f = config_file("{\n  \"listen\": \"h:1\",\n  oops\n}\n");

    snprintf(want, sizeof want, "config file %s line 3 column ", f);
    cr_assert(eq(int, LOAD("--config", f), CG_E_INVAL));
    cr_assert(eq(int, strncmp(err, want, strlen(want)), 0), "%s", err);
}

Test(cg_config, duplicate_key_in_file_reports_the_line)
{
    char want[256];
    const char *f = config_file("{\n\"max_headers\": 9,\n\"max_headers\": 10\n}\n");

    snprintf(want, sizeof want, "config file %s line 3 column ", f);
    cr_assert(eq(int, LOAD("--config", f), CG_E_INVAL));
    cr_assert(eq(int, strncmp(err, want, strlen(want)), 0), "%s", err);
    cr_assert(not(zero(ptr, strstr(err, "duplicate"))), "%s", err);
}

Test(cg_config, missing_file_is_reported)
{
    cr_assert(eq(int, LOAD("--config", "/nonexistent/cg.json"), CG_E_INVAL));
    cr_assert(eq(int, strncmp(err, "config file /nonexistent/cg.json: ",
                              strlen("config file /nonexistent/cg.json: ")), 0), "%s", err);
    cr_assert(not(zero(ptr, strstr(err, "No such file or directory"))), "%s", err);
}

Test(cg_config, file_must_hold_an_object)
{
    char want[256];
    const char *f = config_file("[1, 2]");

    snprintf(want, sizeof want, "config file %s: expected a JSON object at the top level", f);
    assert_err(LOAD("--config", f), want);
}

struct type_case {
    char json[32], want[64];   /* want: the error before " (config file PATH)" */
};

ParameterizedTestParameters(cg_config, wrong_json_types_are_rejected)
{
    static struct type_case cases[] = {
        { "{\"max_headers\": \"64\"}", "max_headers: expected an integer, got a string" },
        { "{\"max_headers\": 64.0}", "max_headers: expected an integer, got a real number" },
        { "{\"max_headers\": null}", "max_headers: expected an integer, got null" },
        { "{\"reuse_port\": 1}", "reuse_port: expected a boolean, got an integer" },
        { "{\"reuse_port\": \"yes\"}", "reuse_port: expected a boolean, got a string" },
        { "{\"listen\": 8080}", "listen: expected a string, got an integer" },
        { "{\"listen\": [\"h:1\"]}", "listen: expected a string, got an array" },
        { "{\"base_path\": {}}", "base_path: expected a string, got an object" },
        { "{\"base_path\": true}", "base_path: expected a string, got true" },
    };

    return cr_make_param_array(struct type_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct type_case *c, cg_config, wrong_json_types_are_rejected)
{
    char want[512];
    const char *f = config_file(c->json);

    snprintf(want, sizeof want, "%s (config file %s)", c->want, f);
    assert_err(LOAD("--config", f), want);
}

Test(cg_config, nul_in_a_file_string_is_rejected)
{
    char want[256];
    const char *f = config_file("{\"node_id\": \"a\\u0000b\"}");

    /* jansson refuses \u0000 itself (no JSON_ALLOW_NUL), with a position. */
    snprintf(want, sizeof want, "config file %s line 1 column ", f);
    cr_assert(eq(int, LOAD("--config", f), CG_E_INVAL));
    cr_assert(eq(int, strncmp(err, want, strlen(want)), 0), "%s", err);
}

/* ------------------------------------------------------------------------ */
/* The error buffer                                                          */
/* ------------------------------------------------------------------------ */

Test(cg_config, error_is_cut_to_the_buffer_and_terminated)
{
    char small[16];
    char *argv[] = { "chatgate", "--max-frame-bytes", "10", NULL };

    memset(small, 'Z', sizeof small);
    cr_assert(eq(int, cg_config_load(&cfg, 3, argv, no_env, NULL, NULL, small, sizeof small),
                 CG_E_INVAL));
    cr_assert(eq(str, small, "max_frame_bytes"));
}

/* ------------------------------------------------------------------------ */
/* Typed values: parsed once, when the option is set                         */
/* ------------------------------------------------------------------------ */

Test(cg_config, listen_is_parsed_into_host_and_port)
{
    assert_ok(LOAD(NULL));
    cr_assert(eq(str, cfg.listen_addr.host, "127.0.0.1"));
    cr_assert(eq(str, cfg.listen_addr.port, "8080"));
    assert_ok(LOAD("--listen", "[::1]:9"));
    cr_assert(eq(str, cfg.listen_addr.host, "::1"));
    cr_assert(eq(str, cfg.listen_addr.port, "9"));
    assert_ok(LOAD("--listen", "0.0.0.0:65535"));
    cr_assert(eq(str, cfg.listen_addr.host, ""));        /* every IPv4 address */
    cr_assert(eq(str, cfg.listen_addr.port, "65535"));
    assert_ok(LOAD("--listen", "chat.example.com:1"));
    cr_assert(eq(str, cfg.listen_addr.host, "chat.example.com"));
}

Test(cg_config, origins_are_parsed_and_matched_from_the_config)
{
    assert_ok(LOAD(NULL));
    cr_assert(not(eq(ptr, cfg.origins, NULL)));          /* "": own + loopback */
    cr_assert(eq(int, cg_origins_allowed(cfg.origins, "http://localhost:3000", 21, "x:1", 3), 1));
    cr_assert(eq(int, cg_origins_allowed(cfg.origins, "http://evil.example", 19, "x:1", 3), 0));
    /* The last value set wins, and the one it replaces is released (ASan). */
    assert_ok(LOAD("--allowed-origins", "*", "--allowed-origins", "HTTPS://Chat.Example"));
    cr_assert(eq(int, cg_origins_allowed(cfg.origins, "https://chat.example", 20, NULL, 0), 1));
    cr_assert(eq(int, cg_origins_allowed(cfg.origins, "http://localhost", 16, NULL, 0), 0));
    /* Each entry is checked when the option is set, not when the server
     * starts. */
    assert_err(LOAD("--allowed-origins", "http://a.example,ftp://b"),
               "allowed_origins=http://a.example,ftp://b: 'ftp://b' is not an origin: "
               "expected http(s)://host[:port] or * (flag --allowed-origins)");
    assert_err(LOAD("--allowed-origins", "http://a@b"),
               "allowed_origins=http://a@b: 'http://a@b' is not an origin: "
               "expected http(s)://host[:port] or * (flag --allowed-origins)");
}

Test(cg_config, trusted_proxies_and_log_level_are_parsed)
{
    char addr[64];

    assert_ok(LOAD(NULL));
    cr_assert(not(eq(ptr, cfg.proxies, NULL)));          /* "": trusts nobody */
    cr_assert(eq(int, cg_proxies_trusted(cfg.proxies, "127.0.0.1"), 0));
    cr_assert(eq(int, cfg.log_threshold, CG_LOG_INFO));
    assert_ok(LOAD("--trusted-proxies", "10.0.0.1, [::1]", "--log-level", "debug"));
    cr_assert(eq(int, cg_proxies_trusted(cfg.proxies, "10.0.0.1"), 1));
    cr_assert(eq(int, cg_proxies_trusted(cfg.proxies, "::1"), 1));
    cg_proxies_client_addr(cfg.proxies, "10.0.0.1", "203.0.113.9", 11, addr, sizeof addr);
    cr_assert(eq(str, addr, "203.0.113.9"));
    cr_assert(eq(int, cfg.log_threshold, CG_LOG_DEBUG));
}
