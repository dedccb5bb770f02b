/* listener.c - the gateway's own listen socket; every accepted connection
 * is handed to lws, which serves it exactly as if its own listener had
 * accepted it.
 *
 * Why not lws's listener (Debian's lws 4.1.6):
 *   - SO_REUSEPORT. LWS_SERVER_OPTION_ALLOW_LISTEN_SHARE sets SO_REUSEPORT
 *     only when the context has more than one service thread
 *     (roles/http/server/server.c: "if (n && count_threads > 1)"), and the
 *     Debian build has LWS_MAX_SMP 1: the option silently does nothing and
 *     the second process on the port fails with EADDRINUSE. One process per
 *     core on one port (ARCHITECTURE.md "Event loop and threads") needs the
 *     option to work.
 *   - Stopping to accept. A graceful stop must close the listen socket
 *     first (with SO_REUSEPORT the kernel then sends new connections to the
 *     sibling processes) and keep serving what is open. lws 4.1 can only do
 *     that with lws_context_deprecate(), meant for config reloads: it marks
 *     the whole context for deletion, and its clean-up path ends the
 *     process with SIGINT once no connection is left
 *     (plat/unix/unix-init.c), which main.c reads as a second signal.
 * lws's own accept path is accept() followed by lws_adopt_descriptor_vhost()
 * (roles/listen/ops-listen.c); this file does the same with
 * lws_adopt_socket_vhost(), and server.c creates the vhost with
 * CONTEXT_PORT_NO_LISTEN_SERVER (a server vhost without a listener, TLS
 * included). The long link's listener (longlink_listen) is the same socket
 * whose accepted descriptors go to a callback instead of lws
 * (cg_listener_start_fd): the long-link transport owns them.
 *
 *   open:   resolve (numeric or a name, at startup only) -> socket ->
 *           SO_REUSEADDR [+ SO_REUSEPORT] -> bind -> listen(SOMAXCONN)
 *   start:  uv_poll readable -> accept4 up to ACCEPT_BATCH -> adopt each
 *   close:  accept what is already queued, close the socket, free after
 *           the handles' close callbacks
 *
 * Accept failures: EAGAIN ends a batch; a peer that vanished from the queue
 * (ECONNABORTED, EPROTO) is skipped; running out of descriptors or memory
 * (EMFILE, ENFILE, ENOBUFS, ENOMEM) pauses accepting for ACCEPT_PAUSE_MS -
 * the socket stays readable, so polling on would spin. Connections keep
 * queueing in the kernel meanwhile. The first pause is logged as a warning;
 * while descriptors stay short a pause follows every ACCEPT_PAUSE_MS, so
 * after that at most one warning per ACCEPT_WARN_EVERY_MS says how many
 * pauses there were since the last one (issue 13: an exhausted instance
 * logged ten lines a second).
 *
 * The first request head (issue 13, finding 7). lws 4.1.6 closes a
 * connection without an answer when a head does not fit its header table
 * or holds a byte its URI decoder refuses, and it offers no callback to
 * answer instead. So on a plain-HTTP listener a new connection is not
 * handed over at once: it waits here, unread, until its first head is
 * complete, and http_head.c checks it. A head that passes goes to lws
 * untouched - the bytes were only peeked (MSG_PEEK), lws reads them itself
 * - and one that does not is answered 400, 414 or 431 here, with a JSON
 * body and Connection: close, and ends in a lingering close (linger.h).
 *
 *   accept -> peek -+- head complete, fine ----------> adopt (lws reads it)
 *                   +- head refused ------------------> answer, linger, close
 *                   +- partial / nothing yet -> wait (poll; SO_RCVLOWAT one
 *                      past what was peeked, so only new bytes wake us)
 *                        -> peek again ... | peer gone -> close
 *                        | CG_HTTP_HEAD_TIMEOUT_S after accept -> close
 *
 *   - Cost on the hot path: one recv(MSG_PEEK) of the head, which is
 *     usually complete at the first wake-up; lws then reads it on the same
 *     loop turn's next poll.
 *   - A slowloris is closed CG_HTTP_HEAD_TIMEOUT_S after accept, without an
 *     answer, as lws did; a waiting connection costs a poll handle and no
 *     buffer (the bytes stay in the kernel).
 *   - Only the first head of a connection is checked. Later requests on a
 *     keep-alive connection are lws's, as before; so are TLS listeners,
 *     whose bytes are ciphertext here (cg_listener_start's check = 0).
 *   - What lws folds away from the path ("//", "/./", "/../") is seen here
 *     only: the flag travels to the route table as the connection's opaque
 *     user data (cg_listener_take_head_flags()). */
