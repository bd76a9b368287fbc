/* check.h: the few assertion helpers the libbatv C tests share. Every failed check prints its
 * file, line and message and is counted; main() returns non-zero when any failed. */
#ifndef BATV_TEST_CHECK_H
#define BATV_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

#include "batv.h"

static int check_failures = 0;
static int check_count = 0;

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        check_count++;                                                          \
        if (!(cond)) {                                                          \
            check_failures++;                                                   \
            fprintf(stderr, "%s:%d: FAILED: %s: ", __FILE__, __LINE__, #cond);  \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
        }                                                                       \
    } while (0)

/* The result code `got` is `want`. */
#define CHECK_RESULT(got, want)                                                 \
    do {                                                                        \
        batv_result check_got_ = (got);                                         \
        batv_result check_want_ = (want);                                       \
        CHECK(check_got_ == check_want_, "got %u (%s), want %u (%s)",           \
              (unsigned)check_got_, batv_strerror(check_got_),                  \
              (unsigned)check_want_, batv_strerror(check_want_));               \
    } while (0)

/* The NUL-terminated string `got` is `want`. */
#define CHECK_STR(got, want)                                                    \
    do {                                                                        \
        const char *check_g_ = (got);                                           \
        const char *check_w_ = (want);                                          \
        CHECK(check_g_ != NULL && strcmp(check_g_, check_w_) == 0,              \
              "got \"%s\", want \"%s\"", check_g_ ? check_g_ : "(null)",       \
              check_w_);                                                        \
    } while (0)

static int check_summary(const char *program) {
    printf("%s: %d checks, %d failed\n", program, check_count, check_failures);
    return check_failures == 0 ? 0 : 1;
}

#endif
