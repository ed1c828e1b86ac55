/* AuthorizationPolicy at the waypoint (gammamesh/authz.h) and its binding (targetRefs: the
 * waypoint's Service or Gateway; such policies are never a workload's), by tables. */
#include <errno.h>

#include "gammamesh/authz.h"
#include "gammamesh/snapshot.h"
#include "gammamesh/yaml.h"
#include "snapshot_yaml.h"
#include "test.h"

static const char *WORLD =
    "apiVersion: v1\nkind: Namespace\nmetadata: {name: m}\n"
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: srv-1, namespace: m, labels: {app: srv}}\n"
    "spec: {nodeName: n1}\nstatus: {podIP: 10.0.0.2}\n"
    "---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: wp, "
    "namespace: m}\nspec: {gatewayClassName: gammamesh-waypoint, listeners: [{name: mesh, port: "
    "15008, protocol: HBONE}]}\n"
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: viawp, namespace: m, labels: "
    "{gammamesh.io/use-waypoint: wp}}\nspec: {clusterIP: 10.96.0.2, selector: {app: srv}, "
    "ports: [{port: 80}]}\n"
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: direct, namespace: m}\nspec: "
    "{clusterIP: 10.96.0.3, selector: {app: srv}, ports: [{port: 80}]}\n"
    /* the Service's policy: GETs under /api/ and of /health from namespace m */
    "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: "
    "allow-get, namespace: m}\nspec:\n  targetRefs: [{kind: Service, name: viawp}]\n"
    "  action: ALLOW\n  rules:\n  - from: [{source: {namespaces: [m]}}]\n"
    "    to: [{operation: {methods: [GET], paths: [\"/api/*\", /health]}}]\n"
    "  - to: [{operation: {hosts: [\"admin.example\"], notPaths: [\"/admin/*\"]}}]\n"
    /* the waypoint's policy: nothing with x-evil: 1, and nothing from 10.9.0.0/16 */
    "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: "
    "deny-evil, namespace: m}\nspec:\n  targetRefs: [{group: gateway.networking.k8s.io, kind: "
    "Gateway, name: wp}]\n  action: DENY\n  rules:\n"
    "  - when: [{key: \"request.headers[x-evil]\", values: [\"1\"]}]\n"
    "  - from: [{source: {remoteIpBlocks: [10.9.0.0/16]}}]\n"
    /* a policy on the Service without waypoint: binds nowhere */
    "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: "
    "on-direct, namespace: m}\nspec:\n  targetRefs: [{kind: Service, name: direct}]\n"
    "  action: DENY\n  rules: [{}]\n"
    /* a workload policy (ztunnel's) */
    "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: "
    "deny-22, namespace: m}\nspec:\n  action: DENY\n  rules: [{to: [{operation: {ports: "
    "[\"22\"]}}]}]\n";

struct hdr_ctx {
    const char *name, *value;
};

static const char *one_header(const void *ctx, const char *name)
{
    const struct hdr_ctx *h = ctx;

    return h->name && strcasecmp(h->name, name) == 0 ? h->value : NULL;
}

struct req_case {
    const char *identity, *ip, *method, *path, *host, *hname, *hvalue;
    int rc;
    const char *why;
};

#define ID_M     "spiffe://cluster.local/ns/m/sa/client"
#define ID_OTHER "spiffe://cluster.local/ns/other/sa/client"

static const struct req_case L7[] = {
    {ID_M, "10.0.0.1", "GET", "/api/v1/x", "viawp", NULL, NULL, 0, "allowed by m/allow-get"},
    {ID_M, "10.0.0.1", "GET", "/health", "viawp", NULL, NULL, 0, "allowed by m/allow-get"},
    {ID_M, "10.0.0.1", "POST", "/api/v1/x", "viawp", NULL, NULL, -EPERM, "none allowed"},
    {ID_M, "10.0.0.1", "GET", "/apix", "viawp", NULL, NULL, -EPERM, "none allowed"},
    {ID_M, "10.0.0.1", "GET", "/healthz", "viawp", NULL, NULL, -EPERM, "none allowed"},
    {ID_OTHER, "10.0.0.1", "GET", "/api/x", "viawp", NULL, NULL, -EPERM, "none allowed"},
    {NULL, "10.0.0.1", "GET", "/api/x", "viawp", NULL, NULL, -EPERM, "none allowed"},
    /* hosts: case-insensitive, with or without the port; notPaths */
    {ID_OTHER, "10.0.0.1", "PUT", "/x", "Admin.Example:80", NULL, NULL, 0, "allow-get"},
    {ID_OTHER, "10.0.0.1", "PUT", "/admin/x", "admin.example", NULL, NULL, -EPERM, "none"},
    /* the waypoint's DENY: a header condition, remote IPs */
    {ID_M, "10.0.0.1", "GET", "/api/x", "viawp", "X-Evil", "1", -EPERM, "denied by m/deny-evil"},
    {ID_M, "10.0.0.1", "GET", "/api/x", "viawp", "x-evil", "0", 0, "allowed"},
    {ID_M, "10.9.3.4", "GET", "/api/x", "viawp", NULL, NULL, -EPERM, "denied by m/deny-evil"},
};

