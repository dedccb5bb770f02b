#include "fmacros.h"

/* names.c - the names of operations and error codes, and who sends each
 * operation. No state: the tables are const and indexed by value (by -code
 * for errors), with designated initializers so each line stays next to its
 * value whatever order the enums are in.
 */

#include <stddef.h>
#include <stdio.h>

#include "longlink/longlink.h"

struct op_row {
    const char *name;
    int dir;
};

static const struct op_row ops[] = {
    [LL_OP_AUTH] = {"auth", LL_DIR_CLIENT},
    [LL_OP_AUTH_ANSWER] = {"auth_answer", LL_DIR_SERVER},
    [LL_OP_SEND] = {"send", LL_DIR_CLIENT},
    [LL_OP_SEND_STATUS] = {"send_status", LL_DIR_SERVER},
    [LL_OP_PUSH] = {"push", LL_DIR_SERVER},
    [LL_OP_CONFIRM] = {"confirm", LL_DIR_CLIENT},
    [LL_OP_CONFIRM_STATUS] = {"confirm_status", LL_DIR_SERVER},
    [LL_OP_INIT] = {"init", LL_DIR_CLIENT},
    [LL_OP_INIT_END] = {"init_end", LL_DIR_SERVER},
    [LL_OP_SYNC] = {"sync", LL_DIR_CLIENT},
    [LL_OP_SYNC_END] = {"sync_end", LL_DIR_SERVER},
    [LL_OP_NOTIFY] = {"notify", LL_DIR_SERVER},
    [LL_OP_HEARTBEAT] = {"heartbeat", LL_DIR_CLIENT},
    [LL_OP_HEARTBEAT_ANSWER] = {"heartbeat_answer", LL_DIR_SERVER},
    [LL_OP_CLOSE] = {"close", LL_DIR_SERVER},
    [LL_OP_PUSH_AGAIN] = {"push_again", LL_DIR_SERVER},
    [LL_OP_DELIVERED] = {"delivered", LL_DIR_SERVER},
};

#define NOPS (sizeof(ops) / sizeof(ops[0]))

const char *
ll_op_name(uint32_t op)
{
    return op < NOPS ? ops[op].name : NULL;
}

int
ll_op_dir(uint32_t op)
{
    return op < NOPS ? ops[op].dir : 0;
}

struct err_row {
    const char *name;
    const char *text;
};

static const struct err_row errs[] = {
    [-LL_OK] = {"LL_OK", "success"},
    [-LL_E_LENGTH_TOO_SHORT] = {"LL_E_LENGTH_TOO_SHORT",
                                "packet length below 16"},
    [-LL_E_BAD_HEADER_LENGTH] = {"LL_E_BAD_HEADER_LENGTH",
                                 "header length is not 16"},
    [-LL_E_BAD_VERSION] = {"LL_E_BAD_VERSION", "unknown protocol version"},
    [-LL_E_UNKNOWN_OP] = {"LL_E_UNKNOWN_OP", "unknown operation"},
    [-LL_E_TOO_LARGE] = {"LL_E_TOO_LARGE", "packet body too large (max_body)"},
    [-LL_E_NOSPACE] = {"LL_E_NOSPACE", "output buffer too small"},
};

#define NERRS (sizeof(errs) / sizeof(errs[0]))

const char *
ll_strerror(int code)
{
    if (code > 0 || code <= -(int)NERRS || errs[-code].text == NULL)
        return "unknown error";
    return errs[-code].text;
}

const char *
ll_errname(int code)
{
    if (code > 0 || code <= -(int)NERRS)
        return NULL;
    return errs[-code].name;
}

int
ll_strerror_limit(int code, const struct ll_limits *lim, char *buf, size_t cap)
{
    if (code == LL_E_TOO_LARGE && lim != NULL)
        return snprintf(buf, cap, "packet body exceeds %zu bytes (max_body)",
                        lim->max_body);
    return snprintf(buf, cap, "%s", ll_strerror(code));
}

