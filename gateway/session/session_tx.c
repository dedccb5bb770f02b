/* session_tx.c - STOMP transactions of a session: BEGIN, COMMIT, ABORT,
 * and the SEND and ACK frames they hold back.
 *
 * What it does. session_dispatch.c checks every frame against its
 * dispatch table (rules[]); BEGIN, COMMIT and ABORT are handled here
 * (cg_session__on_begin/_on_commit/_on_abort), and a SEND or ACK that names
 * a transaction is copied into it (cg_session__tx_add) instead of taking
 * effect. COMMIT replays the held frames in order through session_chat.c
 * (cg_session__chat_send, cg_session__chat_confirm), as if they had just
 * arrived; ABORT drops them.
 *
 * A transaction:
 *
 *            BEGIN                  COMMIT: frames take effect, in order
 *   (none) -------> open ------------------------------------------> (none)
 *                   |  SEND/ACK with transaction: copied (bounded)
 *                   +-- ABORT, DISCONNECT, ERROR, close: dropped
 *
 * Limits: SESSION_MAX_TX open transactions, max_tx_frames frames each;
 * each copy is bounded by max_frame_bytes (it came from one frame), and
 * all the copies of a session's open transactions together by
 * max_tx_bytes (without it, 16 transactions of 128 frames of 64 KiB could
 * pin 128 MiB per connection until it closed).
 * Crossing a limit is an error for session.c's cg_session__fail().
 *
 * Owns the open transactions (s->txs, s->ntx, s->tx_bytes) and the copies
 * they hold;
 * cg_session__tx_abort_all() frees them all (DISCONNECT, close, destroy). */
#include "fmacros.h"

#include <stdint.h>
#include <string.h>

#include "core/common.h"
#include "core/config.h"
#include "session/session.h"
#include "session/session_internal.h"
#include "stomp/stomp.h"

/* Open transactions per session. stomp.js opens one at a time; the bound
 * only stops a peer from opening thousands (each one is capped by
 * max_tx_frames already). */
#define SESSION_MAX_TX 16

struct tx_op {
    struct tx_op *next;
    uint64_t      ack_id;       /* TX_ACK: chat message id to confirm */
    uint32_t      dest_len;     /* TX_SEND: destination then body in data */
    uint32_t      body_len;
    uint8_t       kind;
    char          data[];
};

struct tx {
    struct tx    *next;
    struct tx_op *head, *tail;
    uint32_t      nops;
    size_t        bytes;        /* what its copies count in s->tx_bytes */
    uint16_t      name_len;
    char          name[];
};

/* ------------------------------------------------------------------------ */
/* Transactions                                                              */
/* ------------------------------------------------------------------------ */

struct tx **
cg_session__tx_find(cg_session *s, const struct stomp_str *name)
{
    struct tx **pp;

    for (pp = &s->txs; *pp != NULL; pp = &(*pp)->next)
        if ((*pp)->name_len == name->len && memcmp((*pp)->name, name->ptr, name->len) == 0)
            return pp;
    return NULL;
}

static void
tx_free(struct tx *tx)
{
    struct tx_op *op = tx->head;

    while (op != NULL) {
        struct tx_op *next = op->next;

        cg_free(op);
        op = next;
    }
    cg_free(tx);
}

void
cg_session__tx_abort_all(cg_session *s)
{
    while (s->txs != NULL) {
        struct tx *tx = s->txs;

        s->txs = tx->next;
        tx_free(tx);
    }
    s->ntx = 0;
    s->tx_bytes = 0;
}

