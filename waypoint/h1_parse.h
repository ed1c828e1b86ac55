/* The HTTP/1.1 request path (pure, no I/O): the strict head validator (h1_check.h) followed by
 * llhttp in strict mode for the body framing (Content-Length or chunked), one request at a time.
 * The caller keeps the unparsed input and feeds it from its first unconsumed byte:
 *
 *     n = wp_h1p_feed(&p, in, in_len);   (bytes consumed, or -status: answer and close)
 *     ... on_head(), then on_body() any number of times, then on_complete() ...
 *     after on_complete the parser stops consuming; wp_h1p_next(&p) starts the next request.
 *
 * Chunk extensions are capped (4 KiB per chunk line) and so are trailer fields (the head's
 * limits); trailers are parsed and dropped. */
#ifndef WP_H1_PARSE_H
#define WP_H1_PARSE_H

#include <llhttp.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "h1_check.h"

#define WP_H1_CHUNK_EXT_MAX 4096

enum wp_h1p_state {
    WP_H1P_HEAD = 0, /* waiting for a complete head */
    WP_H1P_BODY,     /* head delivered; body bytes flow */
    WP_H1P_DONE,     /* the message is complete; nothing is consumed until wp_h1p_next() */
    WP_H1P_ERROR,    /* refused: status set; the connection must close */
    WP_H1P__MAX
};

/* Callbacks; ctx is the caller's. Each returns 0, or a negative errno to stop parsing (the feed
 * then returns -500 unless the callback set the status with wp_h1p_fail()). */
struct wp_h1p_cbs {
    /* The head: buf[0..h->length) holds it (valid during the call). has_body: a body follows
     * (Content-Length > 0 or chunked). */
    int (*on_head)(void *ctx, const char *buf, const struct wp_h1_head *h, bool has_body);
    int (*on_body)(void *ctx, const char *p, size_t n);
    /* keep_alive: the connection may carry another request after this one. */
    int (*on_complete)(void *ctx, bool keep_alive);
};

struct wp_h1p {
    enum wp_h1p_state state;
    llhttp_t llhttp;
    llhttp_settings_t settings;
    struct wp_h1_head head;
    const struct wp_h1p_cbs *cbs;
    void *ctx;
    const char *head_buf; /* during the head's llhttp pass */
    int status;           /* WP_H1P_ERROR: 400, 431, ... */
    const char *why;
    size_t ext_bytes;     /* chunk extension bytes in the current chunk line */
    size_t trailer_bytes; /* trailer section bytes */
    size_t n_trailers;
    bool cb_failed;
};

void wp_h1p_init(struct wp_h1p *p, const struct wp_h1_limits *lim, const struct wp_h1p_cbs *cbs,
                 void *ctx);
void wp_h1p_done(struct wp_h1p *p);

/*
 * Parse from buf[0..len) (the unconsumed input). Returns how many bytes were consumed (0 while a
 * head is incomplete: keep them and call again with more), or -status (400, 431, 501, 505, ...)
 * when the input is refused: answer that status and close the connection. Stops consuming after
 * a complete message (state DONE). Callbacks run before it returns.
 */
ssize_t wp_h1p_feed(struct wp_h1p *p, const char *buf, size_t len);

/* After DONE: ready for the next request on the same connection. */
void wp_h1p_next(struct wp_h1p *p);

/* From a callback: refuse the request with status (the feed returns -status). */
void wp_h1p_fail(struct wp_h1p *p, int status, const char *why);

#endif
