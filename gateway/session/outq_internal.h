/* outq_internal.h - the two accounting steps of filling a ticket, shared
 * by outq.c and the test support's cg_outq_fill_raw()
 * (tests/support/session_test.c), which fills a ticket with a whole frame
 * the way cg_outq_fill() fills it with a MESSAGE. Not an API: the session
 * uses outq.h only. */
#ifndef CG_OUTQ_INTERNAL_H
#define CG_OUTQ_INTERNAL_H

#include "session/outq.h"

/* The entry becomes ready: count it. */
static inline void
cg_outq__account_ready(struct cg_outq *q, const struct cg_outq_entry *e)
{
    q->bytes += e->size;
    if (e->kind == CG_OUTQ_MESSAGE && (e->flags & CG_OUTQ_F_CHAT))
        q->chat++;
}

/* The ticket has its answer (or will get none): it no longer blocks. */
static inline void
cg_outq__ticket_done(struct cg_outq *q, const struct cg_outq_entry *t)
{
    if (!(t->flags & CG_OUTQ_F_CANCELLED))
        q->pending--;
}

#endif
