/* config.h - the gateway's configuration: one option table drives parsing,
 * validation, --help, --print-config and the example file (STYLE.md 7).
 *
 * Precedence: built-in default < JSON config file < CHATGATE_<NAME>
 * environment < command-line flag. After cg_config_load() succeeds the
 * struct is treated as const and passed down; nothing reads it globally. */
#ifndef CHATGATE_CONFIG_H
#define CHATGATE_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/jwt.h"
#include "core/log.h"
#include "core/origins.h"
#include "core/redis_url.h"

#define CG_CONFIG_MAX_ORIGINS CG_ORIGINS_MAX

struct cg_proxies;
struct cg_api_keys;
struct cg_jwt_secret;
struct cg_jwt_pkey;
struct cg_jwt_jwks;

/* listen, parsed: the host to bind ("" for any IPv4 address, from
 * "0.0.0.0"; an IPv6 literal without its brackets) and the port. */
struct cg_listen_addr {
    char     host[256];
    char     port[6];
};

struct cg_config {
    /* --- network ------------------------------------------------------ */
    char    *listen;                 /* "127.0.0.1:8080"; host:port, [v6]:port */
    struct cg_listen_addr listen_addr; /* listen, parsed */
    char    *base_path;              /* "" or "/Mimi": no trailing slash */
    char    *allowed_origins;        /* comma list, "*" = any; "" = own + loopback */
    struct cg_origins *origins;      /* allowed_origins, parsed */
    char    *node_id;                /* default: hostname-pid */
    char    *web_root;               /* directory served at {base}/ */
    int      reuse_port;             /* SO_REUSEPORT on the listen socket */

    /* --- redis -------------------------------------------------------- */
    char    *redis_url;              /* redis://[:pw@]host:port/db or unix:///path */
    struct cg_redis_url redis;       /* redis_url, parsed */
    int64_t  redis_timeout_ms;       /* connect timeout / command deadline */
    int64_t  redis_reconnect_max_ms; /* backoff ceiling */
    int64_t  redis_connections;      /* command connections (sharded by uid): 4; 0 = 4 */
    int64_t  redis_batch_max;        /* chat operations per script call: 128; 0 = 128 */

    /* --- auth --------------------------------------------------------- */
    int64_t  token_ttl_s;            /* 7 days */
    int64_t  password_iterations;    /* PBKDF2-HMAC-SHA256 rounds */
    /* Failed logins allowed per fixed window (auth.c "login limit"); the
     * next attempt answers 429 until the window ends. */
    int64_t  login_account_addr_max;      /* one account from one address: 10 */
    int64_t  login_account_addr_window_s; /* ... per 300 s */
    int64_t  login_addr_max;              /* one address, any account: 30 */
    int64_t  login_addr_window_s;         /* ... per 300 s */
    int64_t  login_account_max;           /* one account, all addresses: 100 */
    int64_t  login_account_window_s;      /* ... per 900 s */
    /* Registrations allowed per fixed window (auth.c "registration limit"). */
    int64_t  register_addr_max;           /* from one address: 30 */
    int64_t  register_addr_window_s;      /* ... per 600 s */
    int64_t  register_max;                /* from all addresses: 300 */
    int64_t  register_window_s;           /* ... per 60 s */

    /* --- backend API (PROTOCOL.md section 8) ------------------------- */
    char    *api_keys;               /* "name:scopes:secret;..." or "@file"; secret */
    struct cg_api_keys *api_keys_parsed; /* api_keys, parsed: hashes only */
    int64_t  api_rate;               /* backend requests per second per key, per node: 20 */
    int64_t  api_burst;              /* ... bucket size: 40 */

    /* --- tokens issued by the app (PROTOCOL.md section 1.5) ---------- */
    char    *jwt_hs256_secret;       /* HS256 secret or "@file"; secret */
    struct cg_jwt_secret *jwt_secret; /* jwt_hs256_secret, read: NULL when unset */
    char    *jwt_public_key;         /* PEM public key file for jwt_alg */
    struct cg_jwt_pkey *jwt_pkey;    /* jwt_public_key, loaded: NULL when unset */
    char    *jwt_alg;                /* "RS256" or "ES256": jwt_public_key's */
    enum cg_jwt_alg jwt_alg_parsed;  /* jwt_alg, parsed (CG_JWT_NONE when unset) */
    char    *jwt_jwks;               /* JWKS file: public keys chosen by kid */
    struct cg_jwt_jwks *jwt_jwks_parsed; /* jwt_jwks, loaded: NULL when unset */
    char    *jwt_audience;           /* "": aud not checked */
    char    *jwt_issuer;             /* "": iss not checked */
    int64_t  jwt_leeway_s;           /* clock skew allowed on exp, nbf, iat: 30 */
    int      jwt_create_users;       /* an unknown sub creates its user */

