#include "fmacros.h"

/* frame.c - command names and header lookup.
 *
 * One table maps enum stomp_command to its wire name and back. The parser
 * looks a command up once per frame, the writer once per frame written;
 * fifteen length-filtered comparisons cost less than hashing would, and the
 * table stays the single place that spells the commands.
 *
 * stomp_frame_header() scans the headers in wire order and returns the first
 * match: STOMP 1.2 "Repeated Header Entries" says only the first of repeated
 * headers is used. Frames carry a few headers (64 at most by default), so a
 * linear scan beats building any index.
 *
 * No state: the table is const.
 */

#include <string.h>

#include "stomp/stomp.h"

#define COMMAND(e, s) [e] = {s, sizeof(s) - 1}

static const struct {
    const char *name;
    size_t len;
} commands[STOMP_CMD_COUNT] = {
    COMMAND(STOMP_CMD_CONNECT, "CONNECT"),
    COMMAND(STOMP_CMD_STOMP, "STOMP"),
    COMMAND(STOMP_CMD_CONNECTED, "CONNECTED"),
    COMMAND(STOMP_CMD_SEND, "SEND"),
    COMMAND(STOMP_CMD_SUBSCRIBE, "SUBSCRIBE"),
    COMMAND(STOMP_CMD_UNSUBSCRIBE, "UNSUBSCRIBE"),
    COMMAND(STOMP_CMD_ACK, "ACK"),
    COMMAND(STOMP_CMD_NACK, "NACK"),
    COMMAND(STOMP_CMD_BEGIN, "BEGIN"),
    COMMAND(STOMP_CMD_COMMIT, "COMMIT"),
    COMMAND(STOMP_CMD_ABORT, "ABORT"),
    COMMAND(STOMP_CMD_DISCONNECT, "DISCONNECT"),
    COMMAND(STOMP_CMD_MESSAGE, "MESSAGE"),
    COMMAND(STOMP_CMD_RECEIPT, "RECEIPT"),
    COMMAND(STOMP_CMD_ERROR, "ERROR"),
    /* Not a wire command: a readable name for logs. Being lowercase, it
     * can never match a command line. */
    COMMAND(STOMP_CMD_HEARTBEAT, "heart-beat"),
};

const char *
stomp_command_name(enum stomp_command cmd)
{
    if ((unsigned)cmd >= STOMP_CMD_COUNT)
        return NULL;
    return commands[cmd].name;
}

int
stomp_command_from(const char *ptr, size_t len)
{
    int i;

    for (i = 0; i < STOMP_CMD_HEARTBEAT; i++) {
        if (commands[i].len == len && memcmp(commands[i].name, ptr, len) == 0)
            return i;
    }
    return STOMP_E_UNKNOWN_COMMAND;
}

const struct stomp_str *
stomp_frame_header(const struct stomp_frame *f, const char *name)
{
    size_t len = strlen(name);
    size_t i;

    for (i = 0; i < f->nheaders; i++) {
        const struct stomp_header *h = &f->headers[i];

        if (h->name.len == len && memcmp(h->name.ptr, name, len) == 0)
            return &h->value;
    }
    return NULL;
}
