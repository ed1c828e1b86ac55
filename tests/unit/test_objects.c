/* Unit tests of the object decoder (common/objects*.c): the conformance manifests decode
 * cleanly, every error class is reported at the right node with the right label and field path,
 * defaults are applied, durations and timestamps parse as specified. */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "gammamesh/objects.h"
#include "test.h"

#ifndef GM_OBJECTS_DATA
#define GM_OBJECTS_DATA "tests/unit/data/objects"
#endif

static const char *data_dir = GM_OBJECTS_DATA;
/* The upstream manifests are read where they are (GM_CONFORMANCE_MANIFESTS overrides). */
static const char *conformance_dir = GM_CONFORMANCE_DIR;

/* A parsed and decoded YAML stream. */
struct decoded {
    struct gm_arena arena;
    struct gm_diags diags;
    struct gm_object *objs[64];
    int rcs[64];
    size_t n; /* documents */
    int parse_rc;
};

static void decode_buf(struct decoded *d, const char *file, const char *text, size_t len)
{
    struct gm_ydocs docs;

    memset(d, 0, sizeof(*d));
    gm_arena_init(&d->arena);
    gm_diags_init(&d->diags);
    d->parse_rc = gm_yaml_parse(&d->arena, file, text, len, &docs, &d->diags);
    for (size_t i = 0; i < docs.n && i < GM_ARRAY_LEN(d->objs); i++) {
        d->rcs[i] = gm_object_decode(&d->arena, docs.docs[i], &d->objs[i], &d->diags);
        d->n++;
    }
}

static void decode_str(struct decoded *d, const char *text)
{
    decode_buf(d, "t.yaml", text, strlen(text));
}

static void done(struct decoded *d)
{
    gm_diags_done(&d->diags);
    gm_arena_done(&d->arena);
}