#include "fmacros.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libwebsockets.h>
#include <uv.h>

#include "core/common.h"
#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "http/http_head.h"
#include "http/linger.h"
#include "core/proxies.h"
#include "server/listener.h"
#include "server/peers.h"

/* Connections accepted per readable event: keeps one busy listener from
 * starving the connections already open. */
#define ACCEPT_BATCH 64

/* Pause after EMFILE and friends: long enough for closes to free
 * descriptors, short enough that a burst is not refused for long. */
#define ACCEPT_PAUSE_MS 100

/* At most one accept-failure warning this often (see the top). */
#define ACCEPT_WARN_EVERY_MS 10000

/* Connections taken from the accept queue at close (see the header). */
#define CLOSE_DRAIN_MAX 1024

/* At most one line about refused heads this often: each is one client's
 * mistake (or probe), and a flood of them must not flood the log. */
#define REFUSE_LOG_EVERY_MS 10000

/* A connection whose first head has not fully arrived. Waiting ones are
 * on a list in accept order, which is also deadline order. */
struct waiting {
    struct cg_listener *l;
    struct waiting     *prev, *next;
    uv_poll_t           poll;
    int                 fd;
    int                 lowat;      /* SO_RCVLOWAT was raised */
    uint64_t            deadline;   /* loop time, ms */
};

struct cg_listener {
    uv_loop_t        *loop;
    int               fd;
    int               port;
    struct lws_vhost *vh;           /* set by start: adopts each connection */
    void            (*on_fd)(void *data, int fd); /* or, set by start_fd, */
    void             *on_fd_data;   /* is handed each one */
    uv_poll_t         poll;
    uv_timer_t        pause;
    int               polling;      /* poll handle initialised */
    int               handles;      /* handles still to close */
    int64_t           warned_ms;    /* last accept-failure warning; 0: none */
    unsigned long     quiet_pauses; /* pauses since then, not logged yet */
    char              shown[320];   /* the listen address, for logs */

    /* The first-head check (set by start; check == 0: TLS, hand over). */
    struct cg_listener_heads heads;
    char             *peek;         /* max_head_bytes + 1 */
    size_t            peek_cap;
    uv_timer_t        head_timer;   /* the first waiting one's deadline */
    struct waiting   *wait_head, *wait_tail;
    size_t            waiting;
    int64_t           refused_logged_ms;
    unsigned long     refused_quiet;  /* refusals since then, not logged */

    /* Connections per client address (start's peers; NULL: not counted).
     * While the listener owns a connection (accepted, head not yet handed
     * over), its count is peer_of[fd]; lws's connections carry theirs in
     * a struct conn_rec as opaque user data. */
    struct cg_listener_peers peers;
    struct cg_peer  **peer_of;      /* by fd */
    size_t            npeer_of;
    int64_t           capped_logged_ms;
    unsigned long     capped_quiet;   /* refusals since then, not logged */
};

/* What an adopted connection carries as lws opaque user data: the head
 * flags for the route table, and its address's count, given back when lws
 * destroys the connection (cg_listener_on_destroy()). */
struct conn_rec {
    struct cg_peers *peers;
    struct cg_peer  *peer;          /* NULL: not counted */
    unsigned         flags;         /* CG_HTTP_HEAD_F_*, until taken */
};

