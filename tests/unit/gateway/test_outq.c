/* test_outq.c - the session's bounded outbound queue (gateway/session/outq.c):
 * byte accounting, tickets blocking and filling in request order, the
 * soft and hard limits, MESSAGE header rendering per STOMP version
 * through the stomp writer, and the same entries rendered as long-link
 * packets (operation by topic, sequence by request). */
#include "fmacros.h"

#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>

#include "chat/chat.h"
#include "core/buf.h"
#include "core/common.h"
#include "longlink/longlink.h"
#include "session/outq.h"
#include "session_test.h"

/* ---- a tiny subscription table for resolve() ------------------------- */

struct fake_sub {
    uint32_t    key;
    const char *id;
    const char *dest;
    int         client_ack;
    int         topic;
};

static struct fake_sub subs[] = {
    { 1, "sub-0", "/user/alice/recive", 0, CG_TOPIC_RECIVE },
    { 2, "s:1",   "/user/queue/send/status", 0, CG_TOPIC_SEND_STATUS },
    { 3, "c-1",   "/user/7/recive", 1, CG_TOPIC_RECIVE },
    { 4, "i",     "/user/queue/init/status", 0, CG_TOPIC_INIT_STATUS },
    { 5, "st",    "/user/queue/status", 0, CG_TOPIC_STATUS },
    { 6, "d",     "/user/queue/delivered", 0, CG_TOPIC_DELIVERED },
    { 7, "r",     "/user/queue/recive/status", 0, CG_TOPIC_RECIVE_STATUS },
};
static int subs_gone;            /* key whose subscription was removed */

static int
resolve(void *ctx, uint32_t key, struct cg_outq_target *out)
{
    size_t i;

    (void)ctx;
    if ((int)key == subs_gone)
        return CG_E_NOTFOUND;
    for (i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        if (subs[i].key == key) {
            out->dest = (struct stomp_str){ subs[i].dest, strlen(subs[i].dest) };
            out->sub_id = (struct stomp_str){ subs[i].id, strlen(subs[i].id) };
            out->client_ack = subs[i].client_ack;
            out->topic = subs[i].topic;
            return 0;
        }
    }
    return CG_E_NOTFOUND;
}

static struct cg_outq q;
static struct cg_wbuf wb;

static struct cg_outq_render
rctx(enum stomp_version v)
{
    return (struct cg_outq_render){ .version = v, .uid = 7, .resolve = resolve };
}

static void
setup(void)
{
    subs_gone = -1;
    cg_outq_init(&q, 4096, 1024, 500);
    cg_wbuf_init(&wb, 16);
}

static void
teardown(void)
{
    cg_outq_cleanup(&q);
    cg_wbuf_cleanup(&wb);
    cg_alloc_fail_after(0);
}

static struct cg_buf *
raw(const char *s)
{
    return cg_buf_create(s, strlen(s) + 1);      /* frames end with NUL */
}

/* Pop one frame and return it as a C string (frames end in NUL). */
static const char *
pop1(enum stomp_version v)
{
    struct cg_outq_render r = rctx(v);
    int n;

    cg_wbuf_reset(&wb);
    n = cg_outq_pop(&q, &wb, &r);
    if (n <= 0)
        return NULL;
    cr_assert(eq(sz, wb.len, (size_t)n));
    return cg_wbuf_data(&wb);
}

TestSuite(outq, .init = setup, .fini = teardown);

/* ---- accounting -------------------------------------------------------- */

