/* Route decisions of the waypoint (waypoint/decide.c) and its identity (waypoint/self.c), over a
 * snapshot built from YAML: passthrough, 404, redirects, rewrites, header modifiers, weights,
 * 500 for invalid or missing backends and ExtensionRefs, 503 without endpoints, consumer routes,
 * endpoint choice and appProtocol. */
#include <errno.h>

#include "../../waypoint/decide.h"
#include "../../waypoint/waypoint.h"
#include "gammamesh/yaml.h"
#include "snapshot_yaml.h"
#include "test.h"

static const char *YAML =
    "apiVersion: v1\nkind: Service\nmetadata: {name: plain, namespace: t}\n"
    "spec: {clusterIP: 10.96.0.1, selector: {app: a}, ports: [{port: 80, targetPort: 8080}]}\n"
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: t}\n"
    "spec: {clusterIP: 10.96.0.2, selector: {app: a}, ports: [{port: 80, targetPort: 8080}]}\n"
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: b1, namespace: t}\n"
    "spec: {clusterIP: 10.96.0.3, selector: {app: a, v: '1'}, ports: [{port: 80, targetPort: "
    "8081}]}\n"
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: empty, namespace: t}\n"
    "spec: {clusterIP: 10.96.0.4, selector: {app: none}, ports: [{port: 80}]}\n"
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: grpc, namespace: t}\n"
    "spec: {clusterIP: 10.96.0.5, selector: {app: a}, ports: [{port: 7070, appProtocol: "
    "kubernetes.io/h2c}]}\n"
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: a-1, namespace: t, labels: {app: a, v: "
    "'1'}}\nspec: {nodeName: n1, serviceAccountName: sa1}\nstatus: {podIP: 10.0.0.1}\n"
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: a-2, namespace: t, labels: {app: a}}\n"
    "spec: {nodeName: n1}\nstatus: {podIP: 10.0.0.2}\n"
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: wp-0, namespace: t, labels: "
    "{gateway.networking.k8s.io/gateway-name: wp}}\nspec: {nodeName: n1}\nstatus: {podIP: "
    "10.0.0.9}\n"
    "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
    "metadata: {name: r, namespace: t}\nspec:\n"
    "  parentRefs: [{group: '', kind: Service, name: web, port: 80}]\n"
    "  rules:\n"
    "  - matches: [{path: {type: PathPrefix, value: /split}}]\n"
    "    timeouts: {request: 2s, backendRequest: 1s}\n"
    "    retry: {attempts: 2, codes: [503]}\n"
    "    backendRefs: [{name: b1, port: 80, weight: 3}, {name: plain, port: 80, weight: 1}]\n"
    "  - matches: [{path: {type: PathPrefix, value: /hdr}}]\n"
    "    filters:\n"
    "    - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: X-A, value: "
    "'1'}], remove: [X-Gone]}}\n"
    "    - {type: URLRewrite, urlRewrite: {hostname: new.host, path: {type: "
    "ReplacePrefixMatch, replacePrefixMatch: /v2}}}\n"
    "    - {type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: X-R, value: "
    "r}]}}\n"
    "    backendRefs:\n"
    "    - name: b1\n"
    "      port: 80\n"
    "      filters: [{type: RequestHeaderModifier, requestHeaderModifier: {add: [{name: X-B, "
    "value: b}]}}]\n"
    "  - matches: [{path: {type: PathPrefix, value: /redir}}]\n"
    "    filters: [{type: RequestRedirect, requestRedirect: {scheme: https, statusCode: 301}}]\n"
    "  - matches: [{path: {type: Exact, value: /half-bad}}]\n"
    "    backendRefs: [{name: missing, port: 80}, {name: b1, port: 80}]\n"
    "  - matches: [{path: {type: Exact, value: /zero}}]\n"
    "    backendRefs: [{name: b1, port: 80, weight: 0}]\n"
    "  - matches: [{path: {type: Exact, value: /none}}]\n"
    "  - matches: [{path: {type: Exact, value: /ext}}]\n"
    "    filters: [{type: ExtensionRef, extensionRef: {group: x.io, kind: K, name: n}}]\n"
    "    backendRefs: [{name: b1, port: 80}]\n"
    "  - matches: [{path: {type: Exact, value: /noeps}}]\n"
    "    backendRefs: [{name: empty, port: 80}]\n"
    "  - matches: [{path: {type: Exact, value: /mirror}}]\n"
    "    filters: [{type: RequestMirror, requestMirror: {backendRef: {name: plain, port: 80}}}]\n"
    "    backendRefs: [{name: b1, port: 80}]\n"
    "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
    "metadata: {name: consumer, namespace: other}\nspec:\n"
    "  parentRefs: [{group: '', kind: Service, name: web, namespace: t, port: 80}]\n"
    "  rules: [{matches: [{path: {type: PathPrefix, value: /}}], backendRefs: [{name: plain, "
    "namespace: t, port: 80}]}]\n";

