/*
 * test_thrift.c -- the Thrift compact encoder (lake/thrift.c) that writes
 * the Parquet footer.
 *
 * One struct using every field type, short and long field-id deltas,
 * extremes, lists short and long and nested structs is checked byte for
 * byte against bytes worked out by hand from the compact protocol's
 * specification, then read back by the independent decoder of
 * pq_reader.h; misuse must be reported once, at the end.  Kept apart from
 * test_parquet.c, which tests the writer built on top of it.
 */
#include "harness.h"
#include "thrift.h"
#include "pq_reader.h"

#include <errno.h>
#include <stdint.h>

static int same_bytes(const thrift_out *t, const uint8_t *want, size_t n)
{
    if (t->out.len == n && memcmp(t->out.p, want, n) == 0)
        return 1;
    fprintf(stderr, "thrift bytes (%zu, want %zu):", t->out.len, n);
    for (size_t i = 0; i < t->out.len; i++)
        fprintf(stderr, " %02x", t->out.p[i]);
    fprintf(stderr, "\n");
    return 0;
}

static void test_thrift(void)
{
    thrift_out t;
    static const uint8_t want[] = {
        0x15, 0x02,                               /* 1: i32 1 */
        0x16, 0x01,                               /* 2: i64 -1 */
        0x28, 0x02, 'a', 'b',                     /* 4: binary "ab" (delta 2) */
        0x11,                                     /* 5: bool true */
        0x12,                                     /* 6: bool false */
        0x13, 0xFE,                               /* 7: i8 -2 */
        0x05, 0xC8, 0x01, 0x06,                   /* 100: long form, i32 3 */
        0x15, 0xD8, 0x04,                         /* 101: i32 300 */
        0x16, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, /* 102: INT64_MIN */
        0x16, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, /* 103: INT64_MAX */
        0x15, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F,       /* 104: INT32_MIN */
        0x19, 0x35, 0x00, 0x01, 0x80, 0x01,       /* 105: list<i32> {0, -1, 64} */
        0x19, 0xF8, 0x0F,                         /* 106: list<binary> of 15 "" */
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0x1C,                                     /* 107: struct */
        0x15, 0x0A,                               /*   1: i32 5 */
        0x05, 0x28, 0x00,                         /*   20: long form (delta 19), i32 0 */
        0x00,                                     /*   stop */
        0x15, 0x00,                               /* 108: i32 0 (delta from 107) */
        0x05, 0x06, 0x0E,                         /* 3: backwards, long form, i32 7 */
        0x5C, 0x00,                               /* 8: empty struct (delta 5) */
        0x19, 0x2C,                               /* 9: list<struct> of 2 */
        0x15, 0x02, 0x00,                         /*   {1: i32 1} */
        0x00,                                     /*   {} */
        0x00                                      /* stop */
    };

    thrift_init(&t);
    thrift_struct_begin(&t);
    thrift_field_i32(&t, 1, 1);
    thrift_field_i64(&t, 2, -1);
    thrift_field_binary(&t, 4, "ab", 2);
    thrift_field_bool(&t, 5, 1);
    thrift_field_bool(&t, 6, 0);
    thrift_field_i8(&t, 7, -2);
    thrift_field_i32(&t, 100, 3);
    thrift_field_i32(&t, 101, 300);
    thrift_field_i64(&t, 102, INT64_MIN);
    thrift_field_i64(&t, 103, INT64_MAX);
    thrift_field_i32(&t, 104, INT32_MIN);
    thrift_field_list(&t, 105, THRIFT_I32, 3);
    thrift_i32(&t, 0);
    thrift_i32(&t, -1);
    thrift_i32(&t, 64);
    thrift_field_list(&t, 106, THRIFT_BINARY, 15);
    for (int i = 0; i < 15; i++)
        thrift_binary(&t, "", 0);
    thrift_field_struct(&t, 107);
    thrift_field_i32(&t, 1, 5);
    thrift_field_i32(&t, 20, 0);
    thrift_struct_end(&t);
    thrift_field_i32(&t, 108, 0);
    thrift_field_i32(&t, 3, 7);
    thrift_field_struct(&t, 8);
    thrift_struct_end(&t);
    thrift_field_list(&t, 9, THRIFT_STRUCT, 2);
    thrift_struct_begin(&t);
    thrift_field_i32(&t, 1, 1);
    thrift_struct_end(&t);
    thrift_struct_begin(&t);
    thrift_struct_end(&t);
    thrift_struct_end(&t);
    CHECK(thrift_error(&t) == 0);
    CHECK(same_bytes(&t, want, sizeof(want)));

    /* the test's decoder reads the same bytes back */
    tnode n;
    CHECK(tdecode(t.out.p, t.out.len, &n) == (long)t.out.len);
    CHECK(ti(&n, 102, 0) == INT64_MIN && ti(&n, 103, 0) == INT64_MAX);
    CHECK(tf(&n, 9) && tf(&n, 9)->nkids == 2 && ti(&tf(&n, 9)->kids[0], 1, 0) == 1);
    CHECK(tf(&n, 8) && tf(&n, 8)->type == THRIFT_STRUCT && tf(&n, 8)->nkids == 0);
    CHECK(ti(&n, 5, -1) == 1 && ti(&n, 6, -1) == 0 && ti(&n, 7, 0) == -2 && ti(&n, 3, 0) == 7);
    CHECK(tf(&n, 4) && tf(&n, 4)->len == 2 && memcmp(tf(&n, 4)->bin, "ab", 2) == 0);
    CHECK(tf(&n, 106) && tf(&n, 106)->nkids == 15);
    CHECK(ti(tf(&n, 107), 20, -1) == 0 && ti(tf(&n, 107), 1, 0) == 5);
    tfree(&n);

    /* long lists: the size as a varint */
    thrift_reset(&t);
    thrift_struct_begin(&t);
    thrift_field_list(&t, 1, THRIFT_I32, 200);
    for (int i = 0; i < 200; i++)
        thrift_i32(&t, 1);
    thrift_struct_end(&t);
    CHECK(t.out.len == 1 + 1 + 2 + 200 + 1 && t.out.p[1] == 0xF5 && t.out.p[2] == 0xC8 && t.out.p[3] == 0x01);

    /* misuse is reported once, at the end */
    thrift_reset(&t);
    thrift_struct_end(&t);
    CHECK(thrift_error(&t) == -EINVAL);
    thrift_reset(&t);
    thrift_field_i32(&t, 1, 1);                  /* no open struct */
    CHECK(thrift_error(&t) == -EINVAL);
    thrift_reset(&t);
    for (int i = 0; i <= THRIFT_DEPTH_MAX; i++)
        thrift_struct_begin(&t);
    CHECK(thrift_error(&t) == -EINVAL);
    thrift_free(&t);
}

int main(void)
{
    test_thrift();
    return harness_done();
}
