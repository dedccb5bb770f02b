/* config.c - the option table and everything generated from it.
 *
 * One row per option (Redis static_configs[], nginx ngx_command_t):
 *
 *     { name, type, offsetof(struct cg_config, name), default, min, max,
 *       help, check, alias, flags }
 *
 * and every feature is a loop over the rows: the defaults, the JSON file
 * keys, the CHATGATE_* environment, the --flags, validation, --help and the
 * --print-config dump. Adding an option is adding a row (and its field).
 *
 * Names. The row name is the struct field and the JSON key; the flag is
 * "--" + name with '_' -> '-', the environment variable "CHATGATE_" +
 * upper(name). A row may add one alias flag (--redis for redis_url, as
 * PROTOCOL.md section 0 spells it).
 *
 * Values. Every value, the built-in defaults included, goes through the same
 * parse-and-check path, so a default can never be invalid without a test
 * failing. Integers are strict decimals (an optional '-', no '+', no
 * leading zeros, no suffix, overflow checked: hiredis string2ll); booleans
 * accept true/false/1/0/yes/no/on/off in any case; strings are UTF-8
 * without control characters, within the row's byte-length bounds, plus
 * the row's own check. Bad values are rejected, never silently normalised.
 *
 * Loading (cg_config_load):
 *
 *     argv: --help/-h anywhere? -> *want_help, return 0 (nothing else read)
 *       |
 *     scan argv: --config FILE, --print-config, unknown flags, missing values
 *       |
 *     JSON file -> CHATGATE_* environment -> option flags, in argv order
 *       |
 *     fill node_id (hostname-pid) -> cross-field checks -> 0
 *
 * Each step may stop with one error line in err: the option, the value as
 * given, the rule, and where the value came from:
 *
 *     max_frame_bytes=10: below minimum 4096 (flag --max-frame-bytes)
 *
 * The origin of every option is remembered while loading, so a cross-field
 * error names both sides' sources. Secrets (the Redis password) are redacted
 * in error lines as in dumps.
 *
 * Typed values. An option whose owner needs more than its text (listen,
 * allowed_origins, trusted_proxies, log_level) has a parse function, like
 * nginx's ngx_conf_set_*_slot: it is the one parser of that syntax, runs
 * whenever the option is set, and writes the typed value into its own
 * field beside the text (listen_addr, origins, proxies, log_threshold), so
 * a value that passes here is one its owner can use as it is, and nothing
 * parses it again.
 *
 * Ownership: strings are heap copies owned by the struct (cg_strndup), and
 * so are the parsed values. A
 * failed load leaves cfg valid but partly updated: the caller must still
 * call cg_config_cleanup() and must not use the values. */
#include "fmacros.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>

#include "core/common.h"
#include "core/config.h"
#include "core/log.h"
#include "core/origins.h"
#include "core/proxies.h"
#include "core/api_keys.h"
#include "core/jwt.h"
#include "core/config_internal.h"
#include "core/utf8.h"

#ifndef CG_DEFAULT_WEB_ROOT
#define CG_DEFAULT_WEB_ROOT "web"   /* the build normally points it at build/web */
#endif

/* ------------------------------------------------------------------------ */
/* The table                                                                 */
/* ------------------------------------------------------------------------ */

/* The offset of field name, which must have type T: a row pointing at a
 * field of another type does not compile. */
#define FIELD(name, T) \
    _Generic(((struct cg_config *)0)->name, T: offsetof(struct cg_config, name))

#define INT(name, def, min, max, help) \
    { #name, OPT_INT, FIELD(name, int64_t), #def, min, max, help, NULL, NULL, 0, \
      NULL, NULL, 0 }
