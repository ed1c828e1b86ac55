/*
 * Fuzz target: arbitrary requests through the waypoint's route decision. A fixed snapshot is
 * built once from the YAML below (every match kind: Exact, PathPrefix, regex paths, headers and
 * query parameters, methods; every filter: header modifiers, redirects with each path modifier,
 * rewrites, mirrors, weights, invalid and missing backends, ExtensionRef, consumer routes). The
 * input is a request:
 *
 *     byte 0: which Service port and client namespace; bytes 1-8: the random draw
 *     then lines: "METHOD TARGET", then "Name: value" header lines
 *
 * and wp_decide() runs it against every Service port, with the filters applied to the request.
 * Checked: it never crashes, forwards only to a Service with an endpoint, redirects only with a
 * Location and a 3xx, and answers only 404, 500 or 503 otherwise.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../waypoint/decide.h"
#include "gammamesh/log.h"
#include "gammamesh/yaml.h"

#define FUZZ_MAX_INPUT (64 * 1024)
#define MAX_HEADERS    64

static const char yaml[] =
    "apiVersion: v1\nkind: Service\nmetadata: {name: svc, namespace: ns}\n"
    "spec: {clusterIP: 10.96.0.1, selector: {app: a}, ports: [{name: http, port: 80, "
    "targetPort: 8080}, {name: alt, port: 8080}, {name: grpc, port: 7070, appProtocol: "
    "kubernetes.io/h2c}]}\n"
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: v1, namespace: ns}\n"
    "spec: {clusterIP: 10.96.0.2, selector: {app: a, version: v1}, ports: [{port: 80, "
    "targetPort: web}]}\n"
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: empty, namespace: ns}\n"
    "spec: {clusterIP: 10.96.0.3, selector: {app: none}, ports: [{port: 80}]}\n"
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: a-1, namespace: ns, labels: {app: a, "
    "version: v1}}\nspec: {nodeName: n, containers: [{name: c, ports: [{name: web, "
    "containerPort: 9000}]}]}\nstatus: {podIP: 10.0.0.1}\n"
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: a-2, namespace: ns, labels: {app: a}}\n"
    "spec: {nodeName: n}\nstatus: {podIP: 'fd00::2'}\n"
    "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
    "metadata: {name: r1, namespace: ns}\nspec:\n"
    "  parentRefs: [{group: '', kind: Service, name: svc, port: 80}]\n"
    "  rules:\n"
    "  - matches:\n"
    "    - {path: {type: Exact, value: /exact}}\n"
    "    - {path: {type: PathPrefix, value: /prefix/}, method: POST}\n"
    "    - {path: {type: RegularExpression, value: '/re/[a-z]+/[0-9]{1,3}'}}\n"
    "    - headers: [{name: X-Version, value: two}, {type: RegularExpression, name: X-Re, "
    "value: 'a.*b'}]\n"
    "      queryParams: [{name: q, value: v}, {type: RegularExpression, name: r, value: "
    "'[0-9]+'}]\n"
    "    filters:\n"
    "    - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: X-S, value: s}], "
    "add: [{name: X-A, value: a}], remove: [X-R]}}\n"
    "    - {type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: X-Q, value: "
    "q}]}}\n"
    "    - {type: RequestMirror, requestMirror: {backendRef: {name: v1, port: 80}, percent: "
    "50}}\n"
    "    backendRefs:\n"
    "    - {name: svc, port: 80, weight: 5}\n"
    "    - name: v1\n"
    "      port: 80\n"
    "      weight: 3\n"
    "      filters: [{type: RequestHeaderModifier, requestHeaderModifier: {add: [{name: X-B, "
    "value: b}]}}]\n"
    "    - {name: missing, port: 80, weight: 1}\n"
    "    - {name: empty, port: 80, weight: 1}\n"
    "    timeouts: {request: 10s, backendRequest: 1s}\n"
    "    retry: {attempts: 3, codes: [500, 503], backoff: 100ms}\n"
    "  - matches: [{path: {type: PathPrefix, value: /redirect}}]\n"
    "    filters: [{type: RequestRedirect, requestRedirect: {scheme: https, hostname: h.example, "
    "port: 8443, statusCode: 308, path: {type: ReplacePrefixMatch, replacePrefixMatch: /x}}}]\n"
    "  - matches: [{path: {type: PathPrefix, value: /full}}]\n"
    "    filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplaceFullPath, "
    "replaceFullPath: /full-new}}}]\n"
    "  - matches: [{path: {type: PathPrefix, value: /strip}}]\n"
    "    filters: [{type: URLRewrite, urlRewrite: {hostname: rw.example, path: {type: "
    "ReplacePrefixMatch, replacePrefixMatch: /}}}]\n"
    "    backendRefs: [{name: svc, port: 8080}]\n"
    "  - matches: [{path: {type: PathPrefix, value: /ext}}]\n"
    "    filters: [{type: ExtensionRef, extensionRef: {group: x.io, kind: K, name: n}}]\n"
    "  - matches: [{path: {type: PathPrefix, value: /zero}}]\n"
    "    backendRefs: [{name: svc, port: 80, weight: 0}]\n"
    "  - matches: [{path: {type: PathPrefix, value: /none}, method: DELETE}]\n"
    "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
    "metadata: {name: r2, namespace: ns}\nspec:\n"
    "  parentRefs: [{group: '', kind: Service, name: svc}]\n"
    "  rules: [{matches: [{path: {type: PathPrefix, value: /}}], backendRefs: [{name: v1, port: "
    "80}]}]\n"
    "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
    "metadata: {name: consumer, namespace: client}\nspec:\n"
    "  parentRefs: [{group: '', kind: Service, name: svc, namespace: ns, port: 80}]\n"
    "  rules: [{matches: [{path: {type: PathPrefix, value: /c}}], backendRefs: [{name: svc, "
    "namespace: ns, port: 80}]}]\n";

static struct gm_snapshot *snap;

static void setup(void)
{
    static struct gm_arena arena;
    static struct gm_diags diags;
    struct gm_ydocs docs;
    const struct gm_object *objs[32];
    size_t n = 0;

    gm_log_set_level("off");
    gm_arena_init(&arena);
    gm_diags_init(&diags);
    if (gm_yaml_parse(&arena, "fuzz.yaml", yaml, sizeof(yaml) - 1, &docs, &diags) < 0)
        abort();
    for (size_t i = 0; i < docs.n && n < GM_ARRAY_LEN(objs); i++) {
        struct gm_object *o = NULL;
        if (gm_object_decode(&arena, docs.docs[i], &o, &diags) > 0)
            objs[n++] = o;
    }
    if (gm_diags_errors(&diags) != 0)
        abort();
    snap = gm_snapshot_build(objs, n, NULL, NULL, NULL);
}

/* "METHOD TARGET" then "Name: value" lines into r; false when the first line is unusable. */
static bool parse(struct wp_req *r, const char *p, size_t n)
{
    const char *end = p + n, *nl = memchr(p, '\n', n), *sp;
    const char *line_end = nl ? nl : end;

    sp = memchr(p, ' ', (size_t)(line_end - p));
    if (sp == NULL || sp == p || sp + 1 >= line_end)
        return false;
    r->method = gm_xstrndup(p, (size_t)(sp - p));
    r->scheme = gm_xstrdup("http");
    if (wp_req_set_target(r, sp + 1, (size_t)(line_end - sp - 1)) < 0)
        return false;
    for (const char *l = nl ? nl + 1 : end; l < end && r->headers.n < MAX_HEADERS;) {
        const char *e = memchr(l, '\n', (size_t)(end - l));
        const char *le = e ? e : end, *colon = memchr(l, ':', (size_t)(le - l));
        /* The codecs never let NUL, CR or LF into a field (h1_check.c, nghttp2). */
        if (colon && colon > l && !memchr(l, '\0', (size_t)(le - l)) &&
            !memchr(l, '\r', (size_t)(le - l))) {
            const char *v = colon + 1;
            while (v < le && *v == ' ')
                v++;
            gm_hlist_addn(&r->headers, l, (size_t)(colon - l), v, (size_t)(le - v));
        }
        l = e ? e + 1 : end;
    }
    return true;
}