Test(outq, counts_rendered_bytes_of_ready_entries)
{
    struct cg_outq_render r = rctx(STOMP_V1_2);
    struct cg_buf *body = cg_buf_create("{\"a\":1}", 7);
    size_t raw_len = strlen("RECEIPT\nreceipt-id:1\n\n") + 1, msg_len;
    int n;

    cr_assert(eq(int, cg_outq_push_raw(&q, raw("RECEIPT\nreceipt-id:1\n\n")), 0));
    cr_assert(eq(sz, cg_outq_bytes(&q), raw_len));
    cr_assert(eq(int, cg_outq_push_message(&q, NULL, 1, body, 42, CG_OUTQ_F_CHAT, &r), 0));
    msg_len = cg_outq_bytes(&q) - raw_len;
    cr_assert(eq(sz, cg_outq_chat(&q), 1));
    cg_buf_unref(body);                       /* the queue holds its own */

    cr_assert(not(eq(ptr, (void *)pop1(STOMP_V1_2), NULL)));
    cr_assert(eq(sz, cg_outq_bytes(&q), msg_len));
    cg_wbuf_reset(&wb);
    n = cg_outq_pop(&q, &wb, &r);
    cr_assert(eq(int, n, (int)msg_len));      /* measured size == rendered size */
    cr_assert(eq(sz, cg_outq_bytes(&q), 0));
    cr_assert(eq(sz, cg_outq_chat(&q), 0));
    cr_assert(eq(int, cg_outq_idle(&q), 1));
    cr_assert(eq(int, cg_outq_pop(&q, &wb, &r), 0));
}

Test(outq, message_for_a_missing_subscription_is_not_queued)
{
    struct cg_outq_render r = rctx(STOMP_V1_2);
    struct cg_buf *body = cg_buf_create("{}", 2);

    cr_assert(eq(int, cg_outq_push_message(&q, NULL, 99, body, 1, 0, &r), CG_E_NOTFOUND));
    cr_assert(eq(sz, cg_outq_bytes(&q), 0));
    cr_assert(eq(u32, body->refs, 1));
    cg_buf_unref(body);
}

Test(outq, message_whose_subscription_went_away_is_skipped_at_pop)
{
    struct cg_outq_render r = rctx(STOMP_V1_2);
    struct cg_buf *body = cg_buf_create("{}", 2);

    cr_assert(eq(int, cg_outq_push_message(&q, NULL, 1, body, 1, CG_OUTQ_F_CHAT, &r), 0));
    cr_assert(eq(int, cg_outq_push_raw(&q, raw("RECEIPT\nreceipt-id:r\n\n")), 0));
    subs_gone = 1;                            /* UNSUBSCRIBE meanwhile */
    cr_assert(eq(str, (char *)pop1(STOMP_V1_2), "RECEIPT\nreceipt-id:r\n\n"));
    cr_assert(eq(sz, cg_outq_bytes(&q), 0));
    cr_assert(eq(sz, cg_outq_chat(&q), 0));
    cr_assert(eq(u32, body->refs, 1));
    cg_buf_unref(body);
}

/* ---- tickets ----------------------------------------------------------- */

Test(outq, pending_ticket_blocks_everything_behind_it)
{
    struct cg_outq_render r = rctx(STOMP_V1_2);
    struct cg_outq_entry *t;
    struct cg_buf *ans = cg_buf_create("{\"code\":200}", 12);
    const char *f;

    cr_assert(eq(int, cg_outq_push_raw(&q, raw("RECEIPT\nreceipt-id:0\n\n")), 0));
    t = cg_outq_push_ticket(&q, 0, 0);
    cr_assert(not(eq(ptr, t, NULL)));
    cr_assert(eq(int, cg_outq_push_raw(&q, raw("RECEIPT\nreceipt-id:1\n\n")), 0));
    cr_assert(eq(sz, cg_outq_pending(&q), 1));

    cr_assert(eq(str, (char *)pop1(STOMP_V1_2), "RECEIPT\nreceipt-id:0\n\n"));
    cr_assert(eq(ptr, (void *)pop1(STOMP_V1_2), NULL));   /* blocked */
    cr_assert(eq(int, cg_outq_ready(&q), 0));
    cr_assert(eq(int, cg_outq_idle(&q), 0));

    cr_assert(eq(int, cg_outq_fill(&q, t, 2, ans, 5, 0, &r), 0));
    cg_buf_unref(ans);
    cr_assert(eq(sz, cg_outq_pending(&q), 0));
    cr_assert(eq(int, cg_outq_ready(&q), 1));
    f = pop1(STOMP_V1_2);
    cr_assert(not(eq(ptr, (void *)f, NULL)));
    cr_assert(eq(int, strncmp(f, "MESSAGE\n", 8), 0));
    cr_assert(not(eq(ptr, strstr(f, "message-id:st-5\n"), NULL)));
    cr_assert(eq(str, (char *)pop1(STOMP_V1_2), "RECEIPT\nreceipt-id:1\n\n"));
}

