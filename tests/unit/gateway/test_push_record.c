/* test_push_record.c - the codec of the records on a user's channel
 * (gateway/store/push_record.h): every record type round-trips both ways
 * (encode then decode gives the record back; decode then encode gives the
 * bytes back), the exact bytes chat.lua and auth.c write decode as meant,
 * and every malformed record is refused, by the decoder and the encoder
 * alike. */
#include "fmacros.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>

#include "core/common.h"
#include "store/push_record.h"

#define HASH "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void
check_round_trip(const struct cg_push_record *in)
{
    char buf[512];
    struct cg_push_record out;
    int n = cg_push_record_encode(in, buf, sizeof buf);

    cr_assert(gt(int, n, 0), "encodes");
    cr_assert(eq(chr, buf[n], '\0'), "NUL after the record");
    cr_assert(eq(int, cg_push_record_decode(buf, (size_t)n, &out), 0), "decodes");
    cr_assert(eq(int, out.type, in->type));
    cr_assert(eq(u64, out.id, in->id));
    cr_assert(eq(i64, out.time_ms, in->time_ms));
    cr_assert(eq(sz, out.len, in->len));
    cr_assert(eq(int, memcmp(out.data, in->data, in->len), 0));
    cr_assert(out.data >= buf && out.data + out.len <= buf + n, "borrowed from buf");
}

Test(push_record, every_type_round_trips_from_the_record)
{
    static const char body[] = "{\"id\":7,\"content\":\"a:b\\u0000c\"}";
    static const char nul[] = { '{', '\0', ':', '}' };
    struct cg_push_record m = { CG_PUSH_MESSAGE, 7, 1700000000123, body, sizeof body - 1 };
    struct cg_push_record d = { CG_PUSH_DELIVERED, 0, 0, "{\"id\":3}", 8 };
    struct cg_push_record l = { CG_PUSH_LOGOUT, 0, 0, HASH, CG_PUSH_HASH_LEN };

    check_round_trip(&m);
    check_round_trip(&d);
    check_round_trip(&l);
    /* The extremes of each number, and a body of raw bytes with ':' and NUL. */
    m = (struct cg_push_record){ CG_PUSH_MESSAGE, UINT64_MAX, INT64_MAX, nul, sizeof nul };
    check_round_trip(&m);
    m = (struct cg_push_record){ CG_PUSH_MESSAGE, 0, 0, "x", 1 };
    check_round_trip(&m);
}

/* Records as chat.lua and auth.c publish them. */
Test(push_record, what_the_writers_publish_decodes_and_encodes_back)
{
    static const char msg[] = "M255:1700000000123:{\"id\":255,\"chatID\":\"m-1\","
                              "\"content\":\"x:y\",\"time\":1700000000123}";
    static const char dlv[] = "D{\"msgID\":\"m-1\",\"id\":255,\"reciverId\":2,\"time\":17}";
    static const char out[] = "L" HASH;
    static const char *const all[] = { msg, dlv, out };
    struct cg_push_record rec;
    char buf[256];

    cr_assert(eq(int, cg_push_record_decode(msg, sizeof msg - 1, &rec), 0));
    cr_assert(eq(int, rec.type, CG_PUSH_MESSAGE));
    cr_assert(eq(u64, rec.id, 255));
    cr_assert(eq(i64, rec.time_ms, 1700000000123));
    cr_assert(eq(ptr, (void *)rec.data, (void *)(msg + 19)), "the body is the rest");
    cr_assert(eq(sz, rec.len, sizeof msg - 1 - 19));

    cr_assert(eq(int, cg_push_record_decode(dlv, sizeof dlv - 1, &rec), 0));
    cr_assert(eq(int, rec.type, CG_PUSH_DELIVERED));
    cr_assert(eq(ptr, (void *)rec.data, (void *)(dlv + 1)));
    cr_assert(eq(sz, rec.len, sizeof dlv - 2));

    cr_assert(eq(int, cg_push_record_decode(out, sizeof out - 1, &rec), 0));
    cr_assert(eq(int, rec.type, CG_PUSH_LOGOUT));
    cr_assert(eq(sz, rec.len, CG_PUSH_HASH_LEN));

    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        size_t len = strlen(all[i]);

        cr_assert(eq(int, cg_push_record_decode(all[i], len, &rec), 0));
        cr_assert(eq(int, cg_push_record_encode(&rec, buf, sizeof buf), (int)len));
        cr_assert(eq(str, buf, (char *)all[i]), "the same bytes again");
    }
}

/* ---- malformed records ---------------------------------------------------- */

struct bad {
    char   bytes[80];      /* an array: parameters are copied between processes */
    size_t len;            /* 0: strlen(bytes) */
    char   why[48];
};

