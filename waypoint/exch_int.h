/* Internal interface between the two halves of the exchange: exch.c (lifecycle, request body,
 * local answers, finishing and telemetry) and exch_attempt.c (decisions, attempts upstream,
 * timeouts, retries). */
#ifndef WP_EXCH_INT_H
#define WP_EXCH_INT_H

#include "exch.h"

/* What the attempt timer is counting. */
enum wp_timer_kind {
    WP_TIMER_NONE = 0, /* stopped */
    WP_TIMER_CONNECT,  /* the upstream tunnel must open (connect-timeout) */
    WP_TIMER_BACKEND,  /* timeouts.backendRequest of this attempt */
    WP_TIMER_BACKOFF,  /* wait before the next attempt */
    WP_TIMER_HEAD,     /* HTTP/2: the request's header block must complete (head-timeout) */
    WP_TIMER__MAX
};

void wp_exch_set_state(struct wp_exch *x, enum wp_exch_state next);
/* Hand x->resp news to the downstream (or drop the body when there is none). */
void wp_exch_give(struct wp_exch *x);
/* Finished: log, count, free upstream resources and timers. Idempotent; reason static. */
void wp_exch_finish(struct wp_exch *x, const char *reason);
/* The whole request so far is still held (a retry may resend it). */
bool wp_exch_replayable(const struct wp_exch *x);
/* Reset x->resp for a new attempt. */
void wp_exch_resp_reset(struct wp_exch *x);
/* A local answer with extra fields (Location). */
void wp_exch_answer(struct wp_exch *x, int status, const char *body, const char *location,
                    const char *flags);

/* exch_attempt.c */
void wp_exch_decide(struct wp_exch *x);
void wp_exch_attempt_stop(struct wp_exch *x);
void wp_exch_deadline_start(struct wp_exch *x);
/* Bytes moved: an idle deadline starts over. */
void wp_exch_touch(struct wp_exch *x);
/* Start the deadline and the first attempt of an exchange whose decision is made (mirrors). */
void wp_exch_forward(struct wp_exch *x);

#endif
