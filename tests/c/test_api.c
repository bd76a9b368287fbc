/* test_api.c: every libbatv call and every result code, the buffer-too-small protocol, NULL
 * for every pointer argument, and the test vectors.
 *
 * Usage: test_api VECTORS_DIR
 *   VECTORS_DIR  the directory holding batv-scheme.tsv and exim-prvs.tsv (tests/vectors)
 *
 * Link it with a libbatv built with `--features test-hooks` (tests/c/run does): it calls
 * batv_test_panic() to see a panic inside libbatv come back as BATV_RESULT_PANIC.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batv.h"
#include "check.h"

/* Only in a library built with `--features test-hooks`; never in batv.h. */
batv_result batv_test_panic(void);

#define NOW INT64_C(1795700000) /* 2026-11-26, day 20783 */
#define DAY INT64_C(86400)

static const char KEYRING_TEXT[] =
    "# keyring for the C tests\n"
    "lifetime-days 7\n"
    "skew-days 1\n"
    "sign-key 1\n"
    "key 1 hmac-sha256 text:secret\n"
    "key 2 hmac-sha1 text:another secret\n";

static batv_keyring *parse_keyring(const char *text) {
    batv_keyring *k = NULL;
    char err[BATV_ERROR_MAX];
    batv_result r = batv_keyring_parse_ex(text, strlen(text), &k, err, sizeof err);
    CHECK(r == BATV_RESULT_OK && k != NULL, "parse keyring: %s", err);
    return k;
}

/* Every code has its own static message; unknown codes have one too. */
static void test_strerror_and_version(void) {
    static const batv_result codes[] = {
        BATV_RESULT_OK, BATV_RESULT_UNTAGGED, BATV_RESULT_MALFORMED, BATV_RESULT_UNKNOWN_KEY,
        BATV_RESULT_BAD_SIGNATURE, BATV_RESULT_EXPIRED, BATV_RESULT_NULL_ARGUMENT,
        BATV_RESULT_BUFFER_TOO_SMALL, BATV_RESULT_NOT_AN_ADDRESS, BATV_RESULT_TOO_LONG,
        BATV_RESULT_NOT_UTF8, BATV_RESULT_BAD_PATTERN, BATV_RESULT_BUFFER_OVERLAP,
        BATV_RESULT_KEYRING_IO,
        BATV_RESULT_KEYRING_INSECURE, BATV_RESULT_KEYRING_INVALID, BATV_RESULT_PANIC,
    };
    size_t n = sizeof codes / sizeof codes[0];
    const char *unknown = batv_strerror(7);
    size_t i, j;
    CHECK(unknown != NULL && strstr(unknown, "unknown") != NULL, "unknown code message");
    CHECK_STR(batv_strerror(UINT32_MAX), unknown);
    CHECK(BATV_RESULT_OK == 0, "OK is zero");
    for (i = 0; i < n; i++) {
        const char *m = batv_strerror(codes[i]);
        CHECK(m != NULL && m[0] != '\0', "code %u has a message", (unsigned)codes[i]);
        CHECK(m != NULL && strcmp(m, unknown) != 0, "code %u is known", (unsigned)codes[i]);
        CHECK(batv_strerror(codes[i]) == m, "code %u: the message is static", (unsigned)codes[i]);
        for (j = 0; j < i; j++) {
            CHECK(strcmp(m, batv_strerror(codes[j])) != 0, "codes %u and %u share a message",
                  (unsigned)codes[i], (unsigned)codes[j]);
        }
    }
    /* The groups of the header: outcomes 1-5, input 100-199, configuration 200-299. */
    CHECK(BATV_RESULT_UNTAGGED >= 1 && BATV_RESULT_EXPIRED <= 5, "outcome group");
    CHECK(BATV_RESULT_NULL_ARGUMENT >= 100 && BATV_RESULT_BUFFER_OVERLAP < 200, "input group");
    CHECK(BATV_RESULT_KEYRING_IO >= 200 && BATV_RESULT_KEYRING_INVALID < 300, "config group");
#ifdef EXPECTED_VERSION
    CHECK_STR(batv_version(), EXPECTED_VERSION);
#else
    CHECK(batv_version() != NULL && batv_version()[0] != '\0', "version");
#endif
}

