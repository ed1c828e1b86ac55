/* Retry decisions of GEP-1731 (waypoint/retry.c), by a table. */
#include "../../waypoint/retry.h"
#include "test.h"

static int codes_5xx[] = {500, 503};

static void test_table(void)
{
    const struct gm_retry three = {
        .present = true, .attempts = 3, .codes = codes_5xx, .n_codes = 2, .backoff_ms = 100};
    const struct gm_retry no_attempts = {
        .present = true, .attempts = -1, .codes = codes_5xx, .n_codes = 2, .backoff_ms = -1};
    const struct gm_retry no_codes = {.present = true, .attempts = 2};
    const struct {
        const struct gm_retry *r;
        int done;
        enum wp_retry_cause cause;
        int status;
        bool replayable;
        bool want;
    } cases[] = {
        /* no stanza: never */
        {NULL, 0, WP_RETRY_STATUS, 503, true, false},
        {NULL, 0, WP_RETRY_CONNECT, 0, true, false},
        {NULL, 0, WP_RETRY_TIMEOUT, 0, true, false},
        /* listed codes, up to `attempts` retries */
        {&three, 0, WP_RETRY_STATUS, 503, true, true},
        {&three, 2, WP_RETRY_STATUS, 500, true, true},
        {&three, 3, WP_RETRY_STATUS, 503, true, false},
        {&three, 0, WP_RETRY_STATUS, 502, true, false},
        {&three, 0, WP_RETRY_STATUS, 200, true, false},
        {&three, 0, WP_RETRY_STATUS, 404, true, false},
        /* connection errors and attempt timeouts whenever a stanza exists */
        {&three, 0, WP_RETRY_CONNECT, 0, true, true},
        {&three, 2, WP_RETRY_TIMEOUT, 0, true, true},
        {&three, 3, WP_RETRY_CONNECT, 0, true, false},
        {&no_codes, 0, WP_RETRY_CONNECT, 0, true, true},
        {&no_codes, 0, WP_RETRY_STATUS, 503, true, false},
        /* a body streamed past the buffer cannot be replayed */
        {&three, 0, WP_RETRY_STATUS, 503, false, false},
        {&three, 0, WP_RETRY_CONNECT, 0, false, false},
        /* attempts unset: one retry */
        {&no_attempts, 0, WP_RETRY_STATUS, 500, true, true},
        {&no_attempts, 1, WP_RETRY_STATUS, 500, true, false},
    };

    for (size_t i = 0; i < GM_ARRAY_LEN(cases); i++) {
        bool got = wp_retry_should(cases[i].r, cases[i].done, cases[i].cause, cases[i].status,
                                   cases[i].replayable);
        if (got != cases[i].want)
            fprintf(stderr, "case %zu: got %d\n", i, got);
        CHECK(got == cases[i].want);
    }
    CHECK_EQ_INT(wp_retry_backoff_ms(&three), 100);
    CHECK_EQ_INT(wp_retry_backoff_ms(&no_attempts), WP_RETRY_DEFAULT_BACKOFF_MS);
    CHECK_EQ_INT(wp_retry_backoff_ms(NULL), WP_RETRY_DEFAULT_BACKOFF_MS);
}

int main(void)
{
    test_table();
    return TEST_DONE();
}