Test(outq, answers_inserted_after_a_ticket_keep_their_order)
{
    struct cg_outq_render r = rctx(STOMP_V1_2);
    struct cg_outq_entry *t, *pos;
    struct cg_buf *b1 = cg_buf_create("1", 1), *b2 = cg_buf_create("2", 1),
                  *b3 = cg_buf_create("3", 1);
    const char *f;

    t = cg_outq_push_ticket(&q, 0, 0);
    cr_assert(eq(int, cg_outq_push_raw(&q, raw("RECEIPT\nreceipt-id:after\n\n")), 0));
    pos = t;
    cr_assert(eq(int, cg_outq_fill(&q, t, 1, b1, 1, CG_OUTQ_F_CHAT, &r), 0));
    cr_assert(eq(int, cg_outq_push_message(&q, &pos, 1, b2, 2, CG_OUTQ_F_CHAT, &r), 0));
    cr_assert(eq(int, cg_outq_push_message(&q, &pos, 1, b3, 3, CG_OUTQ_F_CHAT, &r), 0));
    cg_buf_unref(b1);
    cg_buf_unref(b2);
    cg_buf_unref(b3);

    f = pop1(STOMP_V1_2);
    cr_assert(not(eq(ptr, strstr(f, "message-id:7-1\n"), NULL)));
    f = pop1(STOMP_V1_2);
    cr_assert(not(eq(ptr, strstr(f, "message-id:7-2\n"), NULL)));
    f = pop1(STOMP_V1_2);
    cr_assert(not(eq(ptr, strstr(f, "message-id:7-3\n"), NULL)));
    cr_assert(eq(str, (char *)pop1(STOMP_V1_2), "RECEIPT\nreceipt-id:after\n\n"));
}

Test(outq, ticket_filled_for_a_missing_subscription_is_dropped)
{
    struct cg_outq_render r = rctx(STOMP_V1_2);
    struct cg_outq_entry *t = cg_outq_push_ticket(&q, 0, 0);
    struct cg_buf *b = cg_buf_create("{}", 2);

    cr_assert(eq(int, cg_outq_push_raw(&q, raw("RECEIPT\nreceipt-id:x\n\n")), 0));
    cr_assert(eq(int, cg_outq_fill(&q, t, 99, b, 1, 0, &r), CG_E_NOTFOUND));
    cr_assert(eq(u32, b->refs, 1));
    cg_buf_unref(b);
    cr_assert(eq(str, (char *)pop1(STOMP_V1_2), "RECEIPT\nreceipt-id:x\n\n"));
    cr_assert(eq(int, cg_outq_idle(&q), 1));
}

Test(outq, dropped_ticket_stops_blocking)
{
    struct cg_outq_entry *t = cg_outq_push_ticket(&q, 0, 0);

    cr_assert(eq(int, cg_outq_push_raw(&q, raw("RECEIPT\nreceipt-id:x\n\n")), 0));
    cg_outq_drop(&q, t);
    cr_assert(eq(sz, cg_outq_pending(&q), 0));
    cr_assert(eq(str, (char *)pop1(STOMP_V1_2), "RECEIPT\nreceipt-id:x\n\n"));
}

