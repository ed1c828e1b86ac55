/* A capped FIFO of bytes: appended at the tail, taken from the head. Used for request bodies
 * (kept for replay), response bodies waiting for the downstream, and unparsed input. */
#ifndef WP_BYTES_H
#define WP_BYTES_H

#include <stdbool.h>
#include <stddef.h>

struct wp_bytes {
    char *p;
    size_t off; /* first unread byte */
    size_t len; /* end of the data (p[off..len) is queued) */
    size_t alloc;
    size_t cap; /* most bytes queued at once; 0 = unlimited */
};

void wp_bytes_init(struct wp_bytes *b, size_t cap);
void wp_bytes_done(struct wp_bytes *b);
/* Queue n bytes of p (copied): 0, or -ENOBUFS past the cap (nothing queued). */
int wp_bytes_append(struct wp_bytes *b, const void *p, size_t n);
/* Drop n bytes from the head (at most what is queued). */
void wp_bytes_consume(struct wp_bytes *b, size_t n);
/* Drop everything. */
void wp_bytes_clear(struct wp_bytes *b);

static inline size_t wp_bytes_size(const struct wp_bytes *b)
{
    return b->len - b->off;
}

static inline const char *wp_bytes_data(const struct wp_bytes *b)
{
    return b->p ? b->p + b->off : "";
}

#endif
