/* Fuzz target: bytes → JSON (a list of objects, as the Kubernetes API sends them) → the config
 * store's API entries (JSON turned into located trees, decoded, last good version kept), put
 * twice and removed → snapshot. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "gammamesh/config.h"
#include "gammamesh/snapshot.h"

#define MAX_INPUT (256 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gm_config_store st;
    struct gm_diags d;
    char key[64];

    if (size > MAX_INPUT)
        return 0;
    json_t *v = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    if (v == NULL)
        return 0;
    gm_config_store_init(&st, "kubernetes");
    gm_diags_init(&d);
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    for (size_t i = 0; i < n; i++) {
        const json_t *o = json_is_array(v) ? json_array_get(v, i) : v;
        snprintf(key, sizeof(key), "kube:fuzz/%zu", i % 4);
        gm_config_store_put(&st, key, o, &d); /* four keys: later objects replace earlier */
    }
    struct gm_snapshot *s = gm_config_store_snapshot(&st, NULL);
    gm_config_store_remove(&st, "kube:fuzz/1");
    gm_config_store_remove(&st, "kube:fuzz/none");
    struct gm_snapshot *s2 = gm_config_store_snapshot(&st, NULL);
    gm_snapshot_unref(s2);
    gm_snapshot_unref(s);
    gm_config_store_done(&st);
    gm_diags_done(&d);
    json_decref(v);
    return 0;
}
