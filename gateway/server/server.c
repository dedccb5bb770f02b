/* server.c - the lws context on the shared libuv loop, and the one thin
 * callback that hands every lws event to the module that owns it.
 *
 *   start:  origins, proxies -> store -> auth -> chat -> registry ->
 *           sockjs -> inbox stats -> listen socket (listener.c) -> lws
 *           context (foreign libuv loop, one vhost without a listener of
 *           its own, protocols v12/v11/v10.stomp + http, no mounts: the
 *           route table of routes.c decides, http_api.c serves files
 *           itself) -> accept
 *   stop:   close the listen socket (new connections are refused, or go
 *           to the other processes sharing the port), refuse upgrades on
 *           connections already open (503), close every session once it
 *           has sent the answers it owes (1001; SockJS maps it to
 *           c[3000,"Go away!"]), wait until the sessions
 *           are gone and no Redis call is in flight (an answer still due
 *           is a 200 someone waits for), or until drain_ms passed; then
 *           destroy the lws context, close the store (its callbacks fire
 *           with CG_E_CLOSED), free.
 *
 * Timeouts of lws itself, next to the heart-beats a client may negotiate
 * (up to heartbeat_max_ms, 5 minutes by default; "every timeout is longer
 * than the heart-beats it allows"):
 *   - timeout_secs (30 s) and keepalive_timeout (30 s) apply only to
 *     handshakes, requests being read and idle HTTP keep-alive, never to
 *     an established WebSocket.
 *   - lws's idle policy on established connections (lws_retry_bo_t
 *     secs_since_valid_ping/hangup, 300 s / 310 s by default) pings a
 *     WebSocket that sent no PONG for 300 s - data does not count - and
 *     hangs up 10 s later. Liveness is the STOMP heart-beat's job; the
 *     default would put a WebSocket ping on the radio of every mobile
 *     client each 5 minutes and sit right at heartbeat_max_ms. So the vhost
 *     gets a policy of twice heartbeat_max_ms plus a minute before the
 *     ping, and another minute for the PONG: it only ever catches dead
 *     peers of sessions that negotiated no heart-beats.
 *
 * All protocols share one callback: a WebSocket without a subprotocol is
 * bound to the vhost's default protocol (index 0), so the same code must
 * handle it whichever protocol lws picked. lws chooses the first offered
 * subprotocol we know; stomp.js offers v12.stomp first.
 *
 * Routing. A new HTTP request (LWS_CALLBACK_HTTP) and a new upgrade
 * (FILTER_PROTOCOL_CONNECTION) are looked up in the route table once
 * (routes.c) and handed to their owner with the route it found. An
 * admitted upgrade's owner records itself in pss->kind, so ESTABLISHED
 * and every later event of a connection go by the pss, never the path. */
#include "fmacros.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "chat/auth.h"
#include "chat/chat.h"
#include "core/common.h"
#include "core/config.h"
#include "core/log.h"
#include "core/proxies.h"
#include "http/http_api.h"
#include "http/http_body.h"
#include "http/linger.h"
#include "http/request.h"
#include "server/inbox_stats.h"
#include "server/listener.h"
#include "server/peers.h"
#include "server/routes.h"
#include "server/server.h"
#include "session/close_codes.h"
#include "session/registry.h"
#include "store/store.h"
#include "transport/transport.h"

/* lws reads a WebSocket message into a per-connection buffer of this size
 * and hands it over in pieces no larger; the session reassembles frames, so
 * a small buffer costs only callbacks, while it is paid by every idle
 * connection. */
#define WS_RX_BUFFER 4096

/* A request path (base path included) this long or longer is outside
 * every route. */
#define ROUTE_PATH_MAX 512

/* What a connection's owner does with the events of an open connection.
 * New upgrades and requests are routed by the route table, and their
 * owners set pss->kind; owner_of() picks the row from it. */
struct conn_handlers {
    int  (*open)(struct cg_server *srv, struct lws *wsi, struct cg_pss *pss);
    int  (*data)(struct cg_pss *pss, const void *in, size_t len);
    int  (*writable)(struct cg_pss *pss);
    int  (*body_done)(struct cg_pss *pss);
    void (*closed)(struct cg_pss *pss);
    int  (*timer)(struct cg_pss *pss);      /* LWS_CALLBACK_TIMER */
};

/* Only WebSocket rows open (ESTABLISHED); only HTTP rows have body_done
 * and timer (the body clock of request.h). */
