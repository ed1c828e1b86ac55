/*
 * Fuzz target: arbitrary requests and peers through AuthorizationPolicy evaluation
 * (gammamesh/authz.h), at L7 and at L4, against a fixed set of policies that use every field
 * (principals, namespaces, IP blocks, ports, hosts, methods, paths with wildcards, header and
 * source conditions, keys that cannot be known). The input is
 *
 *     line 1: the peer's SPIFFE ID ("-": none); line 2: its address; line 3: "METHOD PATH HOST"
 *     then "Name: value" header lines
 *
 * Checked: it never crashes or reads out of bounds, returns 0 or -EPERM and says why, and
 * where a DENY policy denies at L7 the same facts are denied at L4 (L4 fails safe).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gammamesh/authz.h"
#include "gammamesh/log.h"
#include "gammamesh/yaml.h"

#define FUZZ_MAX_INPUT (16 * 1024)
#define MAX_HEADERS    32

static const char yaml[] =
    "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: allow, "
    "namespace: m}\nspec:\n  targetRefs: [{kind: Service, name: s}]\n  rules:\n"
    "  - from: [{source: {principals: [\"cluster.local/ns/m/*\", \"*/sa/admin\"], "
    "notNamespaces: [evil]}}]\n"
    "    to: [{operation: {methods: [GET, HEAD], paths: [\"/api/*\", \"*.css\", /exact], "
    "hosts: [\"*.example\", \"Host:8080\"], ports: [\"80\"]}}]\n"
    "  - from: [{source: {ipBlocks: [10.0.0.0/8, \"2001:db8::/32\"], notRemoteIpBlocks: "
    "[10.9.0.0/16]}}]\n"
    "    when: [{key: \"request.headers[x-token]\", values: [\"t-*\"]}, {key: source.ip, "
    "notValues: [10.1.2.3]}]\n"
    "  - to: [{operation: {notPaths: [\"/admin/*\"], notMethods: [DELETE]}}]\n"
    "    when: [{key: destination.port, values: [\"80\", \"8080\"]}, {key: source.namespace, "
    "values: [m, other]}]\n"
    "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: deny, "
    "namespace: m}\nspec:\n  targetRefs: [{kind: Service, name: s}]\n  action: DENY\n  rules:\n"
    "  - when: [{key: \"request.headers[x-evil]\", values: [\"*\"]}]\n"
    "  - from: [{source: {requestPrincipals: [\"*\"]}}]\n"
    "  - when: [{key: \"request.auth.claims[iss]\", notValues: [x]}]\n"
    "    to: [{operation: {paths: [/secret]}}]\n"
    "  - from: [{source: {notRequestPrincipals: [\"*\"], principals: [\"*/sa/blocked\"]}}]\n";

static const struct gm_object *policies[2];
static size_t n_policies;
static struct gm_arena arena;

static void setup(void)
{
    struct gm_diags d;
    struct gm_ydocs docs;

    gm_log_set_level("off");
    gm_arena_init(&arena);
    gm_diags_init(&d);
    if (gm_yaml_parse(&arena, "authz.yaml", yaml, sizeof(yaml) - 1, &docs, &d) < 0)
        abort();
    for (size_t i = 0; i < docs.n && i < 2; i++) {
        struct gm_object *o = NULL;
        if (gm_object_decode(&arena, docs.docs[i], &o, &d) <= 0)
            abort();
        policies[n_policies++] = o;
    }
    gm_diags_done(&d);
}

struct hdrs {
    char *name[MAX_HEADERS], *value[MAX_HEADERS];
    size_t n;
};

static const char *lookup(const void *ctx, const char *name)
{
    const struct hdrs *h = ctx;

    for (size_t i = 0; i < h->n; i++)
        if (strcasecmp(h->name[i], name) == 0)
            return h->value[i];
    return NULL;
}

static char *next_line(char **p)
{
    char *s = *p;

    if (s == NULL)
        return NULL;
    char *nl = strchr(s, '\n');
    if (nl) {
        *nl = '\0';
        *p = nl + 1;
    } else {
        *p = NULL;
    }
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    char why[300];

    if (!ready) {
        setup();
        ready = 1;
    }
    if (size > FUZZ_MAX_INPUT)
        return 0;
    char *buf = malloc(size + 1), *p = buf;
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *id = next_line(&p), *ip = next_line(&p), *reqline = next_line(&p);
    struct hdrs h = {.n = 0};
    for (char *l; (l = next_line(&p)) && h.n < MAX_HEADERS;) {
        char *colon = strchr(l, ':');
        if (colon == NULL)
            continue;
        *colon = '\0';
        h.name[h.n] = l;
        h.value[h.n++] = colon + 1 + (colon[1] == ' ');
    }
    char *method = reqline ? strtok(reqline, " ") : NULL;
    char *path = method ? strtok(NULL, " ") : NULL;
    char *host = path ? strtok(NULL, " ") : NULL;
    struct gm_authz_request r = {.src_identity = id && strcmp(id, "-") != 0 ? id : NULL,
                                 .dst_port = size % 2 ? 80 : 8080,
                                 .method = method,
                                 .path = path ? path : "/",
                                 .path_len = path ? strlen(path) : 1,
                                 .host = host,
                                 .header = lookup,
                                 .ctx = &h};
    if (ip)
        gm_ip_parse(ip, &r.src_ip);
    int l7 = gm_authz_evaluate(policies, n_policies, &r, why, sizeof(why));
    if ((l7 != 0 && l7 != -EPERM) || why[0] == '\0')
        abort();
    bool denied_by_deny = method && strstr(why, "explicitly denied") != NULL;
    r.method = NULL; /* the same facts at L4 */
    int l4 = gm_authz_evaluate(policies, n_policies, &r, why, sizeof(why));
    if (l4 != 0 && l4 != -EPERM)
        abort();
    /* a DENY that holds at L7 holds at L4 too: where HTTP cannot be seen, DENY rules that use
     * it match, so L4 may deny more, never less */
    if (denied_by_deny && l4 != -EPERM)
        abort();
    free(buf);
    return 0;
}