static void test_binding_and_l7(void)
{
    struct gm_snapshot *s = build(WORLD);
    const struct gm_svc *viawp = gm_snapshot_service(s, "m", "viawp");
    const struct gm_svc *direct = gm_snapshot_service(s, "m", "direct");
    const struct gm_workload *w = gm_snapshot_workload(s, "m", "srv-1");

    CHECK(viawp && direct && w);
    if (!viawp || !direct || !w)
        return;
    CHECK_EQ_INT(viawp->n_policies, 2);  /* its own and its waypoint's */
    CHECK_EQ_INT(direct->n_policies, 0); /* no waypoint: nobody enforces it */
    CHECK_EQ_INT(w->n_policies, 1);      /* ztunnel: the selector-less workload policy only */
    CHECK(w->n_policies == 1 && strcmp(w->policies[0]->meta.name, "deny-22") == 0);
    for (size_t i = 0; i < GM_ARRAY_LEN(L7); i++) {
        const struct req_case *c = &L7[i];
        struct hdr_ctx h = {c->hname, c->hvalue};
        struct gm_authz_request r = {.src_identity = c->identity,
                                     .dst_port = 80,
                                     .method = c->method,
                                     .path = c->path,
                                     .path_len = strlen(c->path),
                                     .host = c->host,
                                     .header = one_header,
                                     .ctx = &h};
        char why[200] = "";
        gm_ip_parse(c->ip, &r.src_ip);
        int rc = gm_authz_evaluate(viawp->policies, viawp->n_policies, &r, why, sizeof(why));
        fprintf(stderr, "l7 case %zu: %s\n", i, why);
        CHECK_EQ_INT(rc, c->rc);
        CHECK(strstr(why, c->why) != NULL);
    }
    gm_snapshot_unref(s);
}

/* One policy, evaluated for one request: the return code. */
static int eval(const char *spec, const struct gm_authz_request *r)
{
    char *yaml = gm_xasprintf("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
                              "metadata: {name: p, namespace: m}\nspec:\n%s",
                              spec);
    struct gm_ydocs docs;
    struct gm_object *o = NULL;
    int rc = -1;

    CHECK_EQ_INT(gm_yaml_parse(&arena, "p.yaml", yaml, strlen(yaml), &docs, &diags), 0);
    if (docs.n == 1 && gm_object_decode(&arena, docs.docs[0], &o, &diags) > 0) {
        const struct gm_object *pol = o;
        rc = gm_authz_evaluate(&pol, 1, r, NULL, 0);
    }
    free(yaml);
    return rc;
}

static void test_fail_safe_and_conditions(void)
{
    struct gm_authz_request l4 = {.src_identity = ID_M, .dst_port = 8080};
    struct gm_authz_request get = {.src_identity = ID_M,
                                   .dst_port = 80,
                                   .method = "GET",
                                   .path = "/",
                                   .path_len = 1,
                                   .host = "h"};

    gm_ip_parse("10.0.0.1", &l4.src_ip);
    get.src_ip = l4.src_ip;
    /* HTTP fields at L4: an ALLOW that needs them never allows, a DENY that uses them denies */
    CHECK_EQ_INT(eval("  rules: [{to: [{operation: {methods: [GET]}}]}]\n", &l4), -EPERM);
    CHECK_EQ_INT(eval("  action: DENY\n  rules: [{to: [{operation: {paths: [/x]}}]}]\n", &l4),
                 -EPERM);
    CHECK_EQ_INT(eval("  rules: [{to: [{operation: {methods: [GET]}}]}]\n", &get), 0);
    CHECK_EQ_INT(eval("  action: DENY\n  rules: [{to: [{operation: {paths: [/x]}}]}]\n", &get), 0);
    /* conditions that are known at L4 are evaluated there */
    CHECK_EQ_INT(eval("  rules: [{when: [{key: source.namespace, values: [m]}]}]\n", &l4), 0);
    CHECK_EQ_INT(eval("  rules: [{when: [{key: source.namespace, values: [x]}]}]\n", &l4), -EPERM);
    CHECK_EQ_INT(eval("  rules: [{when: [{key: destination.port, values: [\"8080\"]}]}]\n", &l4),
                 0);
    CHECK_EQ_INT(eval("  rules: [{when: [{key: source.ip, values: [10.0.0.0/8]}]}]\n", &l4), 0);
    CHECK_EQ_INT(eval("  rules: [{when: [{key: source.principal, notValues: "
                      "[\"cluster.local/ns/m/*\"]}]}]\n",
                      &get),
                 -EPERM);
    /* a header condition at L4 is unknowable */
    CHECK_EQ_INT(eval("  rules: [{when: [{key: \"request.headers[a]\", values: [b]}]}]\n", &l4),
                 -EPERM);
    /* JWTs are not validated: no request has a request principal */
    CHECK_EQ_INT(eval("  rules: [{from: [{source: {requestPrincipals: [\"*\"]}}]}]\n", &get),
                 -EPERM);
    CHECK_EQ_INT(eval("  rules: [{from: [{source: {notRequestPrincipals: [\"*\"]}}]}]\n", &get), 0);
    /* keys nothing here can evaluate: never allow, always deny */
    CHECK_EQ_INT(
        eval("  rules: [{when: [{key: \"request.auth.claims[iss]\", values: [x]}]}]\n", &get),
        -EPERM);
    CHECK_EQ_INT(eval("  action: DENY\n  rules: [{when: [{key: \"request.auth.claims[iss]\", "
                      "values: [x]}]}]\n",
                      &get),
                 -EPERM);
    /* ALLOW with rules: [{}] allows everything; without rules nothing; CUSTOM does not decide */
    CHECK_EQ_INT(eval("  rules: [{}]\n", &get), 0);
    CHECK_EQ_INT(eval("  action: ALLOW\n", &get), -EPERM);
    CHECK_EQ_INT(eval("  action: CUSTOM\n  provider: {name: x}\n  rules: [{}]\n", &get), 0);
}

int main(void)
{
    gm_arena_init(&arena);
    gm_diags_init(&diags);
    test_binding_and_l7();
    test_fail_safe_and_conditions();
    gm_diags_done(&diags);
    gm_arena_done(&arena);
    return TEST_DONE();
}
