/* stomp_test.h - test-only conveniences over libstomp's public API
 * (tests/support/stomp_test.c); not part of the codec. */
#ifndef CG_TEST_STOMP_TEST_H
#define CG_TEST_STOMP_TEST_H

#include "stomp/stomp.h"

/* stomp_writer_header() with NUL-terminated strings. */
void stomp_writer_header_cstr(struct stomp_writer *w, const char *name,
                              const char *value);

#endif