/* The record being adopted. lws may fail the adoption before it made a
 * connection (no LWS_CALLBACK_WSI_CREATE: adopt gives the count back),
 * after it (the connection is destroyed then or later, TLS closes may be
 * deferred: cg_listener_on_destroy() gives it back), or destroy it inside
 * the adopt call (then on_destroy leaves the freeing to adopt). */
static struct conn_rec *adopting;
static int              adopting_created, adopting_destroyed;

static void
listener_free(struct cg_listener *l)
{
    cg_free(l->peek);
    cg_free(l->peer_of);
    cg_free(l);
}

/* ---- connections per client address ------------------------------------ */

/* The count fd holds while the listener owns it (NULL: none). */
static struct cg_peer *
peer_take(struct cg_listener *l, int fd)
{
    struct cg_peer *e = NULL;

    if (fd >= 0 && (size_t)fd < l->npeer_of) {
        e = l->peer_of[fd];
        l->peer_of[fd] = NULL;
    }
    return e;
}

/* Close a connection the listener owns, giving its count back. */
static void
conn_close(struct cg_listener *l, int fd)
{
    cg_peers_give(l->peers.peers, peer_take(l, fd));
    close(fd);
}

/* One more connection from fd's peer: 1 to go on (counted in peer_of[fd]
 * unless the peer is a trusted proxy or memory is short), 0 when its
 * address is at max_per_addr: then fd is closed here, without an answer
 * (nothing has been read; the client's own limit or backoff applies). */
static int
peer_admit(struct cg_listener *l, int fd, const struct sockaddr_storage *sa)
{
    char addr[INET6_ADDRSTRLEN], key[INET6_ADDRSTRLEN + 8];
    struct cg_peer *e = NULL;
    const void *ip;
    int rc;

    if (l->peers.peers == NULL)
        return 1;
    ip = sa->ss_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
                                   : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
    if ((sa->ss_family != AF_INET && sa->ss_family != AF_INET6) ||
        inet_ntop(sa->ss_family, ip, addr, sizeof addr) == NULL)
        return 1;                   /* not an IP peer: nothing to count by */
    if (cg_proxies_trusted(l->peers.proxies, addr))
        return 1;
    cg_proxies_limit_key(addr, key, sizeof key);
    rc = cg_peers_take(l->peers.peers, key, l->peers.max_per_addr, &e);
    if (rc == CG_E_LIMIT) {
        int64_t now = cg_now_ms();

        if (l->peers.refused != NULL)
            (*l->peers.refused)++;
        if (now - l->capped_logged_ms >= REFUSE_LOG_EVERY_MS) {
            cg_log(CG_LOG_WARN, "listen socket %s: %s already has %u connections "
                   "(max_addr_sockets): closing new ones from it%s", l->shown, key,
                   (unsigned)l->peers.max_per_addr,
                   l->capped_quiet ? "; more were closed since the last line" : "");
            l->capped_logged_ms = now;
            l->capped_quiet = 0;
        } else {
            l->capped_quiet++;
        }
        close(fd);
        return 0;
    }
    if (rc < 0)
        return 1;                   /* no memory for the count: not counted */
    if ((size_t)fd >= l->npeer_of) {
        size_t n = l->npeer_of ? l->npeer_of : 256;
        struct cg_peer **grown;

        while (n <= (size_t)fd)
            n *= 2;
        if ((grown = cg_realloc(l->peer_of, n * sizeof *grown)) == NULL) {
            cg_peers_give(l->peers.peers, e);
            return 1;
        }
        memset(grown + l->npeer_of, 0, (n - l->npeer_of) * sizeof *grown);
        l->peer_of = grown;
        l->npeer_of = n;
    }
    l->peer_of[fd] = e;
    return 1;
}

/* ---- open --------------------------------------------------------------- */

