/* Snapshot construction: enrolment, endpoints, waypoints, name forms, route attachment,
 * producer/consumer tables, rejected routes, and the config store's last-good behaviour. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gammamesh/config.h"
#include "gammamesh/snapshot.h"
#include "gammamesh/yaml.h"
#include "test.h"

struct built {
    struct gm_arena arena;
    struct gm_diags diags;
    struct gm_snapshot *s;
};

static void build(struct built *b, const char *yaml)
{
    struct gm_ydocs docs;
    const struct gm_object *objs[64];
    size_t n = 0;

    gm_arena_init(&b->arena);
    gm_diags_init(&b->diags);
    CHECK_EQ_INT(gm_yaml_parse(&b->arena, "t.yaml", yaml, strlen(yaml), &docs, &b->diags), 0);
    for (size_t i = 0; i < docs.n && n < 64; i++) {
        struct gm_object *o = NULL;
        if (gm_object_decode(&b->arena, docs.docs[i], &o, &b->diags) > 0)
            objs[n++] = o;
    }
    CHECK_EQ_INT(gm_diags_errors(&b->diags), 0);
    b->s = gm_snapshot_build(objs, n, NULL, NULL, NULL);
}

static void done(struct built *b)
{
    gm_snapshot_unref(b->s);
    gm_diags_done(&b->diags);
    gm_arena_done(&b->arena);
}

static const char *BASE =
    "apiVersion: v1\nkind: Namespace\nmetadata: {name: ns1, labels: {gammamesh.io/dataplane-mode: "
    "ambient, gammamesh.io/use-waypoint: wp}}\n"
    "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: ns2}\n"
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: ns1, uid: u-a, labels: {app: "
    "x}}\nspec: {nodeName: n1, serviceAccountName: sa-a, containers: [{name: c, ports: "
    "[{name: web, containerPort: 8081}]}]}\nstatus: {podIP: 10.0.0.1}\n"
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: ns1, labels: {app: x, "
    "gammamesh.io/dataplane-mode: none}}\nspec: {nodeName: n2, containers: [{name: c, ports: "
    "[{name: web, containerPort: 9000}]}]}\nstatus: {podIP: 10.0.0.2, conditions: [{type: Ready, "
    "status: \"True\"}]}\n"
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: c, namespace: ns1, labels: {app: x}}\n"
    "spec: {nodeName: n2}\nstatus: {podIP: 10.0.0.3, conditions: [{type: Ready, status: "
    "\"False\"}]}\n"
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: d, namespace: ns2, labels: {app: x, "
    "gammamesh.io/dataplane-mode: ambient}}\nspec: {nodeName: n1}\nstatus: {podIP: 10.0.1.1}\n"
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: wp-1, namespace: ns1, labels: "
    "{gateway.networking.k8s.io/gateway-name: wp, gammamesh.io/dataplane-mode: none}}\n"
    "spec: {nodeName: n1, serviceAccountName: wp}\nstatus: {podIP: 10.0.0.9}\n"
    "---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: wp, "
    "namespace: ns1}\nspec: {gatewayClassName: gammamesh-waypoint, listeners: [{name: mesh, port: "
    "15008, protocol: HBONE}]}\n"
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: svc, namespace: ns1}\nspec: {clusterIP: "
    "10.96.0.1, selector: {app: x}, ports: [{name: http, port: 80, targetPort: web}, {name: "
    "alt, port: 8080}]}\n"
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: plain, namespace: ns1, labels: "
    "{gammamesh.io/use-waypoint: none}}\nspec: {clusterIP: 10.96.0.2, selector: {app: x}, ports: "
    "[{port: 80}]}\n"
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: other, namespace: ns2}\nspec: {ports: "
    "[{port: 80}]}\n";

static void test_workloads(void)
{
    struct built b;
    struct gm_ip ip;

    build(&b, BASE);
    const struct gm_workload *a = gm_snapshot_workload(b.s, "ns1", "a");
    CHECK(a != NULL);
    CHECK(a->enrolled); /* namespace label */
    CHECK(a->ready);    /* no conditions, has an IP */
    CHECK_EQ_STR(a->identity, "spiffe://cluster.local/ns/ns1/sa/sa-a");
    CHECK_EQ_STR(a->uid, "u-a");
    const struct gm_workload *w = gm_snapshot_workload(b.s, "ns1", "b");
    CHECK(w && !w->enrolled); /* pod label beats namespace label */
    CHECK_EQ_STR(w->identity, "spiffe://cluster.local/ns/ns1/sa/default");
    w = gm_snapshot_workload(b.s, "ns1", "c");
    CHECK(w && !w->ready);
    w = gm_snapshot_workload(b.s, "ns2", "d");
    CHECK(w && w->enrolled); /* pod label enrols in a plain namespace */
    w = gm_snapshot_workload(b.s, "ns1", "wp-1");
    CHECK(w && !w->enrolled && w->waypoint_name && strcmp(w->waypoint_name, "wp") == 0);
    gm_ip_parse("10.0.0.2", &ip);
    w = gm_snapshot_workload_by_ip(b.s, &ip);
    CHECK(w && strcmp(w->name, "b") == 0);
    CHECK(gm_snapshot_workload_by_uid(b.s, "u-a") == a);
    gm_ip_parse("10.9.9.9", &ip);
    CHECK(gm_snapshot_workload_by_ip(b.s, &ip) == NULL);
    done(&b);
}

