#include "fmacros.h"

/* test_encode.c - ll_encode_header(), ll_encode(), the names of operations
 * and codes, and round trips through ll_parse(): every operation alone,
 * and many packets written into one buffer and read back whatever way the
 * buffer is cut.
 */

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard_buf.h"
#include "longlink/longlink.h"

#define MEM(p, n) ((struct cr_mem){(p), (n)})

/* ------------------------------------------------------------------------ */
/* The header                                                                */
/* ------------------------------------------------------------------------ */

Test(ll_encode, header_is_big_endian_with_length_16_and_version_1)
{
    static const unsigned char want[16] = {
        0x00, 0x00, 0x01, 0x2c, /* 300 = 16 + 284 */
        0x00, 0x10,             /* header length 16 */
        0x00, 0x01,             /* version 1 */
        0x00, 0x00, 0x00, 0x03, /* send */
        0x01, 0x02, 0x03, 0x04, /* sequence */
    };
    unsigned char got[16];

    cr_assert(eq(int, ll_encode_header(got, LL_OP_SEND, 0x01020304u, 284), 16));
    cr_assert(eq(mem, MEM(got, 16), MEM(want, 16)));
}

Test(ll_encode, header_only_packet_has_length_16)
{
    unsigned char got[16];

    cr_assert(eq(int, ll_encode_header(got, LL_OP_HEARTBEAT_ANSWER, 9, 0), 16));
    cr_assert(eq(u8, got[3], 16));
    cr_assert(eq(u8, got[11], LL_OP_HEARTBEAT_ANSWER));
}

Test(ll_encode, unknown_op_is_refused_and_nothing_written)
{
    unsigned char got[16];

    memset(got, 0xAA, sizeof(got));
    cr_assert(eq(int, ll_encode_header(got, 0, 1, 0), LL_E_UNKNOWN_OP));
    cr_assert(eq(int, ll_encode_header(got, LL_OP_MAX + 1, 1, 0),
                 LL_E_UNKNOWN_OP));
    cr_assert(eq(u8, got[0], 0xAA));
}

Test(ll_encode, body_the_length_field_cannot_carry)
{
    unsigned char got[16];

    cr_assert(eq(int, ll_encode_header(got, LL_OP_PUSH, 0, UINT32_MAX - 16),
                 16));
    cr_assert(eq(u8, got[0], 0xff));
    cr_assert(eq(u8, got[3], 0xff));
    cr_assert(eq(int, ll_encode_header(got, LL_OP_PUSH, 0,
                                       (size_t)UINT32_MAX - 15),
                 LL_E_NOSPACE));
}

Test(ll_encode, whole_packet_measure_exact_and_short)
{
    unsigned char out[21];

    cr_assert(eq(sz, ll_encode(NULL, 0, LL_OP_SEND, 1, "hello", 5), 21));
    memset(out, 0, sizeof(out));
    cr_assert(eq(sz, ll_encode(out, 20, LL_OP_SEND, 1, "hello", 5),
                 LL_E_NOSPACE));
    cr_assert(eq(u8, out[3], 0), "nothing written when it does not fit");
    cr_assert(eq(sz, ll_encode(out, 21, LL_OP_SEND, 1, "hello", 5), 21));
    cr_assert(eq(mem, MEM(out + 16, 5), MEM("hello", 5)));
    cr_assert(eq(sz, ll_encode(out, 16, LL_OP_INIT, 1, NULL, 0), 16));
    cr_assert(eq(sz, ll_encode(NULL, 0, 0, 1, NULL, 0), LL_E_UNKNOWN_OP));
}

/* ------------------------------------------------------------------------ */
/* Names                                                                     */
/* ------------------------------------------------------------------------ */

Test(ll_names, every_op_has_a_name_and_a_direction)
{
    uint32_t op;
    int clients = 0;

    cr_assert(eq(ptr, (void *)ll_op_name(0), NULL));
    cr_assert(eq(int, ll_op_dir(0), 0));
    cr_assert(eq(ptr, (void *)ll_op_name(LL_OP_MAX + 1), NULL));
    cr_assert(eq(ptr, (void *)ll_op_name(UINT32_MAX), NULL));
    for (op = LL_OP_MIN; op <= LL_OP_MAX; op++) {
        uint32_t other;

        cr_assert(not(eq(ptr, (void *)ll_op_name(op), NULL)), "op %u", op);
        cr_assert(ll_op_dir(op) == LL_DIR_CLIENT || ll_op_dir(op) == LL_DIR_SERVER);
        clients += ll_op_dir(op) == LL_DIR_CLIENT;
        for (other = LL_OP_MIN; other < op; other++)
            cr_assert(not(eq(str, (char *)ll_op_name(op),
                             (char *)ll_op_name(other))));
    }
    /* auth, send, confirm, init, sync, heartbeat. */
    cr_assert(eq(int, clients, 6));
    cr_assert(eq(int, ll_op_dir(LL_OP_CLOSE), LL_DIR_SERVER));
    cr_assert(eq(str, (char *)ll_op_name(LL_OP_CONFIRM_STATUS),
                 "confirm_status"));
}