#define BOOL(name, def, help) \
    { #name, OPT_BOOL, FIELD(name, int), #def, 0, 1, help, NULL, NULL, 0, NULL, NULL, 0 }
#define STR(name, def, minlen, maxlen, check, help) \
    { #name, OPT_STRING, FIELD(name, char *), def, minlen, maxlen, help, check, NULL, 0, \
      NULL, NULL, 0 }
/* A string with a typed value in field tname of type T. */
#define TYPED(name, def, minlen, maxlen, tname, T, parse, tfree, help) \
    { #name, OPT_STRING, FIELD(name, char *), def, minlen, maxlen, help, NULL, NULL, 0, \
      parse, tfree, FIELD(tname, T) }

/* Bounds. Lower bounds on millisecond timeouts are 100: a smaller value is
 * almost always seconds typed where milliseconds were meant. Upper bounds
 * stop a typo from turning a limit off or making one session able to hold
 * a gigabyte; where a PROTOCOL.md limit has a documented floor (frame 4096,
 * headers 8, ...) that floor is the minimum. String bounds are lengths. */
const struct opt cg_config_options[] = {
    /* --- network -------------------------------------------------------- */
    /* 300: a 253-byte DNS name, brackets and ":65535". */
    TYPED(listen, "127.0.0.1:8080", 1, 300, listen_addr, struct cg_listen_addr,
          cfg_parse_listen, NULL, "address to listen on: host:port or [ipv6]:port"),
    /* 256: a context path is a few segments; keeps URLs short. */
    STR(base_path, "", 0, 256, cfg_check_base_path,
        "HTTP context path, empty or like /Mimi (no trailing '/')"),
    /* 8192: CG_CONFIG_MAX_ORIGINS origins of up to ~256 bytes. */
    TYPED(allowed_origins, "", 0, 8192, origins, struct cg_origins *,
          cfg_parse_origins, cfg_free_origins, "comma-separated origins (scheme://host[:port]) admitted for WebSocket "
        "and SockJS; \"*\" admits all; empty admits own origin and loopback"),
    /* 128: a 64-byte host name, '-' and a pid, with room to spare. */
    STR(node_id, "", 0, 128, cfg_check_node_id,
        "this node's name in Redis and logs; empty means <hostname>-<pid>"),
    STR(web_root, CG_DEFAULT_WEB_ROOT, 1, 4096, NULL,
        "directory of the browser client served at {base}/"),
    BOOL(reuse_port, 0,
        "set SO_REUSEPORT so several processes can share the listen port"),

    /* --- redis ---------------------------------------------------------- */
    { "redis_url", OPT_STRING, FIELD(redis_url, char *), "redis://127.0.0.1:6379/0",
      1, 4096, "Redis to use: redis://[[user]:password@]host[:port][/db] or "
      "unix://[[user]:password@]/path", NULL, "redis", OPT_SECRET_URL,
      cfg_parse_redis_url, cfg_free_redis_url, FIELD(redis, struct cg_redis_url) },
    INT(redis_timeout_ms, 2000, 100, 60000,
        "Redis connect timeout and command deadline, ms"),
    INT(redis_reconnect_max_ms, 5000, 100, 300000,
        "longest wait between Redis reconnect attempts, ms"),
    /* Redis reads at most ~16-20 KiB per client per event-loop turn and,
     * with appendfsync always, fsyncs once per turn: several connections
     * let one fsync cover several times as many scripts. Requests are
     * sharded by the receiver's uid, which keeps each inbox in order. */
    INT(redis_connections, 4, 1, 64,
        "Redis command connections; requests are sharded by receiver uid so each "
        "inbox keeps its order, and more connections let Redis fsync more "
        "messages at once (appendfsync always)"),
    /* The sends and confirmations of one loop turn go to Redis as one
     * script call per connection (store.h "Batching"): fewer calls and
     * round trips, and Redis writes their effects to the AOF together. */
    INT(redis_batch_max, 128, 1, 4096,
        "most chat operations (sends, confirmations) in one Redis script call; "
        "1 sends each on its own"),

    /* --- auth ----------------------------------------------------------- */
    /* 1 second (short enough to watch a live session's token expire in
     * a test; sessions are closed when it does) .. 1 year. */
    INT(token_ttl_s, 604800, 1, 31536000,
        "lifetime of a login token, seconds"),
    /* 10M rounds is seconds of CPU per login on the thread pool. */
    INT(password_iterations, 100000, 1000, 10000000,
        "PBKDF2-HMAC-SHA256 rounds for new password hashes"),
    /* Failed logins, counted in Redis per fixed window (auth.c "login
     * limit"). The strict count is per account and client address, so an
     * attacker at one address cannot lock out the account's owner at
     * another; the per-account count only bounds guessing from many
     * addresses, so it must stay well above what one address can reach
     * (auth.c warns at startup when it does not). Windows: 1 s .. 1 day. */
    INT(login_account_addr_max, 10, 1, 1000000,
        "failed logins of one account from one client address per "
        "login_account_addr_window_s; more answer 429"),
    INT(login_account_addr_window_s, 300, 1, 86400,
        "window of login_account_addr_max, seconds"),
    INT(login_addr_max, 30, 1, 1000000,
        "failed logins from one client address, any accounts, per "
        "login_addr_window_s; more answer 429"),
    INT(login_addr_window_s, 300, 1, 86400,
        "window of login_addr_max, seconds"),
    INT(login_account_max, 100, 1, 1000000,
        "failed logins of one account from all addresses together per "
        "login_account_window_s; more answer 429 (keep it well above "
        "login_account_addr_max, or one address can lock the account out)"),
    INT(login_account_window_s, 900, 1, 86400,
        "window of login_account_max, seconds"),
    /* Registrations, every attempt counted (auth.c "registration limit"):
     * each costs a password hash on the shared thread pool and a user in
     * Redis, so one address must not be able to create them in a loop. */
    INT(register_addr_max, 30, 1, 100000000,
        "registrations from one client address per register_addr_window_s; "
        "more answer 429"),
    INT(register_addr_window_s, 600, 1, 86400,
        "window of register_addr_max, seconds"),
    INT(register_max, 300, 1, 100000000,
        "registrations from all addresses together per register_window_s; "
        "more answer 429"),
    INT(register_window_s, 60, 1, 86400,
        "window of register_max, seconds"),

    /* --- backend API (PROTOCOL.md section 8) ---------------------------- */
    /* 65536: 64 keys of a 256-byte secret, or a file's path. */
    { "api_keys", OPT_STRING, FIELD(api_keys, char *), "", 0, 65536,
      "backend API keys: name:scope[,scope]:secret entries separated by ';', or "
      "@/path/to/file with one a line (secret: only its hash is kept)", NULL, NULL,
      OPT_SECRET, cfg_parse_api_keys, cfg_free_api_keys,
      FIELD(api_keys_parsed, struct cg_api_keys *) },
    INT(api_rate, 20, 1, 100000,
        "backend API requests per second allowed per key, on each node"),
    INT(api_burst, 40, 1, 1000000,
        "backend API rate-limit bucket size per key"),


    /* --- tokens issued by the app (PROTOCOL.md section 1.5) ------------ */
    /* 4096: a secret, or a file's path. */
    { "jwt_hs256_secret", OPT_STRING, FIELD(jwt_hs256_secret, char *), "", 0, 4096,
      "accept app-signed JWTs with alg HS256 and this shared secret (at least 32 "
      "bytes), or @/path/to/file holding it", NULL, NULL, OPT_SECRET,
      cfg_parse_jwt_secret, cfg_free_jwt_secret, FIELD(jwt_secret, struct cg_jwt_secret *) },
    TYPED(jwt_public_key, "", 0, 4096, jwt_pkey, struct cg_jwt_pkey *,
          cfg_parse_jwt_pkey, cfg_free_jwt_pkey,
          "accept app-signed JWTs with alg jwt_alg verified by this PEM public key file "
          "(RSA of 2048-8192 bits for RS256, EC P-256 for ES256)"),
    TYPED(jwt_alg, "", 0, 5, jwt_alg_parsed, enum cg_jwt_alg, cfg_parse_jwt_alg, NULL,
          "the one algorithm of jwt_public_key: RS256 or ES256"),
    TYPED(jwt_jwks, "", 0, 4096, jwt_jwks_parsed, struct cg_jwt_jwks *,
          cfg_parse_jwt_jwks, cfg_free_jwt_jwks,
          "accept app-signed JWTs whose header kid names a key of this JWKS file (1-16 "
          "public RSA or EC P-256 keys, each with its kid and its alg RS256 or ES256)"),
    /* 1024: an audience or issuer is a URL or a name. */
    STR(jwt_audience, "", 0, 1024, NULL,
        "when set, an app JWT's aud must name it"),
    STR(jwt_issuer, "", 0, 1024, NULL,
        "when set, an app JWT's iss must equal it"),
    /* 10 minutes at most: more is not clock skew. */
    INT(jwt_leeway_s, 30, 0, 600,
        "clock skew allowed on an app JWT's exp, nbf and iat, seconds"),
    BOOL(jwt_create_users, 0,
        "create the user an app JWT's sub names when there is none (no password); "
        "else an unknown sub is refused"),

    /* --- STOMP limits (PROTOCOL.md section 3) --------------------------- */
    /* Every session may buffer one frame: 16 MiB bounds that per session. */
    INT(max_frame_bytes, 65536, 4096, 16777216,
        "largest STOMP frame, headers and body included, bytes"),
    /* The parser's header array is max_headers entries per session. */
    INT(max_headers, 64, 8, 1024,
        "most headers in one STOMP frame"),
    INT(max_header_line, 8192, 256, 1048576,
        "longest STOMP header line (name:value), bytes"),
    /* 6: the Mimi page subscribes to six destinations. */
    INT(max_subscriptions, 64, 6, 4096,
        "most subscriptions per connection"),
    INT(unauth_max_frame_bytes, 8192, 1024, 16777216,
        "largest frame before CONNECT succeeds, bytes (<= max_frame_bytes)"),
    INT(max_tx_frames, 128, 1, 65536,
        "most SENDs buffered in one transaction"),
    /* 1 MiB: 16 SENDs of a full default frame; stomp.js transactions hold
     * a few small ones. Bounds what open transactions pin per session. */
    INT(max_tx_bytes, 1048576, 4096, 1073741824,
        "bytes of SEND frames buffered in all open transactions of a session"),
    INT(max_inflight, 256, 1, 65536,
        "most requests awaiting Redis per session"),
    /* 64: a user's phone, browsers and tabs, with room to spare; one
     * account cannot fill a node with sessions. */
    INT(max_user_sessions, 64, 1, 1000000,
        "most sessions of one user on this node; CONNECT past it gets ERROR"),
    /* 256: generous for one household or office behind NAT; a proxy's
     * clients count by their X-Forwarded-For (trusted_proxies). */
    INT(max_addr_connections, 256, 1, 1000000,
        "most sessions (WebSocket or SockJS) from one client address; more are refused with 429"),
    /* 1024: the sessions above with room for their HTTP requests, and a
     * quarter of a typical 4096-descriptor limit, so one address cannot
     * hold the process's descriptors with connections that never become
     * sessions (slowloris, trickled bodies; issue 13). */
    INT(max_addr_sockets, 1024, 1, 1000000,
        "most TCP connections from one client address on the listen port (trusted proxies "
        "exempt); more are closed at once"),
    INT(connect_timeout_ms, 10000, 100, 600000,
        "time allowed between the handshake and CONNECT, ms"),
    INT(frame_timeout_ms, 30000, 100, 3600000,
        "time allowed to complete a started frame, ms"),
    /* 0 is STOMP's "no heart-beats". */
    INT(heartbeat_ms, 10000, 0, 3600000,
        "heart-beat interval the server offers, ms; 0 disables (<= heartbeat_max_ms)"),
    INT(heartbeat_max_ms, 300000, 1000, 3600000,
        "longest heart-beat interval a client may negotiate, ms"),
    /* 64 KiB .. 1 GiB per session. */
    INT(out_max_bytes, 4194304, 65536, 1073741824,
        "hard output queue limit per session, bytes: crossing it closes the session"),
    INT(out_soft_bytes, 1048576, 4096, 1073741824,
        "soft output queue limit per session, bytes (<= out_max_bytes)"),
    INT(out_soft_seconds, 10, 1, 3600,
        "how long the soft output limit may be exceeded before closing, seconds"),

    /* --- chat (PROTOCOL.md section 4) ----------------------------------- */
    INT(max_content_bytes, 16384, 1, 1048576,
        "largest chat message content, bytes"),
    INT(send_rate, 50, 1, 100000,
        "sends per second allowed per connection"),
    INT(send_burst, 100, 1, 1000000,
        "send rate-limit bucket size"),
    INT(max_pending, 100000, 1, 100000000,
        "most unconfirmed messages kept per user"),
    /* One sender's share of a pending inbox: 1000 messages of at most
     * max_content_bytes (16 KiB) is about 17 MB of Redis per (sender,
     * receiver), so a stranger cannot fill an inbox alone (issue 13), while
     * a real conversation rarely leaves 1000 messages unread. */
    INT(max_pending_per_sender, 1000, 1, 100000000,
        "most unconfirmed messages from one sender in one user's pending inbox "
        "(<= max_pending)"),
    /* Off: a msgID is one message per (sender, receiver), checked in the
     * receiver's keys with the send itself. On: per sender, whatever the
     * receiver, at the price of a claim on the sender's keys before every
     * send (one more round trip and fsync; bench/RESULTS.md). */
    BOOL(msgid_unique_per_sender, 0,
         "a msgID reused for another receiver answers 409 (one more Redis round trip per send)"),
    INT(history_max, 1000, 1, 1000000,
        "messages kept per user for sync"),
    INT(sync_batch, 100, 1, 10000,
        "messages per sync answer"),
    INT(init_batch, 256, 1, 10000,
        "messages fetched per init round trip"),

    /* --- HTTP ----------------------------------------------------------- */
    INT(http_max_body, 65536, 1024, 16777216,
        "largest HTTP request body, bytes; larger ones get 413"),
    /* The first request head of a connection is checked against these
     * three before lws reads it (listener.c, http_head.c); lws's header
     * table is sized from them (server.c). At most 64 fields: see
     * CG_HTTP_MAX_HEADERS_CAP. */
    INT(http_max_request_line, 4096, 256, 32768,
        "longest HTTP request line, bytes (<= http_max_head_bytes); longer gets 414"),
    INT(http_max_head_bytes, 8192, 1024, 32768,
        "largest HTTP request head (request line and header fields), bytes; larger gets 431"),
    INT(http_max_headers, 64, 8, 64,
        "most header fields in an HTTP request head; more get 431"),
    INT(http_request_timeout_ms, 30000, 1000, 3600000,
        "a request body must be complete this long after its head, ms; else 408"),
    INT(http_body_grace_ms, 5000, 100, 3600000,
        "time a request body gets before http_body_min_rate applies, ms"),
    /* mod_reqtimeout's MinRate: each this many bytes buy one more second. */
    INT(http_body_min_rate, 500, 0, 1073741824,
        "slowest request body accepted after http_body_grace_ms, bytes/s "
        "(0: no minimum); slower gets 408"),

    /* --- SockJS --------------------------------------------------------- */
    INT(sockjs_heartbeat_ms, 25000, 100, 3600000,
        "SockJS heartbeat frame interval, ms"),
    INT(sockjs_disconnect_ms, 5000, 100, 3600000,
        "a SockJS session ends this long after its last poll, ms"),
    INT(sockjs_stream_bytes, 131072, 4096, 1073741824,
        "bytes sent on one xhr_streaming/eventsource response before it is renewed"),
    INT(sockjs_max_queue_bytes, 4194304, 65536, 1073741824,
        "bytes queued for a SockJS session while no poll is open"),
    BOOL(sockjs_jsonp, 0,
        "enable the jsonp and htmlfile SockJS transports"),

    /* --- operations ----------------------------------------------------- */
    TYPED(log_level, "info", 1, 16, log_threshold, enum cg_log_level,
          cfg_parse_log_level, NULL, "error, warn, notice, info or debug"),
    INT(drain_ms, 10000, 0, 600000,
        "graceful shutdown budget, ms"),
    TYPED(trusted_proxies, "", 0, 8192, proxies, struct cg_proxies *,
          cfg_parse_proxies, cfg_free_proxies,
          "comma-separated IP addresses whose X-Forwarded-For is believed"),
    STR(tls_cert, "", 0, 4096, NULL,
        "PEM certificate; with tls_key, serve https and wss"),
    STR(tls_key, "", 0, 4096, NULL,
        "PEM private key for tls_cert"),
    /* 0 turns the sampler off; each sample costs one short read-only script
     * per connected user (256 at most), see inbox_stats.c. */
    INT(metrics_sample_ms, 10000, 0, 3600000,
        "how often the pending-inbox gauges of /metrics are sampled, ms; 0 never"),
    /* 1 GiB of the gateway's own heap (chatgate_heap_bytes): far above what
     * a busy node holds (a session needs a few KiB), reached only when
     * queues and buffers pile up; 0 turns the check off. */
    INT(memory_budget_bytes, 1073741824, 0, 1099511627776,
        "gateway heap (chatgate_heap_bytes) above which new sessions get 503 and new "
        "sends answer 503; 0 never"),
    /* 9464: the port Prometheus's registry lists for ad-hoc exporters. */
    TYPED(metrics_listen, "127.0.0.1:9464", 0, 300, metrics_addr, struct cg_listen_addr,
          cfg_parse_metrics_listen, NULL,
          "address of the /metrics listener: host:port or [ipv6]:port; empty "
          "serves {base}/metrics on the main port instead"),
    /* The native long link (PROTOCOL.md section 9) is off unless asked for:
     * a new port is a new door in the firewall. */
    TYPED(longlink_listen, "", 0, 300, longlink_addr, struct cg_listen_addr,
          cfg_parse_metrics_listen, NULL,
          "address of the native long-link listener (plain TCP, PROTOCOL.md "
          "section 9): host:port or [ipv6]:port; empty: no long link"),
};

#define CG_CONFIG_NOPTS (sizeof cg_config_options / sizeof cg_config_options[0])
const size_t cg_config_nopts = CG_CONFIG_NOPTS;

/* Pairs checked after all sources are applied. */
enum relation {
    REL_LE,            /* a <= b */
    REL_LE_FOLLOW,     /* a <= b; a left at its default follows b down */
    REL_BOTH_OR_NONE,  /* strings: both empty or both set */
};

static const struct {
    enum relation rel;
    const char   *a, *b;
} relations[] = {
    /* The tighter pre-CONNECT cap only makes sense below the frame cap: a
     * smaller max_frame_bytes lowers it too unless it was set on purpose. */
    { REL_LE_FOLLOW, "unauth_max_frame_bytes", "max_frame_bytes" },
    { REL_LE, "out_soft_bytes", "out_max_bytes" },
    /* A smaller inbox lowers one sender's share with it. */
    { REL_LE_FOLLOW, "max_pending_per_sender", "max_pending" },
    { REL_LE, "heartbeat_ms", "heartbeat_max_ms" },
    { REL_LE_FOLLOW, "http_max_request_line", "http_max_head_bytes" },
    { REL_BOTH_OR_NONE, "tls_cert", "tls_key" },
    { REL_BOTH_OR_NONE, "jwt_public_key", "jwt_alg" },
};

/* ------------------------------------------------------------------------ */
/* Table helpers                                                             */
/* ------------------------------------------------------------------------ */

static const struct opt *
find_opt(const char *name, size_t len)
{
    for (size_t i = 0; i < CG_CONFIG_NOPTS; i++)
        if (strlen(cg_config_options[i].name) == len && memcmp(cg_config_options[i].name, name, len) == 0)
            return &cg_config_options[i];
    return NULL;
}

/* Does the flag spelling f[0..len) (without "--") name option o? */
static int
flag_names(const struct opt *o, const char *f, size_t len)
{
    size_t n = strlen(o->name);

    if (o->alias != NULL && strlen(o->alias) == len && memcmp(o->alias, f, len) == 0)
        return 1;
    if (n != len)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (f[i] != (o->name[i] == '_' ? '-' : o->name[i]))
            return 0;
    return 1;
}

void
cfg_spell(const char *name, int upper, char *out, size_t cap)
{
    size_t i;

    for (i = 0; name[i] != '\0' && i + 1 < cap; i++)
        out[i] = upper ? (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 32 : name[i])
                       : (name[i] == '_' ? '-' : name[i]);
    out[i] = '\0';
}

static void *
field(struct cg_config *cfg, const struct opt *o)
{
    return (char *)cfg + o->off;
}

/* ------------------------------------------------------------------------ */
/* Values: parsing and the generic checks                                    */
/* ------------------------------------------------------------------------ */

/* Strict decimal int64: optional '-', no leading zeros, no "-0". */
static int
parse_int(const char *s, int64_t *out)
{
    const char *p = s;
    int neg = 0;
    uint64_t v = 0, lim;

    if (*p == '-') {
        neg = 1;
        p++;
    }
    if (*p < '0' || *p > '9' || (p[0] == '0' && (p[1] != '\0' || neg)))
        return -1;
    lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; *p != '\0'; p++) {
        if (*p < '0' || *p > '9' || v > (lim - (uint64_t)(*p - '0')) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

static int
parse_bool(const char *s, int *out)
{
    static const char *const words[][2] = {
        { "true", "false" }, { "1", "0" }, { "yes", "no" }, { "on", "off" },
    };

    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        for (int f = 0; f < 2; f++) {
            if (strcasecmp(s, words[i][f]) == 0) {
                *out = !f;
                return 0;
            }
        }
    }
    return -1;
}

/* 0 when s[0..len) is UTF-8 without control characters (so every value can
 * be dumped as JSON and logged on one line). */
static int
check_text(const char *s, size_t len, char *why, size_t cap)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;

    while (p < end) {
        uint32_t cp;
        size_t n;

        if (*p < 0x20 || *p == 0x7f) {
            snprintf(why, cap, "contains a control character");
            return -1;
        }
        if ((n = cg_utf8_next(p, (size_t)(end - p), &cp)) == 0)
            goto bad;
        p += n;
    }
    return 0;
bad:
    snprintf(why, cap, "is not valid UTF-8");
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                   */
/* ------------------------------------------------------------------------ */

enum src_kind { SRC_DEFAULT, SRC_FILE, SRC_ENV, SRC_FLAG };

/* Where a value came from, for error lines. what is borrowed from argv or
 * envp, which outlive the load. */
struct src {
    enum src_kind kind;
    const char   *what;     /* file path, env name, flag as typed */
    int           len;      /* bytes of what to print */
};

struct loader {
    struct cg_config *cfg;
    struct src        origin[CG_CONFIG_NOPTS];   /* the source of each option's value */
    const char       *file;            /* --config FILE, or NULL */
    char             *err;
    size_t            cap;
};

/* Format src as "(flag --max-frame-bytes)". */
static const char *
src_str(const struct src *s, char *buf, size_t cap)
{
    switch (s->kind) {
    case SRC_FILE: snprintf(buf, cap, "(config file %.*s)", s->len, s->what); break;
    case SRC_ENV:  snprintf(buf, cap, "(environment %.*s)", s->len, s->what); break;
    case SRC_FLAG: snprintf(buf, cap, "(flag %.*s)", s->len, s->what); break;
    default:       snprintf(buf, cap, "(default)"); break;
    }
    return buf;
}

static int fail(struct loader *L, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Write one error line into L->err and return rc. */
static int
fail(struct loader *L, int rc, const char *fmt, ...)
{
    va_list ap;

    if (L->cap > 0) {
        va_start(ap, fmt);
        vsnprintf(L->err, L->cap, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* "name=value: why (source)" */
static int
bad_value(struct loader *L, const struct opt *o, const char *value,
          const char *why, const struct src *s)
{
    char tmp[4200], where[4200];

    return fail(L, CG_E_INVAL, "%s=%s: %s %s", o->name,
                cfg_shown(o, value, 1, tmp, sizeof tmp), why,
                src_str(s, where, sizeof where));
}

static int
nomem(struct loader *L, const struct opt *o)
{
    return fail(L, CG_E_NOMEM, "%s: out of memory", o->name);
}

static int
store_int(struct loader *L, const struct opt *o, int64_t v, const struct src *s)
{
    char val[24], why[64];

    if (v < o->min || v > o->max) {
        snprintf(val, sizeof val, "%lld", (long long)v);
        snprintf(why, sizeof why, v < o->min ? "below minimum %lld" : "above maximum %lld",
                 (long long)(v < o->min ? o->min : o->max));
        return bad_value(L, o, val, why, s);
    }
    if (o->type == OPT_BOOL)
        *(int *)field(L->cfg, o) = (int)v;
    else
        *(int64_t *)field(L->cfg, o) = v;
    L->origin[o - cg_config_options] = *s;
    return 0;
}

static int
store_string(struct loader *L, const struct opt *o, const char *v, size_t len,
             const struct src *s)
{
    char why[256];
    char **slot = field(L->cfg, o), *copy;
    int rc;

    if (strlen(v) != len)
        return bad_value(L, o, v, "contains a NUL byte", s);
    if (check_text(v, len, why, sizeof why) < 0)
        return bad_value(L, o, v, why, s);
    if ((int64_t)len < o->min || (int64_t)len > o->max) {
        if ((int64_t)len < o->min && o->min == 1)
            snprintf(why, sizeof why, "must not be empty");
        else
            snprintf(why, sizeof why, "%s than %lld bytes",
                     (int64_t)len < o->min ? "shorter" : "longer",
                     (long long)((int64_t)len < o->min ? o->min : o->max));
        return bad_value(L, o, v, why, s);
    }
    if (o->check != NULL && (rc = o->check(v, why, sizeof why)) < 0)
        return rc == CG_E_NOMEM ? nomem(L, o) : bad_value(L, o, v, why, s);
    if ((copy = cg_strndup(v, len)) == NULL)
        return nomem(L, o);
    if (o->parse != NULL && (rc = o->parse(v, (char *)L->cfg + o->toff, why, sizeof why)) < 0) {
        cg_free(copy);
        return rc == CG_E_NOMEM ? nomem(L, o) : bad_value(L, o, v, why, s);
    }
    cg_free(*slot);
    *slot = copy;
    L->origin[o - cg_config_options] = *s;
    return 0;
}

/* Set o from its text form (a default, an env value or a flag value). */
static int
set_text(struct loader *L, const struct opt *o, const char *v, const struct src *s)
{
    int64_t i;
    int b;

    switch (o->type) {
    case OPT_INT:
        if (parse_int(v, &i) < 0)
            return bad_value(L, o, v, "not an integer", s);
        return store_int(L, o, i, s);
    case OPT_BOOL:
        if (parse_bool(v, &b) < 0)
            return bad_value(L, o, v, "not a boolean (true/false/1/0/yes/no/on/off)", s);
        return store_int(L, o, b, s);
    case OPT_STRING:
    default:
        return store_string(L, o, v, strlen(v), s);
    }
}

/* --- the JSON file ------------------------------------------------------- */

static const char *
json_type_name(const json_t *j)
{
    static const char *const names[] = {
        [JSON_OBJECT] = "an object", [JSON_ARRAY] = "an array",
        [JSON_STRING] = "a string", [JSON_INTEGER] = "an integer",
        [JSON_REAL] = "a real number", [JSON_TRUE] = "true",
        [JSON_FALSE] = "false", [JSON_NULL] = "null",
    };

    return names[json_typeof(j)];
}

static int
set_json(struct loader *L, const char *key, json_t *j, const struct src *s)
{
    static const char *const want[] = {
        [OPT_STRING] = "a string", [OPT_INT] = "an integer",
        [OPT_BOOL] = "a boolean",
    };
    const struct opt *o = find_opt(key, strlen(key));
    char where[4200];

    if (o == NULL)
        return fail(L, CG_E_INVAL, "config file %s: unknown option \"%s\"", L->file, key);
    if (o->type == OPT_STRING && json_is_string(j))
        return store_string(L, o, json_string_value(j), json_string_length(j), s);
    if (o->type == OPT_INT && json_is_integer(j))
        return store_int(L, o, json_integer_value(j), s);
    if (o->type == OPT_BOOL && json_is_boolean(j))
        return store_int(L, o, json_is_true(j), s);
    return fail(L, CG_E_INVAL, "%s: expected %s, got %s %s", o->name, want[o->type],
                json_type_name(j), src_str(s, where, sizeof where));
}

static int
load_file(struct loader *L)
{
    struct src s = { SRC_FILE, L->file, (int)strlen(L->file) };
    json_error_t jerr;
    json_t *root, *v;
    const char *key;
    int rc = 0;

    root = json_load_file(L->file, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        /* jansson leaves the text empty when its lexer buffer cannot be
         * allocated (lex_init); every other failure is worded. */
        if (json_error_code(&jerr) == json_error_out_of_memory || jerr.text[0] == '\0')
            return fail(L, CG_E_NOMEM, "config file %s: out of memory", L->file);
        if (jerr.line > 0)
            return fail(L, CG_E_INVAL, "config file %s line %d column %d: %s",
                        L->file, jerr.line, jerr.column, jerr.text);
        return fail(L, CG_E_INVAL, "config file %s: %s", L->file, jerr.text);
    }
    if (!json_is_object(root)) {
        rc = fail(L, CG_E_INVAL, "config file %s: expected a JSON object at the top level",
                  L->file);
        goto out;
    }
    json_object_foreach(root, key, v) {
        if ((rc = set_json(L, key, v, &s)) < 0)
            goto out;
    }
out:
    json_decref(root);
    return rc;
}

/* --- the environment ----------------------------------------------------- */

static int
load_env(struct loader *L, char **envp)
{
    char name[64];

    for (size_t i = 0; i < CG_CONFIG_NOPTS; i++) {
        size_t n;

        memcpy(name, "CHATGATE_", 9);
        cfg_spell(cg_config_options[i].name, 1, name + 9, sizeof name - 9);
        n = strlen(name);
        for (char **e = envp; *e != NULL; e++) {
            if (strncmp(*e, name, n) == 0 && (*e)[n] == '=') {
                struct src s = { SRC_ENV, *e, (int)n };
                int rc = set_text(L, &cg_config_options[i], *e + n + 1, &s);

                if (rc < 0)
                    return rc;
                break;                        /* the first entry wins, as getenv() */
            }
        }
    }
    return 0;
}

/* --- argv ---------------------------------------------------------------- */

enum action { ACT_NONE, ACT_CONFIG, ACT_HELP, ACT_PRINT };

/* One flag of argv, as next_flag() found it. */
struct flag {
    const struct opt *opt;     /* the option, or NULL for an action */
    enum action       act;
    struct src        src;     /* SRC_FLAG: the flag as typed, without "=value" */
    const char       *value;   /* NULL: none (actions, a bare boolean) */
};

/* Parse the flag at argv[*i], and its value from "=value" or argv[*i + 1];
 * leaves *i at the last argument used. */
static int
next_flag(struct loader *L, int argc, char **argv, int *i, struct flag *f)
{
    static const struct { const char *name; enum action act; } actions[] = {
        { "config", ACT_CONFIG }, { "help", ACT_HELP }, { "print-config", ACT_PRINT },
    };
    const char *arg = argv[*i], *name = arg + 2, *eq;
    const char *next = *i + 1 < argc ? argv[*i + 1] : NULL;
    size_t len;

    memset(f, 0, sizeof *f);
    if (strcmp(arg, "-h") == 0) {
        f->act = ACT_HELP;
        return 0;
    }
    if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0')
        return fail(L, CG_E_INVAL, "unexpected argument '%s' (options start with --; see --help)",
                    arg);
    eq = strchr(name, '=');
    len = eq != NULL ? (size_t)(eq - name) : strlen(name);
    f->src = (struct src){ SRC_FLAG, arg, (int)(len + 2) };
    f->value = eq != NULL ? eq + 1 : NULL;
    for (size_t k = 0; k < sizeof actions / sizeof actions[0]; k++)
        if (strlen(actions[k].name) == len && memcmp(actions[k].name, name, len) == 0)
            f->act = actions[k].act;
    for (size_t k = 0; f->act == ACT_NONE && f->opt == NULL && k < CG_CONFIG_NOPTS; k++)
        if (flag_names(&cg_config_options[k], name, len))
            f->opt = &cg_config_options[k];
    if (f->act == ACT_NONE && f->opt == NULL)
        return fail(L, CG_E_INVAL, "unknown flag %.*s (see --help)", f->src.len, arg);
    if ((f->act == ACT_HELP || f->act == ACT_PRINT) && f->value != NULL)
        return fail(L, CG_E_INVAL, "flag %.*s takes no value", f->src.len, arg);
    if (f->value != NULL || f->act == ACT_HELP || f->act == ACT_PRINT)
        return 0;
    if (f->opt != NULL && f->opt->type == OPT_BOOL) {
        /* A bare boolean is true; a following word not starting with '-'
         * is its value ("--reuse-port no"). */
        if (next != NULL && next[0] != '-')
            f->value = argv[++*i];
        return 0;
    }
    if (next == NULL || strncmp(next, "--", 2) == 0)
        return fail(L, CG_E_INVAL, "flag %.*s needs a value", f->src.len, arg);
    f->value = argv[++*i];
    return 0;
}

/* Pass over argv for the actions only (options are applied later, after the
 * file and the environment). Reports flag errors before any file is read. */
static int
scan_actions(struct loader *L, int argc, char **argv, int *want_print)
{
    struct flag f;
    int rc;

    for (int i = 1; i < argc; i++) {
        if ((rc = next_flag(L, argc, argv, &i, &f)) < 0)
            return rc;
        if (f.act == ACT_CONFIG)
            L->file = f.value;                /* the last --config wins */
        else if (f.act == ACT_PRINT)
            *want_print = 1;
    }
    return 0;
}

static int
apply_flags(struct loader *L, int argc, char **argv)
{
    struct flag f;
    int rc;

    for (int i = 1; i < argc; i++) {
        if ((rc = next_flag(L, argc, argv, &i, &f)) < 0)
            return rc;
        if (f.opt != NULL &&
            (rc = set_text(L, f.opt, f.value != NULL ? f.value : "true", &f.src)) < 0)
            return rc;
    }
    return 0;
}

/* --- after all sources --------------------------------------------------- */

/* node_id defaults to <hostname>-<pid>. Characters a host name may have but
 * node_id may not become '-': this is our own derived value, not input. */
static int
fill_node_id(struct loader *L)
{
    const struct opt *o = find_opt("node_id", 7);
    char host[256], id[300];
    struct src s = { SRC_DEFAULT, NULL, 0 };

    if (L->cfg->node_id != NULL && L->cfg->node_id[0] != '\0')
        return 0;
    if (gethostname(host, sizeof host) < 0 || host[0] == '\0')
        snprintf(host, sizeof host, "chatgate");
    host[sizeof host - 1] = '\0';
    for (char *c = host; *c != '\0'; c++)
        if (strchr("_.-", *c) == NULL && !((*c >= 'a' && *c <= 'z') ||
            (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')))
            *c = '-';
    /* Keep within the 128-byte bound with any pid. */
    snprintf(id, sizeof id, "%.100s-%ld", host, (long)getpid());
    return store_string(L, o, id, strlen(id), &s);
}

static int
check_relations(struct loader *L)
{
    char wa[4200], wb[4200];

    for (size_t i = 0; i < sizeof relations / sizeof relations[0]; i++) {
        const struct opt *a = find_opt(relations[i].a, strlen(relations[i].a));
        const struct opt *b = find_opt(relations[i].b, strlen(relations[i].b));
        const struct src *sa = &L->origin[a - cg_config_options], *sb = &L->origin[b - cg_config_options];

        if (relations[i].rel != REL_BOTH_OR_NONE) {
            int64_t *pa = (int64_t *)field(L->cfg, a);
            int64_t va = *pa, vb = *(const int64_t *)field(L->cfg, b);

            if (va > vb && relations[i].rel == REL_LE_FOLLOW &&
                sa->kind == SRC_DEFAULT && vb >= a->min) {
                *pa = vb;
                continue;
            }
            if (va > vb)
                return fail(L, CG_E_INVAL, "%s=%lld %s must not exceed %s=%lld %s",
                            a->name, (long long)va, src_str(sa, wa, sizeof wa),
                            b->name, (long long)vb, src_str(sb, wb, sizeof wb));
        } else {
            const char *va = *(char *const *)field(L->cfg, a);
            const char *vb = *(char *const *)field(L->cfg, b);

            if ((va[0] == '\0') != (vb[0] == '\0'))
                return fail(L, CG_E_INVAL, "%s and %s must be set together: %s=%s %s, %s=%s %s",
                            a->name, b->name, a->name, va, src_str(sa, wa, sizeof wa),
                            b->name, vb, src_str(sb, wb, sizeof wb));
        }
    }
    return 0;
}

/* jwt_public_key's type must fit jwt_alg: an RSA key verifies RS256 only,
 * a P-256 key ES256 only. */
static int
check_jwt_key(struct loader *L)
{
    const struct cg_config *c = L->cfg;

    if (c->jwt_pkey != NULL && c->jwt_pkey->fits != c->jwt_alg_parsed)
        return fail(L, CG_E_INVAL, "jwt_alg=%s does not fit jwt_public_key=%s (a key for %s)",
                    c->jwt_alg, c->jwt_public_key, cg_jwt_alg_name(c->jwt_pkey->fits));
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Public API                                                                */
/* ------------------------------------------------------------------------ */

int
cg_config_init(struct cg_config *cfg)
{
    struct loader L = { .cfg = cfg, .err = NULL, .cap = 0 };
    struct src s = { SRC_DEFAULT, NULL, 0 };
    int rc;

    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < CG_CONFIG_NOPTS; i++) {
        if ((rc = set_text(&L, &cg_config_options[i], cg_config_options[i].def, &s)) < 0) {
            cg_config_cleanup(cfg);
            return rc;
        }
    }
    return 0;
}

int
cg_config_load(struct cg_config *cfg, int argc, char **argv, char **envp,
               int *want_help, int *want_print, char *err, size_t cap)
{
    struct loader L = { .cfg = cfg, .err = err, .cap = cap };
    int help = 0, print = 0, rc;

    if (cap > 0)
        err[0] = '\0';
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            help = 1;
    if (!help &&
        (rc = scan_actions(&L, argc, argv, &print)) == 0 &&
        (L.file == NULL || (rc = load_file(&L)) == 0) &&
        (rc = load_env(&L, envp != NULL ? envp : environ)) == 0 &&
        (rc = apply_flags(&L, argc, argv)) == 0 &&
        (rc = fill_node_id(&L)) == 0 &&
        (rc = check_relations(&L)) == 0)
        rc = check_jwt_key(&L);
    if (help)
        rc = 0;
    if (want_help != NULL)
        *want_help = help;
    if (want_print != NULL)
        *want_print = print;
    return rc;
}

void
cg_config_cleanup(struct cg_config *cfg)
{
    for (size_t i = 0; i < CG_CONFIG_NOPTS; i++) {
        if (cg_config_options[i].type == OPT_STRING) {
            char **slot = field(cfg, &cg_config_options[i]);

            cg_free(*slot);
            *slot = NULL;
            if (cg_config_options[i].tfree != NULL)
                cg_config_options[i].tfree((char *)cfg + cg_config_options[i].toff);
        }
    }
}