static int
bind_listen(const struct addrinfo *ai, int reuse_port)
{
    int fd, one = 1, err;

    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                ai->ai_protocol);
    if (fd < 0)
        return -errno;
    /* SO_REUSEADDR: restart while old connections sit in TIME_WAIT. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        (reuse_port &&
         setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
        listen(fd, SOMAXCONN) < 0) {
        err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

int
cg_listener_open(uv_loop_t *loop, const struct cg_listen_addr *addr, const char *option,
                 const char *listen, int reuse_port, struct cg_listener **out)
{
    struct addrinfo hints, *res = NULL;
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof ss;
    struct cg_listener *l;
    const char *host = addr->host, *port = addr->port;
    int rc, fd;

    *out = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = host[0] ? AF_UNSPEC : AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    /* Startup only, before the loop runs: a blocking lookup is fine. */
    rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (rc != 0 || res == NULL) {
        cg_log(CG_LOG_ERROR, "listen=%s: cannot resolve \"%s\": %s", listen, host,
               gai_strerror(rc));
        if (res)
            freeaddrinfo(res);
        return CG_E_INVAL;
    }
    fd = bind_listen(res, reuse_port);
    freeaddrinfo(res);
    if (fd < 0) {
        /* What to do next depends on whose port it is (the flag of the
         * option that named it). */
        const char *flag = strcmp(option, "metrics_listen") == 0 ? "--metrics-listen"
                         : strcmp(option, "longlink_listen") == 0 ? "--longlink-listen"
                                                                  : "--listen";
        char hint[160] = "";

        if (fd == -EADDRINUSE && reuse_port)
            snprintf(hint, sizeof hint, " (every process sharing the port needs "
                     "--reuse-port, and the same user)");
        else if (fd == -EADDRINUSE && strcmp(flag, "--metrics-listen") == 0)
            snprintf(hint, sizeof hint, " (set --metrics-listen to another address, "
                     "or to \"\" to serve /metrics on the main port)");
        else if (fd == -EADDRINUSE)
            snprintf(hint, sizeof hint, " (set %s to another address, or --reuse-port "
                     "on every process that shares it)", flag);
        cg_log(CG_LOG_ERROR, "cannot listen on %s: %s%s", listen, strerror(-fd), hint);
        return fd;
    }
    if ((l = cg_calloc(1, sizeof *l)) == NULL) {
        close(fd);
        return CG_E_NOMEM;
    }
    l->loop = loop;
    l->fd = fd;
    if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0)
        l->port = ntohs(ss.ss_family == AF_INET6
                            ? ((struct sockaddr_in6 *)&ss)->sin6_port
                            : ((struct sockaddr_in *)&ss)->sin_port);
    snprintf(l->shown, sizeof l->shown, "%s", listen);
    *out = l;
    return 0;
}

int
cg_listener_port(const struct cg_listener *l)
{
    return l->port;
}

/* ---- accepting ------------------------------------------------------------ */

static void head_start(struct cg_listener *l, int fd);
static void adopt(struct cg_listener *l, int fd, unsigned flags);

static void on_readable(uv_poll_t *h, int status, int events);

static void
on_pause_over(uv_timer_t *t)
{
    struct cg_listener *l = t->data;

    uv_poll_start(&l->poll, UV_READABLE, on_readable);
}

/* An accept failure err paused accepting: warn about the first, then at
 * most once per ACCEPT_WARN_EVERY_MS with the count of the others. */
static void
pause_warn(struct cg_listener *l, int err)
{
    int64_t now = cg_now_ms();

    if (l->warned_ms != 0 && now - l->warned_ms < ACCEPT_WARN_EVERY_MS) {
        l->quiet_pauses++;
        return;
    }
    if (l->quiet_pauses > 0)
        cg_log(CG_LOG_WARN, "accept on %s: %s; not accepting for %d ms (new "
               "connections wait in the kernel's queue); %lu more such pauses in "
               "the last %lld s", l->shown, strerror(err), ACCEPT_PAUSE_MS,
               l->quiet_pauses, (long long)(now - l->warned_ms) / 1000);
    else
        cg_log(CG_LOG_WARN, "accept on %s: %s; not accepting for %d ms (new "
               "connections wait in the kernel's queue; further pauses are "
               "counted, one line per %d s)", l->shown, strerror(err),
               ACCEPT_PAUSE_MS, ACCEPT_WARN_EVERY_MS / 1000);
    l->warned_ms = now;
    l->quiet_pauses = 0;
}

