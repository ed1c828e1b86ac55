/* Fuzz target: DER certificate parsing and URI SAN extraction on arbitrary bytes, each URI then
 * fed to the SPIFFE parser as the TLS peer check does. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gammamesh/spiffe.h"
#include "gammamesh/tls.h"

#define FUZZ_MAX_INPUT (64 * 1024)

static int on_uri(void *arg, const char *uri, size_t len)
{
    struct gm_spiffe_id id;
    size_t *count = arg;

    if (gm_spiffe_parse(uri, len, &id) == 0 && memchr(uri, '\0', len) != NULL)
        abort(); /* an embedded NUL must never pass as an identity */
    (*count)++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t count = 0;

    if (size > FUZZ_MAX_INPUT)
        return 0;
    if (gm_x509_uri_sans(data, size, on_uri, &count) != 0 && count != 0)
        abort(); /* a refused certificate reports no SAN */
    if (count > GM_TLS_MAX_SANS)
        abort();
    return 0;
}