static void check(const struct wp_decision *d)
{
    switch (d->action) {
    case WP_ACT_FORWARD:
        if (d->svc == NULL || wp_decide_endpoint(d->svc, d->port_index, 7) < 0)
            abort();
        break;
    case WP_ACT_REDIRECT:
        if (d->location == NULL || d->location[0] == '\0' || d->status < 300 || d->status > 399)
            abort();
        break;
    default:
        if (d->status != 404 && d->status != 500 && d->status != 503)
            abort();
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const namespaces[] = {"ns", "client", "other"};
    uint64_t rnd = 0;

    if (size < 10 || size > FUZZ_MAX_INPUT)
        return 0;
    if (snap == NULL)
        setup();
    memcpy(&rnd, data + 1, 8);
    const char *ns = namespaces[data[0] % 3];
    for (size_t i = 0; i < snap->n_services; i++) {
        const struct gm_svc *svc = &snap->services[i];
        for (size_t p = 0; p < svc->n_ports; p++) {
            struct wp_req r;
            struct wp_decision d;
            wp_req_init(&r, 16 * 1024);
            if (parse(&r, (const char *)data + 9, size - 9)) {
                wp_decide(svc, (int)p, ns, &r, rnd, &d);
                check(&d);
                wp_decision_done(&d);
            }
            wp_req_done(&r);
        }
    }
    return 0;
}
