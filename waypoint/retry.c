/* Retry decisions (retry.h). */
#include "retry.h"

#include <stddef.h>

static bool code_listed(const struct gm_retry *r, int status)
{
    for (size_t i = 0; i < r->n_codes; i++)
        if (r->codes[i] == status)
            return true;
    return false;
}

bool wp_retry_should(const struct gm_retry *r, int retries_done, enum wp_retry_cause cause,
                     int status, bool replayable)
{
    int max;

    if (r == NULL || !r->present || !replayable)
        return false;
    max = r->attempts >= 0 ? r->attempts : WP_RETRY_DEFAULT_ATTEMPTS;
    if (retries_done >= max)
        return false;
    if (cause == WP_RETRY_STATUS)
        return code_listed(r, status);
    return true;
}

uint64_t wp_retry_backoff_ms(const struct gm_retry *r)
{
    if (r == NULL || r->backoff_ms < 0)
        return WP_RETRY_DEFAULT_BACKOFF_MS;
    return (uint64_t)r->backoff_ms;
}