/* Accepting works again: the pauses not yet logged get their line, within
 * the same bound of one per ACCEPT_WARN_EVERY_MS. */
static void
pause_summary(struct cg_listener *l)
{
    int64_t now;

    if (l->quiet_pauses == 0 || (now = cg_now_ms()) - l->warned_ms < ACCEPT_WARN_EVERY_MS)
        return;
    cg_log(CG_LOG_WARN, "accept on %s: %lu more pauses in the last %lld s; "
           "accepting again", l->shown, l->quiet_pauses,
           (long long)(now - l->warned_ms) / 1000);
    l->warned_ms = now;
    l->quiet_pauses = 0;
}

/* Accept up to max connections and hand them to lws. Returns 1 when the
 * queue is empty, 0 when max was reached, -1 after a pause began. */
static int
accept_some(struct cg_listener *l, int max)
{
    int one = 1;

    for (int i = 0; i < max; i++) {
        struct sockaddr_storage sa;
        socklen_t salen = sizeof sa;
        int fd = accept4(l->fd, (struct sockaddr *)&sa, &salen, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            switch (errno) {
            case EAGAIN:
#if EWOULDBLOCK != EAGAIN
            case EWOULDBLOCK:
#endif
                return 1;
            case EINTR:
            case ECONNABORTED:
            case EPROTO:
                continue;
            default:
                pause_warn(l, errno);
                uv_poll_stop(&l->poll);
                uv_timer_start(&l->pause, on_pause_over, ACCEPT_PAUSE_MS, 0);
                return -1;
            }
        }
        pause_summary(l);
        /* As lws's own listener does (lws_plat_set_socket_options): small
         * frames go out at once. */
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (l->on_fd != NULL) {
            l->on_fd(l->on_fd_data, fd);            /* it owns fd now */
            continue;
        }
        if (!peer_admit(l, fd, &sa))
            continue;
        if (l->heads.check)
            head_start(l, fd);
        else
            adopt(l, fd, 0);   /* TLS: lws reads the head (see the top) */
    }
    return 0;
}

/* ---- the first request head ---------------------------------------------- */

/* Hand fd to lws; the head flags (CG_HTTP_HEAD_F_*) and the address's
 * count ride along in a struct conn_rec, the connection's opaque user
 * data, until lws destroys it. */
static void
adopt(struct cg_listener *l, int fd, unsigned flags)
{
    struct cg_peer *e = peer_take(l, fd);
    struct conn_rec *rec = NULL;
    lws_adopt_desc_t info;
    struct lws *wsi;

    if ((e != NULL || flags != 0) && (rec = cg_malloc(sizeof *rec)) == NULL) {
        cg_peers_give(l->peers.peers, e);   /* no memory: uncounted, unflagged */
        e = NULL;
    }
    if (rec != NULL) {
        rec->peers = l->peers.peers;
        rec->peer = e;
        rec->flags = flags;
    }
    memset(&info, 0, sizeof info);
    info.vh = l->vh;
    /* What lws_adopt_socket_vhost() passes, and the record. */
    info.type = LWS_ADOPT_SOCKET | LWS_ADOPT_HTTP | LWS_ADOPT_ALLOW_SSL;
    info.fd.sockfd = fd;
    info.opaque = rec;
    adopting = rec;
    adopting_created = adopting_destroyed = 0;
    /* On failure lws has closed fd and logged why. */
    wsi = lws_adopt_descriptor_vhost_via_info(&info);
    if (rec != NULL && adopting_destroyed) {
        cg_free(rec);                       /* its count went back already */
    } else if (rec != NULL && wsi == NULL && !adopting_created) {
        cg_peers_give(rec->peers, rec->peer);
        cg_free(rec);
    }
    adopting = NULL;
}

unsigned
cg_listener_take_head_flags(struct lws *wsi)
{
    struct conn_rec *rec = lws_get_opaque_user_data(wsi);
    unsigned flags = 0;

    if (rec != NULL) {
        flags = rec->flags;
        rec->flags = 0;
    }
    return flags;
}