/* Keyring text: good, bad with the line in the message, never the secret, errbuf rules. */
static void test_keyring_parse(void) {
    batv_keyring *k = (batv_keyring *)&k; /* not NULL: failure must reset it */
    char err[BATV_ERROR_MAX];
    char small[12];
    static const char bad_scheme[] = "lifetime-days 7\nkey 1 hmac-md5 text:TOPSECRET-VALUE\n";
    static const char short_secret[] = "key 1 hmac-sha256 hex:00112233\n";
    static const char two_keys_no_sign_key[] =
        "key 1 hmac-sha256 text:a\nkey 2 hmac-sha256 text:b\n";
    static const char not_utf8[] = "lifetime-days 7\n# \xff\xfe\nkey 1 hmac-sha256 text:a\n";
    /* Not NUL-terminated: text_len stops before the junk. */
    static const char with_junk[] = "key 1 hmac-sha256 text:abc\nJUNK";

    k = parse_keyring(KEYRING_TEXT);
    batv_keyring_free(k);

    k = (batv_keyring *)&k;
    CHECK_RESULT(batv_keyring_parse_ex(bad_scheme, strlen(bad_scheme), &k, err, sizeof err),
                 BATV_RESULT_KEYRING_INVALID);
    CHECK(k == NULL, "keyring_out is NULL after a failure");
    CHECK(strstr(err, "line 2") != NULL, "message names the line: %s", err);
    CHECK(strstr(err, "unknown scheme") != NULL, "message names the problem: %s", err);
    CHECK(strstr(err, "hmac-md5") == NULL, "message describes a word that is no scheme: %s", err);
    CHECK(strstr(err, "TOPSECRET") == NULL, "message never holds the secret: %s", err);

    CHECK_RESULT(batv_keyring_parse_ex(short_secret, strlen(short_secret), &k, err, sizeof err),
                 BATV_RESULT_KEYRING_INVALID);
    CHECK(strstr(err, "line 1") != NULL && strstr(err, "00112233") == NULL, "%s", err);
    CHECK_RESULT(batv_keyring_parse_ex(two_keys_no_sign_key, strlen(two_keys_no_sign_key), &k,
                                       err, sizeof err),
                 BATV_RESULT_KEYRING_INVALID);
    CHECK(strstr(err, "sign-key") != NULL, "%s", err);
    CHECK_RESULT(batv_keyring_parse_ex("", 0, &k, err, sizeof err), BATV_RESULT_KEYRING_INVALID);
    CHECK(strstr(err, "no key") != NULL, "%s", err);
    CHECK_RESULT(batv_keyring_parse_ex(not_utf8, strlen(not_utf8), &k, err, sizeof err),
                 BATV_RESULT_KEYRING_INVALID);
    CHECK(strstr(err, "line 2") != NULL && strstr(err, "UTF-8") != NULL, "%s", err);

    /* Without the _ex: the same code, no message. */
    CHECK_RESULT(batv_keyring_parse(bad_scheme, strlen(bad_scheme), &k),
                 BATV_RESULT_KEYRING_INVALID);
    CHECK(k == NULL, "keyring_out is NULL after a failure");

    /* text_len is honoured: the junk line after it is never read. */
    CHECK_RESULT(batv_keyring_parse(with_junk, strlen(with_junk) - 4, &k), BATV_RESULT_OK);
    batv_keyring_free(k);
    CHECK_RESULT(batv_keyring_parse(with_junk, strlen(with_junk), &k),
                 BATV_RESULT_KEYRING_INVALID);

    /* A short errbuf gets a truncated, terminated message; NULL errbuf is fine. */
    memset(small, 'x', sizeof small);
    CHECK_RESULT(batv_keyring_parse_ex(bad_scheme, strlen(bad_scheme), &k, small, sizeof small),
                 BATV_RESULT_KEYRING_INVALID);
    CHECK(strlen(small) == sizeof small - 1 && strncmp(small, "keyring", 7) == 0,
          "truncated message: %s", small);
    CHECK_RESULT(batv_keyring_parse_ex(bad_scheme, strlen(bad_scheme), &k, NULL, 100),
                 BATV_RESULT_KEYRING_INVALID);
    memset(small, 'x', sizeof small);
    CHECK_RESULT(batv_keyring_parse_ex(bad_scheme, strlen(bad_scheme), &k, small, 0),
                 BATV_RESULT_KEYRING_INVALID);
    CHECK(small[0] == 'x', "errbuf_len 0: nothing written");
    /* On success the errbuf is the empty string. */
    strcpy(err, "stale");
    CHECK_RESULT(batv_keyring_parse_ex(KEYRING_TEXT, strlen(KEYRING_TEXT), &k, err, sizeof err),
                 BATV_RESULT_OK);
    CHECK_STR(err, "");
    batv_keyring_free(k);

    /* NULL arguments. */
    k = (batv_keyring *)&k;
    CHECK_RESULT(batv_keyring_parse(NULL, 3, &k), BATV_RESULT_NULL_ARGUMENT);
    CHECK(k == NULL, "keyring_out is NULL after NULL text");
    CHECK_RESULT(batv_keyring_parse(KEYRING_TEXT, strlen(KEYRING_TEXT), NULL),
                 BATV_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(batv_keyring_parse_ex(NULL, 3, &k, err, sizeof err), BATV_RESULT_NULL_ARGUMENT);
    CHECK_STR(err, batv_strerror(BATV_RESULT_NULL_ARGUMENT));
    CHECK_RESULT(batv_keyring_parse_ex(KEYRING_TEXT, 3, NULL, err, sizeof err),
                 BATV_RESULT_NULL_ARGUMENT);
    batv_keyring_free(NULL);
}

static void write_file(const char *path, const char *text, mode_t mode) {
    FILE *f = fopen(path, "w");
    CHECK(f != NULL, "create %s", path);
    if (f == NULL) return;
    fputs(text, f);
    fclose(f);
    CHECK(chmod(path, mode) == 0, "chmod %s", path);
}

/* Keyring files: good, insecure, missing, a directory, bad contents. */
static void test_keyring_load(void) {
    char dir[] = "/tmp/batv-c-test-XXXXXX";
    char path[64], missing[64];
    char err[BATV_ERROR_MAX];
    batv_keyring *k = NULL;

    if (mkdtemp(dir) == NULL) {
        CHECK(0, "mkdtemp");
        return;
    }
    sprintf(path, "%s/batv.keys", dir);
    sprintf(missing, "%s/missing.keys", dir);

    write_file(path, KEYRING_TEXT, 0600);
    CHECK_RESULT(batv_keyring_load(path, &k), BATV_RESULT_OK);
    CHECK(k != NULL, "loaded");
    batv_keyring_free(k);
    /* Group read is allowed (an MTA's group may read a root-owned file). */
    CHECK(chmod(path, 0640) == 0, "chmod");
    CHECK_RESULT(batv_keyring_load(path, &k), BATV_RESULT_OK);
    batv_keyring_free(k);

    CHECK(chmod(path, 0644) == 0, "chmod");
    CHECK_RESULT(batv_keyring_load_ex(path, &k, err, sizeof err), BATV_RESULT_KEYRING_INSECURE);
    CHECK(k == NULL, "no keyring from an insecure file");
    CHECK(strstr(err, path) != NULL && strstr(err, "chmod 600") != NULL, "%s", err);
    CHECK(strstr(err, "secret") == NULL, "no secret in: %s", err);
    CHECK(chmod(path, 0620) == 0, "chmod");
    CHECK_RESULT(batv_keyring_load(path, &k), BATV_RESULT_KEYRING_INSECURE);

    CHECK_RESULT(batv_keyring_load_ex(missing, &k, err, sizeof err), BATV_RESULT_KEYRING_IO);
    CHECK(strstr(err, missing) != NULL, "names the file: %s", err);
    CHECK_RESULT(batv_keyring_load_ex(dir, &k, err, sizeof err), BATV_RESULT_KEYRING_IO);
    CHECK(strstr(err, "not a regular file") != NULL, "%s", err);

    write_file(path, "lifetime-days 7\nskew-days 99\nkey 1 hmac-sha256 text:x\n", 0600);
    CHECK_RESULT(batv_keyring_load_ex(path, &k, err, sizeof err), BATV_RESULT_KEYRING_INVALID);
    CHECK(strstr(err, path) != NULL && strstr(err, "line 2") != NULL, "%s", err);
    CHECK(strstr(err, "skew-days") != NULL, "%s", err);

    CHECK_RESULT(batv_keyring_load(NULL, &k), BATV_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(batv_keyring_load(path, NULL), BATV_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(batv_keyring_load_ex(NULL, &k, err, sizeof err), BATV_RESULT_NULL_ARGUMENT);
    CHECK_STR(err, batv_strerror(BATV_RESULT_NULL_ARGUMENT));
    CHECK_RESULT(batv_keyring_load_ex(path, NULL, NULL, 0), BATV_RESULT_NULL_ARGUMENT);

    unlink(path);
    rmdir(dir);
}

/* Replaces the first hex digit of the signature with another one. */
static void tamper(char *tagged) {
    char *sig = tagged + (tagged[0] == '"' ? 1 : 0) + 9; /* prvs=KDDD */
    *sig = (*sig == '0') ? '1' : '0';
}

static void test_sign_verify(const batv_keyring *k) {
    char buf[BATV_ADDRESS_MAX], tagged[BATV_ADDRESS_MAX], other[BATV_ADDRESS_MAX];
    char longest[BATV_ADDRESS_MAX], too_long[300];
    size_t len = 12345;

    /* The vector of batv-scheme.tsv line 2 (key 1, hmac-sha256, "secret"). */
    CHECK_RESULT(batv_sign(k, "user@example.com", NOW, buf, sizeof buf, &len), BATV_RESULT_OK);
    CHECK_STR(buf, "prvs=1790ac4fd6=user@example.com");
    CHECK(len == strlen(buf), "out_len %zu", len);
    strcpy(tagged, buf);

    /* The null sender and tagged addresses come back unchanged. */
    CHECK_RESULT(batv_sign(k, "", NOW, buf, sizeof buf, &len), BATV_RESULT_OK);
    CHECK(len == 0 && buf[0] == '\0', "null sender");
    CHECK_RESULT(batv_sign(k, tagged, NOW, buf, sizeof buf, &len), BATV_RESULT_OK);
    CHECK_STR(buf, tagged);

    /* Unqualified and over-long addresses are errors, not guesses. */
    CHECK_RESULT(batv_sign(k, "user", NOW, buf, sizeof buf, &len), BATV_RESULT_NOT_AN_ADDRESS);
    CHECK(len == 0 && buf[0] == '\0', "nothing out on error");
    CHECK_RESULT(batv_sign(k, "@example.com", NOW, buf, sizeof buf, &len),
                 BATV_RESULT_NOT_AN_ADDRESS);
    CHECK_RESULT(batv_sign(k, "user@", NOW, buf, sizeof buf, &len), BATV_RESULT_NOT_AN_ADDRESS);
    CHECK_RESULT(batv_sign(k, "us\r\ner@example.com", NOW, buf, sizeof buf, &len),
                 BATV_RESULT_NOT_AN_ADDRESS);
    CHECK_RESULT(batv_sign(k, "\xff\xfe@example.com", NOW, buf, sizeof buf, &len),
                 BATV_RESULT_NOT_UTF8);
    /* The SMTP path with its angle brackets, and stray spaces, are not addresses either. */
    CHECK_RESULT(batv_sign(k, "<user@example.com>", NOW, buf, sizeof buf, &len),
                 BATV_RESULT_NOT_AN_ADDRESS);
    CHECK(len == 0 && buf[0] == '\0', "nothing out on error");
    CHECK_RESULT(batv_sign(k, " user@example.com", NOW, buf, sizeof buf, &len),
                 BATV_RESULT_NOT_AN_ADDRESS);
    CHECK_RESULT(batv_sign(k, "us er@example.com", NOW, buf, sizeof buf, &len),
                 BATV_RESULT_NOT_AN_ADDRESS);
    /* "<>" is the null sender, unchanged; a quoted local part keeps its space and the tag. */
    CHECK_RESULT(batv_sign(k, "<>", NOW, buf, sizeof buf, &len), BATV_RESULT_OK);
    CHECK_STR(buf, "<>");
    CHECK_RESULT(batv_sign(k, "\"john doe\"@example.com", NOW, buf, sizeof buf, &len),
                 BATV_RESULT_OK);
    CHECK(strncmp(buf, "\"prvs=1790", 10) == 0 && len == strlen("\"john doe\"@example.com") + 16,
          "quoted: %s", buf);
    strcpy(other, buf);
    CHECK_RESULT(batv_verify(k, other, NOW, buf, sizeof buf, &len), BATV_RESULT_OK);
    CHECK_STR(buf, "\"john doe\"@example.com");
    /* 238 octets sign to exactly 254, which BATV_ADDRESS_MAX holds; 239 are too long. */
    memset(longest, 'a', 238);
    memcpy(longest + 238 - 12, "@example.com", 12);
    longest[238] = '\0';
    CHECK_RESULT(batv_sign(k, longest, NOW, buf, sizeof buf, &len), BATV_RESULT_OK);
    CHECK(len == 254 && strlen(buf) == 254, "longest signed: %zu", len);
    memset(too_long, 'a', 239);
    memcpy(too_long + 239 - 12, "@example.com", 12);
    too_long[239] = '\0';
    CHECK_RESULT(batv_sign(k, too_long, NOW, buf, sizeof buf, &len), BATV_RESULT_TOO_LONG);
    memset(too_long, 'a', 299);
    memcpy(too_long + 299 - 12, "@example.com", 12);
    too_long[299] = '\0';
    CHECK_RESULT(batv_sign(k, too_long, NOW, buf, sizeof buf, &len), BATV_RESULT_TOO_LONG);

    /* Every outcome of verify. */
    CHECK_RESULT(batv_verify(k, tagged, NOW, buf, sizeof buf, &len), BATV_RESULT_OK);
    CHECK_STR(buf, "user@example.com");
    CHECK(len == 16, "out_len %zu", len);
    CHECK_RESULT(batv_verify(k, "user@example.com", NOW, buf, sizeof buf, &len),
                 BATV_RESULT_UNTAGGED);
    CHECK(len == 0 && buf[0] == '\0', "nothing out for an outcome");
    CHECK_RESULT(batv_verify(k, "prvs=1x90ac4fd6=user@example.com", NOW, buf, sizeof buf, &len),
                 BATV_RESULT_MALFORMED);
    CHECK_RESULT(batv_verify(k, "prvs=1790ac4fd6user@example.com", NOW, buf, sizeof buf, &len),
                 BATV_RESULT_MALFORMED);
    CHECK_RESULT(batv_verify(k, "prvs=1790ac4fd6=", NOW, buf, sizeof buf, &len),
                 BATV_RESULT_MALFORMED);
    CHECK_RESULT(batv_verify(k, "prvs=3790ac4fd6=user@example.com", NOW, buf, sizeof buf, &len),
                 BATV_RESULT_UNKNOWN_KEY);
    strcpy(other, tagged);
    tamper(other);
    CHECK_RESULT(batv_verify(k, other, NOW, buf, sizeof buf, &len), BATV_RESULT_BAD_SIGNATURE);
    /* Valid through its expiry day (lifetime 7), expired the day after; valid up to skew (1)
     * day before it was signed (a signer whose clock runs ahead), not two. */
    CHECK_RESULT(batv_verify(k, tagged, NOW + 7 * DAY, buf, sizeof buf, &len), BATV_RESULT_OK);
    CHECK_RESULT(batv_verify(k, tagged, NOW + 8 * DAY, buf, sizeof buf, &len),
                 BATV_RESULT_EXPIRED);
    CHECK_RESULT(batv_verify(k, tagged, NOW - 1 * DAY, buf, sizeof buf, &len), BATV_RESULT_OK);
    CHECK_RESULT(batv_verify(k, tagged, NOW - 2 * DAY, buf, sizeof buf, &len),
                 BATV_RESULT_EXPIRED);
    /* Upper-case hex and PRVS verify too. */
    CHECK_RESULT(batv_verify(k, "PRVS=1790AC4FD6=user@example.com", NOW, buf, sizeof buf, &len),
                 BATV_RESULT_OK);
    CHECK_STR(buf, "user@example.com");
    /* Over 254 octets, tagged or not, is not an address: malformed; so is what is not UTF-8. */
    memcpy(too_long, "prvs=1790ac4fd6=", 16);
    CHECK_RESULT(batv_verify(k, too_long, NOW, buf, sizeof buf, &len), BATV_RESULT_MALFORMED);
    CHECK_RESULT(batv_verify(k, too_long + 16, NOW, buf, sizeof buf, &len), BATV_RESULT_MALFORMED);
    CHECK_RESULT(batv_verify(k, "\xff@example.com", NOW, buf, sizeof buf, &len),
                 BATV_RESULT_MALFORMED);
    CHECK_RESULT(batv_verify(k, "plain@example.com", NOW, buf, sizeof buf, &len),
                 BATV_RESULT_UNTAGGED);
    /* The longest signed address verifies back. */
    CHECK_RESULT(batv_sign(k, longest, NOW, other, sizeof other, &len), BATV_RESULT_OK);
    CHECK_RESULT(batv_verify(k, other, NOW, buf, sizeof buf, &len), BATV_RESULT_OK);
    CHECK_STR(buf, longest);

    /* BATV_NOW: the system clock; a tag signed now verifies now. */
    CHECK_RESULT(batv_sign(k, "clock@example.com", BATV_NOW, other, sizeof other, &len),
                 BATV_RESULT_OK);
    CHECK_RESULT(batv_verify(k, other, BATV_NOW, buf, sizeof buf, &len), BATV_RESULT_OK);
    CHECK_STR(buf, "clock@example.com");
    /* Extreme times neither crash nor verify wrongly. */
    CHECK_RESULT(batv_sign(k, "user@example.com", INT64_MAX, other, sizeof other, &len),
                 BATV_RESULT_OK);
    CHECK_RESULT(batv_verify(k, other, INT64_MAX, buf, sizeof buf, &len), BATV_RESULT_OK);
    CHECK_RESULT(batv_verify(k, tagged, INT64_MIN + 1, buf, sizeof buf, &len),
                 BATV_RESULT_EXPIRED);

    /* Strip: no keyring, no verification, all layers. */
    CHECK_RESULT(batv_strip(tagged, buf, sizeof buf, &len), BATV_RESULT_OK);
    CHECK_STR(buf, "user@example.com");
    CHECK_RESULT(batv_strip("prvs=0000000000=prvs=1111111111=x@example.com", buf, sizeof buf,
                            &len),
                 BATV_RESULT_OK);
    CHECK_STR(buf, "x@example.com");
    CHECK_RESULT(batv_strip("\"prvs=0790e9e584=john doe\"@example.com", buf, sizeof buf, &len),
                 BATV_RESULT_OK);
    CHECK_STR(buf, "\"john doe\"@example.com");
    CHECK_RESULT(batv_strip("prvs=user/1790ac4fd6@example.com", buf, sizeof buf, &len),
                 BATV_RESULT_OK);
    CHECK_STR(buf, "user@example.com");
    CHECK_RESULT(batv_strip("plain@example.com", buf, sizeof buf, &len), BATV_RESULT_OK);
    CHECK_STR(buf, "plain@example.com");
    CHECK_RESULT(batv_strip("prvs=bad", buf, sizeof buf, &len), BATV_RESULT_OK);
    CHECK_STR(buf, "prvs=bad");
    CHECK_RESULT(batv_strip("", buf, sizeof buf, &len), BATV_RESULT_OK);
    CHECK(len == 0 && buf[0] == '\0', "empty strip");
    /* The shapes of other implementations are stripped too, unverified. */
    CHECK_RESULT(batv_strip("prvs=234d5777c=user@example.com", buf, sizeof buf, &len),
                 BATV_RESULT_OK);
    CHECK_STR(buf, "user@example.com");
    /* What it cannot strip comes back as it is: the output is never longer than the input. */
    {
        char big[400];
        CHECK_RESULT(batv_strip(too_long + 16, big, sizeof big, &len), BATV_RESULT_OK);
        CHECK(len == strlen(too_long + 16) && strcmp(big, too_long + 16) == 0, "unchanged");
    }
    CHECK_RESULT(batv_strip("\xc3(@example.com", buf, sizeof buf, &len), BATV_RESULT_OK);
    CHECK_STR(buf, "\xc3(@example.com");
}

/* Runs `call` with every buffer size from 0 to the size needed + 1 and checks the protocol:
 * too small leaves *out_len = needed (without NUL) and an empty string, never writes past
 * buf_len; exactly needed + 1 succeeds. */
typedef batv_result (*output_call)(const void *ctx, char *buf, size_t buf_len, size_t *out_len);

static void check_buffer_protocol(const char *what, output_call call, const void *ctx,
                                  batv_result ok_code, const char *expected) {
    size_t need = strlen(expected), size, len;
    char buf[BATV_ADDRESS_MAX + 8];
    batv_result r;

    len = 999;
    r = call(ctx, NULL, 0, &len);
    CHECK(r == BATV_RESULT_BUFFER_TOO_SMALL && len == need,
          "%s: NULL, 0 gives %u and out_len %zu, want %zu", what, (unsigned)r, len, need);
    for (size = 1; size <= need + 1; size++) {
        memset(buf, '#', sizeof buf);
        len = 999;
        r = call(ctx, buf, size, &len);
        if (size <= need) {
            CHECK(r == BATV_RESULT_BUFFER_TOO_SMALL && len == need && buf[0] == '\0',
                  "%s: size %zu gives %u, out_len %zu", what, size, (unsigned)r, len);
        } else {
            CHECK(r == ok_code && len == need && strcmp(buf, expected) == 0,
                  "%s: size %zu gives %u, out_len %zu, \"%s\"", what, size, (unsigned)r, len,
                  buf);
        }
        CHECK(buf[size] == '#' && buf[sizeof buf - 1] == '#', "%s: wrote past buf_len %zu",
              what, size);
    }
}

struct call_ctx {
    const batv_keyring *keyring;
    const batv_policy *policy;
    const char *address;
    const char *recipient;
};

static batv_result call_sign(const void *c, char *buf, size_t n, size_t *len) {
    const struct call_ctx *x = c;
    return batv_sign(x->keyring, x->address, NOW, buf, n, len);
}
static batv_result call_verify(const void *c, char *buf, size_t n, size_t *len) {
    const struct call_ctx *x = c;
    return batv_verify(x->keyring, x->address, NOW, buf, n, len);
}
static batv_result call_strip(const void *c, char *buf, size_t n, size_t *len) {
    const struct call_ctx *x = c;
    return batv_strip(x->address, buf, n, len);
}
static batv_result call_check_bounce(const void *c, char *buf, size_t n, size_t *len) {
    const struct call_ctx *x = c;
    return batv_check_bounce(x->keyring, x->address, x->recipient, NOW, buf, n, len);
}
static batv_result call_policy_check(const void *c, char *buf, size_t n, size_t *len) {
    const struct call_ctx *x = c;
    batv_verdict v;
    return batv_policy_check(x->policy, x->keyring, x->address, x->recipient, NOW, &v, buf, n,
                             len);
}

static void test_buffer_protocol(const batv_keyring *k, const batv_policy *p) {
    struct call_ctx c;
    c.keyring = k;
    c.policy = p;
    c.recipient = "prvs=1790ac4fd6=user@example.com";

    c.address = "user@example.com";
    check_buffer_protocol("sign", call_sign, &c, BATV_RESULT_OK,
                          "prvs=1790ac4fd6=user@example.com");
    c.address = "prvs=1790ac4fd6=user@example.com";
    check_buffer_protocol("sign unchanged", call_sign, &c, BATV_RESULT_OK, c.address);
    check_buffer_protocol("verify", call_verify, &c, BATV_RESULT_OK, "user@example.com");
    check_buffer_protocol("strip", call_strip, &c, BATV_RESULT_OK, "user@example.com");
    c.address = "";
    check_buffer_protocol("check_bounce accept", call_check_bounce, &c, BATV_RESULT_OK,
                          "user@example.com");
    check_buffer_protocol("policy_check accept", call_policy_check, &c, BATV_RESULT_OK,
                          "user@example.com");
    c.recipient = "user@example.com";
    check_buffer_protocol("check_bounce reject", call_check_bounce, &c, BATV_RESULT_UNTAGGED,
                          "550 5.7.1 Bounce rejected: this address did not send the original "
                          "message (no BATV tag)");
}

/* Output buffers that overlap an input string. Each call reads one string `in` and answers in
 * `buf`; with separate buffers it gives `code` and `answer`. */
typedef batv_result (*overlap_call)(const batv_keyring *k, const batv_policy *p, const char *in,
                                    char *buf, size_t n, size_t *len);

static batv_result ov_sign(const batv_keyring *k, const batv_policy *p, const char *in,
                           char *buf, size_t n, size_t *len) {
    (void)p;
    return batv_sign(k, in, NOW, buf, n, len);
}
static batv_result ov_verify(const batv_keyring *k, const batv_policy *p, const char *in,
                             char *buf, size_t n, size_t *len) {
    (void)p;
    return batv_verify(k, in, NOW, buf, n, len);
}
static batv_result ov_strip(const batv_keyring *k, const batv_policy *p, const char *in,
                            char *buf, size_t n, size_t *len) {
    (void)k;
    (void)p;
    return batv_strip(in, buf, n, len);
}
static batv_result ov_check_bounce(const batv_keyring *k, const batv_policy *p, const char *in,
                                   char *buf, size_t n, size_t *len) {
    (void)p;
    return batv_check_bounce(k, "", in, NOW, buf, n, len);
}
static batv_result ov_policy_check(const batv_keyring *k, const batv_policy *p, const char *in,
                                   char *buf, size_t n, size_t *len) {
    batv_verdict v;
    return batv_policy_check(p, k, "", in, NOW, &v, buf, n, len);
}
/* The sender is the input here; the recipient is a separate, valid tag. */
static batv_result ov_policy_sender(const batv_keyring *k, const batv_policy *p, const char *in,
                                    char *buf, size_t n, size_t *len) {
    batv_verdict v;
    return batv_policy_check(p, k, in, "prvs=1790ac4fd6=user@example.com", NOW, &v, buf, n, len);
}

static void test_overlap(const batv_keyring *k, const batv_policy *p) {
    static const struct {
        const char *what;
        overlap_call call;
        const char *in;
        batv_result code;
        const char *answer;
    } cases[] = {
        {"sign", ov_sign, "user@example.com", BATV_RESULT_OK, "prvs=1790ac4fd6=user@example.com"},
        {"sign unchanged", ov_sign, "prvs=1790ac4fd6=user@example.com", BATV_RESULT_OK,
         "prvs=1790ac4fd6=user@example.com"},
        {"verify", ov_verify, "prvs=1790ac4fd6=user@example.com", BATV_RESULT_OK,
         "user@example.com"},
        {"strip", ov_strip, "prvs=1790ac4fd6=user@example.com", BATV_RESULT_OK,
         "user@example.com"},
        {"check_bounce", ov_check_bounce, "prvs=1790ac4fd6=user@example.com", BATV_RESULT_OK,
         "user@example.com"},
        {"policy_check", ov_policy_check, "prvs=1790ac4fd6=user@example.com", BATV_RESULT_OK,
         "user@example.com"},
        {"policy_check sender", ov_policy_sender, "mailer-daemon@relay.example", BATV_RESULT_OK,
         "user@example.com"},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *what = cases[i].what, *in = cases[i].in;
        size_t n = strlen(in), len;
        char arr[400], sep[BATV_ADDRESS_MAX];
        char *placed = arr + 150; /* the input inside a larger array */
        batv_result r;

        /* Separate buffers give the right answer. */
        len = 0;
        CHECK_RESULT(cases[i].call(k, p, in, sep, sizeof sep, &len), cases[i].code);
        CHECK_STR(sep, cases[i].answer);

        /* The buffer is the input, starts inside it, or holds its NUL: refused, nothing
         * written, so the input is still there and no wrong answer is. */
        {
            const size_t starts[] = {0, 3, n};
            size_t j;
            for (j = 0; j < sizeof starts / sizeof starts[0]; j++) {
                memset(arr, '#', sizeof arr);
                memcpy(placed, in, n + 1);
                len = 12345;
                r = cases[i].call(k, p, placed, placed + starts[j],
                                  sizeof arr - 150 - starts[j], &len);
                CHECK(r == BATV_RESULT_BUFFER_OVERLAP, "%s at +%zu: got %u (%s), buf \"%s\"",
                      what, starts[j], (unsigned)r, batv_strerror(r), placed + starts[j]);
                CHECK(strcmp(placed, in) == 0 && len == 12345,
                      "%s at +%zu: wrote \"%s\", out_len %zu", what, starts[j], placed, len);
            }
        }
        /* A buffer that ends where the input starts: the whole array, one octet short. */
        memset(arr, '#', sizeof arr);
        memcpy(placed, in, n + 1);
        r = cases[i].call(k, p, placed, arr, 150, &len);
        CHECK(r == cases[i].code && strcmp(arr, cases[i].answer) == 0,
              "%s just before the input: %u \"%s\"", what, (unsigned)r, arr);
        CHECK(strcmp(placed, in) == 0, "%s: the input is intact", what);
        CHECK_RESULT(cases[i].call(k, p, placed, arr, 151, &len), BATV_RESULT_BUFFER_OVERLAP);
        /* A buffer that starts just after the input's NUL. */
        memset(arr, '#', sizeof arr);
        memcpy(placed, in, n + 1);
        r = cases[i].call(k, p, placed, placed + n + 1, sizeof arr - 150 - n - 1, &len);
        CHECK(r == cases[i].code && strcmp(placed + n + 1, cases[i].answer) == 0,
              "%s just after the input: %u \"%s\"", what, (unsigned)r, placed + n + 1);
        CHECK(strcmp(placed, in) == 0, "%s: the input is intact", what);
    }

    /* *out_len inside the input, and a verdict that shares the buffer, are overlaps too. */
    {
        union {
            size_t n[32];
            char c[32 * sizeof(size_t)];
        } w;
        union {
            batv_verdict v;
            char c[BATV_ADDRESS_MAX + sizeof(batv_verdict)];
        } u;
        char buf[BATV_ADDRESS_MAX];
        const char *tagged = "prvs=1790ac4fd6=user@example.com";
        strcpy(w.c, tagged);
        CHECK_RESULT(batv_verify(k, w.c, NOW, buf, sizeof buf, &w.n[1]), BATV_RESULT_BUFFER_OVERLAP);
        CHECK_STR(w.c, tagged);
        CHECK_RESULT(batv_policy_check(p, k, "", tagged, NOW, &u.v, u.c, sizeof u.c, &w.n[0]),
                     BATV_RESULT_BUFFER_OVERLAP);
        CHECK_RESULT(batv_policy_check(p, k, "", tagged, NOW, &u.v, u.c + sizeof(batv_verdict),
                                       BATV_ADDRESS_MAX, &w.n[0]),
                     BATV_RESULT_OK);
        CHECK(u.v.accepted && u.v.reason == BATV_REASON_VALID, "a verdict beside the buffer");
        CHECK_STR(u.c + sizeof(batv_verdict), "user@example.com");
    }
}

/* Exemptions: a site's list of 20,000 each work, and patterns that could match nothing (a
 * glob, longer than an address) are refused. */
static void test_exemption_list(const batv_keyring *k) {
    batv_policy *p = NULL;
    char pattern[64], rcpt[64], buf[BATV_ADDRESS_MAX], *big;
    size_t len;
    int i, exempt = 0, rejected = 0, refused = 0;
    const int count = 20000;
    batv_verdict v;

    CHECK_RESULT(batv_policy_new(&p), BATV_RESULT_OK);
    for (i = 0; i < count; i++) {
        if (i % 3 == 0) sprintf(pattern, "User%d@Example.com", i);
        else if (i % 3 == 1) sprintf(pattern, "@D%d.example", i);
        else sprintf(pattern, "lp%d@", i);
        refused += batv_policy_add_exempt(p, pattern) != BATV_RESULT_OK;
    }
    for (i = 0; i < count; i++) {
        if (i % 3 == 0) sprintf(rcpt, "user%d@EXAMPLE.com", i);
        else if (i % 3 == 1) sprintf(rcpt, "anyone@d%d.EXAMPLE", i);
        else sprintf(rcpt, "LP%d@somewhere.example", i);
        exempt += batv_policy_check(p, k, "", rcpt, NOW, &v, buf, sizeof buf, &len) ==
                      BATV_RESULT_OK &&
                  v.reason == BATV_REASON_EXEMPT && strcmp(buf, rcpt) == 0;
        if (i % 3 == 0) sprintf(rcpt, "user%dx@example.com", i);
        else if (i % 3 == 1) sprintf(rcpt, "anyone@sub.d%d.example", i);
        else sprintf(rcpt, "lp%dx@somewhere.example", i);
        rejected += batv_policy_check(p, k, "", rcpt, NOW, &v, buf, sizeof buf, &len) ==
                    BATV_RESULT_UNTAGGED;
    }
    CHECK(refused == 0 && exempt == count && rejected == count,
          "%d exemptions: %d refused, %d exempt, %d rejected", count, refused, exempt, rejected);

    /* 1 MB, and one octet past the longest address, cannot match anything. */
    big = malloc((size_t)1 << 20);
    CHECK(big != NULL, "malloc");
    if (big != NULL) {
        memset(big, 'a', ((size_t)1 << 20) - 1);
        big[((size_t)1 << 20) - 1] = '\0';
        memcpy(big + 200, "@example.com", 12);
        CHECK_RESULT(batv_policy_add_exempt(p, big), BATV_RESULT_BAD_PATTERN);
        free(big);
    }
    {
        char longest[300];
        memset(longest, 'a', 243);
        strcpy(longest + 243, "@example.com"); /* 255 octets */
        CHECK_RESULT(batv_policy_add_exempt(p, longest), BATV_RESULT_BAD_PATTERN);
        CHECK_RESULT(batv_policy_add_exempt(p, longest + 1), BATV_RESULT_OK); /* 254 */
        CHECK_RESULT(batv_policy_check(p, k, "", longest + 1, NOW, &v, buf, sizeof buf, &len),
                     BATV_RESULT_OK);
        CHECK(v.reason == BATV_REASON_EXEMPT, "the longest exemption works");
    }
    /* Globs would be literals that match nothing: refused. */
    CHECK_RESULT(batv_policy_add_exempt(p, "*@lists.example.com"), BATV_RESULT_BAD_PATTERN);
    CHECK_RESULT(batv_policy_add_exempt(p, "bounces@*"), BATV_RESULT_BAD_PATTERN);
    CHECK_RESULT(batv_policy_add_exempt(p, "*@*"), BATV_RESULT_BAD_PATTERN);
    CHECK_RESULT(batv_policy_check(p, k, "", "*@lists.example.com", NOW, &v, buf, sizeof buf, &len),
                 BATV_RESULT_UNTAGGED);
    /* What they meant, written as the supported forms. */
    CHECK_RESULT(batv_policy_add_exempt(p, "@lists.example.com"), BATV_RESULT_OK);
    CHECK_RESULT(batv_policy_add_exempt(p, "bounces@"), BATV_RESULT_OK);
    CHECK_RESULT(batv_policy_check(p, k, "", "owner@lists.example.com", NOW, &v, buf, sizeof buf,
                                   &len),
                 BATV_RESULT_OK);
    CHECK_RESULT(batv_policy_check(p, k, "", "bounces@any.example", NOW, &v, buf, sizeof buf, &len),
                 BATV_RESULT_OK);
    batv_policy_free(p);
}

/* The default policy of batv_check_bounce, decision by decision (docs/scheme.md). */
static void test_check_bounce(const batv_keyring *k) {
    char tagged[BATV_ADDRESS_MAX], buf[BATV_ADDRESS_MAX], other[BATV_ADDRESS_MAX];
    size_t len;
    CHECK_RESULT(batv_sign(k, "user@example.com", NOW, tagged, sizeof tagged, &len),
                 BATV_RESULT_OK);

    /* A valid tag: accept and deliver to the original, whatever the sender. */
    CHECK_RESULT(batv_check_bounce(k, "", tagged, NOW, buf, sizeof buf, &len), BATV_RESULT_OK);
    CHECK_STR(buf, "user@example.com");
    CHECK_RESULT(batv_check_bounce(k, "friend@example.org", tagged, NOW, buf, sizeof buf, &len),
                 BATV_RESULT_OK);
    CHECK_STR(buf, "user@example.com");
    /* A bounce to an untagged address: the joe-job. */
    CHECK_RESULT(batv_check_bounce(k, "", "user@example.com", NOW, buf, sizeof buf, &len),
                 BATV_RESULT_UNTAGGED);
    CHECK(strncmp(buf, "550 5.7.1 ", 10) == 0 && len == strlen(buf), "reply: %s", buf);
    CHECK_RESULT(batv_check_bounce(k, "<>", "user@example.com", NOW, buf, sizeof buf, &len),
                 BATV_RESULT_UNTAGGED);
    CHECK_RESULT(batv_check_bounce(k, "MAILER-DAEMON@relay.example.net", "user@example.com", NOW,
                                   buf, sizeof buf, &len),
                 BATV_RESULT_UNTAGGED);
    /* Ordinary mail to an untagged address: accept, deliver as addressed. */
    CHECK_RESULT(batv_check_bounce(k, "friend@example.org", "user@example.com", NOW, buf,
                                   sizeof buf, &len),
                 BATV_RESULT_OK);
    CHECK_STR(buf, "user@example.com");
    /* Every bad tag is rejected with its own code and reply. */
    strcpy(other, tagged);
    tamper(other);
    CHECK_RESULT(batv_check_bounce(k, "", other, NOW, buf, sizeof buf, &len),
                 BATV_RESULT_BAD_SIGNATURE);
    CHECK_STR(buf, "550 5.7.1 Bounce rejected: invalid BATV signature");
    CHECK_RESULT(batv_check_bounce(k, "friend@example.org", other, NOW, buf, sizeof buf, &len),
                 BATV_RESULT_BAD_SIGNATURE);
    CHECK_RESULT(batv_check_bounce(k, "", tagged, NOW + 9 * DAY, buf, sizeof buf, &len),
                 BATV_RESULT_EXPIRED);
    CHECK(strstr(buf, "expired") != NULL, "%s", buf);
    CHECK_RESULT(batv_check_bounce(k, "", "prvs=3790ac4fd6=user@example.com", NOW, buf,
                                   sizeof buf, &len),
                 BATV_RESULT_UNKNOWN_KEY);
    CHECK(strstr(buf, "unknown key") != NULL, "%s", buf);
    CHECK_RESULT(batv_check_bounce(k, "", "prvs=17x0ac4fd6=user@example.com", NOW, buf,
                                   sizeof buf, &len),
                 BATV_RESULT_MALFORMED);
    CHECK(strstr(buf, "malformed") != NULL, "%s", buf);
    /* A recipient that is not an address is malformed, whatever the sender. */
    {
        char huge[300];
        memset(huge, 'a', 299);
        memcpy(huge + 299 - 12, "@example.com", 12);
        huge[299] = '\0';
        CHECK_RESULT(batv_check_bounce(k, "friend@example.net", huge, NOW, buf, sizeof buf, &len),
                     BATV_RESULT_MALFORMED);
        CHECK_STR(buf, "550 5.7.1 Rejected: malformed address or BATV tag");
    }
    CHECK_RESULT(batv_check_bounce(k, "friend@example.net", "\xff@example.com", NOW, buf,
                                   sizeof buf, &len),
                 BATV_RESULT_MALFORMED);
    /* A sender's octets need not be UTF-8 to tell that it is not a bounce. */
    CHECK_RESULT(batv_check_bounce(k, "\xff", "user@example.com", NOW, buf, sizeof buf, &len),
                 BATV_RESULT_OK);
    CHECK_STR(buf, "user@example.com");
}

/* The policy handle: exemptions, bounce local parts, monitor mode, the verdict. */
static void test_policy(const batv_keyring *k) {
    batv_policy *p = NULL;
    batv_verdict v;
    char buf[BATV_ADDRESS_MAX], tagged[BATV_ADDRESS_MAX], bad[BATV_ADDRESS_MAX];
    size_t len;
    const char *parts[] = {"bounces", "Postmaster"};
    const char *bad_parts[] = {"ok", "a@b"};
    const char *null_part[] = {"ok", NULL};
    const char *empty_part[] = {""};

    CHECK_RESULT(batv_sign(k, "user@example.com", NOW, tagged, sizeof tagged, &len),
                 BATV_RESULT_OK);
    strcpy(bad, tagged);
    tamper(bad);

    CHECK_RESULT(batv_policy_new(&p), BATV_RESULT_OK);
    CHECK(p != NULL, "policy made");
    /* Defaults: the same decisions as batv_check_bounce, with a verdict. */
    memset(&v, 0xAB, sizeof v);
    CHECK_RESULT(batv_policy_check(p, k, "", tagged, NOW, &v, buf, sizeof buf, &len),
                 BATV_RESULT_OK);
    CHECK(v.accepted && !v.monitored && v.reason == BATV_REASON_VALID && v.smtp_reply == NULL,
          "valid verdict");
    CHECK_STR(v.reason_word, "valid");
    CHECK_STR(buf, "user@example.com");
    CHECK_RESULT(batv_policy_check(p, k, "", "dmarc@example.com", NOW, &v, buf, sizeof buf, &len),
                 BATV_RESULT_UNTAGGED);
    CHECK(!v.accepted && v.reason == BATV_REASON_UNTAGGED && v.smtp_reply != NULL, "reject");
    CHECK_STR(v.reason_word, "untagged");
    CHECK_STR(buf, v.smtp_reply);
    CHECK_RESULT(batv_policy_check(p, k, "x@example.org", "dmarc@example.com", NOW, &v, buf,
                                   sizeof buf, &len),
                 BATV_RESULT_OK);
    CHECK(v.accepted && v.reason == BATV_REASON_NOT_BOUNCE, "not-bounce");
    CHECK_STR(v.reason_word, "not-bounce");
    /* The verdict is optional. */
    CHECK_RESULT(batv_policy_check(p, k, "", tagged, NOW, NULL, buf, sizeof buf, &len),
                 BATV_RESULT_OK);

    /* Exemptions: one address, a domain, a local part everywhere; case-insensitive. */
    CHECK_RESULT(batv_policy_add_exempt(p, "dmarc@example.com"), BATV_RESULT_OK);
    CHECK_RESULT(batv_policy_add_exempt(p, "@lists.example.org"), BATV_RESULT_OK);
    CHECK_RESULT(batv_policy_add_exempt(p, "abuse@"), BATV_RESULT_OK);
    CHECK_RESULT(batv_policy_add_exempt(p, "nobody"), BATV_RESULT_BAD_PATTERN);
    CHECK_RESULT(batv_policy_add_exempt(p, "@"), BATV_RESULT_BAD_PATTERN);
    CHECK_RESULT(batv_policy_add_exempt(p, ""), BATV_RESULT_BAD_PATTERN);
    CHECK_RESULT(batv_policy_add_exempt(p, "a\n@b"), BATV_RESULT_BAD_PATTERN);
    CHECK_RESULT(batv_policy_add_exempt(p, "\xff@b"), BATV_RESULT_NOT_UTF8);
    CHECK_RESULT(batv_policy_check(p, k, "", "DMARC@Example.COM", NOW, &v, buf, sizeof buf, &len),
                 BATV_RESULT_OK);
    CHECK(v.accepted && v.reason == BATV_REASON_EXEMPT, "exempt address");
    CHECK_STR(v.reason_word, "exempt");
    CHECK_STR(buf, "DMARC@Example.COM");
    CHECK_RESULT(batv_policy_check(p, k, "", "owner@lists.example.org", NOW, &v, buf, sizeof buf,
                                   &len),
                 BATV_RESULT_OK);
    CHECK(v.reason == BATV_REASON_EXEMPT, "exempt domain");
    CHECK_RESULT(batv_policy_check(p, k, "", "abuse@anywhere.example", NOW, &v, buf, sizeof buf,
                                   &len),
                 BATV_RESULT_OK);
    CHECK(v.reason == BATV_REASON_EXEMPT, "exempt local part");
    CHECK_RESULT(batv_policy_check(p, k, "", "other@example.com", NOW, &v, buf, sizeof buf, &len),
                 BATV_RESULT_UNTAGGED);
    /* Exemptions do not excuse a bad tag. */
    CHECK_RESULT(batv_policy_check(p, k, "", bad, NOW, &v, buf, sizeof buf, &len),
                 BATV_RESULT_BAD_SIGNATURE);
    CHECK(v.reason == BATV_REASON_BAD_SIGNATURE, "bad-signature verdict");
    CHECK_STR(v.reason_word, "bad-signature");

    /* Bounce local parts replace mailer-daemon; a bad list leaves the policy unchanged. */
    CHECK_RESULT(batv_policy_check(p, k, "bounces@relay.example", "other@example.com", NOW, &v,
                                   buf, sizeof buf, &len),
                 BATV_RESULT_OK);
    CHECK_RESULT(batv_policy_set_bounce_local_parts(p, parts, 2), BATV_RESULT_OK);
    CHECK_RESULT(batv_policy_check(p, k, "BOUNCES@relay.example", "other@example.com", NOW, &v,
                                   buf, sizeof buf, &len),
                 BATV_RESULT_UNTAGGED);
    CHECK_RESULT(batv_policy_check(p, k, "postmaster@relay.example", "other@example.com", NOW, &v,
                                   buf, sizeof buf, &len),
                 BATV_RESULT_UNTAGGED);
    CHECK_RESULT(batv_policy_check(p, k, "mailer-daemon@relay.example", "other@example.com", NOW,
                                   &v, buf, sizeof buf, &len),
                 BATV_RESULT_OK);
    CHECK_RESULT(batv_policy_set_bounce_local_parts(p, bad_parts, 2), BATV_RESULT_BAD_PATTERN);
    CHECK_RESULT(batv_policy_set_bounce_local_parts(p, empty_part, 1), BATV_RESULT_BAD_PATTERN);
    CHECK_RESULT(batv_policy_set_bounce_local_parts(p, null_part, 2), BATV_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(batv_policy_set_bounce_local_parts(p, NULL, 1), BATV_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(batv_policy_check(p, k, "bounces@relay.example", "other@example.com", NOW, &v,
                                   buf, sizeof buf, &len),
                 BATV_RESULT_UNTAGGED);
    /* count 0: only the null sender is a bounce. */
    CHECK_RESULT(batv_policy_set_bounce_local_parts(p, NULL, 0), BATV_RESULT_OK);
    CHECK_RESULT(batv_policy_check(p, k, "bounces@relay.example", "other@example.com", NOW, &v,
                                   buf, sizeof buf, &len),
                 BATV_RESULT_OK);
    CHECK_RESULT(batv_policy_check(p, k, "", "other@example.com", NOW, &v, buf, sizeof buf, &len),
                 BATV_RESULT_UNTAGGED);

    /* Monitor mode: accept everything, keep the reason, deliver to the stripped recipient. */
    CHECK_RESULT(batv_policy_set_monitor(p, true), BATV_RESULT_OK);
    CHECK_RESULT(batv_policy_check(p, k, "", "other@example.com", NOW, &v, buf, sizeof buf, &len),
                 BATV_RESULT_OK);
    CHECK(v.accepted && v.monitored && v.reason == BATV_REASON_UNTAGGED && v.smtp_reply == NULL,
          "monitored untagged");
    CHECK_STR(buf, "other@example.com");
    CHECK_RESULT(batv_policy_check(p, k, "", bad, NOW, &v, buf, sizeof buf, &len),
                 BATV_RESULT_OK);
    CHECK(v.accepted && v.monitored && v.reason == BATV_REASON_BAD_SIGNATURE, "monitored bad");
    CHECK_STR(buf, "user@example.com");
    CHECK_RESULT(batv_policy_check(p, k, "", tagged, NOW + 30 * DAY, &v, buf, sizeof buf, &len),
                 BATV_RESULT_OK);
    CHECK(v.monitored && v.reason == BATV_REASON_EXPIRED, "monitored expired");
    CHECK_STR(v.reason_word, "expired");
    CHECK_RESULT(batv_policy_check(p, k, "", "prvs=4790ac4fd6=user@example.com", NOW, &v, buf,
                                   sizeof buf, &len),
                 BATV_RESULT_OK);
    CHECK(v.monitored && v.reason == BATV_REASON_UNKNOWN_KEY, "monitored unknown key");
    CHECK_STR(v.reason_word, "unknown-key");
    CHECK_RESULT(batv_policy_check(p, k, "", "prvs=4790ac4fdX=user@example.com", NOW, &v, buf,
                                   sizeof buf, &len),
                 BATV_RESULT_OK);
    CHECK(v.monitored && v.reason == BATV_REASON_MALFORMED, "monitored malformed");
    CHECK_STR(v.reason_word, "malformed");
    CHECK_RESULT(batv_policy_check(p, k, "", tagged, NOW, &v, buf, sizeof buf, &len),
                 BATV_RESULT_OK);
    CHECK(!v.monitored && v.reason == BATV_REASON_VALID, "valid is not monitored");
    CHECK_RESULT(batv_policy_set_monitor(p, false), BATV_RESULT_OK);
    CHECK_RESULT(batv_policy_check(p, k, "", bad, NOW, &v, buf, sizeof buf, &len),
                 BATV_RESULT_BAD_SIGNATURE);

    /* A too-small buffer still fills the verdict. */
    memset(&v, 0, sizeof v);
    CHECK_RESULT(batv_policy_check(p, k, "", tagged, NOW, &v, buf, 4, &len),
                 BATV_RESULT_BUFFER_TOO_SMALL);
    CHECK(v.accepted && v.reason == BATV_REASON_VALID && len == 16, "verdict with small buffer");

    batv_policy_free(p);
    batv_policy_free(NULL);
}

/* NULL for every pointer argument of every function that takes one. */
static void test_null_arguments(const batv_keyring *k) {
    char buf[BATV_ADDRESS_MAX];
    size_t len = 77;
    batv_policy *p = NULL;
    batv_verdict v;
    const char *a = "user@example.com";

    CHECK_RESULT(batv_policy_new(&p), BATV_RESULT_OK);

    CHECK_RESULT(batv_sign(NULL, a, NOW, buf, sizeof buf, &len), BATV_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(batv_sign(k, NULL, NOW, buf, sizeof buf, &len), BATV_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(batv_sign(k, a, NOW, NULL, sizeof buf, &len), BATV_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(batv_sign(k, a, NOW, buf, sizeof buf, NULL), BATV_RESULT_NULL_ARGUMENT);

    CHECK_RESULT(batv_verify(NULL, a, NOW, buf, sizeof buf, &len), BATV_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(batv_verify(k, NULL, NOW, buf, sizeof buf, &len), BATV_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(batv_verify(k, a, NOW, NULL, sizeof buf, &len), BATV_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(batv_verify(k, a, NOW, buf, sizeof buf, NULL), BATV_RESULT_NULL_ARGUMENT);

    CHECK_RESULT(batv_strip(NULL, buf, sizeof buf, &len), BATV_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(batv_strip(a, NULL, sizeof buf, &len), BATV_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(batv_strip(a, buf, sizeof buf, NULL), BATV_RESULT_NULL_ARGUMENT);

    CHECK_RESULT(batv_check_bounce(NULL, "", a, NOW, buf, sizeof buf, &len),
                 BATV_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(batv_check_bounce(k, NULL, a, NOW, buf, sizeof buf, &len),
                 BATV_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(batv_check_bounce(k, "", NULL, NOW, buf, sizeof buf, &len),
                 BATV_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(batv_check_bounce(k, "", a, NOW, NULL, sizeof buf, &len),
                 BATV_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(batv_check_bounce(k, "", a, NOW, buf, sizeof buf, NULL),
                 BATV_RESULT_NULL_ARGUMENT);

    CHECK_RESULT(batv_policy_check(NULL, k, "", a, NOW, &v, buf, sizeof buf, &len),
                 BATV_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(batv_policy_check(p, NULL, "", a, NOW, &v, buf, sizeof buf, &len),
                 BATV_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(batv_policy_check(p, k, NULL, a, NOW, &v, buf, sizeof buf, &len),
                 BATV_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(batv_policy_check(p, k, "", NULL, NOW, &v, buf, sizeof buf, &len),
                 BATV_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(batv_policy_check(p, k, "", a, NOW, &v, NULL, sizeof buf, &len),
                 BATV_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(batv_policy_check(p, k, "", a, NOW, &v, buf, sizeof buf, NULL),
                 BATV_RESULT_NULL_ARGUMENT);
    /* verdict_out is optional (tested in test_policy). */

    CHECK_RESULT(batv_policy_new(NULL), BATV_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(batv_policy_add_exempt(NULL, "a@b"), BATV_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(batv_policy_add_exempt(p, NULL), BATV_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(batv_policy_set_bounce_local_parts(NULL, NULL, 0), BATV_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(batv_policy_set_monitor(NULL, true), BATV_RESULT_NULL_ARGUMENT);
    /* keyring_load/_parse (and _ex) NULLs are in their own tests; the frees accept NULL. */
    batv_policy_free(NULL);
    batv_keyring_free(NULL);

    batv_policy_free(p);
}

/* ---- the test vectors (docs/scheme.md, "MAC schemes") ---- */

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    int64_t era;
    unsigned yoe, doy, doe;
    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* Splits a TSV line in place into at most `max` fields; returns the count. */
static int split_tabs(char *line, char **fields, int max) {
    int n = 0;
    char *p = line;
    line[strcspn(line, "\r\n")] = '\0';
    while (n < max) {
        fields[n++] = p;
        p = strchr(p, '\t');
        if (p == NULL) break;
        *p++ = '\0';
    }
    return n;
}

/* One vector: the keyring signs `address` at `now` as `signed_form`, which then verifies
 * back, is valid through its last day, expires after, and fails with any other secret. */
static void check_vector(const char *file, int lineno, const char *scheme, const char *secret,
                         const char *key_number, const char *address, int64_t now,
                         unsigned lifetime, const char *signed_form) {
    char text[512], buf[BATV_ADDRESS_MAX], upper[BATV_ADDRESS_MAX];
    size_t len, i, hex = signed_form[0] == '"' ? 10 : 9; /* after [\"]prvs=KDDD */
    batv_keyring *k = NULL, *wrong = NULL;

    sprintf(text, "lifetime-days %u\nskew-days 0\nkey %s %s text:%s\n", lifetime, key_number,
            scheme, secret);
    k = parse_keyring(text);
    sprintf(text, "lifetime-days %u\nskew-days 0\nkey %s %s text:%s!\n", lifetime, key_number,
            scheme, secret);
    wrong = parse_keyring(text);
    if (k == NULL || wrong == NULL) return;

    CHECK_RESULT(batv_sign(k, address, now, buf, sizeof buf, &len), BATV_RESULT_OK);
    CHECK(strcmp(buf, signed_form) == 0, "%s:%d: signed \"%s\", want \"%s\"", file, lineno, buf,
          signed_form);
    CHECK_RESULT(batv_verify(k, signed_form, now, buf, sizeof buf, &len), BATV_RESULT_OK);
    CHECK(strcmp(buf, address) == 0, "%s:%d: verified to \"%s\"", file, lineno, buf);
    CHECK_RESULT(batv_verify(k, signed_form, now + (int64_t)lifetime * DAY, buf, sizeof buf,
                             &len),
                 BATV_RESULT_OK);
    CHECK_RESULT(batv_verify(k, signed_form, now + ((int64_t)lifetime + 1) * DAY, buf,
                             sizeof buf, &len),
                 BATV_RESULT_EXPIRED);
    CHECK_RESULT(batv_verify(wrong, signed_form, now, buf, sizeof buf, &len),
                 BATV_RESULT_BAD_SIGNATURE);
    /* The hex signature is accepted in upper case (Exim compares it case-sensitively). */
    strcpy(upper, signed_form);
    for (i = hex; i < hex + 6 && upper[i] != '\0'; i++) {
        if (upper[i] >= 'a' && upper[i] <= 'f') upper[i] = (char)(upper[i] - 'a' + 'A');
    }
    CHECK_RESULT(batv_verify(k, upper, now, buf, sizeof buf, &len), BATV_RESULT_OK);
    CHECK_RESULT(batv_strip(signed_form, buf, sizeof buf, &len), BATV_RESULT_OK);
    CHECK(strcmp(buf, address) == 0, "%s:%d: stripped to \"%s\"", file, lineno, buf);
    batv_keyring_free(k);
    batv_keyring_free(wrong);
}

static int test_vectors(const char *dir) {
    char path[4096], line[1024];
    char *f[8];
    int lineno, rows = 0;
    FILE *in;

    /* algorithm, secret (text), key_number, address, now_unix, lifetime_days, signed */
    snprintf(path, sizeof path, "%s/batv-scheme.tsv", dir);
    in = fopen(path, "r");
    CHECK(in != NULL, "open %s", path);
    if (in == NULL) return 0;
    for (lineno = 1; fgets(line, sizeof line, in) != NULL; lineno++) {
        if (line[0] == '#' || line[0] == '\n') continue;
        CHECK(split_tabs(line, f, 8) == 7, "%s:%d: 7 fields", path, lineno);
        check_vector(path, lineno, f[0], f[1], f[2], f[3], strtoll(f[4], NULL, 10),
                     (unsigned)strtoul(f[5], NULL, 10), f[6]);
        rows++;
    }
    fclose(in);

    /* signing_date_utc, secret, key_number, address, exim_signed: Exim's ${prvs} is
     * hmac-sha1 with 7 days' lifetime; sign at noon of the signing date. */
    snprintf(path, sizeof path, "%s/exim-prvs.tsv", dir);
    in = fopen(path, "r");
    CHECK(in != NULL, "open %s", path);
    if (in == NULL) return rows;
    for (lineno = 1; fgets(line, sizeof line, in) != NULL; lineno++) {
        int y = 0, m = 0, d = 0;
        if (line[0] == '#' || line[0] == '\n') continue;
        CHECK(split_tabs(line, f, 8) == 5, "%s:%d: 5 fields", path, lineno);
        CHECK(sscanf(f[0], "%d-%d-%d", &y, &m, &d) == 3, "%s:%d: date", path, lineno);
        check_vector(path, lineno, "hmac-sha1", f[1], f[2], f[3],
                     days_from_civil(y, (unsigned)m, (unsigned)d) * DAY + DAY / 2, 7, f[4]);
        rows++;
    }
    fclose(in);
    return rows;
}

int main(int argc, char **argv) {
    batv_keyring *k;
    batv_policy *p = NULL;
    int rows;

    if (argc < 2) {
        fprintf(stderr, "usage: %s VECTORS_DIR\n", argv[0]);
        return 2;
    }
    test_strerror_and_version();
    test_keyring_parse();
    test_keyring_load();
    k = parse_keyring(KEYRING_TEXT);
    if (k == NULL) return check_summary(argv[0]);
    CHECK_RESULT(batv_policy_new(&p), BATV_RESULT_OK);
    test_sign_verify(k);
    test_buffer_protocol(k, p);
    test_overlap(k, p);
    test_check_bounce(k);
    test_policy(k);
    test_exemption_list(k);
    test_null_arguments(k);
    rows = test_vectors(argv[1]);
    CHECK(rows >= 10, "read %d vector rows", rows);
    printf("vectors: %d rows\n", rows);
    CHECK_RESULT(batv_test_panic(), BATV_RESULT_PANIC);
    /* The library still works after a caught panic. */
    {
        char buf[BATV_ADDRESS_MAX];
        size_t len;
        CHECK_RESULT(batv_sign(k, "user@example.com", NOW, buf, sizeof buf, &len),
                     BATV_RESULT_OK);
    }
    batv_policy_free(p);
    batv_keyring_free(k);
    return check_summary(argv[0]);
}