static void test_services(void)
{
    struct built b;
    struct gm_ip ip;
    int idx = -1;

    build(&b, BASE);
    const struct gm_svc *svc = gm_snapshot_service(b.s, "ns1", "svc");
    CHECK(svc != NULL);
    CHECK_EQ_INT(svc->n_endpoints, 2); /* a and b; c is not ready; d is in ns2 */
    for (size_t i = 0; i < svc->n_endpoints; i++) {
        const struct gm_endpoint *e = &svc->endpoints[i];
        CHECK_EQ_INT(e->target_ports[0], strcmp(e->w->name, "a") == 0 ? 8081 : 9000);
        CHECK_EQ_INT(e->target_ports[1], 8080); /* targetPort defaults to port */
    }
    CHECK(svc->waypoint != NULL);
    CHECK_EQ_STR(svc->waypoint->identity, "spiffe://cluster.local/ns/ns1/sa/wp");
    CHECK_EQ_INT(svc->waypoint->n_pods, 1);
    CHECK(gm_snapshot_service(b.s, "ns1", "plain")->waypoint == NULL); /* service label wins */
    gm_ip_parse("10.96.0.1", &ip);
    CHECK(gm_snapshot_service_by_vip(b.s, &ip, 8080, &idx) == svc);
    CHECK_EQ_INT(idx, 1);
    CHECK(gm_snapshot_service_by_vip(b.s, &ip, 81, &idx) == NULL);
    CHECK(gm_snapshot_service_by_host(b.s, "svc", "ns1") == svc);
    CHECK(gm_snapshot_service_by_host(b.s, "svc", "ns2") == NULL);
    CHECK(gm_snapshot_service_by_host(b.s, "svc.ns1", "ns2") == svc);
    CHECK(gm_snapshot_service_by_host(b.s, "svc.ns1.svc", "ns2") == svc);
    CHECK(gm_snapshot_service_by_host(b.s, "svc.ns1.svc.cluster.local", "ns2") == svc);
    CHECK(gm_snapshot_service_by_host(b.s, "svc.ns1.svc.example.org", "ns2") == NULL);
    CHECK(gm_snapshot_service_by_host(b.s, "other.ns2", "x")->vip.family == 0);
    done(&b);
}

static const char *ROUTES =
    "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: all-ports, "
    "namespace: ns1}\nspec:\n  parentRefs: [{group: \"\", kind: Service, name: svc}]\n  rules: "
    "[{backendRefs: [{name: svc, port: 80}]}]\n"
    "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: by-port, "
    "namespace: ns1}\nspec:\n  parentRefs: [{group: \"\", kind: Service, name: svc, port: 8080}]\n"
    "  rules: [{matches: [{path: {type: Exact, value: /x}}], backendRefs: [{name: svc, port: "
    "80}]}]\n"
    "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: by-section, "
    "namespace: ns1}\nspec:\n  parentRefs: [{group: \"\", kind: Service, name: svc, sectionName: "
    "http}]\n  rules: [{matches: [{path: {type: PathPrefix, value: /s/}}], backendRefs: [{name: "
    "nope, port: 80}]}]\n"
    "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: consumer, "
    "namespace: ns2}\nspec:\n  parentRefs: [{group: \"\", kind: Service, name: svc, namespace: "
    "ns1}]\n  rules: [{backendRefs: [{name: svc, namespace: ns1, port: 80}]}]\n"
    "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: bad-re, "
    "namespace: ns1}\nspec:\n  parentRefs: [{group: \"\", kind: Service, name: plain}]\n  rules: "
    "[{matches: [{path: {type: RegularExpression, value: \"/(unclosed\"}}], backendRefs: [{name: "
    "svc, port: 80}]}]\n"
    "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: lost, "
    "namespace: ns1}\nspec:\n  parentRefs: [{group: \"\", kind: Service, name: missing}]\n";