Test(outq, cancelled_tickets_stay_allocated_until_cleanup)
{
    struct cg_outq_render r = rctx(STOMP_V1_2);
    struct cg_outq_entry *t1 = cg_outq_push_ticket(&q, 0, 0), *t2;
    struct cg_buf *b = cg_buf_create("{}", 2);

    cr_assert(eq(int, cg_outq_push_raw(&q, raw("ERROR\nmessage:x\n\n")), 0));
    t2 = cg_outq_push_ticket(&q, 0, 0);
    cg_outq_cancel_tickets(&q);
    cr_assert(eq(sz, cg_outq_pending(&q), 0));
    cr_assert(eq(int, cg_outq_ticket_cancelled(t1), 1));
    cr_assert(eq(str, (char *)pop1(STOMP_V1_2), "ERROR\nmessage:x\n\n"));
    cr_assert(eq(ptr, (void *)pop1(STOMP_V1_2), NULL));
    cr_assert(eq(int, cg_outq_idle(&q), 1));

    /* The late answers find their tickets (in limbo) and are dropped. */
    cr_assert(eq(int, cg_outq_fill(&q, t1, 1, b, 1, 0, &r), CG_E_NOTFOUND));
    cg_outq_fill_raw(&q, t2, raw("RECEIPT\nreceipt-id:late\n\n"));
    cr_assert(eq(u32, b->refs, 1));
    cg_buf_unref(b);
    cr_assert(eq(ptr, (void *)pop1(STOMP_V1_2), NULL));
    cr_assert(eq(sz, cg_outq_bytes(&q), 0));
    /* teardown's cleanup frees the limbo; ASan reports any leak */
}

Test(outq, discard_drops_ready_entries_and_keeps_tickets)
{
    struct cg_outq_render r = rctx(STOMP_V1_2);
    struct cg_buf *b = cg_buf_create("{}", 2);
    struct cg_outq_entry *t;

    cr_assert(eq(int, cg_outq_push_message(&q, NULL, 1, b, 1, CG_OUTQ_F_CHAT, &r), 0));
    cr_assert(eq(int, cg_outq_push_message(&q, NULL, 1, b, 2, CG_OUTQ_F_CHAT, &r), 0));
    t = cg_outq_push_ticket(&q, 0, 0);
    cr_assert(eq(int, cg_outq_push_raw(&q, raw("RECEIPT\nreceipt-id:1\n\n")), 0));
    cr_assert(eq(sz, cg_outq_discard(&q), 2));
    cr_assert(eq(sz, cg_outq_bytes(&q), 0));
    cr_assert(eq(u32, b->refs, 1));
    cr_assert(eq(sz, cg_outq_pending(&q), 1));
    cr_assert(eq(int, cg_outq_fill(&q, t, 2, b, 3, 0, &r), 0));   /* still valid */
    cg_buf_unref(b);
    cr_assert(not(eq(ptr, (void *)pop1(STOMP_V1_2), NULL)));
    cr_assert(eq(int, cg_outq_idle(&q), 1));
}

Test(outq, pop_out_of_memory_keeps_the_entry)
{
    cr_assert(eq(int, cg_outq_push_raw(&q, raw("RECEIPT\nreceipt-id:1\n\n")), 0));
    {
        struct cg_outq_render r = rctx(STOMP_V1_2);

        cg_alloc_fail_after(1);
        cr_assert(eq(int, cg_outq_pop(&q, &wb, &r), CG_E_NOMEM));
        cg_alloc_fail_after(0);
    }
    cr_assert(eq(str, (char *)pop1(STOMP_V1_2), "RECEIPT\nreceipt-id:1\n\n"));
}

Test(outq, push_out_of_memory_releases_the_frame)
{
    struct cg_outq_render r = rctx(STOMP_V1_2);
    struct cg_buf *b = cg_buf_create("{}", 2);

    cg_alloc_fail_after(1);
    cr_assert(eq(int, cg_outq_push_message(&q, NULL, 1, b, 1, 0, &r), CG_E_NOMEM));
    cr_assert(eq(ptr, cg_outq_push_ticket(&q, 0, 0), NULL));
    cg_alloc_fail_after(0);
    cr_assert(eq(u32, b->refs, 1));
    cg_buf_unref(b);
    cr_assert(eq(sz, cg_outq_bytes(&q), 0));
    cr_assert(eq(sz, cg_outq_pending(&q), 0));
}

