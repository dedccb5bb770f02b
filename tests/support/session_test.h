/* session_test.h - test-only views into the session part
 * (gateway/session/), built from its private headers and linked only into
 * the tests (tests/support/session_test.c); the gateway never has them.
 *
 * Unit tests drive sessions through the public API (session.h) with a fake
 * transport; the asynchronous answers (token check, chat requests, fetches)
 * are played by the test through the linker (-Wl,--wrap=cg_chat_send ...),
 * so they take exactly the code paths the real callbacks take. What a test
 * cannot observe from the outside is read here. */
#ifndef CG_TEST_SESSION_TEST_H
#define CG_TEST_SESSION_TEST_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "session/outq.h"
#include "session/registry.h"
#include "session/session.h"

/* ---- the session (session_internal.h) ---------------------------------- */

/* Requests of the session awaiting an answer (pending tickets). */
uint32_t cg_session__inflight(const cg_session *s);

/* Bytes allocated for the input buffer (0 when none is held). */
size_t cg_session__input_capacity(const cg_session *s);

/* 1 while the session has asked its transport to stop reading. */
int cg_session__read_paused(const cg_session *s);

/* sizeof(struct cg_session), for the idle-memory budget. */
size_t cg_session__sizeof(void);

/* ---- the outbound queue (outq_internal.h) ------------------------------ */

/* Turn ticket t into a RAW frame in its place, as cg_outq_fill() turns it
 * into a MESSAGE; takes ownership of frame. A cancelled ticket drops the
 * frame. */
void cg_outq_fill_raw(struct cg_outq *q, struct cg_outq_entry *t,
                      struct cg_buf *frame);

/* ---- the registry (registry_internal.h) -------------------------------- */

/* Sessions of uid attached on this node. */
size_t cg_registry_user_sessions(const cg_registry *r, uint64_t uid);

#endif