static void test_routes(void)
{
    struct built b;
    char *yaml = gm_xasprintf("%s%s", BASE, ROUTES);

    build(&b, yaml);
    free(yaml);
    const struct gm_svc *svc = gm_snapshot_service(b.s, "ns1", "svc");
    /* Port 80: all-ports and by-section; port 8080: all-ports and by-port. */
    const struct gm_route_table *t80 = gm_snapshot_routes(svc, 0, "ns1");
    const struct gm_route_table *t8080 = gm_snapshot_routes(svc, 1, "ns1");
    CHECK(t80 && t8080);
    CHECK_EQ_INT(t80->n, 2);
    CHECK_EQ_INT(t8080->n, 2);
    /* Precedence: the longer prefix /s beats /; Exact /x beats /. */
    CHECK_EQ_STR(t80->v[0]->rule->route->meta.name, "by-section");
    CHECK_EQ_STR(t80->v[0]->path, "/s"); /* trailing slash dropped */
    CHECK_EQ_STR(t8080->v[0]->rule->route->meta.name, "by-port");
    /* The unresolvable backend stays, marked invalid (answers 500). */
    CHECK(t80->v[0]->rule->backends[0].target.invalid != NULL);
    CHECK(t80->v[1]->rule->backends[0].target.svc == svc);
    /* Consumers in ns2 see only their own route, on both ports. */
    const struct gm_route_table *c80 = gm_snapshot_routes(svc, 0, "ns2");
    CHECK(c80 && c80->n == 1 && strcmp(c80->v[0]->rule->route->meta.name, "consumer") == 0);
    CHECK(gm_snapshot_routes(svc, 1, "ns2") != t8080);
    /* A Service without routes: passthrough (NULL). The bad regex route was rejected. */
    const struct gm_svc *plain = gm_snapshot_service(b.s, "ns1", "plain");
    CHECK(gm_snapshot_routes(plain, 0, "ns1") == NULL);
    size_t regex_errors = 0, parent_warnings = 0;
    for (size_t i = 0; i < b.s->diags.n; i++) {
        const struct gm_diag *d = &b.s->diags.v[i];
        if (d->severity == GM_DIAG_ERROR && strstr(d->reason, "regular expression") && d->field &&
            strcmp(d->field, "spec.rules[0].matches[0].path.value") == 0 && d->line > 0)
            regex_errors++;
        if (d->severity == GM_DIAG_WARNING && strstr(d->reason, "ns1/missing"))
            parent_warnings++;
    }
    CHECK_EQ_INT(regex_errors, 1);
    CHECK_EQ_INT(parent_warnings, 1);
    CHECK_EQ_INT(b.s->n_routes, 4);
    done(&b);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void test_store(void)
{
    char dir[] = "/tmp/gm-test-store-XXXXXX";
    char path[256], path2[256];
    struct gm_config_store st;

    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/a.yaml", dir);
    snprintf(path2, sizeof(path2), "%s/b.yaml", dir);
    write_file(path, BASE);
    gm_config_store_init(&st, dir);
    CHECK_EQ_INT(gm_config_store_scan(&st), 1);
    CHECK_EQ_INT(gm_config_store_scan(&st), 0); /* unchanged */
    struct gm_snapshot *s1 = gm_config_store_snapshot(&st, NULL);
    CHECK(gm_snapshot_service(s1, "ns1", "svc") != NULL);
    /* A syntax error keeps the last good content and is reported. */
    write_file(path, "apiVersion: v1\nkind: [\n");
    CHECK_EQ_INT(gm_config_store_scan(&st), 0);
    CHECK(st.load_errors_total >= 1);
    struct gm_diags d;
    gm_diags_init(&d);
    gm_config_store_diags(&st, &d);
    CHECK_EQ_INT(gm_diags_errors(&d), 1);
    gm_diags_done(&d);
    struct gm_snapshot *s2 = gm_config_store_snapshot(&st, NULL);
    CHECK(gm_snapshot_service(s2, "ns1", "svc") != NULL);
    /* A second file adds objects; the old snapshot is unaffected. */
    write_file(path2, "apiVersion: v1\nkind: Service\nmetadata: {name: extra, namespace: ns2}\n"
                      "spec: {ports: [{port: 1}]}\n");
    CHECK_EQ_INT(gm_config_store_scan(&st), 1);
    struct gm_snapshot *s3 = gm_config_store_snapshot(&st, NULL);
    CHECK(gm_snapshot_service(s3, "ns2", "extra") != NULL);
    CHECK(gm_snapshot_service(s2, "ns2", "extra") == NULL);
    /* A bad object keeps its previous version; a removed file drops its objects. */
    write_file(path2, "apiVersion: v1\nkind: Service\nmetadata: {name: extra, namespace: ns2}\n"
                      "spec: {ports: [{port: 99999}]}\n---\napiVersion: v1\nkind: Service\n"
                      "metadata: {name: more, namespace: ns2}\nspec: {ports: [{port: 2}]}\n");
    CHECK_EQ_INT(gm_config_store_scan(&st), 1);
    struct gm_snapshot *s4 = gm_config_store_snapshot(&st, NULL);
    const struct gm_svc *extra = gm_snapshot_service(s4, "ns2", "extra");
    CHECK(extra && extra->ports[0].port == 1);
    CHECK(gm_snapshot_service(s4, "ns2", "more") != NULL);
    unlink(path2);
    CHECK_EQ_INT(gm_config_store_scan(&st), 1);
    struct gm_snapshot *s5 = gm_config_store_snapshot(&st, NULL);
    CHECK(gm_snapshot_service(s5, "ns2", "more") == NULL);
    gm_config_store_done(&st);
    /* Snapshots outlive the store. */
    CHECK(gm_snapshot_service(s4, "ns2", "more") != NULL);
    gm_snapshot_unref(s1);
    gm_snapshot_unref(s2);
    gm_snapshot_unref(s3);
    gm_snapshot_unref(s4);
    gm_snapshot_unref(s5);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    test_workloads();
    test_services();
    test_routes();
    test_store();
    return TEST_DONE();
}