static const struct conn_handlers ws_handlers = {
    cg_ws_on_open, cg_ws_on_data, cg_ws_on_writable, NULL, cg_ws_on_closed, NULL,
};
static const struct conn_handlers sockjs_ws_handlers = {
    cg_sockjs_ws_on_open, cg_sockjs_ws_on_data, cg_sockjs_ws_on_writable, NULL,
    cg_sockjs_ws_on_closed, NULL,
};
static const struct conn_handlers http_handlers = {
    NULL, cg_http_on_body, cg_http_on_writable, cg_http_on_body_done, cg_http_on_closed,
    cg_http_on_timer,
};
static const struct conn_handlers sockjs_http_handlers = {
    NULL, cg_sockjs_http_on_body, cg_sockjs_http_on_writable,
    cg_sockjs_http_on_body_done, cg_sockjs_http_on_closed, cg_sockjs_http_on_timer,
};

/* The owner of a connection's WebSocket (ws = 1) or HTTP events: SockJS
 * if the pss says so, else the plain transport (its {base}/client and
 * SockJS's raw /websocket) / HTTP API, whose handlers cope with a missing
 * or fresh pss (lws frees it when an HTTP transaction ends). */
static const struct conn_handlers *
owner_of(const struct cg_pss *pss, int ws)
{
    enum cg_pss_kind kind = pss ? pss->kind : CG_PSS_NONE;

    if (ws)
        return kind == CG_PSS_SOCKJS_WS ? &sockjs_ws_handlers : &ws_handlers;
    return kind == CG_PSS_SOCKJS_HTTP ? &sockjs_http_handlers : &http_handlers;
}

/* A new HTTP request (not an upgrade): SockJS's, or the HTTP API's (the
 * route table knows which listener serves what). */
static int
on_http_request(struct cg_server *srv, struct lws *wsi, struct cg_pss *pss)
{
    unsigned head_flags = cg_listener_take_head_flags(wsi);
    char buf[ROUTE_PATH_MAX];
    struct cg_route rt;

    cg_http_on_closed(pss);           /* keep-alive: the previous request */
    srv->metrics.http_requests++;
    cg_route_request(srv, wsi, 0, head_flags, buf, sizeof buf, &rt);
    if (rt.owner == CG_ROUTE_SOCKJS)
        return cg_sockjs_http_on_request(srv, wsi, pss, rt.method, &rt.sockjs);
    return cg_http_on_request(srv, wsi, pss, &rt.http);
}

/* A new WebSocket upgrade (FILTER_PROTOCOL_CONNECTION): refused while
 * stopping, else handed to its endpoint's filter, which admits it (0, and
 * its kind in pss) or refuses it with an HTTP status. */
static int
on_upgrade(struct cg_server *srv, struct lws *wsi, struct cg_pss *pss)
{
    unsigned head_flags = cg_listener_take_head_flags(wsi);
    char buf[ROUTE_PATH_MAX];
    struct cg_route rt;

    /* Whatever happens next: CONFIRM_UPGRADE hid some protocol names. */
    cg_ws_protocols_restore(srv);
    if (srv->stopping)
        return cg_ws_refuse(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, "shutting down");
    cg_route_request(srv, wsi, 1, head_flags, buf, sizeof buf, &rt);
    if ((rt.owner == CG_ROUTE_SOCKJS || rt.owner == CG_ROUTE_SOCKJS_RAW) &&
        rt.method != CG_M_GET)
        return cg_ws_refuse_method(wsi);
    switch (rt.owner) {
    case CG_ROUTE_WS:
        return cg_ws_filter(srv, wsi, pss, 0);
    case CG_ROUTE_SOCKJS_RAW:
        return cg_ws_filter(srv, wsi, pss, 1);
    case CG_ROUTE_SOCKJS:
        return cg_sockjs_ws_filter(srv, wsi, pss, &rt.sockjs);
    case CG_ROUTE_NONE:
    case CG_ROUTE_HTTP:
    default:
        return cg_ws_refuse(wsi, HTTP_STATUS_NOT_FOUND, "no websocket endpoint here");
    }
}

