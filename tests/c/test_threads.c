/* test_threads.c: one keyring shared by many threads verifying at once, with no wrong answer.
 *
 * Usage: test_threads [THREADS [ITERATIONS]]   (default 8 threads x 100000 verifications)
 *
 * Each thread cycles through addresses with known answers (valid under each of two keys,
 * forged, expired, untagged, malformed, unknown key) and checks both the result code and the
 * original address written out. A default batv_policy and batv_check_bounce share the keyring
 * too, every 16th iteration. Any wrong answer fails the test.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batv.h"

#define NOW INT64_C(1795700000)

struct expectation {
    char address[BATV_ADDRESS_MAX];
    int64_t now;
    batv_result result;
    const char *original; /* for BATV_RESULT_OK */
};

#define CASES 8
static struct expectation cases[CASES];
static const batv_keyring *shared_keyring;
static long iterations = 100000;

struct worker {
    pthread_t thread;
    int index;
    long wrong;
    long done;
};

static void *verify_many(void *arg) {
    struct worker *w = arg;
    char buf[BATV_ADDRESS_MAX];
    size_t len;
    long i;
    for (i = 0; i < iterations; i++) {
        const struct expectation *e = &cases[(i + w->index) % CASES];
        batv_result r = batv_verify(shared_keyring, e->address, e->now, buf, sizeof buf, &len);
        int right = r == e->result &&
                    (r != BATV_RESULT_OK ||
                     (strcmp(buf, e->original) == 0 && len == strlen(e->original)));
        if (right && i % 16 == 0) {
            /* The bounce check reads the same keyring: a bounce to this address is accepted
             * exactly when the tag verifies. */
            r = batv_check_bounce(shared_keyring, "", e->address, e->now, buf, sizeof buf, &len);
            right = e->result == BATV_RESULT_OK ? (r == BATV_RESULT_OK &&
                                                   strcmp(buf, e->original) == 0)
                                                : r == e->result;
        }
        if (!right) {
            if (w->wrong < 5) {
                fprintf(stderr, "thread %d iteration %ld: %s gave %u (%s), want %u\n", w->index,
                        i, e->address, (unsigned)r, buf, (unsigned)e->result);
            }
            w->wrong++;
        }
        w->done++;
    }
    return NULL;
}

static void expect(int i, const char *address, int64_t now, batv_result result,
                   const char *original) {
    strcpy(cases[i].address, address);
    cases[i].now = now;
    cases[i].result = result;
    cases[i].original = original;
}

int main(int argc, char **argv) {
    static const char text[] = "sign-key 1\n"
                               "key 1 hmac-sha256 text:threads secret one\n"
                               "key 2 hmac-sha1 text:threads secret two\n";
    static const char old_text[] = "key 2 hmac-sha1 text:threads secret two\n";
    batv_keyring *k = NULL, *old = NULL;
    int threads = 8, t;
    long wrong = 0, done = 0;
    size_t len;
    struct worker *workers;
    char signed_a[BATV_ADDRESS_MAX], signed_b[BATV_ADDRESS_MAX];

    if (argc > 1) threads = atoi(argv[1]);
    if (argc > 2) iterations = atol(argv[2]);
    if (threads < 1 || iterations < 1) {
        fprintf(stderr, "usage: %s [THREADS [ITERATIONS]]\n", argv[0]);
        return 2;
    }
    if (batv_keyring_parse(text, strlen(text), &k) != BATV_RESULT_OK ||
        batv_keyring_parse(old_text, strlen(old_text), &old) != BATV_RESULT_OK) {
        fprintf(stderr, "keyring did not parse\n");
        return 1;
    }
    /* Valid under key 1 (signing key) and under key 2 (signed by a keyring whose only key is 2). */
    if (batv_sign(k, "alice@example.com", NOW, signed_a, sizeof signed_a, &len) != BATV_RESULT_OK ||
        batv_sign(old, "Bob@Example.org", NOW, signed_b, sizeof signed_b, &len) != BATV_RESULT_OK) {
        fprintf(stderr, "signing failed\n");
        return 1;
    }
    expect(0, signed_a, NOW, BATV_RESULT_OK, "alice@example.com");
    expect(1, signed_b, NOW + 86400, BATV_RESULT_OK, "Bob@Example.org");
    expect(2, signed_a, NOW + 30 * 86400, BATV_RESULT_EXPIRED, NULL);
    expect(3, "alice@example.com", NOW, BATV_RESULT_UNTAGGED, NULL);
    expect(4, "prvs=1x90aaaaaa=alice@example.com", NOW, BATV_RESULT_MALFORMED, NULL);
    expect(5, "prvs=7790aaaaaa=alice@example.com", NOW, BATV_RESULT_UNKNOWN_KEY, NULL);
    expect(6, signed_a, NOW, BATV_RESULT_BAD_SIGNATURE, NULL);
    cases[6].address[9] = cases[6].address[9] == '0' ? '1' : '0'; /* forge the signature */
    expect(7, "\"prvs=0790e9e584=john doe\"@example.com", NOW, BATV_RESULT_UNKNOWN_KEY, NULL);
    batv_keyring_free(old);

    workers = calloc((size_t)threads, sizeof *workers);
    if (workers == NULL) return 1;
    shared_keyring = k;
    for (t = 0; t < threads; t++) {
        workers[t].index = t;
        if (pthread_create(&workers[t].thread, NULL, verify_many, &workers[t]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 1;
        }
    }
    for (t = 0; t < threads; t++) {
        pthread_join(workers[t].thread, NULL);
        wrong += workers[t].wrong;
        done += workers[t].done;
    }
    free(workers);
    batv_keyring_free(k);
    printf("%s: %d threads x %ld verifications: %ld done, %ld wrong\n", argv[0], threads,
           iterations, done, wrong);
    return wrong == 0 && done == (long)threads * iterations ? 0 : 1;
}