/* ---- limits ------------------------------------------------------------ */

/* A RAW frame of exactly n bytes. */
static void
push_n(size_t n)
{
    struct cg_buf *b = cg_buf_create(NULL, n);

    memset(b->data, 'x', n);
    cr_assert(eq(int, cg_outq_push_raw(&q, b), 0));
}

Test(outq, hard_limit_acts_one_byte_past_it)
{
    push_n(4096);                             /* max_bytes: at the limit */
    cr_assert(eq(int, cg_outq_check(&q, 1000), CG_OUTQ_OK));
    push_n(1);
    cr_assert(eq(int, cg_outq_check(&q, 1000), CG_OUTQ_OVER_HARD));
}

Test(outq, soft_limit_must_last_soft_ms)
{
    push_n(1024);                             /* soft_bytes: at the limit */
    cr_assert(eq(int, cg_outq_check(&q, 1000), CG_OUTQ_OK));
    cr_assert(eq(u64, cg_outq_soft_deadline(&q), 0));
    push_n(1);
    cr_assert(eq(int, cg_outq_check(&q, 1000), CG_OUTQ_OK));   /* starts the clock */
    cr_assert(eq(u64, cg_outq_soft_deadline(&q), 1500));
    cr_assert(eq(int, cg_outq_check(&q, 1499), CG_OUTQ_OK));
    cr_assert(eq(int, cg_outq_check(&q, 1500), CG_OUTQ_OVER_SOFT));
}

Test(outq, soft_limit_clock_resets_when_the_queue_drains)
{
    push_n(2000);
    cr_assert(eq(int, cg_outq_check(&q, 1000), CG_OUTQ_OK));
    cr_assert(not(eq(u64, cg_outq_soft_deadline(&q), 0)));
    cr_assert(not(eq(ptr, (void *)pop1(STOMP_V1_2), NULL)));
    cr_assert(eq(int, cg_outq_check(&q, 1400), CG_OUTQ_OK));
    cr_assert(eq(u64, cg_outq_soft_deadline(&q), 0));
    push_n(2000);
    cr_assert(eq(int, cg_outq_check(&q, 1600), CG_OUTQ_OK));   /* a new clock */
    cr_assert(eq(int, cg_outq_check(&q, 2099), CG_OUTQ_OK));
    cr_assert(eq(int, cg_outq_check(&q, 2100), CG_OUTQ_OVER_SOFT));
}

Test(outq, zero_limits_disable_checking)
{
    cg_outq_cleanup(&q);
    cg_outq_init(&q, 0, 0, 0);
    push_n(100000);
    cr_assert(eq(int, cg_outq_check(&q, 5), CG_OUTQ_OK));
}

/* ---- rendering --------------------------------------------------------- */

/* Rows hold their strings inline: Criterion runs each parameter in a
 * re-executed worker, where pointers into the parent's data are void. */
struct render_row {
    enum stomp_version v;
    uint32_t           key;
    unsigned           flags;
    char               expect[256];
};

#define CT "content-type:application/json;charset=UTF-8\n"