    /* --- STOMP limits (PROTOCOL.md section 3) ------------------------- */
    int64_t  max_frame_bytes;        /* 65536 */
    int64_t  max_headers;            /* 64 */
    int64_t  max_header_line;        /* 8192 */
    int64_t  max_subscriptions;      /* 64 per connection */
    int64_t  unauth_max_frame_bytes; /* tighter cap before CONNECT succeeds: 8192 */
    int64_t  max_tx_frames;          /* SENDs buffered in one transaction: 128 */
    int64_t  max_tx_bytes;           /* bytes buffered in all of a session's: 1 MiB */
    int64_t  max_inflight;           /* requests awaiting Redis per session: 256 */
    int64_t  max_user_sessions;      /* sessions of one user on this node: 64 */
    int64_t  max_addr_connections;   /* sessions from one client address: 256 */
    int64_t  max_addr_sockets;       /* TCP connections from one address: 1024 */
    int64_t  connect_timeout_ms;     /* time to send CONNECT after the handshake: 10000 */
    int64_t  frame_timeout_ms;       /* a started frame must complete within: 30000 */
    int64_t  heartbeat_ms;           /* server's desired heart-beat: 10000 */
    int64_t  heartbeat_max_ms;       /* longest interval honoured: 300000 */
    int64_t  out_max_bytes;          /* hard output cap per session: 4 MiB */
    int64_t  out_soft_bytes;         /* soft output cap: 1 MiB ... */
    int64_t  out_soft_seconds;       /* ... for this long: 10 */

    /* --- chat (PROTOCOL.md section 4) --------------------------------- */
    int64_t  max_content_bytes;      /* 16384 */
    int64_t  send_rate;              /* sends per second per connection: 50 */
    int64_t  send_burst;             /* bucket size: 100 */
    int64_t  max_pending;            /* pending inbox cap per user: 100000 */
    int64_t  max_pending_per_sender; /* ... of which one sender's: 1000 */
    int      msgid_unique_per_sender;/* claim msgIDs across receivers: off */
    int64_t  history_max;            /* messages kept per user for sync: 1000 */
    int64_t  sync_batch;             /* messages per sync answer: 100 */
    int64_t  init_batch;             /* messages fetched per init round trip: 256 */

    /* --- HTTP --------------------------------------------------------- */
    int64_t  http_max_body;          /* 65536; larger bodies get 413 */
    int64_t  http_max_request_line;  /* 4096; a longer first request line gets 414 */
    int64_t  http_max_head_bytes;    /* 8192; a larger first request head gets 431 */
    int64_t  http_max_headers;       /* 64; more header fields get 431 */
    int64_t  http_request_timeout_ms;/* body complete within: 30000 */
    int64_t  http_body_grace_ms;     /* before the minimum rate applies: 5000 */
    int64_t  http_body_min_rate;     /* bytes/s after the grace: 500 (0: off) */

    /* --- SockJS ------------------------------------------------------- */
    int64_t  sockjs_heartbeat_ms;    /* 25000 */
    int64_t  sockjs_disconnect_ms;   /* session reaped after last poll: 5000 */
    int64_t  sockjs_stream_bytes;    /* xhr_streaming/eventsource response limit: 131072 */
    int64_t  sockjs_max_queue_bytes; /* kept while no poll is open: = out_max_bytes */
    int      sockjs_jsonp;           /* enable jsonp + htmlfile: 0 */

    /* --- operations --------------------------------------------------- */
    char    *log_level;              /* error|warn|notice|info|debug */
    enum cg_log_level log_threshold; /* log_level, parsed */
    int64_t  drain_ms;               /* graceful shutdown budget: 10000 */
    char    *trusted_proxies;        /* comma list of IPs whose X-Forwarded-For is believed */
    struct cg_proxies *proxies;      /* trusted_proxies, parsed */
    char    *tls_cert;               /* PEM path; with tls_key serves https/wss */
    char    *tls_key;
    int64_t  metrics_sample_ms;      /* pending-inbox gauges sampled every: 10000; 0 off */
    int64_t  memory_budget_bytes;    /* own heap above which new work is refused: 1 GiB; 0 off */
    char    *metrics_listen;         /* "127.0.0.1:9464"; "" = on the main port */
    struct cg_listen_addr metrics_addr; /* metrics_listen, parsed (port "": none) */
    char    *longlink_listen;        /* "" = no long link; host:port */
    struct cg_listen_addr longlink_addr; /* longlink_listen, parsed (port "": none) */
};

/* Fill cfg with the built-in defaults. Strings are heap-owned by cfg. */
int cg_config_init(struct cg_config *cfg);

/* Apply, in order, the JSON file named by --config (if any), the
 * CHATGATE_* environment (envp, NULL-terminated; NULL means environ) and
 * the flags in argv[1..argc). Validates everything once. On error returns a
 * negative code and writes one line naming the option, the bad value and the
 * rule ("max_frame_bytes=10: below minimum 4096 (config file line 12)") to
 * err (cap bytes). Sets *want_help / *want_print when --help or
 * --print-config was given (the caller prints and exits). */
int cg_config_load(struct cg_config *cfg, int argc, char **argv, char **envp,
                   int *want_help, int *want_print, char *err, size_t cap);

/* Free the strings and parsed values owned by cfg. */
void cg_config_cleanup(struct cg_config *cfg);

/* Print the generated --help text (every option, its flag, env name,
 * default and one-line description). */
void cg_config_help(FILE *out, const char *argv0);

/* Print the effective configuration as JSON (loadable with --config), with
 * secrets (the Redis password) redacted when redact != 0. */
void cg_config_dump(const struct cg_config *cfg, FILE *out, int redact);

#endif
