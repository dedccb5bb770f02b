/* log.h - leveled, one-line-per-event logging (STYLE.md section 8).
 *
 * Line format: 2026-11-21T21:07:53.123Z NOTICE [ctx] message
 * The level check happens before formatting. The sink (stderr) and the
 * threshold are the only process-wide mutable state besides the signal flag. */
#ifndef CHATGATE_LOG_H
#define CHATGATE_LOG_H

#include <stddef.h>

enum cg_log_level {
    CG_LOG_ERROR = 0,
    CG_LOG_WARN,
    CG_LOG_NOTICE,
    CG_LOG_INFO,
    CG_LOG_DEBUG,
};

extern enum cg_log_level cg_log_threshold;

#define cg_log_enabled(lvl) ((lvl) <= cg_log_threshold)

/* Log without context. */
#define cg_log(lvl, ...)                                      \
    do {                                                      \
        if (cg_log_enabled(lvl))                              \
            cg_log_emit((lvl), NULL, __VA_ARGS__);            \
    } while (0)

/* Log with a context string such as "s#42 u=wususu 10.0.0.1:51234 ws". */
#define cg_log_ctx(lvl, ctx, ...)                             \
    do {                                                      \
        if (cg_log_enabled(lvl))                              \
            cg_log_emit((lvl), (ctx), __VA_ARGS__);           \
    } while (0)

void cg_log_emit(enum cg_log_level lvl, const char *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Parse "error|warn|notice|info|debug"; returns 0 or CG_E_INVAL. */
int cg_log_level_parse(const char *name, enum cg_log_level *out);
void cg_log_set_level(enum cg_log_level lvl);

/* Route libwebsockets' own log lines through cg_log_emit at a level that
 * matches the current threshold. */
void cg_log_route_lws(void);

/* Escaped, truncated printable copy of peer bytes for logs (Redis
 * sdscatrepr): at most max input bytes, written into out (cap bytes,
 * always NUL-terminated). Returns out. */
const char *cg_log_repr(const void *buf, size_t len, size_t max,
                        char *out, size_t cap);

#endif
