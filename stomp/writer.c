#include "fmacros.h"

/* writer.c - serializes one STOMP frame into a caller's buffer.
 *
 * A builder with a sticky error, as sqlite's JsonString: each call returns
 * nothing, the first error is kept, every later call does nothing and
 * stomp_writer_finish() reports it. So a caller writes a whole frame
 * without checking each step, and checks once.
 *
 * With cap == 0 (or no buffer) the writer only measures: lengths add up
 * and no byte is written, which lets the caller allocate exactly once.
 * Measuring and writing run the same code (reserve() decides), so the two
 * cannot disagree on a length.
 *
 * Calls must come in frame order (w->state):
 *
 *              command()             body()
 *     W_START ----------> W_HEAD ---------------> W_COMPLETE
 *        |                 |  ^   finish(): "\n\0"     ^
 *        |                 +--+   -------------->      |
 *        |               header()                      |
 *        +---------------------------------------------+
 *           command(STOMP_CMD_HEARTBEAT): a lone LF
 *
 * Any other call in a state is STOMP_E_BAD_FRAME. finish() in W_COMPLETE
 * writes nothing and returns the same result again.
 *
 * Invariants:
 *  - w->len <= w->cap whenever w->cap > 0; nothing is written past cap.
 *  - A frame with a body always carries content-length, written by
 *    stomp_writer_body() and only there, so framing never depends on the
 *    body's content and a body may hold NULs.
 *  - Header bytes are escaped per w->escaping (escape.c) or refused with
 *    STOMP_E_BAD_VALUE: the output always parses back to the same frame.
 */

#include <stdint.h>
#include <string.h>

#include "stomp/stomp.h"
#include "stomp_int.h"

enum {
    W_START,   /* nothing written: the command comes first */
    W_HEAD,    /* command written: headers, the body or the end */
    W_COMPLETE /* terminated (body's NUL, heart-beat or finish) */
};

/* The blank line that ends the headers, then the NUL that ends the frame. */
static const char frame_end[2] = {'\n', '\0'};

#define CONTENT_LENGTH "content-length"
#define CONTENT_LENGTH_LEN (sizeof(CONTENT_LENGTH) - 1)

static void
set_err(struct stomp_writer *w, int err)
{
    if (w->err == STOMP_OK)
        w->err = err;
}

/* Makes room for n more bytes. Returns where to write them, or NULL when
 * nothing is to be written: measure mode (the length still counts) or an
 * error (none so far, or STOMP_E_NOSPACE now). */
static char *
reserve(struct stomp_writer *w, size_t n)
{
    char *dst;

    if (w->err != STOMP_OK)
        return NULL;
    if (w->cap == 0) {
        if (n > SIZE_MAX - w->len)
            set_err(w, STOMP_E_NOSPACE);
        else
            w->len += n;
        return NULL;
    }
    if (n > w->cap - w->len) {
        set_err(w, STOMP_E_NOSPACE);
        return NULL;
    }
    dst = w->buf + w->len;
    w->len += n;
    return dst;
}

static void
put(struct stomp_writer *w, const char *src, size_t n)
{
    char *dst = reserve(w, n);

    if (dst != NULL && n > 0)
        memcpy(dst, src, n);
}

/* Is the writer in state, with no error so far? Sets STOMP_E_BAD_FRAME when
 * it has none but is in another state. */
static int
expect(struct stomp_writer *w, int state)
{
    if (w->err != STOMP_OK)
        return 0;
    if (w->state != state) {
        set_err(w, STOMP_E_BAD_FRAME);
        return 0;
    }
    return 1;
}

void
stomp_writer_init(struct stomp_writer *w, char *buf, size_t cap,
                  enum stomp_version v)
{
    w->buf = buf;
    w->cap = buf != NULL ? cap : 0;
    w->len = 0;
    w->err = STOMP_OK;
    w->version = v;
    w->cmd = -1;
    w->state = W_START;
    w->escaping = STOMP__ESC_NONE;
}

void
stomp_writer_command(struct stomp_writer *w, enum stomp_command cmd)
{
    const char *name;

    if (!expect(w, W_START))
        return;
    if ((unsigned)cmd >= STOMP_CMD_COUNT) {
        set_err(w, STOMP_E_UNKNOWN_COMMAND);
        return;
    }
    w->cmd = (int)cmd;
    if (cmd == STOMP_CMD_HEARTBEAT) {
        put(w, "\n", 1);
        w->state = W_COMPLETE;
        return;
    }
    name = stomp_command_name(cmd);
    put(w, name, strlen(name));
    put(w, "\n", 1);
    w->escaping = (int)stomp__escaping_for(w->version, (int)cmd);
    w->state = W_HEAD;
}

void
stomp_writer_header(struct stomp_writer *w, struct stomp_str name,
                    struct stomp_str value)
{
    enum stomp__escaping esc = (enum stomp__escaping)w->escaping;
    size_t nlen, vlen;
    char *dst;

    if (!expect(w, W_HEAD))
        return;
    if (name.len == 0 ||
        (name.len == CONTENT_LENGTH_LEN &&
         memcmp(name.ptr, CONTENT_LENGTH, CONTENT_LENGTH_LEN) == 0) ||
        stomp__escape_measure(name.ptr, name.len, esc, STOMP__FIELD_NAME,
                              &nlen) != STOMP_OK ||
        stomp__escape_measure(value.ptr, value.len, esc, STOMP__FIELD_VALUE,
                              &vlen) != STOMP_OK) {
        set_err(w, STOMP_E_BAD_VALUE);
        return;
    }
    /* Each escaped length is at most twice a length of bytes in memory, so
     * the sum cannot wrap. */
    dst = reserve(w, nlen + 1 + vlen + 1);
    if (dst == NULL)
        return;
    /* An escaped form as long as the raw one has nothing escaped. */
    dst += stomp__escape_copy(dst, name.ptr, name.len,
                              nlen == name.len ? STOMP__ESC_NONE : esc);
    *dst++ = ':';
    dst += stomp__escape_copy(dst, value.ptr, value.len,
                              vlen == value.len ? STOMP__ESC_NONE : esc);
    *dst = '\n';
}

/* Writes v in decimal at the end of buf[0..cap) and returns where it
 * starts. */
static char *
format_size(char *buf, size_t cap, size_t v)
{
    char *p = buf + cap;

    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return p;
}

void
stomp_writer_body(struct stomp_writer *w, struct stomp_str body)
{
    char digits[3 * sizeof(size_t)]; /* enough for SIZE_MAX in decimal */
    char *num;

    if (!expect(w, W_HEAD))
        return;
    num = format_size(digits, sizeof(digits), body.len);
    put(w, CONTENT_LENGTH ":", CONTENT_LENGTH_LEN + 1);
    put(w, num, (size_t)(digits + sizeof(digits) - num));
    put(w, "\n\n", 2);
    put(w, body.ptr, body.len);
    put(w, frame_end + 1, 1); /* the NUL */
    w->state = W_COMPLETE;
}

int
stomp_writer_finish(struct stomp_writer *w, size_t *len_out)
{
    if (w->err == STOMP_OK) {
        if (w->state == W_START) {
            set_err(w, STOMP_E_BAD_FRAME);
        } else if (w->state == W_HEAD) {
            put(w, frame_end, 2); /* the blank line and the NUL */
            w->state = W_COMPLETE;
        }
    }
    if (len_out != NULL)
        *len_out = w->err == STOMP_OK ? w->len : 0;
    return w->err;
}
