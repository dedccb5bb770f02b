/* session_timer.c - the one timer of a session and its deadlines.
 *
 * What it does. Each session has one uv_timer, always armed for the
 * nearest of its deadlines (loop milliseconds, 0 = unset):
 *
 *   connect_dl    CONNECT not completed within connect_timeout_ms
 *   expire_dl     the login token runs out (converted once, at the check)
 *   frame_dl      a partial frame not completed within frame_timeout_ms
 *   hb_in         nothing read for 2 x the agreed heart-beat
 *   hb_out        nothing written for the heart-beat: an EOL is due
 *   outq soft     the output queue over out_soft_bytes for too long
 *   close_dl      a closing session did not flush in time: cut it
 *   parse pending frames buffered while reading was paused
 *
 * Whoever moves a deadline calls cg_session__arm_timer(). A deadline that
 * moved later does not re-arm: the timer fires early and re-arms. On
 * expiry, a timeout becomes an ERROR and a close (cg_session__fail in
 * session.c), the output cap a close (cg_session__output_cap_close), a
 * heart-beat an EOL (cg_session__want_write), pending input a parse
 * (cg_session__process_input, session_input.c). One timer per session, so
 * no handle and no walk over the sessions per deadline.
 *
 * Owns no memory: the timer handle lives in struct cg_session; session.c
 * initialises it at create and closes it (uv_close) when the transport is
 * gone; the session's memory is released in that close_cb. */
#include "fmacros.h"

#include <inttypes.h>
#include <stdio.h>

#include <uv.h>

#include "core/config.h"
#include "core/log.h"
#include "session/outq.h"
#include "session/session.h"
#include "session/session_internal.h"

/* ------------------------------------------------------------------------ */
/* Timer                                                                     */
/* ------------------------------------------------------------------------ */

static uint64_t
next_deadline(const cg_session *s)
{
    uint64_t due = 0;

#define CONSIDER(x)                                       \
    do {                                                  \
        uint64_t x_ = (x);                                \
        if (x_ != 0 && (due == 0 || x_ < due))            \
            due = x_;                                     \
    } while (0)

    if (s->flags & F_GONE)
        return 0;
    if (s->state == ST_CLOSING) {
        if (!(s->flags & F_CLOSE_SENT))
            CONSIDER(s->close_dl);
        return due;
    }
    if (s->flags & F_PARSE_PENDING)
        CONSIDER(now_ms(s) > 0 ? now_ms(s) : 1);
    CONSIDER(s->connect_dl);
    CONSIDER(s->expire_dl);
    if (!cg_session__input_paused(s))
        CONSIDER(s->frame_dl);
    if (s->hb_in && !(s->flags & F_READ_STOPPED))
        CONSIDER(s->last_read + 2 * (uint64_t)s->hb_in);
    if (s->hb_out && !(s->flags & F_EOL_DUE))
        CONSIDER(s->last_write + s->hb_out);
    CONSIDER(cg_outq_soft_deadline(&s->outq));
#undef CONSIDER
    return due;
}

static void on_timer(uv_timer_t *h);

/* Keep the one timer armed for the nearest deadline. A deadline that
 * moved later does not re-arm: the timer fires early and re-arms. */
void
cg_session__arm_timer(cg_session *s)
{
    uint64_t due = next_deadline(s), now;

    if (due == 0) {
        if (s->timer_due != 0) {
            uv_timer_stop(&s->timer);
            s->timer_due = 0;
        }
        return;
    }
    if (s->timer_due != 0 && s->timer_due <= due)
        return;
    now = now_ms(s);
    uv_timer_start(&s->timer, on_timer, due > now ? due - now : 0, 0);
    s->timer_due = due;
}

static void
on_timer(uv_timer_t *h)
{
    cg_session *s = h->data;
    uint64_t now = uv_now(h->loop);
    const struct cg_config *cfg = cfg_of(s);
    enum cg_outq_limit lim;
    char msg[DETAIL_MAX];

    s->timer_due = 0;
    if (s->flags & F_GONE)
        return;
    cg_session_ref(s);
    if (s->state == ST_CLOSING) {
        if (!(s->flags & F_CLOSE_SENT) && s->close_dl && now >= s->close_dl) {
            cg_slog(s, CG_LOG_INFO, "close flush not done within %lld ms "
                    "(frame_timeout_ms): closing now", (long long)cfg->frame_timeout_ms);
            cg_session__begin_close(s, s->close_code, s->close_why, CLOSE_NOW);
        }
    } else if (s->connect_dl && now >= s->connect_dl) {
        if (s->proto == CG_PROTO_LONGLINK)
            snprintf(msg, sizeof msg, s->state == ST_AWAIT_CONNECT
                     ? "no auth within %lld ms (connect_timeout_ms)"
                     : "auth not completed within %lld ms (connect_timeout_ms)",
                     (long long)cfg->connect_timeout_ms);
        else
            snprintf(msg, sizeof msg, s->state == ST_AWAIT_CONNECT
                     ? "no CONNECT within %lld ms (connect_timeout_ms)"
                     : "CONNECT not completed within %lld ms (connect_timeout_ms)",
                     (long long)cfg->connect_timeout_ms);
        cg_session__fail(s, CG_E_LIMIT, msg);
    } else if (s->expire_dl && now >= s->expire_dl) {
        cg_session__fail(s, CG_E_EXPIRED, "the login token of this session expired; "
                     "log in again and reconnect with the new token");
    } else if (s->hb_in && !(s->flags & F_READ_STOPPED) &&
               now - s->last_read >= 2 * (uint64_t)s->hb_in) {
        snprintf(msg, sizeof msg, "no data from the client within %" PRIu64
                 " ms (2 x heart-beat %" PRIu32 " ms)", 2 * (uint64_t)s->hb_in, s->hb_in);
        cg_session__fail(s, CG_E_LIMIT, msg);
    } else if (s->frame_dl && !cg_session__input_paused(s) && now >= s->frame_dl) {
        snprintf(msg, sizeof msg, "%s not completed within %lld ms (frame_timeout_ms)",
                 s->proto == CG_PROTO_LONGLINK ? "packet" : "frame",
                 (long long)cfg->frame_timeout_ms);
        cg_session__fail(s, CG_E_LIMIT, msg);
    } else if ((lim = cg_outq_check(&s->outq, now)) != CG_OUTQ_OK) {
        cg_session__output_cap_close(s, lim);
    } else {
        if (s->hb_out && !(s->flags & F_EOL_DUE) && now - s->last_write >= s->hb_out) {
            s->flags |= F_EOL_DUE;
            cg_session__want_write(s);
        }
        if (s->flags & F_PARSE_PENDING) {
            s->flags &= (uint16_t)~F_PARSE_PENDING;
            cg_session__process_input(s);
        }
    }
    cg_session__arm_timer(s);
    cg_session_unref(s);
}