struct req {
    struct wp_req r;
};

static void req_init(struct wp_req *r, const char *method, const char *target, const char *host)
{
    wp_req_init(r, 64 * 1024);
    r->method = gm_xstrdup(method);
    r->scheme = gm_xstrdup("http");
    wp_req_set_target(r, target, strlen(target));
    if (host)
        gm_hlist_add(&r->headers, "Host", host);
}

static const struct gm_svc *svc(struct gm_snapshot *s, const char *ip, int *pi)
{
    struct gm_ip vip;

    gm_ip_parse(ip, &vip);
    return gm_snapshot_service_by_vip(s, &vip, strcmp(ip, "10.96.0.5") == 0 ? 7070 : 80, pi);
}

/* Decide for target on web (10.96.0.2:80) from namespace ns. */
static void decide(struct gm_snapshot *s, const char *ns, const char *target, uint64_t rnd,
                   struct wp_req *r, struct wp_decision *d)
{
    int pi;
    const struct gm_svc *web = svc(s, "10.96.0.2", &pi);

    req_init(r, "GET", target, "web.t:80");
    gm_hlist_add(&r->headers, "X-Gone", "x");
    wp_decide(web, pi, ns, r, rnd, d);
}

static void test_basics(struct gm_snapshot *s)
{
    struct wp_req r;
    struct wp_decision d;
    int pi;

    /* no route on the port: the Service itself */
    const struct gm_svc *plain = svc(s, "10.96.0.1", &pi);
    req_init(&r, "GET", "/anything", "plain");
    wp_decide(plain, pi, "t", &r, 0, &d);
    CHECK_EQ_INT(d.action, WP_ACT_FORWARD);
    CHECK(d.svc == plain && d.rule == NULL && d.backend == -1);
    wp_decision_done(&d);
    wp_req_done(&r);

    decide(s, "t", "/nothing", 0, &r, &d);
    CHECK_EQ_INT(d.action, WP_ACT_RESPOND);
    CHECK_EQ_INT(d.status, 404);
    CHECK_EQ_STR(d.flags, "NR");
    wp_decision_done(&d);
    wp_req_done(&r);

    const struct {
        const char *target;
        int status;
        const char *flags;
    } fails[] = {
        {"/zero", 500, "-"}, {"/none", 500, "-"}, {"/ext", 500, "-"}, {"/noeps", 503, "UH"}};
    for (size_t i = 0; i < GM_ARRAY_LEN(fails); i++) {
        decide(s, "t", fails[i].target, 0, &r, &d);
        CHECK_EQ_INT(d.action, WP_ACT_RESPOND);
        CHECK_EQ_INT(d.status, fails[i].status);
        CHECK_EQ_STR(d.flags, fails[i].flags);
        wp_decision_done(&d);
        wp_req_done(&r);
    }
}

static void test_filters(struct gm_snapshot *s)
{
    struct wp_req r;
    struct wp_decision d;

    decide(s, "t", "/hdr/x?q=1", 0, &r, &d);
    CHECK_EQ_INT(d.action, WP_ACT_FORWARD);
    CHECK_EQ_STR(d.svc->name, "b1");
    CHECK_EQ_STR(r.path, "/v2/x");
    CHECK_EQ_STR(r.query, "q=1");
    char *v = gm_hlist_get(&r.headers, "host");
    CHECK_EQ_STR(v, "new.host");
    free(v);
    v = gm_hlist_get(&r.headers, "x-a");
    CHECK_EQ_STR(v, "1");
    free(v);
    v = gm_hlist_get(&r.headers, "x-b"); /* the backend's own filter */
    CHECK_EQ_STR(v, "b");
    free(v);
    CHECK_EQ_INT(gm_hlist_count(&r.headers, "x-gone"), 0);
    CHECK(d.resp_mod[0] != NULL && d.resp_mod[1] == NULL);
    CHECK(d.rule && d.rule->index == 1);
    wp_decision_done(&d);
    wp_req_done(&r);

    decide(s, "t", "/redir/a?b=c", 0, &r, &d);
    CHECK_EQ_INT(d.action, WP_ACT_REDIRECT);
    CHECK_EQ_INT(d.status, 301);
    CHECK_EQ_STR(d.location, "https://web.t/redir/a?b=c");
    wp_decision_done(&d);
    wp_req_done(&r);

    decide(s, "t", "/mirror", 0, &r, &d);
    CHECK_EQ_INT(d.action, WP_ACT_FORWARD);
    CHECK(d.mirror_from[0] != NULL && d.mirror_from[0]->n_mirrors == 1);
    wp_decision_done(&d);
    wp_req_done(&r);

    decide(s, "t", "/split", 0, &r, &d);
    CHECK_EQ_INT(d.timeouts.request_ms, 2000);
    CHECK_EQ_INT(d.timeouts.backend_request_ms, 1000);
    CHECK(d.retry && d.retry->attempts == 2);
    wp_decision_done(&d);
    wp_req_done(&r);
}