void
cg_listener_on_create(struct lws *wsi)
{
    (void)wsi;
    if (adopting != NULL)
        adopting_created = 1;
}

void
cg_listener_on_destroy(struct lws *wsi)
{
    struct conn_rec *rec = lws_get_opaque_user_data(wsi);

    if (rec == NULL)
        return;
    lws_set_opaque_user_data(wsi, NULL);
    cg_peers_give(rec->peers, rec->peer);
    if (rec == adopting)
        adopting_destroyed = 1;     /* adopt frees it */
    else
        cg_free(rec);
}

static const char *
reason_phrase(int status)
{
    switch (status) {
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    default:  return "Bad Request";
    }
}

/* One line per REFUSE_LOG_EVERY_MS at most, with the count of the
 * refusals in between. */
static void
log_refusal(struct cg_listener *l, int fd, const struct cg_http_head_verdict *v)
{
    int64_t now = cg_now_ms();
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char host[64] = "?";

    if (l->refused_logged_ms != 0 && now - l->refused_logged_ms < REFUSE_LOG_EVERY_MS) {
        l->refused_quiet++;
        return;
    }
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
        (void)getnameinfo((struct sockaddr *)&ss, sl, host, sizeof host, NULL, 0,
                          NI_NUMERICHOST);
    cg_log(CG_LOG_INFO, "refused the first request head from %s on %s: %d %s "
           "(limits: request line %zu, head %zu bytes, %zu fields); answered and "
           "closed; %lu more refused since the last such line (one per %d s at most)",
           host, l->shown, v->status, v->reason, l->heads.limits.max_request_line,
           l->heads.limits.max_head_bytes, l->heads.limits.max_headers,
           l->refused_quiet, REFUSE_LOG_EVERY_MS / 1000);
    l->refused_logged_ms = now;
    l->refused_quiet = 0;
}

/* Answer v's refusal on fd and end the connection: the head already
 * peeked is read (so that a close cannot reset the answer away), the
 * answer written, then the lingering close; fd is closed here. */
static void
refuse(struct cg_listener *l, int fd, size_t peeked, const struct cg_http_head_verdict *v)
{
    char body[160], msg[512];
    int blen, n;

    log_refusal(l, fd, v);
    if (l->heads.metrics != NULL)
        l->heads.metrics->http_heads_refused[v->status == 414 ? CG_HEAD_414
                                             : v->status == 431 ? CG_HEAD_431
                                                                : CG_HEAD_400]++;
    (void)recv(fd, l->peek, peeked, 0);
    /* The reasons are plain ASCII without quotes or backslashes. */
    blen = snprintf(body, sizeof body, "{\"error\":\"%s\"}", v->reason);
    n = snprintf(msg, sizeof msg,
                 "HTTP/1.1 %d %s\r\n"
                 "server: chatgate/" CG_VERSION "\r\n"
                 "content-type: application/json\r\n"
                 "content-length: %d\r\n"
                 "cache-control: no-store\r\n"
                 "x-content-type-options: nosniff\r\n"
                 "connection: close\r\n"
                 "\r\n%s", v->status, reason_phrase(v->status), blen, body);
    /* A new socket's send buffer takes a few hundred bytes at once. */
    if (n > 0 && (size_t)n < sizeof msg)
        (void)send(fd, msg, (size_t)n, MSG_NOSIGNAL);
    if (cg_linger_start(l->heads.linger, fd) < 0)
        cg_log(CG_LOG_DEBUG, "lingering close refused: closing at once");
    conn_close(l, fd);
}

static void unwait(struct waiting *w);

/* Look at what fd has sent so far and act on it: hand it to lws, refuse
 * it or close it (returns 1; w, when fd was waiting, is unwaited first so
 * that no poll handle of ours watches fd any more), or leave it waiting
 * for more (returns 0, *seen: the bytes looked at). hup: the peer has
 * shut its side down, no more bytes will come. */
