/* Retry decisions of GEP-1731 (pure). A rule without a retry stanza is never retried. With one:
 * `attempts` is the most retries (1 when unset); a response is retried when its status is in
 * `codes`; a connection error (refused, reset, tunnel failure) or an attempt that hit
 * backendRequest is retried whenever a stanza exists; and only while the request body is still
 * fully held (not streamed past max-body-buffer). `backoff` is the minimum wait before each
 * retry (25 ms when unset); the wait is constant, never shorter. */
#ifndef WP_RETRY_H
#define WP_RETRY_H

#include <stdbool.h>
#include <stdint.h>

#include "gammamesh/objects.h"

#define WP_RETRY_DEFAULT_ATTEMPTS   1
#define WP_RETRY_DEFAULT_BACKOFF_MS 25

/* What ended an attempt. */
enum wp_retry_cause {
    WP_RETRY_STATUS = 0, /* a response head arrived with a status */
    WP_RETRY_CONNECT,    /* the upstream tunnel or connection failed before a response */
    WP_RETRY_TIMEOUT,    /* the attempt hit backendRequest */
    WP_RETRY__MAX
};

/* Should attempt number retries_done + 1 end in a retry? r may be NULL (no stanza). status is
 * the response status for WP_RETRY_STATUS. replayable: the whole body so far is still held. */
bool wp_retry_should(const struct gm_retry *r, int retries_done, enum wp_retry_cause cause,
                     int status, bool replayable);

/* Milliseconds to wait before the next retry. */
uint64_t wp_retry_backoff_ms(const struct gm_retry *r);

#endif