static void print_diags(const struct gm_diags *ds)
{
    char buf[1024];

    for (size_t i = 0; i < ds->n; i++)
        fprintf(stderr, "    %s\n", gm_diag_format(&ds->v[i], buf, sizeof(buf)));
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;

    *len = 0;
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    *len = fread(buf, 1, (size_t)n, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

/* ---- conformance manifests ---- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_conformance(void)
{
    char dir[512], path[1024];
    char *names[64];
    size_t n_names = 0, kinds[GM_KIND__MAX] = {0}, skipped = 0;

    snprintf(dir, sizeof(dir), "%s", conformance_dir);
    DIR *dh = opendir(dir);
    CHECK(dh != NULL);
    if (dh == NULL)
        return;
    for (struct dirent *e; (e = readdir(dh)) && n_names < GM_ARRAY_LEN(names);) {
        size_t l = strlen(e->d_name);
        if (l > 5 && strcmp(e->d_name + l - 5, ".yaml") == 0)
            names[n_names++] = strdup(e->d_name);
    }
    closedir(dh);
    qsort(names, n_names, sizeof(*names), cmp_str);
    CHECK_EQ_INT(n_names, 22);
    for (size_t i = 0; i < n_names; i++) {
        struct decoded d;
        size_t len;
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        char *text = read_file(path, &len);
        CHECK(text != NULL);
        decode_buf(&d, names[i], text ? text : "", len);
        CHECK_EQ_INT(d.parse_rc, 0);
        CHECK_EQ_INT(d.diags.n, 0);
        if (d.diags.n) {
            fprintf(stderr, "  %s:\n", names[i]);
            print_diags(&d.diags);
        }
        for (size_t j = 0; j < d.n; j++) {
            CHECK(d.rcs[j] == 0 || d.rcs[j] == 1);
            if (d.rcs[j] == 1)
                kinds[d.objs[j]->kind]++;
            else
                skipped++;
        }
        done(&d);
        free(text);
        free(names[i]);
    }
    CHECK_EQ_INT(kinds[GM_KIND_NAMESPACE], 2);
    CHECK_EQ_INT(kinds[GM_KIND_SERVICE], 3);
    CHECK_EQ_INT(kinds[GM_KIND_HTTPROUTE], 20);
    CHECK_EQ_INT(skipped, 5); /* 3 Deployments, 2 GRPCRoutes */
}

/* A closer look at two of them. */
static void test_conformance_details(void)
{
    struct decoded d;
    char path[1024];
    size_t len;

    snprintf(path, sizeof(path), "%s/httproute-matching.yaml", conformance_dir);
    char *text = read_file(path, &len);
    decode_buf(&d, "m.yaml", text ? text : "", len);
    CHECK(d.n == 1 && d.rcs[0] == 1);
    if (d.n == 1 && d.rcs[0] == 1) {
        const struct gm_httproute *r = &d.objs[0]->route;
        CHECK_EQ_INT(r->n_parents, 1);
        CHECK_EQ_STR(r->parents[0].group, "");
        CHECK_EQ_STR(r->parents[0].kind, "Service");
        CHECK_EQ_STR(r->parents[0].namespace, "gateway-conformance-mesh");
        CHECK_EQ_INT(r->parents[0].port, 80);
        CHECK_EQ_INT(r->parents[0].loc.line, 8);
        CHECK_EQ_INT(r->n_rules, 2);
        CHECK_EQ_INT(r->rules[0].n_matches, 2);
        /* the header-only match carries the default path */
        const struct gm_http_match *m = &r->rules[0].matches[1];
        CHECK_EQ_INT(m->path_type, GM_PATH_PREFIX);
        CHECK_EQ_STR(m->path, "/");
        CHECK_EQ_INT(m->n_headers, 1);
        CHECK_EQ_STR(m->headers[0].name, "version");
        CHECK_EQ_STR(m->headers[0].value, "one");
        CHECK_EQ_INT(m->headers[0].type, GM_VALUE_EXACT);
        CHECK_EQ_STR(r->rules[1].matches[0].path, "/v2");
        CHECK_EQ_INT(r->rules[1].matches[0].path_loc.line, 25); /* the map under `path:` */
        CHECK_EQ_INT(r->rules[1].backends[0].weight, 1);
        CHECK_EQ_INT(r->rules[1].backends[0].ref.port, 8080);
        CHECK_EQ_STR(r->rules[1].backends[0].ref.namespace, "gateway-conformance-mesh");
    }
    done(&d);
    free(text);

    snprintf(path, sizeof(path), "%s/manifests.yaml", conformance_dir);
    text = read_file(path, &len);
    decode_buf(&d, "manifests.yaml", text ? text : "", len);
    CHECK(d.n == 8 && d.rcs[5] == 1);
    if (d.n == 8 && d.rcs[5] == 1) {
        const struct gm_service *s = &d.objs[5]->service;
        CHECK_EQ_STR(d.objs[5]->meta.name, "echo");
        CHECK_EQ_INT(s->n_ports, 5);
        CHECK_EQ_INT(s->ports[0].port, 80);
        CHECK_EQ_INT(s->ports[0].target_port, 8080);
        CHECK_EQ_INT(s->ports[1].target_port, 8080); /* defaults to port */
        CHECK_EQ_INT(s->ports[3].target_port, 9090);
        CHECK_EQ_STR(s->ports[4].app_protocol, "kubernetes.io/h2c");
        CHECK_EQ_STR(s->ports[4].protocol, "TCP");
        CHECK(s->has_selector);
        CHECK_EQ_STR(gm_kvs_get(&s->selector, "app"), "echo");
        CHECK_EQ_INT(s->vip.family, 0);
        CHECK_EQ_STR(s->type, "ClusterIP");
    }
    done(&d);
    free(text);
}

/* ---- error table ---- */

struct bad_case {
    const char *name;
    const char *yaml;
    int line, col;
    const char *object; /* label, or NULL */
    const char *field;  /* dotted path, or NULL */
    const char *reason; /* substring */
    int n_errors;       /* 0 means exactly 1 */
};

#define ROUTE                                                                                      \
    "apiVersion: gateway.networking.k8s.io/v1\n"                                                   \
    "kind: HTTPRoute\n"                                                                            \
    "metadata:\n"                                                                                  \
    "  name: r\n"                                                                                  \
    "  namespace: ns\n"                                                                            \
    "spec:\n"
#define R "HTTPRoute ns/r"

#define AUTHZ                                                                                      \
    "apiVersion: security.istio.io/v1\n"                                                           \
    "kind: AuthorizationPolicy\n"                                                                  \
    "metadata:\n"                                                                                  \
    "  name: a\n"                                                                                  \
    "  namespace: ns\n"                                                                            \
    "spec:\n"
#define A "AuthorizationPolicy ns/a"

static const struct bad_case bad_cases[] = {
    /* documents and kinds */
    {"not a mapping", "- a\n- b\n", 1, 1, NULL, NULL, "must be a mapping"},
    {"missing apiVersion", "kind: Pod\nmetadata: {name: p}\n", 1, 1, NULL, "apiVersion",
     "missing required field"},
    {"kind not a string", "apiVersion: v1\nkind: {a: b}\n", 2, 7, NULL, "kind",
     "expected a string, got a mapping"},
    {"missing metadata", "apiVersion: v1\nkind: Service\n", 1, 1, "Service default/(unnamed)",
     "metadata", "missing required field"},
    {"missing metadata.name",
     "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  namespace: ns\n"
     "spec: {}\n",
     4, 3, "HTTPRoute ns/(unnamed)", "metadata.name", "missing required field"},
    {"empty metadata.name", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: \"\"\n", 4, 9,
     "Namespace (unnamed)", "metadata.name", "must not be empty"},
    {"route without spec",
     "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: HTTPRoute\n"
     "metadata: {name: r, namespace: ns}\n",
     1, 1, R, "spec", "missing required field"},
    {"bad creationTimestamp",
     "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n"
     "  creationTimestamp: \"2026-13-01T00:00:00Z\"\n",
     5, 22, "Pod default/p", "metadata.creationTimestamp", "RFC 3339"},
    {"duplicate key",
     ROUTE "  rules:\n"
           "  - matches:\n"
           "    - path: {value: /a}\n"
           "    matches:\n"
           "    - path: {value: /b}\n",
     10, 5, R, "spec.rules[0].matches", "duplicate key \"matches\""},
    {"duplicate key in an ignored subtree",
     "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  volumes:\n"
     "  - {name: a, name: b}\n",
     6, 15, "Pod default/p", "spec.volumes[0].name", "duplicate key"},

    {"duplicate labels (decoded twice, sizes differ)",
     "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels: {a: '1', b: '2', c: '3'}\n"
     "  labels: {x: y}\n  annotations: {x: y}\n  annotations: {a: '1', b: '2'}\n",
     6, 3, "Pod default/p", "metadata.labels", "duplicate key \"labels\"", 2},

    /* types and integers */
    {"map where a string is expected", ROUTE "  parentRefs:\n  - name: {a: b}\n", 8, 11, R,
     "spec.parentRefs[0].name", "expected a string, got a mapping"},
    {"map where a sequence is expected", ROUTE "  rules: {a: b}\n", 7, 10, R, "spec.rules",
     "expected a sequence, got a mapping"},
    {"port 0",
     ROUTE "  rules:\n"
           "  - backendRefs:\n"
           "    - name: svc\n"
           "      port: 0\n",
     10, 13, R, "spec.rules[0].backendRefs[0].port", "out of range 1..65535"},
    {"port not an integer",
     ROUTE "  rules:\n"
           "  - backendRefs:\n"
           "    - name: svc\n"
           "      port: eighty\n",
     10, 13, R, "spec.rules[0].backendRefs[0].port", "not a decimal integer"},
    {"port quoted",
     ROUTE "  rules:\n"
           "  - backendRefs:\n"
           "    - name: svc\n"
           "      port: \"80\"\n",
     10, 13, R, "spec.rules[0].backendRefs[0].port", "expected an integer, got the string"},
    {"integer overflow", ROUTE "  parentRefs:\n  - name: a\n    port: 99999999999999999999\n", 9,
     11, R, "spec.parentRefs[0].port", "out of range"},
    {"leading zero",
     "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n"
     "    ports:\n    - containerPort: 080\n",
     8, 22, "Pod default/p", "spec.containers[0].ports[0].containerPort", "not a decimal integer"},
    {"weight too big",
     ROUTE "  rules:\n"
           "  - backendRefs:\n"
           "    - name: svc\n"
           "      port: 80\n"
           "      weight: 1000001\n",
     11, 15, R, "spec.rules[0].backendRefs[0].weight", "out of range 0..1000000"},
    {"weight negative",
     ROUTE "  rules:\n"
           "  - backendRefs:\n"
           "    - name: svc\n"
           "      port: 80\n"
           "      weight: -1\n",
     11, 15, R, "spec.rules[0].backendRefs[0].weight", "out of range 0..1000000"},
    {"boolean", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  hostNetwork: yes\n", 5,
     16, "Pod default/p", "spec.hostNetwork", "expected true or false"},
    {"required field null",
     ROUTE "  rules:\n"
           "  - backendRefs:\n"
           "    - name: ~\n"
           "      port: 80\n",
     9, 13, R, "spec.rules[0].backendRefs[0].name", "required field is null"},

    /* matches */
    {"path type unknown",
     ROUTE "  rules:\n"
           "  - matches:\n"
           "    - path:\n"
           "        type: Foo\n"
           "        value: /x\n",
     10, 15, R, "spec.rules[0].matches[0].path.type", "unsupported path match type \"Foo\""},
    {"Exact path without slash",
     ROUTE "  rules:\n"
           "  - matches:\n"
           "    - path:\n"
           "        type: Exact\n"
           "        value: x\n",
     11, 16, R, "spec.rules[0].matches[0].path.value", "must start with '/'"},
    {"PathPrefix with //",
     ROUTE "  rules:\n"
           "  - matches:\n"
           "    - path:\n"
           "        type: PathPrefix\n"
           "        value: /a//b\n",
     11, 16, R, "spec.rules[0].matches[0].path.value", "must not contain"},
    {"header name not a token",
     ROUTE "  rules:\n"
           "  - matches:\n"
           "    - headers:\n"
           "      - name: bad header\n"
           "        value: x\n",
     10, 15, R, "spec.rules[0].matches[0].headers[0].name", "RFC 7230 token"},
    {"query value empty",
     ROUTE "  rules:\n"
           "  - matches:\n"
           "    - queryParams:\n"
           "      - name: q\n"
           "        value: \"\"\n",
     11, 16, R, "spec.rules[0].matches[0].queryParams[0].value", "1 to 1024 characters"},
    {"method unknown",
     ROUTE "  rules:\n"
           "  - matches:\n"
           "    - method: GETT\n",
     9, 15, R, "spec.rules[0].matches[0].method", "method must be one of"},
    {"hostname invalid", ROUTE "  hostnames: [Foo.example]\n", 7, 15, R, "spec.hostnames[0]",
     "lower-case DNS name"},

    /* filters */
    {"filter type unknown",
     ROUTE "  rules:\n"
           "  - filters:\n"
           "    - type: Foo\n",
     9, 13, R, "spec.rules[0].filters[0].type", "unsupported filter type \"Foo\""},
    {"filter config missing",
     ROUTE "  rules:\n"
           "  - filters:\n"
           "    - type: RequestRedirect\n",
     9, 7, R, "spec.rules[0].filters[0].requestRedirect", "required when type is RequestRedirect"},
    {"filter config of another type",
     ROUTE "  rules:\n"
           "  - filters:\n"
           "    - type: URLRewrite\n"
           "      urlRewrite:\n"
           "        hostname: example.com\n"
           "      requestRedirect:\n"
           "        statusCode: 301\n",
     12, 7, R, "spec.rules[0].filters[0].requestRedirect",
     "must not be set when type is URLRewrite"},
    {"redirect status",
     ROUTE "  rules:\n"
           "  - filters:\n"
           "    - type: RequestRedirect\n"
           "      requestRedirect:\n"
           "        statusCode: 305\n",
     11, 21, R, "spec.rules[0].filters[0].requestRedirect.statusCode", "not a redirect status"},
    {"redirect scheme",
     ROUTE "  rules:\n"
           "  - filters:\n"
           "    - type: RequestRedirect\n"
           "      requestRedirect:\n"
           "        scheme: ftp\n",
     11, 17, R, "spec.rules[0].filters[0].requestRedirect.scheme", "scheme must be http or https"},
    {"redirect with backendRefs",
     ROUTE "  rules:\n"
           "  - filters:\n"
           "    - type: RequestRedirect\n"
           "      requestRedirect: {statusCode: 301}\n"
           "    backendRefs:\n"
           "    - name: svc\n"
           "      port: 80\n",
     9, 7, R, "spec.rules[0].filters[0]", "cannot be combined with backendRefs"},
    {"redirect with rewrite",
     ROUTE "  rules:\n"
           "  - filters:\n"
           "    - type: RequestRedirect\n"
           "      requestRedirect: {statusCode: 301}\n"
           "    - type: URLRewrite\n"
           "      urlRewrite: {hostname: a.example}\n",
     11, 13, R, "spec.rules[0].filters[1].type", "RequestRedirect and URLRewrite"},
    {"filter repeated",
     ROUTE "  rules:\n"
           "  - filters:\n"
           "    - type: RequestHeaderModifier\n"
           "      requestHeaderModifier: {remove: [a]}\n"
           "    - type: RequestHeaderModifier\n"
           "      requestHeaderModifier: {remove: [b]}\n",
     11, 13, R, "spec.rules[0].filters[1].type", "may appear only once"},
    {"ReplacePrefixMatch with two matches",
     ROUTE "  rules:\n"
           "  - matches:\n"
           "    - path: {type: PathPrefix, value: /a}\n"
           "    - path: {type: PathPrefix, value: /b}\n"
           "    filters:\n"
           "    - type: URLRewrite\n"
           "      urlRewrite:\n"
           "        path:\n"
           "          type: ReplacePrefixMatch\n"
           "          replacePrefixMatch: /x\n",
     15, 11, R, "spec.rules[0].filters[0].urlRewrite.path", "exactly one match"},
    {"ReplacePrefixMatch on an Exact match (backend filter)",
     ROUTE "  rules:\n"
           "  - matches:\n"
           "    - path: {type: Exact, value: /a}\n"
           "    backendRefs:\n"
           "    - name: svc\n"
           "      port: 80\n"
           "      filters:\n"
           "      - type: RequestRedirect\n"
           "        requestRedirect:\n"
           "          path: {type: ReplacePrefixMatch, replacePrefixMatch: /x}\n",
     16, 17, R, "spec.rules[0].backendRefs[0].filters[0].requestRedirect.path",
     "exactly one match"},
    {"replacePrefixMatch missing",
     ROUTE "  rules:\n"
           "  - filters:\n"
           "    - type: URLRewrite\n"
           "      urlRewrite:\n"
           "        path: {type: ReplacePrefixMatch}\n",
     11, 15, R, "spec.rules[0].filters[0].urlRewrite.path.replacePrefixMatch",
     "required when type is ReplacePrefixMatch"},
    {"header set twice",
     ROUTE "  rules:\n"
           "  - filters:\n"
           "    - type: RequestHeaderModifier\n"
           "      requestHeaderModifier:\n"
           "        set:\n"
           "        - {name: X-A, value: '1'}\n"
           "        - {name: x-a, value: '2'}\n",
     13, 18, R, "spec.rules[0].filters[0].requestHeaderModifier.set[1].name", "listed twice"},
    {"mirror percent and fraction",
     ROUTE "  rules:\n"
           "  - filters:\n"
           "    - type: RequestMirror\n"
           "      requestMirror:\n"
           "        backendRef: {name: m, port: 80}\n"
           "        percent: 10\n"
           "        fraction: {numerator: 1}\n",
     13, 19, R, "spec.rules[0].filters[0].requestMirror.fraction", "only one of"},
    {"mirror fraction above 1",
     ROUTE "  rules:\n"
           "  - filters:\n"
           "    - type: RequestMirror\n"
           "      requestMirror:\n"
           "        backendRef: {name: m, port: 80}\n"
           "        fraction: {numerator: 5, denominator: 4}\n",
     12, 31, R, "spec.rules[0].filters[0].requestMirror.fraction.numerator", "exceeds"},
    {"cors maxAge",
     ROUTE "  rules:\n"
           "  - filters:\n"
           "    - type: CORS\n"
           "      cors:\n"
           "        maxAge: 0\n",
     11, 17, R, "spec.rules[0].filters[0].cors.maxAge", "out of range 1.."},
    {"extensionRef without name",
     ROUTE "  rules:\n"
           "  - filters:\n"
           "    - type: ExtensionRef\n"
           "      extensionRef: {group: x.io, kind: K}\n",
     10, 21, R, "spec.rules[0].filters[0].extensionRef.name", "missing required field"},

    /* backends, timeouts, retry */
    {"backendRef without name",
     ROUTE "  rules:\n"
           "  - backendRefs:\n"
           "    - port: 80\n",
     9, 7, R, "spec.rules[0].backendRefs[0].name", "missing required field"},
    {"Service backendRef without port",
     ROUTE "  rules:\n"
           "  - backendRefs:\n"
           "    - name: svc\n",
     9, 7, R, "spec.rules[0].backendRefs[0].port", "required when referring to a Service"},
    {"duration with a fraction",
     ROUTE "  rules:\n"
           "  - timeouts:\n"
           "      request: 1.5s\n",
     9, 16, R, "spec.rules[0].timeouts.request", "invalid duration \"1.5s\""},
    {"backendRequest above request",
     ROUTE "  rules:\n"
           "  - timeouts:\n"
           "      request: 1s\n"
           "      backendRequest: 2s\n",
     10, 23, R, "spec.rules[0].timeouts.backendRequest", "must not exceed"},
    {"duration in days",
     ROUTE "  rules:\n"
           "  - retry:\n"
           "      backoff: 1d\n",
     9, 16, R, "spec.rules[0].retry.backoff", "invalid duration"},
    {"retry code",
     ROUTE "  rules:\n"
           "  - retry:\n"
           "      codes: [500, 600]\n",
     9, 20, R, "spec.rules[0].retry.codes[1]", "out of range 400..599"},
    {"retry attempts negative",
     ROUTE "  rules:\n"
           "  - retry:\n"
           "      attempts: -1\n",
     9, 17, R, "spec.rules[0].retry.attempts", "out of range 0.."},
    {"rule name twice",
     ROUTE "  rules:\n"
           "  - name: one\n"
           "  - name: one\n",
     9, 11, R, "spec.rules[1].name", "used twice"},

    /* unknown fields */
    {"unknown spec field", ROUTE "  parentRefs: [{name: a}]\n  rule:\n  - {}\n", 8, 3, R,
     "spec.rule", "unknown field"},
    {"unknown backendRef field",
     ROUTE "  rules:\n"
           "  - backendRefs:\n"
           "    - name: svc\n"
           "      port: 80\n"
           "      wieght: 5\n",
     11, 7, R, "spec.rules[0].backendRefs[0].wieght", "unknown field"},
    {"unknown top-level field of a route", ROUTE "  rules: []\nrules: []\n", 8, 1, R, "rules",
     "unknown field"},

    /* Pod, Service, Gateway */
    {"pod IP",
     "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: n}\nstatus:\n"
     "  podIP: 10.0.0.300\n",
     5, 10, "Pod n/p", "status.podIP", "not an IP address"},
    {"container port name",
     "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n"
     "    ports:\n    - {containerPort: 80, name: HTTP}\n",
     8, 33, "Pod default/p", "spec.containers[0].ports[0].name", "a port name may contain only"},
    {"service port",
     "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: n}\nspec:\n  ports:\n"
     "  - port: 70000\n",
     6, 11, "Service n/s", "spec.ports[0].port", "out of range 1..65535"},
    {"service clusterIP",
     "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: n}\nspec:\n"
     "  clusterIP: bogus\n",
     5, 14, "Service n/s", "spec.clusterIP", "not an IP address"},
    {"targetPort digits as a string",
     "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: n}\nspec:\n  ports:\n"
     "  - port: 80\n    targetPort: \"8080\"\n",
     7, 17, "Service n/s", "spec.ports[0].targetPort", "at least one letter"},
    {"service type",
     "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: n}\nspec:\n"
     "  type: Magic\n",
     5, 9, "Service n/s", "spec.type", "type must be"},
    {"gateway without class",
     "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
     "metadata: {name: g, namespace: n}\nspec:\n  listeners:\n"
     "  - {name: mesh, port: 15008, protocol: HBONE}\n",
     5, 3, "Gateway n/g", "spec.gatewayClassName", "missing required field"},

    /* AuthorizationPolicy */
    {"authz action", AUTHZ "  action: PERMIT\n", 7, 11, A, "spec.action", "unsupported action"},
    {"authz ipBlock",
     AUTHZ "  rules:\n"
           "  - from:\n"
           "    - source:\n"
           "        ipBlocks: [10.0.0.0/33]\n",
     10, 20, A, "spec.rules[0].from[0].source.ipBlocks[0]", "IP address or a CIDR"},
    {"authz port",
     AUTHZ "  rules:\n"
           "  - to:\n"
           "    - operation:\n"
           "        ports: [\"http\"]\n",
     10, 17, A, "spec.rules[0].to[0].operation.ports[0]", "port number"},
    {"authz unknown field", AUTHZ "  rule:\n  - {}\n", 7, 3, A, "spec.rule", "unknown field"},
    {"authz empty source",
     AUTHZ "  rules:\n"
           "  - from:\n"
           "    - source: {}\n",
     9, 15, A, "spec.rules[0].from[0].source", "at least one field"},
    {"authz condition without values",
     AUTHZ "  rules:\n"
           "  - when:\n"
           "    - key: request.headers[x]\n",
     9, 7, A, "spec.rules[0].when[0]", "values or notValues"},
    {"authz empty from", AUTHZ "  rules:\n  - from: []\n", 8, 11, A, "spec.rules[0].from",
     "must not be empty"},

    /* every error of an object is reported */
    {"three errors",
     ROUTE "  parentRefs:\n"
           "  - name: a\n"
           "    port: 0\n"
           "  rules:\n"
           "  - matches:\n"
           "    - method: FETCH\n"
           "    backendRefs:\n"
           "    - name: b\n"
           "      port: 80\n"
           "      weight: lots\n",
     9, 11, R, "spec.parentRefs[0].port", "out of range", 3},
};

static const struct gm_diag *first_error(const struct gm_diags *ds)
{
    for (size_t i = 0; i < ds->n; i++)
        if (ds->v[i].severity == GM_DIAG_ERROR)
            return &ds->v[i];
    return NULL;
}

static void expect_error(const char *name, const char *yaml, int line, int col, const char *object,
                         const char *field, const char *reason, int n_errors)
{
    struct decoded d;
    int failures = test_failures;

    decode_str(&d, yaml);
    CHECK_EQ_INT(d.parse_rc, 0);
    CHECK_EQ_INT(d.n, 1);
    CHECK_EQ_INT(d.rcs[0], -EINVAL);
    CHECK(d.objs[0] == NULL);
    CHECK_EQ_INT(gm_diags_errors(&d.diags), n_errors ? n_errors : 1);
    const struct gm_diag *g = first_error(&d.diags);
    CHECK(g != NULL);
    if (g) {
        CHECK_EQ_STR(g->file, "t.yaml");
        CHECK_EQ_INT(g->line, line);
        CHECK_EQ_INT(g->col, col);
        CHECK_EQ_STR(g->object, object);
        CHECK_EQ_STR(g->field, field);
        CHECK(g->reason && strstr(g->reason, reason) != NULL);
    }
    if (test_failures != failures) {
        fprintf(stderr, "  in case \"%s\":\n", name);
        print_diags(&d.diags);
    }
    done(&d);
}

static void test_bad_documents(void)
{
    CHECK(GM_ARRAY_LEN(bad_cases) >= 30);
    for (size_t i = 0; i < GM_ARRAY_LEN(bad_cases); i++) {
        const struct bad_case *c = &bad_cases[i];
        expect_error(c->name, c->yaml, c->line, c->col, c->object, c->field, c->reason,
                     c->n_errors);
    }
}

/* The "three errors" case names each of them. */
static void test_all_errors_reported(void)
{
    const struct bad_case *c = &bad_cases[GM_ARRAY_LEN(bad_cases) - 1];
    struct decoded d;

    decode_str(&d, c->yaml);
    CHECK_EQ_INT(d.diags.n, 3);
    if (d.diags.n == 3) {
        CHECK_EQ_STR(d.diags.v[1].field, "spec.rules[0].matches[0].method");
        CHECK_EQ_INT(d.diags.v[1].line, 12);
        CHECK_EQ_STR(d.diags.v[2].field, "spec.rules[0].backendRefs[0].weight");
        CHECK_EQ_INT(d.diags.v[2].line, 16);
        CHECK(strstr(d.diags.v[2].reason, "\"lots\" is not a decimal integer") != NULL);
    }
    done(&d);
}

/* A route whose list under `head` has n copies of `item` ("@" becomes the index), for the CRD
 * limits. */
static void expect_limit(const char *what, const char *head, const char *item, int n, int line,
                         int col, const char *field, const char *reason)
{
    struct gm_buf b;

    gm_buf_init(&b, 0);
    gm_buf_printf(&b, ROUTE "%s", head);
    for (int i = 0; i < n; i++) {
        const char *at = strstr(item, "@"); /* replaced by the index */
        gm_buf_printf(&b, "%.*s%d%s", (int)(at - item), item, i, at + 1);
    }
    expect_error(what, b.data, line, col, R, field, reason, 1);
    gm_buf_done(&b);
}

static void test_limits(void)
{
    expect_limit("rules", "  rules:\n", "  - name: r@\n", 17, 8, 3, "spec.rules",
                 "17 entries; at most 16 allowed");
    expect_limit("matches", "  rules:\n  - matches:\n", "    - path: {value: /p@}\n", 65, 9, 5,
                 "spec.rules[0].matches", "65 entries; at most 64 allowed");
    expect_limit("filters", "  rules:\n  - filters:\n",
                 "    - {type: RequestMirror, requestMirror: {backendRef: {name: m@, port: 80}}}\n",
                 17, 9, 5, "spec.rules[0].filters", "17 entries; at most 16 allowed");
    expect_limit("backendRefs", "  rules:\n  - backendRefs:\n", "    - {name: b@, port: 80}\n", 17,
                 9, 5, "spec.rules[0].backendRefs", "17 entries; at most 16 allowed");
    expect_limit("headers", "  rules:\n  - matches:\n    - headers:\n",
                 "      - {name: h@, value: v}\n", 17, 10, 7, "spec.rules[0].matches[0].headers",
                 "17 entries; at most 16 allowed");
    expect_limit("queryParams", "  rules:\n  - matches:\n    - queryParams:\n",
                 "      - {name: q@, value: v}\n", 17, 10, 7,
                 "spec.rules[0].matches[0].queryParams", "17 entries; at most 16 allowed");
    expect_limit("parentRefs", "  parentRefs:\n", "  - {name: p, sectionName: s@}\n", 33, 8, 3,
                 "spec.parentRefs", "33 entries; at most 32 allowed");
    expect_limit("hostnames", "  hostnames:\n", "  - h@.example\n", 17, 8, 3, "spec.hostnames",
                 "17 entries; at most 16 allowed");
    /* 16 rules of 9 matches: every list is within its limit, the total is not */
    struct gm_buf b;
    gm_buf_init(&b, 0);
    gm_buf_printf(&b, ROUTE "  rules:\n");
    for (int i = 0; i < 16; i++) {
        gm_buf_printf(&b, "  - matches:\n");
        for (int j = 0; j < 9; j++)
            gm_buf_printf(&b, "    - path: {value: /r%d/m%d}\n", i, j);
    }
    expect_error("total matches", b.data, 8, 3, R, "spec.rules", "144 matches over all rules", 1);
    gm_buf_done(&b);
}

/* ---- good objects, fields and defaults ---- */

static void check_workload_docs(struct gm_object *const *o)
{
    char label[128];

    /* Namespace: cluster-scoped */
    CHECK_EQ_INT(o[0]->kind, GM_KIND_NAMESPACE);
    CHECK(o[0]->meta.namespace == NULL);
    CHECK_EQ_STR(gm_object_label(o[0], label, sizeof(label)), "Namespace shop");
    CHECK_EQ_STR(gm_kvs_get(&o[0]->meta.labels, "gammamesh.io/dataplane-mode"), "ambient");
    CHECK_EQ_INT(o[0]->meta.created, INT64_MAX);
    CHECK_EQ_INT(o[0]->loc.line, 4);

    /* Pod web-0 */
    const struct gm_object *p = o[1];
    CHECK_EQ_STR(gm_object_label(p, label, sizeof(label)), "Pod shop/web-0");
    CHECK_EQ_STR(p->meta.uid, "7c1f6d1e-0000-4000-8000-000000000001");
    CHECK_EQ_INT(p->meta.created, 1767323045);
    CHECK_EQ_INT(p->meta.generation, 3);
    CHECK_EQ_STR(gm_kvs_get(&p->meta.labels, "version"), "1");
    CHECK_EQ_STR(gm_kvs_get(&p->meta.annotations, "note"), "");
    CHECK_EQ_STR(p->pod.node_name, "node-1");
    CHECK_EQ_STR(p->pod.service_account, "web"); /* serviceAccountName beats serviceAccount */
    CHECK(!p->pod.host_network);
    CHECK_EQ_INT(p->pod.n_containers, 1);
    if (p->pod.n_containers == 1) {
        const struct gm_container *c = &p->pod.containers[0];
        CHECK_EQ_STR(c->image, "registry.example/web:1.0");
        CHECK(c->command.n == 1 && strcmp(c->command.v[0], "/bin/web") == 0);
        CHECK(c->args.n == 2 && strcmp(c->args.v[1], "--verbose") == 0);
        CHECK_EQ_INT(c->env.n, 1); /* valueFrom is not a literal */
        CHECK_EQ_STR(gm_kvs_get(&c->env, "MODE"), "production");
        CHECK_EQ_INT(c->n_ports, 2);
        if (c->n_ports == 2) {
            CHECK_EQ_STR(c->ports[0].name, "http");
            CHECK_EQ_STR(c->ports[0].protocol, "TCP");
            CHECK_EQ_INT(c->ports[1].port, 9090);
            CHECK(c->ports[1].name == NULL);
            CHECK_EQ_STR(c->ports[1].protocol, "UDP");
        }
    }
    CHECK_EQ_STR(p->pod.pod_ip, "198.18.1.10");
    CHECK_EQ_INT(p->pod.ip.family, AF_INET);
    CHECK_EQ_STR(p->pod.phase, "Running");
    CHECK(p->pod.has_ready && !p->pod.ready_cond);
    CHECK(!gm_pod_is_ready(&p->pod));

    /* Pod minimal: defaults */
    p = o[2];
    CHECK_EQ_STR(p->meta.namespace, "default");
    CHECK_EQ_STR(p->pod.service_account, "legacy"); /* the deprecated spelling alone */
    CHECK(p->pod.host_network);
    CHECK_EQ_INT(p->pod.ip.family, AF_INET6);
    CHECK(!p->pod.has_ready);
    CHECK(gm_pod_is_ready(&p->pod)); /* no conditions: ready once it has an IP */
}

static void check_service_docs(struct gm_object *const *o)
{
    const struct gm_service *s = &o[3]->service;
    char ip[64];

    CHECK_EQ_STR(s->type, "ClusterIP");
    CHECK_EQ_STR(s->cluster_ip, "198.19.0.7");
    CHECK_EQ_STR(gm_ip_format(&s->vip, ip, sizeof(ip)), "198.19.0.7");
    CHECK(s->has_selector && s->selector.n == 1);
    CHECK_EQ_INT(s->n_ports, 3);
    if (s->n_ports == 3) {
        CHECK_EQ_INT(s->ports[0].target_port, 8080);
        CHECK(s->ports[0].target_port_name == NULL);
        CHECK_EQ_STR(s->ports[0].app_protocol, "http");
        CHECK_EQ_INT(s->ports[0].loc.line, 87);
        CHECK_EQ_INT(s->ports[1].target_port, -1);
        CHECK_EQ_STR(s->ports[1].target_port_name, "metrics");
        CHECK_EQ_STR(s->ports[1].protocol, "UDP");
        CHECK_EQ_INT(s->ports[2].target_port, 443);
        CHECK(s->ports[2].name == NULL);
        CHECK_EQ_STR(s->ports[2].protocol, "TCP");
    }
    s = &o[4]->service;
    CHECK_EQ_STR(s->cluster_ip, "None");
    CHECK_EQ_INT(s->vip.family, 0);
    CHECK(s->has_selector && s->selector.n == 0);
    CHECK(o[5] == NULL); /* the Deployment */

    const struct gm_gateway *g = &o[6]->gateway;
    CHECK_EQ_STR(g->class_name, "gammamesh-waypoint");
    CHECK(g->n_listeners == 1 && g->listeners[0].port == 15008);
    CHECK(g->n_listeners == 1 && strcmp(g->listeners[0].protocol, "HBONE") == 0);
}

static void check_authz_docs(struct gm_object *const *o)
{
    const struct gm_authz *az = &o[7]->authz;

    CHECK(az->has_selector);
    CHECK_EQ_STR(gm_kvs_get(&az->selector, "app"), "web");
    CHECK_EQ_INT(az->action, GM_AUTHZ_ALLOW);
    CHECK(az->rules_present);
    CHECK_EQ_INT(az->n_rules, 2);
    if (az->n_rules == 2) {
        CHECK(!az->rules[0].has_l7);
        CHECK(az->rules[0].n_from == 1 && az->rules[0].from[0].ip_blocks.n == 3);
        CHECK(az->rules[0].n_to == 1 && az->rules[0].to[0].ports.n == 1);
        CHECK(az->rules[1].has_l7); /* methods, paths */
        CHECK_EQ_STR(az->rules[1].from[0].namespaces.v[0], "monitoring");
    }
    az = &o[8]->authz;
    CHECK(!az->has_selector && !az->rules_present && az->n_rules == 0);
    CHECK_EQ_INT(az->action, GM_AUTHZ_ALLOW);
    az = &o[9]->authz;
    CHECK_EQ_STR(o[9]->meta.namespace, "default");
    CHECK_EQ_INT(az->action, GM_AUTHZ_DENY);
    CHECK(az->rules_present && az->n_rules == 2);
    if (az->n_rules == 2) {
        CHECK(az->rules[0].n_from == 0 && az->rules[0].n_to == 0 && !az->rules[0].has_l7);
        CHECK(az->rules[1].has_l7 && az->rules[1].n_when == 1);
        CHECK_EQ_STR(az->rules[1].when[0].key, "request.headers[x-evil]");
    }
}

static void check_route_rule0(const struct gm_route_rule *r)
{
    CHECK_EQ_STR(r->name, "api");
    CHECK_EQ_INT(r->n_matches, 1);
    const struct gm_http_match *m = &r->matches[0];
    CHECK_EQ_STR(m->path, "/api");
    CHECK_EQ_INT(m->n_headers, 2);
    CHECK(m->n_headers == 2 && m->headers[1].type == GM_VALUE_REGEX);
    CHECK(m->n_queries == 1 && strcmp(m->queries[0].value, "1") == 0);
    CHECK_EQ_STR(m->method, "POST");
    CHECK_EQ_INT(r->n_filters, 4);
    if (r->n_filters == 4) {
        CHECK_EQ_INT(r->filters[0].type, GM_FILTER_REWRITE);
        CHECK_EQ_STR(r->filters[0].rewrite.hostname, "api.internal");
        CHECK(r->filters[0].rewrite.path.set);
        CHECK_EQ_INT(r->filters[0].rewrite.path.type, GM_PATHMOD_PREFIX);
        CHECK_EQ_STR(r->filters[0].rewrite.path.value, "");
        CHECK_EQ_STR(gm_kvs_get(&r->filters[1].header.add, "x-served-by"), "gammamesh");
        const struct gm_mirror *mi = &r->filters[2].mirror;
        CHECK_EQ_STR(mi->backend.name, "shadow");
        CHECK_EQ_STR(mi->backend.namespace, "test");
        CHECK_EQ_STR(mi->backend.kind, "Service");
        CHECK(mi->fraction_num == 1 && mi->fraction_den == 3 && mi->percent == 33);
        const struct gm_cors *c = &r->filters[3].cors;
        CHECK(c->allow_credentials && c->max_age == 600 && c->allow_methods.n == 2);
        CHECK_EQ_STR(c->allow_headers.v[0], "*");
    }
    CHECK_EQ_INT(r->n_backends, 2);
    if (r->n_backends == 2) {
        CHECK_EQ_INT(r->backends[0].weight, 90);
        CHECK_EQ_INT(r->backends[1].weight, 0);
        CHECK_EQ_INT(r->backends[1].n_filters, 1);
        CHECK_EQ_STR(gm_kvs_get(&r->backends[1].filters[0].header.set, "x-canary"), "true");
        CHECK_EQ_STR(r->backends[1].filters[0].header.remove.v[0], "x-debug");
    }
    CHECK_EQ_INT(r->timeouts.request_ms, 10000);
    CHECK_EQ_INT(r->timeouts.backend_request_ms, 2500);
    CHECK(r->retry.present && r->retry.attempts == 3 && r->retry.backoff_ms == 100);
    CHECK(r->retry.n_codes == 2 && r->retry.codes[1] == 503);
}

static void check_route_docs(struct gm_object *const *o)
{
    const struct gm_httproute *rt = &o[10]->route;

    CHECK_EQ_INT(o[10]->meta.created, 1767323045); /* +01:00 offset */
    CHECK(rt->n_parents == 1 && strcmp(rt->parents[0].section_name, "http") == 0);
    CHECK_EQ_INT(rt->hostnames.n, 2);
    CHECK_EQ_INT(rt->n_rules, 3);
    if (rt->n_rules != 3)
        return;
    check_route_rule0(&rt->rules[0]);
    const struct gm_redirect *rd = &rt->rules[1].filters[0].redirect;
    CHECK_EQ_STR(rd->scheme, "https");
    CHECK(rd->port == 8443 && rd->status == 301);
    CHECK(rd->path.set && rd->path.type == GM_PATHMOD_FULL);
    CHECK_EQ_STR(rd->path.value, "/new");
    CHECK_EQ_INT(rt->rules[1].timeouts.request_ms, -1);
    CHECK(!rt->rules[1].retry.present);
    const struct gm_route_rule *r2 = &rt->rules[2];
    CHECK(r2->n_matches == 1 && r2->matches[0].path_type == GM_PATH_PREFIX);
    CHECK_EQ_STR(r2->filters[0].ext.kind, "Plugin");
    CHECK_EQ_STR(gm_filter_type_name(r2->filters[0].type), "ExtensionRef");
}

static void test_workloads(void)
{
    char path[1024];
    size_t len;
    struct decoded d;

    snprintf(path, sizeof(path), "%s/workloads.yaml", data_dir);
    char *text = read_file(path, &len);
    CHECK(text != NULL);
    decode_buf(&d, "workloads.yaml", text ? text : "", len);
    CHECK_EQ_INT(d.parse_rc, 0);
    CHECK_EQ_INT(d.n, 11);
    CHECK_EQ_INT(d.diags.n, 0);
    print_diags(&d.diags);
    bool ok = d.n == 11 && d.rcs[5] == 0;
    for (size_t i = 0; i < d.n; i++)
        ok &= i == 5 || d.rcs[i] == 1;
    CHECK(ok);
    if (ok) {
        check_workload_docs(d.objs);
        check_service_docs(d.objs);
        check_authz_docs(d.objs);
        check_route_docs(d.objs);
    }
    done(&d);
    free(text);
}

static void test_route_defaults(void)
{
    struct decoded d;

    decode_str(&d, "apiVersion: gateway.networking.k8s.io/v1\n"
                   "kind: HTTPRoute\n"
                   "metadata: {name: r}\n"
                   "spec:\n"
                   "  parentRefs:\n"
                   "  - {name: echo, group: \"\", kind: Service}\n"
                   "  - name: gw\n"
                   "    group:\n");
    CHECK(d.n == 1 && d.rcs[0] == 1);
    if (d.n == 1 && d.rcs[0] == 1) {
        const struct gm_httproute *rt = &d.objs[0]->route;
        CHECK_EQ_STR(d.objs[0]->meta.namespace, "default");
        CHECK_EQ_INT(rt->n_parents, 2);
        CHECK_EQ_STR(rt->parents[0].group, "");
        CHECK_EQ_STR(rt->parents[0].kind, "Service");
        CHECK_EQ_STR(rt->parents[0].namespace, "default");
        CHECK_EQ_INT(rt->parents[0].port, -1);
        CHECK(rt->parents[0].section_name == NULL);
        CHECK_EQ_STR(rt->parents[1].group, "gateway.networking.k8s.io"); /* null = absent */
        CHECK_EQ_STR(rt->parents[1].kind, "Gateway");
        /* no rules: one rule, one PathPrefix "/" match, no backends */
        CHECK_EQ_INT(rt->n_rules, 1);
        CHECK_EQ_INT(rt->rules[0].n_matches, 1);
        CHECK_EQ_INT(rt->rules[0].matches[0].path_type, GM_PATH_PREFIX);
        CHECK_EQ_STR(rt->rules[0].matches[0].path, "/");
        CHECK_EQ_INT(rt->rules[0].n_backends, 0);
        CHECK_EQ_INT(rt->rules[0].timeouts.request_ms, -1);
        CHECK_EQ_INT(rt->rules[0].timeouts.backend_request_ms, -1);
        CHECK_EQ_INT(rt->rules[0].loc.line, 5);
    }
    done(&d);

    decode_str(&d, ROUTE "  rules:\n"
                         "  - matches:\n"
                         "    - headers: [{name: version, value: two}]\n"
                         "    - path: {type: Exact}\n"
                         "    backendRefs:\n"
                         "    - {name: b, port: 8080}\n"
                         "  - matches: []\n"
                         "    filters:\n"
                         "    - type: RequestRedirect\n"
                         "      requestRedirect: {}\n"
                         "    - type: RequestMirror\n"
                         "      requestMirror: {backendRef: {name: m, port: 80}}\n"
                         "    - type: CORS\n"
                         "      cors: {allowOrigins: [\"*\"]}\n"
                         "    - type: RequestMirror\n"
                         "      requestMirror: {backendRef: {name: m, kind: Other}, percent: 0}\n");
    CHECK(d.n == 1 && d.rcs[0] == 1);
    print_diags(&d.diags);
    if (d.n == 1 && d.rcs[0] == 1) {
        const struct gm_route_rule *r = d.objs[0]->route.rules;
        CHECK_EQ_INT(d.objs[0]->route.n_rules, 2);
        CHECK_EQ_INT(r[0].matches[0].path_type, GM_PATH_PREFIX);
        CHECK_EQ_STR(r[0].matches[0].path, "/");
        CHECK_EQ_INT(r[0].matches[0].headers[0].type, GM_VALUE_EXACT);
        CHECK_EQ_INT(r[0].matches[1].path_type, GM_PATH_EXACT);
        CHECK_EQ_STR(r[0].matches[1].path, "/");
        CHECK_EQ_INT(r[0].backends[0].weight, 1);
        CHECK_EQ_STR(r[0].backends[0].ref.group, "");
        CHECK_EQ_STR(r[0].backends[0].ref.kind, "Service");
        CHECK_EQ_STR(r[0].backends[0].ref.namespace, "ns");
        CHECK_EQ_INT(r[0].backends[0].loc.line, 12);
        CHECK_EQ_INT(r[1].n_matches, 1); /* `matches: []` is the default match too */
        CHECK_EQ_STR(r[1].matches[0].path, "/");
        CHECK_EQ_INT(r[1].filters[0].redirect.status, 302);
        CHECK_EQ_INT(r[1].filters[0].redirect.port, -1);
        CHECK(r[1].filters[0].redirect.scheme == NULL && !r[1].filters[0].redirect.path.set);
        CHECK_EQ_INT(r[1].filters[1].mirror.percent, 100);
        CHECK_EQ_INT(r[1].filters[1].mirror.fraction_num, -1);
        CHECK_EQ_INT(r[1].filters[1].mirror.fraction_den, -1);
        CHECK_EQ_INT(r[1].filters[2].cors.max_age, 5);
        CHECK_EQ_INT(r[1].filters[3].mirror.percent, 0);
        CHECK_EQ_INT(r[1].filters[3].mirror.backend.port, -1); /* not a Service: optional */
        CHECK_EQ_INT(r[1].filters[0].loc.line, 15);
    }
    done(&d);
}

/* Regular expressions are kept verbatim: the route compiler owns the dialect and reports bad
 * patterns; the path rules of Exact/PathPrefix do not apply to them. */
static void test_regex_values(void)
{
    struct decoded d;

    decode_str(&d,
               ROUTE "  rules:\n"
                     "  - matches:\n"
                     "    - path: {type: RegularExpression, value: \"[a-z]+//x\"}\n"
                     "      headers: [{type: RegularExpression, name: h, value: \"^v[0-9]$\"}]\n");
    CHECK(d.n == 1 && d.rcs[0] == 1);
    if (d.n == 1 && d.rcs[0] == 1) {
        const struct gm_http_match *m = &d.objs[0]->route.rules[0].matches[0];
        CHECK_EQ_INT(m->path_type, GM_PATH_REGEX);
        CHECK_EQ_STR(m->path, "[a-z]+//x");
        CHECK_EQ_INT(m->headers[0].type, GM_VALUE_REGEX);
        CHECK_EQ_STR(m->headers[0].value, "^v[0-9]$");
    }
    done(&d);
}

static void test_core_defaults(void)
{
    struct decoded d;

    decode_str(&d, "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"
                   "---\n"
                   "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: n}\n"
                   "spec:\n  clusterIP: \"\"\n  ports: [{port: 53, protocol: UDP}]\n");
    CHECK(d.n == 2 && d.rcs[0] == 1 && d.rcs[1] == 1);
    if (d.n == 2 && d.rcs[0] == 1 && d.rcs[1] == 1) {
        const struct gm_object *p = d.objs[0], *s = d.objs[1];
        CHECK_EQ_STR(p->meta.namespace, "default");
        CHECK_EQ_STR(p->pod.service_account, "default");
        CHECK(p->pod.pod_ip == NULL && p->pod.ip.family == 0);
        CHECK(!gm_pod_is_ready(&p->pod));
        CHECK_EQ_INT(p->meta.created, INT64_MAX);
        CHECK_EQ_STR(s->service.type, "ClusterIP");
        CHECK_EQ_INT(s->service.vip.family, 0);
        CHECK(!s->service.has_selector);
        CHECK_EQ_INT(s->service.ports[0].target_port, 53);
        CHECK_EQ_STR(s->service.ports[0].protocol, "UDP");
    }
    done(&d);
}

/* ---- skipped kinds, warnings, lenient parts ---- */

static void test_skipped_and_warnings(void)
{
    static const char *const skipped[] = {
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {replicas: x}\n",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n",
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: g}\n",
        "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {}\n",
        "apiVersion: apps/v1\nkind: Pod\nmetadata: {name: p}\n",
    };
    struct decoded d;

    for (size_t i = 0; i < GM_ARRAY_LEN(skipped); i++) {
        decode_str(&d, skipped[i]);
        CHECK(d.n == 1 && d.rcs[0] == 0 && d.objs[0] == NULL);
        CHECK_EQ_INT(d.diags.n, 0);
        done(&d);
    }

    /* a known kind in a version we do not read: skipped, with a warning */
    decode_str(&d, "apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: HTTPRoute\n"
                   "metadata: {name: r}\nspec: {}\n");
    CHECK(d.n == 1 && d.rcs[0] == 0);
    CHECK(d.diags.n == 1 && d.diags.v[0].severity == GM_DIAG_WARNING);
    CHECK(d.diags.n == 1 && d.diags.v[0].line == 1 && d.diags.v[0].col == 13);
    CHECK(d.diags.n == 1 && strcmp(d.diags.v[0].field, "apiVersion") == 0);
    done(&d);

    /* unsupported fields: accepted with a warning */
    decode_str(&d, ROUTE "  rules:\n"
                         "  - sessionPersistence: {sessionName: s}\n"
                         "---\n" AUTHZ "  targetRefs: [{kind: Service, name: s}]\n"
                         "  provider: {name: ext}\n");
    CHECK(d.n == 2 && d.rcs[0] == 1 && d.rcs[1] == 1);
    CHECK_EQ_INT(d.diags.n, 2);
    CHECK_EQ_INT(gm_diags_errors(&d.diags), 0);
    if (d.diags.n == 2) {
        char buf[256];
        CHECK_EQ_STR(gm_diag_format(&d.diags.v[0], buf, sizeof(buf)),
                     "t.yaml:8:25: HTTPRoute ns/r: spec.rules[0].sessionPersistence: "
                     "warning: not supported; ignored");
        CHECK_EQ_STR(d.diags.v[1].field, "spec.provider");
    }
    if (d.n == 2 && d.objs[1]) {
        const struct gm_authz *az = &d.objs[1]->authz;
        CHECK(az->has_targets && az->n_targets == 1);
        CHECK(az->n_targets == 1 && strcmp(az->targets[0].kind, "Service") == 0 &&
              strcmp(az->targets[0].group, "") == 0 && strcmp(az->targets[0].name, "s") == 0);
    }
    done(&d);

    /* policy targets: a waypoint Gateway and a Service kept, other kinds dropped with a
     * warning; a policy with only unsupported targets applies nowhere (warned); selector and
     * targetRefs together are an error */
    decode_str(&d, AUTHZ "  targetRefs:\n"
                         "  - {group: gateway.networking.k8s.io, kind: Gateway, name: wp}\n"
                         "  - {group: gateway.networking.k8s.io, kind: GatewayClass, name: c}\n"
                         "  - {kind: Service, name: s, namespace: elsewhere}\n"
                         "---\n" AUTHZ "  targetRef: {group: networking.istio.io, kind: "
                         "ServiceEntry, name: e}\n"
                         "---\n" AUTHZ "  selector: {matchLabels: {app: a}}\n"
                         "  targetRefs: [{kind: Service, name: s}]\n");
    CHECK(d.n == 3 && d.rcs[0] == 1 && d.rcs[1] == 1 && d.rcs[2] < 0);
    if (d.n == 3 && d.objs[0] && d.objs[1]) {
        CHECK(d.objs[0]->authz.n_targets == 1 &&
              strcmp(d.objs[0]->authz.targets[0].kind, "Gateway") == 0);
        CHECK(d.objs[1]->authz.has_targets && d.objs[1]->authz.n_targets == 0);
    }
    CHECK_EQ_INT(gm_diags_errors(&d.diags), 1);
    CHECK_EQ_INT(d.diags.n, 5); /* GatewayClass, other namespace, ServiceEntry, nowhere, error */
    done(&d);
}