static int
peek_head(struct cg_listener *l, struct waiting *w, int fd, int hup, size_t *seen)
{
    struct cg_http_head_verdict v;
    ssize_t n;
    int rc = 0;

    *seen = 0;
    do
        n = recv(fd, l->peek, l->peek_cap, MSG_PEEK);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && !hup)
        return 0;
    if (n > 0) {
        *seen = (size_t)n;
        rc = cg_http_head_check(l->peek, (size_t)n, &l->heads.limits, &v);
        if (rc == 0 && !hup)
            return 0;
    }
    if (w != NULL)
        unwait(w);
    if (rc == 0)
        conn_close(l, fd);    /* gone (or reset) before its head was complete */
    else if (v.status != 0)
        refuse(l, fd, (size_t)n, &v);
    else
        adopt(l, fd, v.flags);
    return 1;
}

static void on_head_timer(uv_timer_t *t);

static void
arm_head_timer(struct cg_listener *l)
{
    uint64_t now = uv_now(l->loop);

    if (l->wait_head == NULL) {
        uv_timer_stop(&l->head_timer);
        return;
    }
    uv_timer_start(&l->head_timer, on_head_timer,
                   l->wait_head->deadline > now ? l->wait_head->deadline - now : 0, 0);
}

static void
on_waiting_closed(uv_handle_t *h)
{
    struct waiting *w = h->data;
    struct cg_listener *l = w->l;

    cg_free(w);
    if (--l->handles == 0)
        listener_free(l);
}

/* Stop waiting for w: off the list, its poll handle closed, its memory
 * freed after libuv's callback. The fd is the caller's. uv_close() stops
 * watching the fd at once (epoll_ctl DEL), so call this before fd is
 * closed or adopted: lws's own poll handle on the same fd must be the
 * only one. */
static void
unwait(struct waiting *w)
{
    struct cg_listener *l = w->l;

    if (w->prev)
        w->prev->next = w->next;
    else
        l->wait_head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        l->wait_tail = w->prev;
    w->prev = w->next = NULL;
    l->waiting--;
    uv_close((uv_handle_t *)&w->poll, on_waiting_closed);
}

static void
on_waiting_readable(uv_poll_t *p, int status, int events)
{
    struct waiting *w = p->data;
    struct cg_listener *l = w->l;
    int fd = w->fd, lowat;
    size_t seen;

    if (status < 0) {
        unwait(w);
        conn_close(l, fd);
        arm_head_timer(l);
        return;
    }
    if (w->lowat) {
        /* Back to the default before lws may take the socket over. */
        lowat = 1;
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat);
        w->lowat = 0;
    }
    if (peek_head(l, w, fd, (events & UV_DISCONNECT) != 0, &seen)) {
        arm_head_timer(l);
        return;
    }
    /* Wake up only when there is more than what was looked at. */
    lowat = (int)seen + 1;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat) == 0)
        w->lowat = 1;
}

static void
on_head_timer(uv_timer_t *t)
{
    struct cg_listener *l = t->data;
    uint64_t now = uv_now(l->loop);

    /* Closed without an answer, as lws closes a head that takes too long. */
    while (l->wait_head != NULL && l->wait_head->deadline <= now) {
        struct waiting *w = l->wait_head;
        int fd = w->fd;

        unwait(w);
        conn_close(l, fd);
    }
    arm_head_timer(l);
}

/* A new connection on a plain-HTTP listener: check its head if it is
 * there already, else wait for it. */
static void
head_start(struct cg_listener *l, int fd)
{
    struct waiting *w;
    size_t seen;

    if (peek_head(l, NULL, fd, 0, &seen))
        return;
    if (seen > 0) {
        int lowat = (int)seen + 1;

        (void)setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat);
    }
    if ((w = cg_calloc(1, sizeof *w)) == NULL ||
        uv_poll_init(l->loop, &w->poll, fd) < 0) {
        /* No memory: lws reads the head, as before this check existed. */
        cg_free(w);
        if (seen > 0) {
            int lowat = 1;

            (void)setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat);
        }
        adopt(l, fd, 0);
        return;
    }
    w->l = l;
    w->fd = fd;
    w->lowat = seen > 0;
    w->poll.data = w;
    w->deadline = uv_now(l->loop) + CG_HTTP_HEAD_TIMEOUT_S * 1000u;
    w->prev = l->wait_tail;
    if (l->wait_tail)
        l->wait_tail->next = w;
    else
        l->wait_head = w;
    l->wait_tail = w;
    l->waiting++;
    l->handles++;
    uv_poll_start(&w->poll, UV_READABLE | UV_DISCONNECT, on_waiting_readable);
    if (l->wait_head == w)
        arm_head_timer(l);
}

