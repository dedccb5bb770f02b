/* session_test.h - test-only introspection of session.c.
 *
 * Unit tests drive sessions through the public API (session.h) with a fake
 * transport; the asynchronous answers (token check, chat requests, fetches)
 * are played by the test through the linker (-Wl,--wrap=cg_chat_send ...),
 * so they take exactly the code paths the real callbacks take. What a test
 * cannot observe from the outside is read here. The gateway never calls
 * these. */
#ifndef CG_SESSION_TEST_H
#define CG_SESSION_TEST_H

#include <stddef.h>
#include <stdint.h>

#include "session/session.h"

/* Requests of the session awaiting an answer (pending tickets). */
uint32_t cg_session__inflight(const cg_session *s);

/* Bytes allocated for the input buffer (0 when none is held) and bytes in
 * it not yet parsed. */
size_t cg_session__input_capacity(const cg_session *s);
size_t cg_session__input_unparsed(const cg_session *s);

/* 1 while the session has asked its transport to stop reading. */
int cg_session__read_paused(const cg_session *s);

/* sizeof(struct cg_session), for the idle-memory budget. */
size_t cg_session__sizeof(void);

#endif