/* ---- durations and timestamps ---- */

static void test_durations(void)
{
    static const struct {
        const char *s;
        int64_t ms; /* -1: invalid */
    } cases[] = {
        {"1h", 3600000},
        {"10s", 10000},
        {"500ms", 500},
        {"1h2h20m10m", 12600000},
        {"0s", 0},
        {"1h30m10s", 5410000},
        {"00010s", 10000},
        {"99999h", 359996400000},
        {"1m1s1ms1h", 3661001},
        {"1.5s", -1},
        {"-1s", -1},
        {"1d", -1},
        {"0", -1},
        {"", -1},
        {"123456s", -1},
        {"1s2s3s4s5s", -1},
        {"10us", -1},
        {"s", -1},
        {"1 s", -1},
        {"1S", -1},
        {"1m2", -1},
        {"+1s", -1},
    };

    for (size_t i = 0; i < GM_ARRAY_LEN(cases); i++) {
        int64_t ms = -7;
        int rc = gm_duration_parse(cases[i].s, &ms);
        CHECK_EQ_INT(rc, cases[i].ms < 0 ? -EINVAL : 0);
        if (cases[i].ms >= 0)
            CHECK_EQ_INT(ms, cases[i].ms);
        if (rc != (cases[i].ms < 0 ? -EINVAL : 0))
            fprintf(stderr, "  duration \"%s\"\n", cases[i].s);
    }
    CHECK_EQ_INT(gm_duration_parse(NULL, NULL), -EINVAL);
}

