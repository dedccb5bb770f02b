/* buf.h - reference-counted immutable byte buffers.
 *
 * A chat message body is serialized once into a cg_buf and shared by every
 * session it fans out to (ARCHITECTURE.md "Performance habits"). The loop is
 * single-threaded, so the count is a plain integer. */
#ifndef CHATGATE_BUF_H
#define CHATGATE_BUF_H

#include <stddef.h>
#include <stdint.h>

struct cg_buf {
    uint32_t refs;
    uint32_t len;
    char     data[];   /* len bytes, plus a NUL that is not counted */
};

/* Allocate a buffer of len bytes (refs = 1), copying src when it is not
 * NULL. Returns NULL on allocation failure. */
struct cg_buf *cg_buf_create(const void *src, size_t len);

static inline struct cg_buf *cg_buf_ref(struct cg_buf *b) { b->refs++; return b; }

/* Drop one reference; frees the buffer with the last one. NULL is a no-op. */
void cg_buf_unref(struct cg_buf *b);

#endif

#ifndef CHATGATE_WBUF_H
#define CHATGATE_WBUF_H
/* A growable byte buffer with fixed headroom in front of the data (lws needs
 * LWS_PRE bytes before what it writes). base points at the allocation; the
 * data is base[pre .. pre+len). */
struct cg_wbuf {
    char  *base;
    size_t pre;
    size_t len;
    size_t cap;    /* bytes available after the headroom */
};

/* Start an empty buffer with pre bytes of headroom; no allocation yet. */
void cg_wbuf_init(struct cg_wbuf *wb, size_t pre);

/* Make room for n more bytes; 0 or CG_E_NOMEM. */
int cg_wbuf_reserve(struct cg_wbuf *wb, size_t n);

/* Append n bytes; 0 or CG_E_NOMEM. */
int cg_wbuf_append(struct cg_wbuf *wb, const void *p, size_t n);

static inline char *cg_wbuf_data(const struct cg_wbuf *wb) { return wb->base + wb->pre; }
static inline void cg_wbuf_reset(struct cg_wbuf *wb) { wb->len = 0; }

/* Free the allocation; the buffer may be used again after cg_wbuf_init. */
void cg_wbuf_cleanup(struct cg_wbuf *wb);
#endif
