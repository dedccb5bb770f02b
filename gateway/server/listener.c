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
 * logged ten lines a second). */
#include "fmacros.h"

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
#include "server/listener.h"

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
};

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
cg_listener_open(uv_loop_t *loop, const struct cg_listen_addr *addr, const char *listen,
                 int reuse_port, struct cg_listener **out)
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
        cg_log(CG_LOG_ERROR, "cannot listen on %s: %s%s", listen, strerror(-fd),
               fd == -EADDRINUSE
                   ? reuse_port ? " (every process sharing the port needs "
                                  "--reuse-port, and the same user)"
                                : " (set --listen to another address, or "
                                  "--reuse-port on every process that shares it)"
                   : "");
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
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

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
        /* On failure lws has closed fd and logged why. */
        (void)lws_adopt_socket_vhost(l->vh, fd);
    }
    return 0;
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
cg_listener_start_fd(struct cg_listener *l, void (*on_fd)(void *data, int fd),
                     void *data)
{
    l->on_fd = on_fd;
    l->on_fd_data = data;
    cg_listener_start(l, NULL);
}

void
cg_listener_start(struct cg_listener *l, struct lws_vhost *vh)
{
    l->vh = vh;
    uv_timer_init(l->loop, &l->pause);
    l->pause.data = l;
    l->handles = 1;
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
        cg_free(l);
}

void
cg_listener_close(struct cg_listener *l)
{
    if (l == NULL)
        return;
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
    } else {
        cg_free(l);
    }
}