static void test_timestamps(void)
{
    static const struct {
        const char *s;
        int64_t t; /* -2: invalid */
    } cases[] = {
        {"\"2026-01-02T03:04:05Z\"", 1767323045},
        {"2026-01-02T03:04:05Z", 1767323045},
        {"1970-01-01T00:00:00Z", 0},
        {"1969-12-31T23:59:59Z", -1},
        {"2026-01-02T03:04:05.123456Z", 1767323045},
        {"2026-01-02T04:04:05+01:00", 1767323045},
        {"2026-01-01T22:04:05-05:00", 1767323045},
        {"2024-02-29T00:00:00Z", 1709164800},
        {"2000-03-01T12:00:00Z", 951912000},
        {"~", INT64_MAX},
        {"2026-02-29T00:00:00Z", -2},
        {"2026-01-02 03:04:05Z", -2},
        {"2026-01-02T03:04:05", -2},
        {"2026-1-2T03:04:05Z", -2},
        {"2026-01-02T24:00:00Z", -2},
        {"2026-01-02T03:04:60Z", -2},
        {"2026-01-02T03:04:05.Z", -2},
        {"2026-01-02T03:04:05+0100", -2},
        {"2026-01-02T03:04:05Zjunk", -2},
        {"yesterday", -2},
    };

    for (size_t i = 0; i < GM_ARRAY_LEN(cases); i++) {
        struct decoded d;
        char yaml[256];
        snprintf(yaml, sizeof(yaml),
                 "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: n\n"
                 "  creationTimestamp: %s\n",
                 cases[i].s);
        decode_str(&d, yaml);
        if (cases[i].t == -2) {
            CHECK(d.n == 1 && d.rcs[0] == -EINVAL);
            CHECK(d.diags.n == 1 && d.diags.v[0].line == 5 && d.diags.v[0].col == 22);
        } else {
            CHECK(d.n == 1 && d.rcs[0] == 1);
            CHECK(d.n == 1 && d.objs[0] && d.objs[0]->meta.created == cases[i].t);
        }
        done(&d);
    }
}