static int
on_lws_event(struct lws *wsi, enum lws_callback_reasons reason, void *user,
             void *in, size_t len)
{
    struct cg_pss *pss = user;

    switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        /* Only steers the subprotocol choice and always admits: the
         * refusal path of this callback has a use-after-free in lws 4.1.6
         * (CVE-2025-11677), so all checks happen in the filter below. */
        cg_ws_prefer_highest(cg_server_of(wsi), wsi);
        cg_ws_answer_bad_connection(wsi);   /* lws then closes it */
        return 0;
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return on_upgrade(cg_server_of(wsi), wsi, pss);
    case LWS_CALLBACK_ESTABLISHED:
        return owner_of(pss, 1)->open(cg_server_of(wsi), wsi, pss);
    case LWS_CALLBACK_HTTP:
        return on_http_request(cg_server_of(wsi), wsi, pss);

    case LWS_CALLBACK_RECEIVE:
        return owner_of(pss, 1)->data(pss, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return owner_of(pss, 1)->writable(pss);
    case LWS_CALLBACK_CLOSED:
        owner_of(pss, 1)->closed(pss);
        return 0;
    case LWS_CALLBACK_HTTP_BODY:
        return owner_of(pss, 0)->data(pss, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return owner_of(pss, 0)->body_done(pss);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return owner_of(pss, 0)->writable(pss);
    case LWS_CALLBACK_CLOSED_HTTP:
        owner_of(pss, 0)->closed(pss);
        return 0;
    case LWS_CALLBACK_WSI_CREATE:
        cg_listener_on_create(wsi);
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        cg_listener_on_destroy(wsi);  /* the address's count, the head flags */
        return 0;
    case LWS_CALLBACK_TIMER:
        /* Only HTTP requests arm it (their body clock): a WebSocket's pss
         * has a WebSocket kind and is left alone. */
        if (pss == NULL || (pss->kind != CG_PSS_HTTP && pss->kind != CG_PSS_SOCKJS_HTTP))
            return 0;
        return owner_of(pss, 0)->timer(pss);

    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

#define STOMP_PROTOCOL(n) \
    { n, on_lws_event, sizeof(struct cg_pss), WS_RX_BUFFER, 0, NULL, 0 }

static const struct lws_protocols protocols[] = {
    STOMP_PROTOCOL("v12.stomp"),   /* index 0: also plain WS and plain HTTP */
    STOMP_PROTOCOL("v11.stomp"),
    STOMP_PROTOCOL("v10.stomp"),
    { NULL, NULL, 0, 0, 0, NULL, 0 }
};

/* ---- start ------------------------------------------------------------ */

static void
resync_session(cg_session *s, void *data)
{
    (void)data;
    cg_session_resync(s);
}

/* The store is ready once commands work and every user channel is
 * subscribed again. Anything published while the subscriber connection
 * was down never reached this node, so live sessions read their pending
 * inbox again (at-least-once; clients dedupe by chatID). */
static void
on_store_state(int ready, void *data)
{
    struct cg_server *srv = data;
    size_t n = srv->registry ? cg_registry_count(srv->registry) : 0;

    srv->store_ready = ready;
    if (!ready) {
        cg_log(CG_LOG_WARN, "store not ready: sends answer 503 until Redis is back");
        return;
    }
    cg_log(CG_LOG_NOTICE, "store ready: Redis connected, scripts loaded, "
           "channels subscribed%s", n ? "; live sessions re-read their inboxes" : "");
    if (n)
        cg_registry_foreach(srv->registry, resync_session, NULL);
}

/* Seconds: uint16_t in lws_retry_bo_t. */
static uint16_t
idle_secs(int64_t ms, int64_t extra_s)
{
    int64_t s = ms / 1000 + extra_s;

    return (uint16_t)(s > 65535 ? 65535 : s);
}

/* The first-head limits of the options (listener.c checks them). */
static void
head_limits(const struct cg_config *cfg, struct cg_http_head_limits *lim)
{
    lim->max_request_line = (size_t)cfg->http_max_request_line;
    lim->max_head_bytes = (size_t)cfg->http_max_head_bytes;
    lim->max_headers = (size_t)cfg->http_max_headers;
    lim->max_query_params = CG_HTTP_MAX_QUERY_PARAMS;
}

/* lws only reads the backoff table for client connections, which this
 * vhost never makes; it gets a valid one anyway. */
static const uint32_t idle_backoff_ms[] = { 1000, 2000, 5000 };

int
cg_server_start(struct cg_server *srv, uv_loop_t *loop, const struct cg_config *cfg)
{
    struct lws_context_creation_info info;
    struct cg_listener_heads heads;
    void *foreign_loops[1] = { loop };
    int rc;

    memset(srv, 0, sizeof *srv);
    srv->loop = loop;
    srv->cfg = cfg;
    snprintf(srv->node_id, sizeof srv->node_id, "%s", cfg->node_id);
    /* See the top: past any heart-beat, and only for peers that stopped
     * answering WebSocket pings. */
    if ((srv->idle_policy = cg_calloc(1, sizeof *srv->idle_policy)) == NULL)
        return CG_E_NOMEM;
    srv->idle_policy->retry_ms_table = idle_backoff_ms;
    srv->idle_policy->retry_ms_table_count = 3;
    srv->idle_policy->secs_since_valid_ping = idle_secs(2 * cfg->heartbeat_max_ms, 60);
    srv->idle_policy->secs_since_valid_hangup = idle_secs(2 * cfg->heartbeat_max_ms, 120);

    /* Parsed once by config.c; borrowed for as long as cfg lives. */
    srv->origins = cfg->origins;
    srv->proxies = cfg->proxies;
    if ((rc = cg_store_create(loop, cfg, &srv->metrics, &srv->store)) < 0 ||
        (rc = cg_auth_create(loop, cfg, srv->store, &srv->metrics, &srv->auth)) < 0 ||
        (rc = cg_chat_create(cfg, srv->store, &srv->metrics, &srv->chat)) < 0 ||
        (rc = cg_registry_create(srv, &srv->registry)) < 0 ||
        (rc = cg_sockjs_create(srv, &srv->sockjs)) < 0 ||
        (rc = cg_linger_create(loop, &srv->linger)) < 0 ||
        (rc = cg_peers_create(&srv->peers)) < 0 ||
        (rc = cg_inbox_stats_create(loop, cfg, srv->store, srv->registry, &srv->metrics,
                                    &srv->inbox_stats)) < 0) {
        cg_log(CG_LOG_ERROR, "cannot start: %s", cg_strerror(rc));
        goto fail;
    }
    cg_store_set_push_cb(srv->store, cg_registry_on_push, srv->registry);
    cg_store_set_state_cb(srv->store, on_store_state, srv);

    /* Our own listen socket (listener.c explains why); it logs its errors. */
    if ((rc = cg_listener_open(loop, &cfg->listen_addr, "listen", cfg->listen,
                               cfg->reuse_port, &srv->listener)) < 0)
        goto fail;
    {
        struct cg_listener_peers lp = {
            srv->peers, cfg->proxies, (uint32_t)cfg->max_addr_sockets,
            &srv->metrics.addr_sockets_refused,
        };

        cg_listener_set_peers(srv->listener, &lp);
    }
    /* /metrics on its own address (issue 13): loopback by default. */
    if (cfg->metrics_addr.port[0] &&
        (rc = cg_listener_open(loop, &cfg->metrics_addr, "metrics_listen",
                               cfg->metrics_listen, 0, &srv->metrics_listener)) < 0)
        goto fail;

    /* The native long link (PROTOCOL.md section 9), when asked for. */
    if (cfg->longlink_addr.port[0] &&
        ((rc = cg_longlink_create(srv, &srv->longlink)) < 0 ||
         (rc = cg_listener_open(loop, &cfg->longlink_addr, "longlink_listen",
                                cfg->longlink_listen,
                                cfg->reuse_port, &srv->longlink_listener)) < 0))
        goto fail;

    memset(&heads, 0, sizeof heads);
    heads.linger = srv->linger;
    heads.metrics = &srv->metrics;
    memset(&info, 0, sizeof info);
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8;
    info.foreign_loops = foreign_loops;
    /* A server vhost that only serves what listener.c adopts. */
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.protocols = protocols;
    info.user = srv;
    info.vhost_name = "chatgate";
    info.server_string = "chatgate/" CG_VERSION;
    /* Idle HTTP keep-alive connections are closed after this long. */
    info.keepalive_timeout = 30;
    info.timeout_secs = 30;
    /* Heads: every first head that passes listener.c's check fits lws's
     * header table (http_head.h), and lws's time for a head is the
     * check's. */
    head_limits(cfg, &heads.limits);
    info.max_http_header_data = (unsigned short)CG_HTTP_HEAD_LWS_BYTES(&heads.limits);
    info.timeout_secs_ah_idle = CG_HTTP_HEAD_TIMEOUT_S;
    info.retry_and_idle_policy = srv->idle_policy;
    if (cfg->tls_cert[0]) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = cfg->tls_cert;
        info.ssl_private_key_filepath = cfg->tls_key;
        /* TLS 1.2 and 1.3 only. */
        info.ssl_options_set = SSL_OP_NO_SSLv2 | SSL_OP_NO_SSLv3 |
                               SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1;
    }

    srv->lws = lws_create_context(&info);
    if (srv->lws == NULL) {
        cg_log(CG_LOG_ERROR, "cannot create the lws context%s",
               cfg->tls_cert[0] ? ": are tls_cert and tls_key a readable PEM "
                                  "certificate and its key?" : "");
        rc = CG_E_INVAL;
        goto fail;
    }
    srv->vhost = lws_get_vhost_by_name(srv->lws, "chatgate");
    cg_ws_protocols_init(srv);
    if (srv->metrics_listener != NULL) {
        /* Plain HTTP whatever the main vhost serves; on_http_request knows
         * its requests by this vhost. */
        info.vhost_name = "metrics";
        /* Port 0, not CONTEXT_PORT_NO_LISTEN_SERVER: lws 4.1 rebinds every
         * request to a vhost chosen by its Host header among the vhosts of
         * the same listen_port (lws_select_vhost, "first vhost on our
         * port" when none matches), so two vhosts without a listener both
         * on -2 would mix: all requests would land on "chatgate", and one
         * with "Host: metrics" on the main port would reach this one. A
         * vhost of port 0 is never selected, and its own requests stay. */
        info.port = CONTEXT_PORT_NO_LISTEN;
        info.ssl_cert_filepath = NULL;
        info.ssl_private_key_filepath = NULL;
        info.options &= ~(uint64_t)LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        srv->metrics_vhost = lws_create_vhost(srv->lws, &info);
        if (srv->metrics_vhost == NULL) {
            cg_log(CG_LOG_ERROR, "cannot create the lws vhost of metrics_listen");
            rc = CG_E_INVAL;
            goto fail;
        }
        heads.check = 1;              /* never TLS */
        cg_listener_start(srv->metrics_listener, srv->metrics_vhost, &heads);
        cg_log(CG_LOG_NOTICE, "metrics on http://%s/metrics (port %d)",
               cfg->metrics_listen, cg_listener_port(srv->metrics_listener));
    }
    /* With TLS the bytes are ciphertext to the check: lws reads the head
     * and its limits apply as they are (listener.c). */
    heads.check = cfg->tls_cert[0] == '\0';
    if (srv->longlink_listener != NULL) {
        cg_listener_start_fd(srv->longlink_listener, cg_longlink_accept, srv->longlink);
        cg_log(CG_LOG_NOTICE, "long link on tcp://%s (port %d)", cfg->longlink_listen,
               cg_listener_port(srv->longlink_listener));
    }
    cg_listener_start(srv->listener, srv->vhost, &heads);
    cg_log(CG_LOG_NOTICE, "listening on %s%s (port %d%s, node %s, base path \"%s\")",
           cfg->tls_cert[0] ? "https://" : "http://", cfg->listen,
           cg_listener_port(srv->listener), cfg->reuse_port ? ", shared" : "",
           srv->node_id, cfg->base_path);
    return 0;

fail:
    if (srv->longlink_listener) {
        cg_listener_close(srv->longlink_listener);
        srv->longlink_listener = NULL;
    }
    cg_longlink_destroy(srv->longlink);
    srv->longlink = NULL;
    if (srv->metrics_listener) {
        cg_listener_close(srv->metrics_listener);
        srv->metrics_listener = NULL;
    }
    if (srv->lws) { lws_context_destroy(srv->lws); srv->lws = NULL; }
    if (srv->listener) { cg_listener_close(srv->listener); srv->listener = NULL; }
    cg_peers_destroy(srv->peers);     /* after lws: its connections give back */
    srv->peers = NULL;
    if (srv->inbox_stats) { cg_inbox_stats_destroy(srv->inbox_stats); srv->inbox_stats = NULL; }
    if (srv->sockjs) { cg_sockjs_destroy(srv->sockjs); srv->sockjs = NULL; }
    cg_linger_destroy(srv->linger);
    srv->linger = NULL;
    if (srv->registry) { cg_registry_destroy(srv->registry); srv->registry = NULL; }
    if (srv->chat) { cg_chat_destroy(srv->chat); srv->chat = NULL; }
    if (srv->auth) { cg_auth_destroy(srv->auth); srv->auth = NULL; }
    if (srv->store) { cg_store_close(srv->store, NULL, NULL); srv->store = NULL; }
    srv->proxies = NULL;
    srv->origins = NULL;
    cg_free(srv->idle_policy);
    srv->idle_policy = NULL;
    return rc < 0 ? rc : CG_E_INVAL;
}

/* ---- stop ------------------------------------------------------------- */

struct stop_ctx {
    struct cg_server *srv;
    uv_timer_t        timer;
    uint64_t          started, deadline;
    void            (*done)(void *data);
    void             *data;
};

static void
close_session(cg_session *s, void *data)
{
    (void)data;
    /* After the answers it owes: a SEND in flight gets its 200 first. */
    cg_session_drain(s, CG_CLOSE_GOING_AWAY, "server shutting down");
}

static void
on_store_closed(void *data)
{
    struct stop_ctx *sc = data;

    /* Freed this late because the lws context finishes closing on later
     * loop turns (libuv), and its vhost points at the policy until then. */
    cg_free(sc->srv->idle_policy);
    sc->srv->idle_policy = NULL;
    cg_log(CG_LOG_NOTICE, "stopped");
    if (sc->done)
        sc->done(sc->data);
    cg_free(sc);
}

static void
on_stop_timer_closed(uv_handle_t *h)
{
    struct stop_ctx *sc = h->data;
    struct cg_server *srv = sc->srv;

    /* Sessions are gone; lws closes its handles on the loop. The metrics
     * listener stayed open through the drain (chatgate_draining). */
    cg_listener_close(srv->metrics_listener);
    srv->metrics_listener = NULL;
    cg_longlink_destroy(srv->longlink);
    srv->longlink = NULL;
    lws_context_destroy(srv->lws);
    srv->lws = NULL;
    cg_peers_destroy(srv->peers);     /* after lws: its connections give back */
    srv->peers = NULL;
    cg_sockjs_destroy(srv->sockjs);
    srv->sockjs = NULL;
    cg_linger_destroy(srv->linger);
    srv->linger = NULL;
    cg_registry_destroy(srv->registry);
    srv->registry = NULL;
    cg_chat_destroy(srv->chat);
    srv->chat = NULL;
    cg_auth_destroy(srv->auth);
    srv->auth = NULL;
    srv->origins = NULL;
    srv->proxies = NULL;
    cg_store_close(srv->store, on_store_closed, sc);
    srv->store = NULL;
}

static void
on_stop_tick(uv_timer_t *t)
{
    struct stop_ctx *sc = t->data;
    size_t left = cg_registry_count(sc->srv->registry);
    size_t inflight = cg_store_inflight(sc->srv->store);

    if ((left > 0 || inflight > 0) && uv_now(t->loop) < sc->deadline)
        return;
    if (left > 0 || inflight > 0)
        cg_log(CG_LOG_WARN, "drain time over (drain_ms): %zu sessions still open "
               "are cut and %zu Redis calls are abandoned; unconfirmed messages "
               "stay pending and a retried send is answered with its first id",
               left, inflight);
    else
        cg_log(CG_LOG_NOTICE, "drained in %llu ms: no session left, no Redis call "
               "in flight", (unsigned long long)(uv_now(t->loop) - sc->started));
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, on_stop_timer_closed);
}

void
cg_server_stop(struct cg_server *srv, void (*done)(void *data), void *data)
{
    struct stop_ctx *sc;

    if (srv->stopping)
        return;
    srv->stopping = 1;
    sc = cg_calloc(1, sizeof *sc);
    if (sc == NULL)
        abort();                      /* cannot even stop cleanly */
    sc->srv = srv;
    sc->done = done;
    sc->data = data;
    cg_log(CG_LOG_NOTICE, "stopping: listen socket closed; closing %zu sessions "
           "(drain up to %lld ms)", cg_registry_count(srv->registry),
           (long long)srv->cfg->drain_ms);
    /* First, so that with SO_REUSEPORT new connections go to the others. */
    cg_listener_close(srv->listener);
    srv->listener = NULL;
    cg_listener_close(srv->longlink_listener);
    srv->longlink_listener = NULL;
    cg_inbox_stats_destroy(srv->inbox_stats);
    srv->inbox_stats = NULL;
    cg_registry_foreach(srv->registry, close_session, NULL);
    uv_timer_init(srv->loop, &sc->timer);
    sc->timer.data = sc;
    sc->started = uv_now(srv->loop);
    sc->deadline = sc->started + (uint64_t)srv->cfg->drain_ms;
    uv_timer_start(&sc->timer, on_stop_tick, 0, 20);
}
