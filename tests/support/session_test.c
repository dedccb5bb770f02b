/* session_test.c - test-only views into the session part (session_test.h).
 * Each reads the private header of the file it looks into; none of this is
 * in the gateway's library or binary. */
#include "fmacros.h"

#include "session/outq_internal.h"
#include "session/registry_internal.h"
#include "session/session_internal.h"
#include "session_test.h"

uint32_t
cg_session__inflight(const cg_session *s)
{
    return s->inflight;
}

size_t
cg_session__input_capacity(const cg_session *s)
{
    return s->in_cap;
}

int
cg_session__read_paused(const cg_session *s)
{
    return (s->flags & F_READ_STOPPED) != 0;
}

size_t
cg_session__sizeof(void)
{
    return sizeof(struct cg_session);
}

void
cg_outq_fill_raw(struct cg_outq *q, struct cg_outq_entry *t, struct cg_buf *frame)
{
    cg_outq__ticket_done(q, t);
    if (t->flags & CG_OUTQ_F_CANCELLED) {
        t->kind = CG_OUTQ_DROPPED;
        cg_buf_unref(frame);
        return;
    }
    t->kind = CG_OUTQ_RAW;
    t->body = frame;
    t->size = frame->len;
    cg_outq__account_ready(q, t);
}

size_t
cg_registry_user_sessions(const cg_registry *r, uint64_t uid)
{
    const struct user *u = cg_registry__user_find(r, uid);

    return u != NULL ? u->n : 0;
}