/* ---- small helpers of objects.h ---- */

static void test_helpers(void)
{
    struct gm_kv lv[] = {{"app", "web"}, {"version", "v1"}, {"tier", "front"}};
    struct gm_kv sv[] = {{"app", "web"}, {"version", "v1"}};
    struct gm_kv bad[] = {{"app", "web"}, {"version", "v2"}};
    struct gm_kvs labels = {lv, 3}, sel = {sv, 2}, sel_bad = {bad, 2}, empty = {NULL, 0};

    CHECK(gm_kvs_subset(&sel, &labels));
    CHECK(!gm_kvs_subset(&sel_bad, &labels));
    CHECK(!gm_kvs_subset(&labels, &sel));
    CHECK(gm_kvs_subset(&empty, &labels));
    CHECK(gm_kvs_subset(&empty, &empty));
    CHECK_EQ_STR(gm_kvs_get(&labels, "tier"), "front");
    CHECK(gm_kvs_get(&labels, "zone") == NULL);
    CHECK_EQ_STR(gm_kind_name(GM_KIND_AUTHZ), "AuthorizationPolicy");
    CHECK_EQ_STR(gm_kind_name(GM_KIND_HTTPROUTE), "HTTPRoute");
    CHECK_EQ_STR(gm_kind_name(GM_KIND__MAX), "Unknown");
    CHECK_EQ_STR(gm_filter_type_name(GM_FILTER_REWRITE), "URLRewrite");
    CHECK_EQ_STR(gm_filter_type_name(GM_FILTER__MAX), "Unknown");

    struct gm_pod pod = {0};
    CHECK(!gm_pod_is_ready(&pod));
    gm_ip_parse("10.1.2.3", &pod.ip);
    CHECK(gm_pod_is_ready(&pod));
    pod.has_ready = true;
    CHECK(!gm_pod_is_ready(&pod));
    pod.ready_cond = true;
    CHECK(gm_pod_is_ready(&pod));
}

