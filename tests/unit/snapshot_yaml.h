/* A snapshot from YAML for unit tests (one program at a time: the arena and diagnostics are the
 * including file's). Every document must decode without errors (checked). */
#ifndef GM_TEST_SNAPSHOT_YAML_H
#define GM_TEST_SNAPSHOT_YAML_H

#include "gammamesh/snapshot.h"
#include "gammamesh/yaml.h"
#include "test.h"

static struct gm_arena arena;
static struct gm_diags diags;

static struct gm_snapshot *build(const char *yaml)
{
    struct gm_ydocs docs;
    const struct gm_object *objs[64];
    size_t n = 0;

    CHECK_EQ_INT(gm_yaml_parse(&arena, "t.yaml", yaml, strlen(yaml), &docs, &diags), 0);
    for (size_t i = 0; i < docs.n && n < 64; i++) {
        struct gm_object *o = NULL;
        if (gm_object_decode(&arena, docs.docs[i], &o, &diags) > 0)
            objs[n++] = o;
    }
    CHECK_EQ_INT(gm_diags_errors(&diags), 0);
    return gm_snapshot_build(objs, n, NULL, NULL, NULL);
}

#endif
