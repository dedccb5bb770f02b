/* linger.h - lingering close for refused HTTP requests (nginx's
 * ngx_http_set_lingering_close).
 *
 * A server that answers a request before reading its body (413, 400, 411)
 * and then closes the socket with bytes still unread makes the kernel send
 * a reset; the client, often still writing its body, then sees EPIPE or
 * ECONNRESET and may never read the answer that was already on its way.
 * So, once the answer is written: stop writing (FIN after the answer), go
 * on reading and discarding what the client still sends, and close when it
 * closes, when it stays quiet for CG_LINGER_IDLE_MS, or after
 * CG_LINGER_TOTAL_MS in all. At most CG_LINGER_MAX sockets linger at once;
 * past that a socket is closed at once, as before.
 *
 * lws owns the connection until it closes it; the lingering side works on
 * a dup() of the socket, so lws's close() of its own descriptor neither
 * resets the connection nor disturbs the drain. */
#ifndef CHATGATE_LINGER_H
#define CHATGATE_LINGER_H

#include <stddef.h>

struct uv_loop_s;
struct cg_linger;

#define CG_LINGER_IDLE_MS  2000u
#define CG_LINGER_TOTAL_MS 5000u
#define CG_LINGER_MAX      1024u

int  cg_linger_create(struct uv_loop_s *loop, struct cg_linger **out);

/* Take over a copy of the socket fd (which the caller goes on owning and
 * closes as usual): shut its write side down and discard its input until
 * the peer closes or the limits above. Returns 0, or < 0 when the socket
 * is simply closed by its owner as before (limit reached, no memory, or
 * dup() failed); either way the caller closes its connection. */
int  cg_linger_start(struct cg_linger *lg, int fd);

/* Sockets lingering now (for the metrics and tests). */
size_t cg_linger_count(const struct cg_linger *lg);

/* Close every lingering socket; the structure is freed once libuv has
 * closed their handles (a later loop turn). */
void cg_linger_destroy(struct cg_linger *lg);

#endif