/* Buffer a SEND (or ACK) of transaction c->h[H_TRANSACTION] until COMMIT. */
int
cg_session__tx_add(cg_session *s, struct frame_ctx *c, int kind, uint64_t ack_id)
{
    const struct stomp_str *name = c->h[H_TRANSACTION];
    const struct stomp_str *dest = c->h[H_DESTINATION];
    struct stomp_str body = c->f->body;
    struct tx **pp = cg_session__tx_find(s, name);
    struct tx_op *op;
    char r[80];
    size_t dl = kind == TX_SEND ? dest->len : 0, bl = kind == TX_SEND ? body.len : 0;
    size_t cost = sizeof *op + dl + bl;

    if (pp == NULL)
        return fail(c, CG_E_PROTO, "unknown transaction %s", repr(name, r, sizeof r));
    if ((*pp)->nops >= cfg_size(cfg_of(s)->max_tx_frames))
        return fail(c, CG_E_LIMIT, "transaction exceeds %lld frames (max_tx_frames)",
                    (long long)cfg_of(s)->max_tx_frames);
    if (cost > cfg_size(cfg_of(s)->max_tx_bytes) ||
        s->tx_bytes > cfg_size(cfg_of(s)->max_tx_bytes) - cost)
        return fail(c, CG_E_LIMIT, "transactions exceed %lld bytes (max_tx_bytes)",
                    (long long)cfg_of(s)->max_tx_bytes);
    /* Each copy is bounded by max_frame_bytes: it came from one frame. */
    if ((op = cg_malloc(sizeof *op + dl + bl)) == NULL)
        return fail(c, CG_E_NOMEM, "out of memory");
    op->next = NULL;
    op->kind = (uint8_t)kind;
    op->ack_id = ack_id;
    op->dest_len = (uint32_t)dl;
    op->body_len = (uint32_t)bl;
    if (dl)
        memcpy(op->data, dest->ptr, dl);
    if (bl)
        memcpy(op->data + dl, body.ptr, bl);
    if ((*pp)->tail)
        (*pp)->tail->next = op;
    else
        (*pp)->head = op;
    (*pp)->tail = op;
    (*pp)->nops++;
    (*pp)->bytes += cost;
    s->tx_bytes += cost;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* BEGIN, COMMIT, ABORT (handlers in session_dispatch.c's rules[])          */
/* ------------------------------------------------------------------------ */

int
cg_session__on_begin(cg_session *s, struct frame_ctx *c)
{
    const struct stomp_str *name = c->h[H_TRANSACTION];
    struct tx *tx;
    char r[80];

    if (cg_session__tx_find(s, name) != NULL)
        return fail(c, CG_E_PROTO, "transaction %s already begun", repr(name, r, sizeof r));
    if (s->ntx >= SESSION_MAX_TX)
        return fail(c, CG_E_LIMIT, "more than %d open transactions", SESSION_MAX_TX);
    if (name->len > UINT16_MAX || (tx = cg_calloc(1, sizeof *tx + name->len)) == NULL)
        return fail(c, CG_E_NOMEM, "out of memory");
    memcpy(tx->name, name->ptr, name->len);
    tx->name_len = (uint16_t)name->len;
    tx->next = s->txs;
    s->txs = tx;
    s->ntx++;
    return 0;
}

/* Remove and return the named transaction, or NULL. */
static struct tx *
tx_take(cg_session *s, const struct stomp_str *name)
{
    struct tx **pp = cg_session__tx_find(s, name), *tx;

    if (pp == NULL)
        return NULL;
    tx = *pp;
    *pp = tx->next;
    s->ntx--;
    s->tx_bytes -= tx->bytes;
    return tx;
}

int
cg_session__on_commit(cg_session *s, struct frame_ctx *c)
{
    struct tx *tx = tx_take(s, c->h[H_TRANSACTION]);
    struct tx_op *op;
    char r[80];
    int rc = 0;

    if (tx == NULL)
        return fail(c, CG_E_PROTO, "unknown transaction %s",
                    repr(c->h[H_TRANSACTION], r, sizeof r));
    /* The frames take effect now, in order; COMMIT's RECEIPT (queued by
     * dispatch after this returns) follows all their answers. */
    for (op = tx->head; op != NULL && rc == 0 && s->state == ST_CONNECTED; op = op->next) {
        if (op->kind == TX_SEND)
            rc = cg_session__chat_send(s, (struct stomp_str){ op->data, op->dest_len },
                                       (struct stomp_str){ op->data + op->dest_len,
                                                           op->body_len });
        else
            rc = cg_session__chat_confirm(s, op->ack_id);
    }
    tx_free(tx);
    return rc < 0 ? fail(c, rc, "%s", cg_strerror(rc)) : 0;
}

int
cg_session__on_abort(cg_session *s, struct frame_ctx *c)
{
    struct tx *tx = tx_take(s, c->h[H_TRANSACTION]);
    char r[80];

    if (tx == NULL)
        return fail(c, CG_E_PROTO, "unknown transaction %s",
                    repr(c->h[H_TRANSACTION], r, sizeof r));
    tx_free(tx);
    return 0;
}

