/* linger.c - lingering close (see linger.h).
 *
 * Each lingering socket is a uv_poll_t on a dup() of the connection's fd
 * and a uv_timer_t for its deadline, on a doubly linked list so that
 * cg_linger_destroy() can close them all. The socket is freed when both
 * handles have closed. */
#include "fmacros.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "core/common.h"
#include "core/log.h"
#include "http/linger.h"

struct lsock {
    struct cg_linger *lg;
    struct lsock     *prev, *next;
    uv_poll_t         poll;
    uv_timer_t        timer;
    int               fd;
    int               handles;      /* still open: 2, 1, 0 */
    uint64_t          deadline;     /* CG_LINGER_TOTAL_MS after the start */
    uint64_t          last_rx;
};

struct cg_linger {
    uv_loop_t    *loop;
    struct lsock *head;
    size_t        count;
    int           dying;            /* destroyed: free once count is 0 */
};

int
cg_linger_create(uv_loop_t *loop, struct cg_linger **out)
{
    struct cg_linger *lg = cg_calloc(1, sizeof *lg);

    if (lg == NULL)
        return CG_E_NOMEM;
    lg->loop = loop;
    *out = lg;
    return 0;
}

static void
on_handle_closed(uv_handle_t *h)
{
    struct lsock *ls = h->data;
    struct cg_linger *lg = ls->lg;

    if (--ls->handles > 0)
        return;
    close(ls->fd);
    cg_free(ls);
    if (--lg->count == 0 && lg->dying)
        cg_free(lg);
}

static void
finish(struct lsock *ls)
{
    struct cg_linger *lg = ls->lg;

    if (ls->prev)
        ls->prev->next = ls->next;
    else
        lg->head = ls->next;
    if (ls->next)
        ls->next->prev = ls->prev;
    ls->prev = ls->next = NULL;
    uv_close((uv_handle_t *)&ls->poll, on_handle_closed);
    uv_close((uv_handle_t *)&ls->timer, on_handle_closed);
}

static void
on_readable(uv_poll_t *p, int status, int events)
{
    struct lsock *ls = p->data;
    char scratch[16384];
    ssize_t n;

    (void)events;
    if (status < 0) {
        finish(ls);
        return;
    }
    /* Discard what there is; a bounded number of reads per wake-up so one
     * fast sender cannot hold the loop. */
    for (int i = 0; i < 8; i++) {
        n = read(ls->fd, scratch, sizeof scratch);
        if (n > 0) {
            ls->last_rx = uv_now(ls->lg->loop);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        finish(ls);                   /* the peer closed (0) or reset */
        return;
    }
}

static void
on_tick(uv_timer_t *t)
{
    struct lsock *ls = t->data;
    uint64_t now = uv_now(ls->lg->loop);

    if (now >= ls->deadline || now - ls->last_rx >= CG_LINGER_IDLE_MS)
        finish(ls);
}

int
cg_linger_start(struct cg_linger *lg, int fd)
{
    struct lsock *ls;
    uint64_t now;
    int dfd;

    if (lg == NULL || lg->dying || fd < 0)
        return CG_E_INVAL;
    if (lg->count >= CG_LINGER_MAX)
        return CG_E_LIMIT;
    if ((ls = cg_calloc(1, sizeof *ls)) == NULL)
        return CG_E_NOMEM;
    if ((dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0) {
        cg_free(ls);
        return -errno;
    }
    /* The answer is in the kernel's send buffer: FIN after it. */
    (void)shutdown(dfd, SHUT_WR);
    if (uv_poll_init(lg->loop, &ls->poll, dfd) < 0) {
        close(dfd);
        cg_free(ls);
        return CG_E_INVAL;
    }
    uv_timer_init(lg->loop, &ls->timer);
    ls->lg = lg;
    ls->fd = dfd;
    ls->handles = 2;
    ls->poll.data = ls;
    ls->timer.data = ls;
    now = uv_now(lg->loop);
    ls->deadline = now + CG_LINGER_TOTAL_MS;
    ls->last_rx = now;
    ls->next = lg->head;
    if (lg->head)
        lg->head->prev = ls;
    lg->head = ls;
    lg->count++;
    uv_poll_start(&ls->poll, UV_READABLE | UV_DISCONNECT, on_readable);
    uv_timer_start(&ls->timer, on_tick, 250, 250);
    return 0;
}

size_t
cg_linger_count(const struct cg_linger *lg)
{
    size_t n = 0;

    for (const struct lsock *ls = lg ? lg->head : NULL; ls; ls = ls->next)
        n++;
    return n;
}

void
cg_linger_destroy(struct cg_linger *lg)
{
    if (lg == NULL)
        return;
    lg->dying = 1;
    while (lg->head)
        finish(lg->head);
    if (lg->count == 0)
        cg_free(lg);
}
