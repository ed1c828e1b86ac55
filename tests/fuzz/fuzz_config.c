/* Fuzz target: bytes → YAML → objects → snapshot (route compilation) → route selection. */
#include <stdint.h>
#include <stdio.h>

#include "gammamesh/arena.h"
#include "gammamesh/objects.h"
#include "gammamesh/route.h"
#include "gammamesh/snapshot.h"
#include "gammamesh/yaml.h"

#define MAX_INPUT (256 * 1024)

static void select_some(const struct gm_snapshot *s)
{
    static const struct gm_hdr hdrs[] = {{"version", 7, "two", 3}, {"Host", 4, "echo", 4}};
    static const char *paths[] = {"/", "/v2", "/v2/example", "/a/b?x=1"};

    for (size_t i = 0; i < s->n_services; i++) {
        const struct gm_svc *svc = &s->services[i];
        for (size_t p = 0; p < svc->n_ports; p++) {
            const struct gm_route_table *t = gm_snapshot_routes(svc, (int)p, "default");
            if (t == NULL)
                continue;
            for (size_t k = 0; k < GM_ARRAY_LEN(paths); k++) {
                struct gm_req_view r = {.method = "GET",
                                        .path = paths[k],
                                        .path_len = strcspn(paths[k], "?"),
                                        .headers = hdrs,
                                        .n_headers = 2};
                if (paths[k][r.path_len] == '?') {
                    r.query = paths[k] + r.path_len + 1;
                    r.query_len = strlen(r.query);
                }
                gm_route_select(t, &r);
            }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gm_arena a;
    struct gm_diags d;
    struct gm_ydocs docs;
    const struct gm_object **objs = NULL;
    size_t n = 0;

    if (size > MAX_INPUT)
        return 0;
    gm_arena_init(&a);
    gm_diags_init(&d);
    if (gm_yaml_parse(&a, "fuzz.yaml", (const char *)data, size, &docs, &d) == 0) {
        objs = gm_xcalloc(docs.n + 1, sizeof(*objs));
        for (size_t i = 0; i < docs.n; i++) {
            struct gm_object *o = NULL;
            if (gm_object_decode(&a, docs.docs[i], &o, &d) > 0)
                objs[n++] = o;
        }
        struct gm_snapshot *s = gm_snapshot_build(objs, n, NULL, NULL, NULL);
        select_some(s);
        gm_snapshot_unref(s);
    }
    free(objs);
    gm_diags_done(&d);
    gm_arena_done(&a);
    return 0;
}
