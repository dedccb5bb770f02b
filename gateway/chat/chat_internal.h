/* chat_internal.h - what chat.c (requests, Redis) and chat_json.c (the
 * JSON of the chat destinations: bodies in, answers out) share. Not for use
 * outside gateway/chat/. */
#ifndef CG_CHAT_INTERNAL_H
#define CG_CHAT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define STATUS_OK   "成功"
#define STATUS_FAIL "失败"

/* Growable output with a sticky error (STYLE.md 3). */
struct jw {
    char  *p;
    size_t len, cap;
    int    err;
};

/* Append to w; a failed allocation makes w->err sticky and every later
 * append a no-op. */
void jw_reserve(struct jw *w, size_t n);
void jw_raw(struct jw *w, const char *s, size_t n);
#define jw_lit(w, s) jw_raw((w), (s), sizeof(s) - 1)
void jw_u64(struct jw *w, uint64_t v);
/* s as a JSON string, quotes included: the one place content is escaped. */
void jw_str(struct jw *w, const char *s, size_t n);
/* w's bytes as a buffer of its own (w is emptied), or NULL. */
struct cg_buf *jw_buf(struct jw *w);

#endif