static void test_weights(struct gm_snapshot *s)
{
    struct wp_req r;
    struct wp_decision d;
    int b1 = 0, plain = 0, bad = 0, ok = 0;

    for (uint64_t i = 0; i < 4000; i++) {
        decide(s, "t", "/split", i * 0x9e3779b97f4a7c15ULL, &r, &d);
        if (d.action == WP_ACT_FORWARD)
            strcmp(d.svc->name, "b1") == 0 ? b1++ : plain++;
        wp_decision_done(&d);
        wp_req_done(&r);
        decide(s, "t", "/half-bad", i * 0x9e3779b97f4a7c15ULL, &r, &d);
        d.action == WP_ACT_RESPOND &&d.status == 500 ? bad++ : ok++;
        wp_decision_done(&d);
        wp_req_done(&r);
    }
    CHECK(b1 > 2800 && b1 < 3200); /* 3:1 */
    CHECK_EQ_INT(b1 + plain, 4000);
    CHECK(bad > 1800 && bad < 2200); /* the invalid backend's share answers 500 */
}

static void test_consumer(struct gm_snapshot *s)
{
    struct wp_req r;
    struct wp_decision d;

    decide(s, "other", "/nothing", 0, &r, &d); /* the consumer route of "other" */
    CHECK_EQ_INT(d.action, WP_ACT_FORWARD);
    CHECK_EQ_STR(d.svc->name, "plain");
    CHECK_EQ_STR(d.rule->route->meta.name, "consumer");
    wp_decision_done(&d);
    wp_req_done(&r);
}

static void test_endpoints(struct gm_snapshot *s)
{
    int pi, seen[2] = {0, 0};
    const struct gm_svc *plain = svc(s, "10.96.0.1", &pi);
    const struct gm_svc *empty = svc(s, "10.96.0.4", &pi);

    for (uint64_t i = 0; i < 100; i++) {
        int e = wp_decide_endpoint(plain, 0, i);
        CHECK(e == 0 || e == 1);
        if (e >= 0)
            seen[e]++;
    }
    CHECK(seen[0] == 50 && seen[1] == 50);
    CHECK_EQ_INT(wp_decide_endpoint(empty, 0, 1), -ENOENT);
    CHECK_EQ_INT(wp_decide_endpoint(plain, 5, 1), -ENOENT);
    CHECK(!wp_decide_port_h2(plain, 0));
    CHECK(wp_decide_port_h2(svc(s, "10.96.0.5", &pi), pi));

    char buf[64];
    struct gm_ip ip6;
    gm_ip_parse("fd00::1", &ip6);
    gm_ipport_format(&ip6, 80, buf, sizeof(buf));
    CHECK_EQ_STR(buf, "[fd00::1]:80");
}

static void test_self(struct gm_snapshot *s)
{
    struct wp_settings set = {0};
    char id[GM_SPIFFE_ID_MAX], why[128];

    set.common.trust_domain = "td.example";
    set.pod_namespace = "t";
    CHECK_EQ_INT(wp_self_identity(&set, s, id, sizeof(id), why, sizeof(why)), 0);
    CHECK_EQ_STR(id, "spiffe://td.example/ns/t/sa/default");
    set.pod_name = "wp-0"; /* no serviceAccountName: the gateway-name label */
    wp_self_identity(&set, s, id, sizeof(id), why, sizeof(why));
    CHECK_EQ_STR(id, "spiffe://td.example/ns/t/sa/wp");
    set.pod_name = "a-1";
    wp_self_identity(&set, s, id, sizeof(id), why, sizeof(why));
    CHECK_EQ_STR(id, "spiffe://td.example/ns/t/sa/sa1");
    set.pod_name = "not-there";
    CHECK_EQ_INT(wp_self_identity(&set, s, id, sizeof(id), why, sizeof(why)), -ENOENT);
    CHECK(strstr(why, "not-there") != NULL);
    set.service_account = "explicit";
    CHECK_EQ_INT(wp_self_identity(&set, s, id, sizeof(id), why, sizeof(why)), 0);
    CHECK_EQ_STR(id, "spiffe://td.example/ns/t/sa/explicit");
}

int main(void)
{
    gm_arena_init(&arena);
    gm_diags_init(&diags);
    struct gm_snapshot *s = build(YAML);

    test_basics(s);
    test_filters(s);
    test_weights(s);
    test_consumer(s);
    test_endpoints(s);
    test_self(s);
    gm_snapshot_unref(s);
    gm_diags_done(&diags);
    gm_arena_done(&arena);
    return TEST_DONE();
}