static void
on_readable(uv_poll_t *h, int status, int events)
{
    struct cg_listener *l = h->data;

    (void)events;
    if (status < 0) {
        cg_log(CG_LOG_WARN, "listen socket %s: %s", l->shown, uv_strerror(status));
        return;
    }
    (void)accept_some(l, ACCEPT_BATCH);
}

void
cg_listener_set_peers(struct cg_listener *l, const struct cg_listener_peers *p)
{
    l->peers = *p;
}

void
cg_listener_start_fd(struct cg_listener *l, void (*on_fd)(void *data, int fd),
                     void *data)
{
    static const struct cg_listener_heads none;   /* not HTTP: no check */

    l->on_fd = on_fd;
    l->on_fd_data = data;
    cg_listener_start(l, NULL, &none);
}

void
cg_listener_start(struct cg_listener *l, struct lws_vhost *vh,
                  const struct cg_listener_heads *heads)
{
    l->vh = vh;
    l->heads = *heads;
    uv_timer_init(l->loop, &l->pause);
    l->pause.data = l;
    uv_timer_init(l->loop, &l->head_timer);
    l->head_timer.data = l;
    l->handles = 2;
    if (l->heads.check) {
        /* One past the largest head: enough to see it is too large. */
        l->peek_cap = l->heads.limits.max_head_bytes + 1;
        if ((l->peek = cg_malloc(l->peek_cap)) == NULL) {
            cg_log(CG_LOG_WARN, "listen socket %s: no memory for the request head "
                   "check; lws reads heads unchecked", l->shown);
            l->heads.check = 0;
        }
    }
    if (uv_poll_init(l->loop, &l->poll, l->fd) == 0) {
        l->polling = 1;
        l->handles++;
        l->poll.data = l;
        uv_poll_start(&l->poll, UV_READABLE, on_readable);
    } else {
        cg_log(CG_LOG_ERROR, "listen socket %s: cannot poll it; accepting nothing",
               l->shown);
    }
}

/* ---- close ---------------------------------------------------------------- */

static void
on_handle_closed(uv_handle_t *h)
{
    struct cg_listener *l = h->data;

    if (--l->handles == 0)
        listener_free(l);
}

void
cg_listener_close(struct cg_listener *l)
{
    if (l == NULL)
        return;
    /* From here on lws reads every head itself, as before the check:
     * what is queued or still waiting is handed over, not cut. */
    l->heads.check = 0;
    while (l->wait_head != NULL) {
        struct waiting *w = l->wait_head;
        int fd = w->fd, lowat = 1;

        if (w->lowat)
            (void)setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat);
        unwait(w);
        adopt(l, fd, 0);
    }
    if (l->polling) {
        uv_poll_stop(&l->poll);
        uv_timer_stop(&l->pause);
        /* What the kernel already queued would be reset by close(). */
        (void)accept_some(l, CLOSE_DRAIN_MAX);
        uv_timer_stop(&l->pause);
    }
    /* libuv only stops watching the fd; closing it is ours. The poll
     * handle is closed first so epoll never sees a closed fd. */
    if (l->polling)
        uv_close((uv_handle_t *)&l->poll, on_handle_closed);
    close(l->fd);
    l->fd = -1;
    if (l->handles > 0) {
        uv_close((uv_handle_t *)&l->pause, on_handle_closed);
        uv_close((uv_handle_t *)&l->head_timer, on_handle_closed);
    } else {
        listener_free(l);
    }
}
