/* Bump allocator: chunks that grow from 1 KiB to 16 KiB (an arena that holds one small object,
 * like a pod from the Kubernetes API, stays small), freed together. */
#include "gammamesh/arena.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "gammamesh/util.h"

#define ARENA_CHUNK       16384
#define ARENA_FIRST_CHUNK 1024
#define ARENA_ALIGN       16

struct gm_arena_chunk {
    struct gm_arena_chunk *next;
    size_t used, size;
    _Alignas(16) unsigned char data[];
};

void gm_arena_init(struct gm_arena *a)
{
    a->head = NULL;
    a->bytes = 0;
}

void gm_arena_done(struct gm_arena *a)
{
    struct gm_arena_chunk *c = a->head;

    while (c) {
        struct gm_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->bytes = 0;
}

void *gm_arena_alloc(struct gm_arena *a, size_t n)
{
    struct gm_arena_chunk *c = a->head;

    n = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (n == 0)
        n = ARENA_ALIGN;
    if (c == NULL || c->size - c->used < n) {
        size_t size = c ? 2 * c->size : ARENA_FIRST_CHUNK;
        if (size > ARENA_CHUNK)
            size = ARENA_CHUNK;
        if (size < n)
            size = n;
        c = gm_xmalloc(sizeof(*c) + size);
        c->used = 0;
        c->size = size;
        c->next = a->head;
        a->head = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    a->bytes += n;
    memset(p, 0, n);
    return p;
}

char *gm_arena_strndup(struct gm_arena *a, const char *s, size_t n)
{
    char *p = gm_arena_alloc(a, n + 1);

    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *gm_arena_strdup(struct gm_arena *a, const char *s)
{
    return s ? gm_arena_strndup(a, s, strlen(s)) : NULL;
}

char *gm_arena_printf(struct gm_arena *a, const char *fmt, ...)
{
    va_list ap;
    char small[256];

    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    char *p = gm_arena_alloc(a, (size_t)n + 1);
    if ((size_t)n < sizeof(small)) {
        memcpy(p, small, (size_t)n + 1);
    } else {
        va_start(ap, fmt);
        vsnprintf(p, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    return p;
}