ParameterizedTestParameters(outq, renders_message_headers_per_version)
{
    static struct render_row rows[] = {
        /* chat message on an auto subscription */
        { STOMP_V1_2, 1, CG_OUTQ_F_CHAT,
          "MESSAGE\ndestination:/user/alice/recive\nsubscription:sub-0\n"
          "message-id:7-42\n" CT "content-length:7\n\n{\"a\":1}" },
        /* redelivered */
        { STOMP_V1_1, 1, CG_OUTQ_F_CHAT | CG_OUTQ_F_REDELIVERED,
          "MESSAGE\ndestination:/user/alice/recive\nsubscription:sub-0\n"
          "message-id:7-42\n" CT "redelivered:true\ncontent-length:7\n\n{\"a\":1}" },
        /* 1.1 escapes the colon of a client-chosen id; 1.0 cannot */
        { STOMP_V1_1, 2, 0,
          "MESSAGE\ndestination:/user/queue/send/status\nsubscription:s\\c1\n"
          "message-id:st-42\n" CT "content-length:7\n\n{\"a\":1}" },
        { STOMP_V1_0, 2, 0,
          "MESSAGE\ndestination:/user/queue/send/status\nsubscription:s:1\n"
          "message-id:st-42\n" CT "content-length:7\n\n{\"a\":1}" },
        /* 1.2 client ack: ack header names the message-id */
        { STOMP_V1_2, 3, CG_OUTQ_F_CHAT,
          "MESSAGE\ndestination:/user/7/recive\nsubscription:c-1\n"
          "message-id:7-42\n" CT "ack:7-42\ncontent-length:7\n\n{\"a\":1}" },
        /* ... but 1.1 has no ack header */
        { STOMP_V1_1, 3, CG_OUTQ_F_CHAT,
          "MESSAGE\ndestination:/user/7/recive\nsubscription:c-1\n"
          "message-id:7-42\n" CT "content-length:7\n\n{\"a\":1}" },
    };

    return cr_make_param_array(struct render_row, rows, sizeof rows / sizeof rows[0]);
}

ParameterizedTest(struct render_row *row, outq, renders_message_headers_per_version)
{
    struct cg_outq_render r = rctx(row->v);
    struct cg_buf *b = cg_buf_create("{\"a\":1}", 7);
    size_t elen = strlen(row->expect) + 1;       /* with the frame's NUL */
    int n;

    cr_assert(eq(int, cg_outq_push_message(&q, NULL, row->key, b, 42, row->flags, &r), 0));
    cr_assert(eq(sz, cg_outq_bytes(&q), elen));
    cg_buf_unref(b);
    n = cg_outq_pop(&q, &wb, &r);
    cr_assert(eq(int, n, (int)elen));
    cr_assert(eq(mem, ((struct cr_mem){ cg_wbuf_data(&wb), elen }),
                 ((struct cr_mem){ row->expect, elen })));
}

Test(outq, body_with_nul_is_framed_by_content_length)
{
    struct cg_outq_render r = rctx(STOMP_V1_2);
    struct cg_buf *b = cg_buf_create("a\0b", 3);
    static const char expect[] =
        "MESSAGE\ndestination:/user/alice/recive\nsubscription:sub-0\n"
        "message-id:st-1\n" CT "content-length:3\n\na\0b";
    int n;

    cr_assert(eq(int, cg_outq_push_message(&q, NULL, 1, b, 1, 0, &r), 0));
    cg_buf_unref(b);
    n = cg_outq_pop(&q, &wb, &r);
    cr_assert(eq(int, n, (int)sizeof expect));
    cr_assert(eq(mem, ((struct cr_mem){ cg_wbuf_data(&wb), sizeof expect }),
                 ((struct cr_mem){ expect, sizeof expect })));
}

Test(outq, frames_batch_into_one_write_buffer)
{
    struct cg_outq_render r = rctx(STOMP_V1_2);
    int a, b;

    cr_assert(eq(int, cg_outq_push_raw(&q, raw("RECEIPT\nreceipt-id:1\n\n")), 0));
    cr_assert(eq(int, cg_outq_push_raw(&q, raw("RECEIPT\nreceipt-id:2\n\n")), 0));
    a = cg_outq_pop(&q, &wb, &r);
    b = cg_outq_pop(&q, &wb, &r);
    cr_assert(eq(sz, wb.len, (size_t)(a + b)));
    cr_assert(eq(mem, ((struct cr_mem){ cg_wbuf_data(&wb), wb.len }),
                 ((struct cr_mem){ "RECEIPT\nreceipt-id:1\n\n\0RECEIPT\nreceipt-id:2\n\n", wb.len })));
}

/* ---- long-link packets ---------------------------------------------------- */

static struct cg_outq_render
llctx(uint32_t tag, uint8_t req)
{
    return (struct cg_outq_render){ .version = STOMP_V1_2, .uid = 7, .resolve = resolve,
                                    .proto = CG_OUTQ_LONGLINK, .tag = tag, .req = req };
}

