/* Entry points of certqd's libFuzzer targets, shared with the corpus replay program. */
#ifndef CERTQD_FUZZ_H
#define CERTQD_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/*
 * Each target's body.  A libFuzzer build wraps one of them in
 * LLVMFuzzerTestOneInput; tests/fuzz/regressions.c (built with
 * -DFUZZ_NO_MAIN) calls all four on stored inputs.  They return 0.
 */
int fuzz_job(const uint8_t *data, size_t size);
int fuzz_uapi(const uint8_t *data, size_t size);
int fuzz_form(const uint8_t *data, size_t size);
int fuzz_config(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Reports a broken invariant.  Under libFuzzer it aborts, so the input is
 * saved as a crash; the replay program counts the failure and goes on.
 */
void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define FUZZ_CHECK(cond, ...)        \
    do {                             \
        if (!(cond))                 \
            fuzz_fail(__VA_ARGS__);  \
    } while (0)

#endif
