/* Fuzz target: the CNI gate's request and reply parsers (ztunnel/cni_proto.c) and CNI_ARGS on
 * arbitrary bytes. An accepted request formats to a line that parses back to the same fields. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../ztunnel/cni_proto.h"

#define FUZZ_MAX_INPUT 8192

static int same(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct zt_cni_request r, back;
    enum zt_cni_result res;
    char err[200], msg[256], v[64], *s;

    if (size > FUZZ_MAX_INPUT)
        return 0;
    (void)zt_cni_reply_parse((const char *)data, size, &res, msg, sizeof(msg));
    if ((s = malloc(size + 1)) != NULL) {
        memcpy(s, data, size);
        s[size] = '\0';
        (void)zt_cni_args_get(s, "K8S_POD_NAME", v, sizeof(v));
        free(s);
    }
    if (zt_cni_request_parse((const char *)data, size, &r, err, sizeof(err)) != 0)
        return 0;
    char *line = zt_cni_request_format(&r);
    if (zt_cni_request_parse(line, strlen(line) - 1, &back, err, sizeof(err)) != 0)
        abort();
    if (back.command != r.command || !same(back.container_id, r.container_id) ||
        !same(back.netns, r.netns) || !same(back.namespace, r.namespace) ||
        !same(back.pod, r.pod) || !same(back.uid, r.uid) || back.timeout_ms != r.timeout_ms ||
        back.ip.family != r.ip.family || memcmp(back.ip.addr, r.ip.addr, 16) != 0)
        abort();
    zt_cni_request_free(&back);
    zt_cni_request_free(&r);
    free(line);
    return 0;
}