/* Pops one entry as a packet and checks it is exactly (op, seq, body). */
static void
assert_packet(uint32_t op, uint32_t seq, const char *body)
{
    struct cg_outq_render r = llctx(0, 0);
    char want[256];
    ssize_t n = ll_encode(want, sizeof want, op, seq, body, strlen(body));
    int got;

    cr_assert(gt(sz, n, 0));
    cg_wbuf_reset(&wb);
    got = cg_outq_pop(&q, &wb, &r);
    cr_assert(eq(int, got, (int)n), "op %u", op);
    cr_assert(zero(int, memcmp(cg_wbuf_data(&wb), want, (size_t)n)), "op %u", op);
}

Test(outq, longlink_answers_carry_their_request_and_pushes_sequence_0)
{
    struct cg_outq_render r = llctx(9, CG_CHAT_SEND);
    struct cg_buf *b = cg_buf_create("{\"code\":200}", 12);
    size_t bytes;

    cr_assert(eq(int, cg_outq_push_message(&q, NULL, 2, b, 1, 0, &r), 0));
    cr_assert(eq(int, cg_outq_push_message(&q, NULL, 1, b, 255, CG_OUTQ_F_CHAT, &r), 0));
    cr_assert(eq(int, cg_outq_push_message(&q, NULL, 3, b, 256,
                                           CG_OUTQ_F_CHAT | CG_OUTQ_F_REDELIVERED, &r), 0));
    cr_assert(eq(int, cg_outq_push_message(&q, NULL, 6, b, 2, 0, &r), 0));
    cr_assert(eq(int, cg_outq_push_message(&q, NULL, 7, b, 3, 0, &r), 0));
    bytes = cg_outq_bytes(&q);
    cr_assert(eq(sz, bytes, 5 * (16 + 12)), "measured as packets");
    assert_packet(LL_OP_SEND_STATUS, 9, "{\"code\":200}");
    assert_packet(LL_OP_PUSH, 0, "{\"code\":200}");
    assert_packet(LL_OP_PUSH_AGAIN, 0, "{\"code\":200}");
    assert_packet(LL_OP_DELIVERED, 0, "{\"code\":200}");
    assert_packet(LL_OP_CONFIRM_STATUS, 9, "{\"code\":200}");
    cr_assert(eq(sz, cg_outq_bytes(&q), 0));
    cg_buf_unref(b);
}

Test(outq, longlink_ticket_keeps_its_request_through_the_fill)
{
    struct cg_outq_render later = llctx(0, 0);    /* an answer's own context */
    struct cg_buf *b = cg_buf_create("{\"count\":0}", 11);
    struct cg_outq_entry *sync = cg_outq_push_ticket(&q, 5, CG_CHAT_SYNC);
    struct cg_outq_entry *init = cg_outq_push_ticket(&q, 6, CG_CHAT_INIT);

    cr_assert(not(eq(ptr, sync, NULL)));
    cr_assert(not(eq(ptr, init, NULL)));
    cr_assert(eq(int, cg_outq_fill(&q, init, 4, b, 1, 0, &later), 0));
    cr_assert(eq(int, cg_outq_pop(&q, &wb, &later), 0), "the sync still blocks");
    cr_assert(eq(int, cg_outq_fill(&q, sync, 4, b, 2, 0, &later), 0));
    assert_packet(LL_OP_SYNC_END, 5, "{\"count\":0}");
    assert_packet(LL_OP_INIT_END, 6, "{\"count\":0}");
    cg_buf_unref(b);
}

Test(outq, longlink_has_no_packet_for_the_status_topic)
{
    struct cg_outq_render r = llctx(3, CG_CHAT_SEND);
    struct cg_buf *b = cg_buf_create("{}", 2);

    cr_assert(eq(int, cg_outq_push_message(&q, NULL, 5, b, 1, 0, &r), CG_E_NOTFOUND));
    cr_assert(eq(sz, cg_outq_bytes(&q), 0));
    cg_buf_unref(b);
}
