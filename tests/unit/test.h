/*
 * test.h: the tiny check harness shared by every program in tests/unit.
 *
 *     #include "test.h"
 *     int main(void)
 *     {
 *         CHECK(x != NULL);
 *         CHECK_EQ_INT(gm_foo_parse("1"), 0);
 *         CHECK_EQ_STR(name, "config");
 *         return TEST_DONE();
 *     }
 *
 * A failed check prints file:line and what it saw, and the program carries on so that one run
 * shows every failure. TEST_DONE() prints a summary line and returns the exit code for main():
 * 0 when every check passed, 1 when one failed or when no check ran at all (a test that checks
 * nothing must not pass). The counters are plain ints: call the macros from one thread at a time.
 */
#ifndef GM_TEST_H
#define GM_TEST_H

#include <stdio.h>
#include <string.h>

static int test_checks __attribute__((unused));
static int test_failures __attribute__((unused));

#define TEST_FAIL_(...)                                                                            \
    do {                                                                                           \
        test_failures++;                                                                           \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                            \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
    } while (0)

/* Passes when cond is true. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        test_checks++;                                                                             \
        if (!(cond))                                                                               \
            TEST_FAIL_("CHECK(%s) failed", #cond);                                                 \
    } while (0)

/* Passes when two integers (any integer type, compared as long long) are equal. */
#define CHECK_EQ_INT(got, want)                                                                    \
    do {                                                                                           \
        long long got_ = (long long)(got), want_ = (long long)(want);                              \
        test_checks++;                                                                             \
        if (got_ != want_)                                                                         \
            TEST_FAIL_("CHECK_EQ_INT(%s, %s): got %lld, want %lld", #got, #want, got_, want_);     \
    } while (0)

/* Passes when two strings are equal; two NULLs are equal, NULL and a string are not. */
#define CHECK_EQ_STR(got, want)                                                                    \
    do {                                                                                           \
        const char *got_ = (got), *want_ = (want);                                                 \
        test_checks++;                                                                             \
        if (got_ == NULL || want_ == NULL ? got_ != want_ : strcmp(got_, want_) != 0)              \
            TEST_FAIL_("CHECK_EQ_STR(%s, %s):\n  got  \"%s\"\n  want \"%s\"", #got, #want,         \
                       got_ ? got_ : "(null)", want_ ? want_ : "(null)");                          \
    } while (0)

static inline int test_done(const char *file)
{
    fprintf(stderr, "%s: %d checks, %d failed\n", file, test_checks, test_failures);
    if (test_checks == 0) {
        fprintf(stderr, "%s: no check ran\n", file);
        return 1;
    }
    return test_failures == 0 ? 0 : 1;
}

/* Prints the summary; returns main()'s exit code. */
#define TEST_DONE() test_done(__FILE__)

#endif