Test(ll_names, every_code_has_its_own_name_and_line)
{
    static const int codes[] = {
        LL_E_LENGTH_TOO_SHORT, LL_E_BAD_HEADER_LENGTH, LL_E_BAD_VERSION,
        LL_E_UNKNOWN_OP, LL_E_TOO_LARGE, LL_E_NOSPACE,
    };
    size_t i, j;

    for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        cr_assert(not(eq(ptr, (void *)ll_errname(codes[i]), NULL)));
        cr_assert(not(eq(str, (char *)ll_strerror(codes[i]), "unknown error")));
        for (j = 0; j < i; j++) {
            cr_assert(not(eq(int, codes[i], codes[j])));
            cr_assert(not(eq(str, (char *)ll_strerror(codes[i]),
                             (char *)ll_strerror(codes[j]))));
            cr_assert(not(eq(str, (char *)ll_errname(codes[i]),
                             (char *)ll_errname(codes[j]))));
        }
    }
    cr_assert(eq(str, (char *)ll_errname(LL_OK), "LL_OK"));
    cr_assert(eq(str, (char *)ll_strerror(LL_OK), "success"));
    cr_assert(eq(str, (char *)ll_strerror(-7), "unknown error"));
    cr_assert(eq(str, (char *)ll_strerror(1), "unknown error"));
    cr_assert(eq(str, (char *)ll_strerror(INT32_MIN), "unknown error"));
    cr_assert(eq(ptr, (void *)ll_errname(-7), NULL));
    cr_assert(eq(str, (char *)ll_errname(LL_E_TOO_LARGE), "LL_E_TOO_LARGE"));
}

Test(ll_names, limit_message_names_the_limit)
{
    struct ll_limits lim = {.max_body = 65536};
    char buf[64];

    cr_assert(eq(int, ll_strerror_limit(LL_E_TOO_LARGE, &lim, buf, sizeof(buf)),
                 (int)strlen("packet body exceeds 65536 bytes (max_body)")));
    cr_assert(eq(str, buf, "packet body exceeds 65536 bytes (max_body)"));
    ll_strerror_limit(LL_E_BAD_VERSION, &lim, buf, sizeof(buf));
    cr_assert(eq(str, buf, "unknown protocol version"));
    ll_strerror_limit(LL_E_TOO_LARGE, &lim, buf, 8);
    cr_assert(eq(str, buf, "packet "));
}

/* ------------------------------------------------------------------------ */
/* Round trips                                                               */
/* ------------------------------------------------------------------------ */

Test(ll_roundtrip, every_op_with_and_without_a_body)
{
    static const char body[] = "{\"code\":200,\"content\":\"\xe8\xb5\xb7\"}";
    unsigned char buf[128];
    uint32_t op;
    size_t blen;

    for (op = LL_OP_MIN; op <= LL_OP_MAX; op++) {
        for (blen = 0; blen <= sizeof(body) - 1; blen += sizeof(body) - 1) {
            struct ll_parser p;
            struct ll_packet pk;
            ssize_t n = ll_encode(buf, sizeof(buf), op, op * 1000u + 1, body,
                                  blen);

            cr_assert(eq(sz, n, (ssize_t)(16 + blen)));
            ll_parser_init(&p, NULL);
            cr_assert(eq(sz, ll_parse(&p, buf, (size_t)n, &pk), n));
            cr_assert(eq(u32, pk.op, op));
            cr_assert(eq(u32, pk.seq, op * 1000u + 1));
            cr_assert(eq(sz, pk.body_len, blen));
            cr_assert(eq(mem, MEM(pk.body, blen), MEM(body, blen)));
        }
    }
}

/* Writes 40 packets of varying operation, sequence and body length into
 * one buffer, then reads them back from a guard buffer cut at every offset
 * into two pieces and byte by byte. */
Test(ll_roundtrip, many_packets_in_one_buffer_any_split)
{
    enum { N = 40 };
    static unsigned char buf[N * (16 + 40)];
    static char body[40];
    struct guard_buf gb = {0};
    size_t len = 0, i, cut;

    for (i = 0; i < sizeof(body); i++)
        body[i] = (char)('a' + i % 26);
    for (i = 0; i < N; i++) {
        uint32_t op = LL_OP_MIN + (uint32_t)(i % (LL_OP_MAX - LL_OP_MIN + 1));
        ssize_t n = ll_encode(buf + len, sizeof(buf) - len, op,
                              (uint32_t)i * 2654435761u, body, i % 40);

        cr_assert(gt(sz, n, 0));
        len += (size_t)n;
    }
    cr_assert(eq(int, guard_buf_init(&gb, len), 0));
    for (cut = 0; cut <= len; cut++) {
        int bytewise;

        for (bytewise = 0; bytewise <= (cut == 0); bytewise++) {
            struct ll_parser p;
            size_t have = bytewise ? 0 : cut, start = 0, got = 0;

            ll_parser_init(&p, NULL);
            for (;;) {
                struct ll_packet pk;
                const char *b = guard_buf_place(&gb, buf + start, have - start);
                ssize_t n = ll_parse(&p, b, have - start, &pk);

                cr_assert(ge(sz, n, 0));
                if (n == LL_AGAIN) {
                    if (have == len)
                        break;
                    have = bytewise ? have + 1 : len;
                    continue;
                }
                cr_assert(eq(u32, pk.op,
                             LL_OP_MIN + (uint32_t)(got % (LL_OP_MAX - LL_OP_MIN + 1))));
                cr_assert(eq(u32, pk.seq, (uint32_t)got * 2654435761u));
                cr_assert(eq(sz, pk.body_len, got % 40));
                cr_assert(eq(mem, MEM(pk.body, pk.body_len), MEM(body, pk.body_len)));
                start += (size_t)n;
                got++;
            }
            cr_assert(eq(sz, got, N), "cut %zu bytewise %d", cut, bytewise);
            cr_assert(eq(sz, start, len));
        }
    }
    guard_buf_cleanup(&gb);
}
