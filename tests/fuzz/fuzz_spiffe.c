/* Fuzz target: SPIFFE ID parsing on arbitrary bytes. An accepted ID must format back to exactly
 * the input and parse again to the same fields. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gammamesh/spiffe.h"

#define FUZZ_MAX_INPUT 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gm_spiffe_id id, again;
    char buf[GM_SPIFFE_ID_MAX];

    if (size > FUZZ_MAX_INPUT)
        return 0;
    (void)gm_spiffe_td_valid((const char *)data, size);
    if (gm_spiffe_parse((const char *)data, size, &id) != 0)
        return 0;
    if (gm_spiffe_format(&id, buf, sizeof(buf)) != 0 || strlen(buf) != size ||
        memcmp(buf, data, size) != 0)
        abort();
    if (gm_spiffe_parse(buf, strlen(buf), &again) != 0 || !gm_spiffe_equal(&id, &again))
        abort();
    if (gm_spiffe_init(&again, id.trust_domain, id.ns, id.sa) != 0 || !gm_spiffe_equal(&id, &again))
        abort();
    return 0;
}