ParameterizedTestParameters(push_record, malformed_is_refused)
{
    static struct bad cases[] = {
        { "", 0, "empty" },
        { "M", 0, "a type alone" },
        { "D", 0, "an empty notice" },
        { "L", 0, "no hash" },
        { "X{}", 0, "an unknown type" },
        { "K", 0, "a kick without a reason" },
        { "KAccount", 0, "an upper-case reason" },
        { "Kaccount\ndisabled", 0, "a new line in a reason" },
        { "I", 0, "a re-init without a reason" },
        { "Iaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0,
          "a reason of 65 bytes" },
        { "m1:2:{}", 0, "a type in lower case" },
        { " M1:2:{}", 0, "a leading space" },
        { "M1", 0, "no ':'" },
        { "M1:2", 0, "one ':'" },
        { "M1:2:", 0, "an empty body" },
        { "M:2:{}", 0, "an empty id" },
        { "M1::{}", 0, "an empty time" },
        { "M01:2:{}", 0, "a zero-padded id" },
        { "M1:02:{}", 0, "a zero-padded time" },
        { "M-1:2:{}", 0, "a signed id" },
        { "M+1:2:{}", 0, "a plus sign" },
        { "M1:-2:{}", 0, "a negative time" },
        { "M1a:2:{}", 0, "a letter in the id" },
        { "M 1:2:{}", 0, "a space in the id" },
        { "M1:2x:{}", 0, "a letter in the time" },
        { "M18446744073709551616:2:{}", 0, "an id past UINT64_MAX" },
        { "M1:9223372036854775808:{}", 0, "a time past INT64_MAX" },
        { "M123456789012345678901:2:{}", 0, "21 digits" },
        { "M1\0002:{}", 7, "a NUL in the number" },
        { "L0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde", 0,
          "63 hex digits" },
        { "L0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0", 0,
          "65 hex digits" },
        { "L0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef", 0,
          "upper-case hex" },
        { "L0123456789abcdeg0123456789abcdef0123456789abcdef0123456789abcdef", 0,
          "not hex" },
    };
    return cr_make_param_array(struct bad, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct bad *c, push_record, malformed_is_refused)
{
    struct cg_push_record rec;
    size_t len = c->len ? c->len : strlen(c->bytes);

    cr_assert(eq(int, cg_push_record_decode(c->bytes, len, &rec), CG_E_INVAL),
              "%s must be refused", c->why);
}

Test(push_record, kick_and_reinit_round_trip)
{
    struct cg_push_record rec, k = { CG_PUSH_KICK, 0, 0, "account disabled", 16 },
                          i = { CG_PUSH_REINIT, 0, 0, "redeliver", 9 };
    char buf[128];

    cr_assert(eq(int, cg_push_record_encode(&k, buf, sizeof buf), 17));
    cr_assert(eq(str, buf, "Kaccount disabled"));
    cr_assert(eq(int, cg_push_record_decode(buf, 17, &rec), 0));
    cr_assert(eq(int, rec.type, CG_PUSH_KICK));
    cr_assert(eq(sz, rec.len, 16));
    cr_assert(zero(int, memcmp(rec.data, "account disabled", 16)));
    cr_assert(eq(int, cg_push_record_encode(&i, buf, sizeof buf), 10));
    cr_assert(eq(int, cg_push_record_decode(buf, 10, &rec), 0));
    cr_assert(eq(int, rec.type, CG_PUSH_REINIT));
    /* 64 bytes is the longest reason */
    cr_assert(eq(int, cg_push_record_decode("Kaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                                            "aaaaaaaaaa", 65, &rec), 0));
}

Test(push_record, nothing_at_all_is_refused)
{
    struct cg_push_record rec;

    cr_assert(eq(int, cg_push_record_decode(NULL, 0, &rec), CG_E_INVAL));
}

/* The encoder writes nothing the decoder would refuse. */
Test(push_record, malformed_records_are_not_encoded)
{
    char buf[256];
    struct cg_push_record bad[] = {
        { CG_PUSH_MESSAGE, 1, 2, "", 0 },                   /* empty body */
        { CG_PUSH_MESSAGE, 1, 2, NULL, 1 },                 /* no body */
        { CG_PUSH_MESSAGE, 1, -1, "{}", 2 },                /* negative time */
        { CG_PUSH_DELIVERED, 0, 0, "", 0 },                 /* empty notice */
        { CG_PUSH_LOGOUT, 0, 0, HASH, CG_PUSH_HASH_LEN - 1 },
        { CG_PUSH_LOGOUT, 0, 0, "0123456789ABCDEF0123456789abcdef"
                                "0123456789abcdef0123456789abcdef", CG_PUSH_HASH_LEN },
        { (enum cg_push_type)'X', 0, 0, "{}", 2 },
        { CG_PUSH_KICK, 0, 0, "", 0 },
        { CG_PUSH_KICK, 0, 0, "Deleted", 7 },
        { CG_PUSH_REINIT, 0, 0, "re:init", 7 },
    };

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(buf, '#', sizeof buf);
        cr_assert(eq(int, cg_push_record_encode(&bad[i], buf, sizeof buf), CG_E_INVAL),
                  "record %zu", i);
    }
}

/* Too small a buffer, by every size up to the one needed, never overflows. */
Test(push_record, a_buffer_too_small_is_refused)
{
    struct cg_push_record m = { CG_PUSH_MESSAGE, 12, 345, "{}", 2 };
    char buf[32];
    int need = cg_push_record_encode(&m, buf, sizeof buf);

    cr_assert(eq(int, need, 10));                    /* "M12:345:{}" */
    cr_assert(eq(str, buf, "M12:345:{}"));
    for (size_t cap = 0; cap <= (size_t)need; cap++) {
        memset(buf, '#', sizeof buf);
        cr_assert(eq(int, cg_push_record_encode(&m, buf, cap), CG_E_INVAL), "cap %zu", cap);
        for (size_t i = 0; i < sizeof buf; i++)
            cr_assert(eq(chr, buf[i], '#'), "nothing written with cap %zu", cap);
    }
    cr_assert(eq(int, cg_push_record_encode(&m, buf, (size_t)need + 1), need));
}