/* Objects live in the caller's arena even when the YAML tree came from another one. */
static void test_separate_arenas(void)
{
    struct gm_arena ya, oa;
    struct gm_diags ds;
    struct gm_ydocs docs;
    struct gm_object *o = NULL;
    const char *text = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n"
                       "spec:\n  ports: [{name: http, port: 80}]\n";

    gm_arena_init(&ya);
    gm_arena_init(&oa);
    gm_diags_init(&ds);
    CHECK_EQ_INT(gm_yaml_parse(&ya, "sep.yaml", text, strlen(text), &docs, &ds), 0);
    CHECK_EQ_INT(gm_object_decode(&oa, docs.docs[0], &o, &ds), 1);
    gm_arena_done(&ya); /* the tree is gone; the object must not point into it */
    CHECK(o && strcmp(o->meta.name, "s") == 0);
    CHECK(o && o->service.n_ports == 1 && strcmp(o->service.ports[0].name, "http") == 0);
    CHECK(o && strcmp(o->service.ports[0].loc.file, "sep.yaml") == 0);
    CHECK(o && strcmp(o->loc.file, "sep.yaml") == 0);
    gm_arena_done(&oa);
    gm_diags_done(&ds);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        data_dir = argv[1];
    if (getenv("GM_CONFORMANCE_MANIFESTS"))
        conformance_dir = getenv("GM_CONFORMANCE_MANIFESTS");
    test_conformance();
    test_conformance_details();
    test_bad_documents();
    test_all_errors_reported();
    test_limits();
    test_workloads();
    test_route_defaults();
    test_core_defaults();
    test_regex_values();
    test_skipped_and_warnings();
    test_durations();
    test_timestamps();
    test_helpers();
    test_separate_arenas();
    return TEST_DONE();
}
