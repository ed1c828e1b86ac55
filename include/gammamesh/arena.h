/* A bump allocator: many small allocations freed at once. Used for parsed YAML trees, decoded
 * objects and snapshots, whose pieces all share one lifetime. Not thread-safe. */
#ifndef GAMMAMESH_ARENA_H
#define GAMMAMESH_ARENA_H

#include <stddef.h>

struct gm_arena_chunk;

struct gm_arena {
    struct gm_arena_chunk *head; /* newest chunk first */
    size_t bytes;                /* total bytes handed out */
};

void gm_arena_init(struct gm_arena *a);
/* Frees every allocation made from the arena. Accepts a zeroed arena. */
void gm_arena_done(struct gm_arena *a);
/* Zeroed, 16-byte aligned memory living until gm_arena_done(); aborts on OOM. */
void *gm_arena_alloc(struct gm_arena *a, size_t n);
char *gm_arena_strdup(struct gm_arena *a, const char *s);
char *gm_arena_strndup(struct gm_arena *a, const char *s, size_t n);
char *gm_arena_printf(struct gm_arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define GM_ARENA_NEW(a, type)      ((type *)gm_arena_alloc((a), sizeof(type)))
#define GM_ARENA_ARRAY(a, type, n) ((type *)gm_arena_alloc((a), sizeof(type) * (n)))

#endif
