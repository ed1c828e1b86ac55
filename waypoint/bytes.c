/* The capped byte FIFO (bytes.h). */
#include "bytes.h"

#include <errno.h>
#include <string.h>

#include "gammamesh/util.h"

void wp_bytes_init(struct wp_bytes *b, size_t cap)
{
    memset(b, 0, sizeof(*b));
    b->cap = cap;
}

void wp_bytes_done(struct wp_bytes *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

int wp_bytes_append(struct wp_bytes *b, const void *p, size_t n)
{
    size_t used = b->len - b->off;

    if (n == 0)
        return 0;
    if (b->cap && used + n > b->cap)
        return -ENOBUFS;
    if (b->len + n > b->alloc && b->off > 0) {
        memmove(b->p, b->p + b->off, used); /* reclaim the consumed head first */
        b->off = 0;
        b->len = used;
    }
    if (b->len + n > b->alloc) {
        size_t want = b->alloc ? b->alloc : 4096;
        while (want < b->len + n)
            want *= 2;
        b->p = gm_xrealloc(b->p, want);
        b->alloc = want;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

void wp_bytes_consume(struct wp_bytes *b, size_t n)
{
    size_t used = b->len - b->off;

    b->off += n < used ? n : used;
    if (b->off == b->len)
        b->off = b->len = 0;
}

void wp_bytes_clear(struct wp_bytes *b)
{
    b->off = b->len = 0;
}
