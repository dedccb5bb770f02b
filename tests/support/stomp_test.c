/* stomp_test.c - test-only conveniences over libstomp (stomp_test.h). */
#include "fmacros.h"

#include <string.h>

#include "stomp_test.h"

void
stomp_writer_header_cstr(struct stomp_writer *w, const char *name,
                         const char *value)
{
    struct stomp_str n = {name, strlen(name)};
    struct stomp_str v = {value, strlen(value)};

    stomp_writer_header(w, n, v);
}
