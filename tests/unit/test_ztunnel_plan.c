/* ztunnel's pure decisions: the outbound plan (DESIGN §5) and L4 authorization, by tables. */
#include <errno.h>

#include "../../ztunnel/authz.h"
#include "../../ztunnel/outbound_plan.h"
#include "gammamesh/yaml.h"
#include "snapshot_yaml.h"
#include "test.h"

#define POD(ns, name, ip, labels, sa)                                                              \
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: " name ", namespace: " ns ", labels: "       \
    "{" labels "}}\nspec: {nodeName: n1, serviceAccountName: " sa "}\nstatus: {podIP: " ip "}\n"

static const char *MESH =
    "apiVersion: v1\nkind: Namespace\nmetadata: {name: m, labels: {gammamesh.io/dataplane-mode: "
    "ambient}}\n"
    "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: plain}\n" POD("m", "client", "10.0.0.1",
                                                                          "app: client", "client")
        POD("m", "srv-1", "10.0.0.2", "app: srv",
            "srv") POD("m", "srv-2", "10.0.0.3", "app: srv",
                       "srv") POD("plain", "legacy", "10.0.1.1", "app: legacy", "default")
            POD("m", "wp-0", "10.0.0.9", "gateway.networking.k8s.io/gateway-name: wp",
                "wp") "---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: "
                      "{name: wp, namespace: "
                      "m}\nspec: {gatewayClassName: gammamesh-waypoint, listeners: [{name: mesh, "
                      "port: 15008, "
                      "protocol: HBONE}]}\n"
                      "---\napiVersion: v1\nkind: Service\nmetadata: {name: srv, namespace: "
                      "m}\nspec: {clusterIP: "
                      "10.96.0.1, selector: {app: srv}, ports: [{port: 80, targetPort: 8080}]}\n"
                      "---\napiVersion: v1\nkind: Service\nmetadata: {name: viawp, namespace: m, "
                      "labels: "
                      "{gammamesh.io/use-waypoint: wp}}\nspec: {clusterIP: 10.96.0.2, selector: "
                      "{app: srv}, ports: "
                      "[{port: 80, targetPort: 8080}]}\n"
                      "---\napiVersion: v1\nkind: Service\nmetadata: {name: badwp, namespace: m, "
                      "labels: "
                      "{gammamesh.io/use-waypoint: nope}}\nspec: {clusterIP: 10.96.0.3, selector: "
                      "{app: srv}, "
                      "ports: [{port: 80}]}\n"
                      "---\napiVersion: v1\nkind: Service\nmetadata: {name: empty, namespace: "
                      "m}\nspec: {clusterIP: "
                      "10.96.0.4, selector: {app: nobody}, ports: [{port: 80}]}\n"
                      "---\napiVersion: v1\nkind: Service\nmetadata: {name: legacy, namespace: "
                      "plain}\nspec: "
                      "{clusterIP: 10.96.1.1, selector: {app: legacy}, ports: [{port: 80, "
                      "targetPort: 8000}]}\n";

struct plan_case {
    const char *src, *dst;
    int port;
    uint32_t rnd;
    int rc;
    enum zt_plan_kind kind;
    const char *connect; /* ip of the TCP connection */
    int connect_port;
    const char *authority;
    const char *identity;
};

static const struct plan_case PLANS[] = {
    /* VIP without waypoint: per-connection choice over endpoints, HBONE to podIP:15008. */
    {"client", "10.96.0.1", 80, 0, 0, ZT_PLAN_HBONE, "10.0.0.2", 15008, "10.0.0.2:8080",
     "spiffe://cluster.local/ns/m/sa/srv"},
    {"client", "10.96.0.1", 80, 1, 0, ZT_PLAN_HBONE, "10.0.0.3", 15008, "10.0.0.3:8080",
     "spiffe://cluster.local/ns/m/sa/srv"},
    /* Pod IP directly. */
    {"client", "10.0.0.2", 9090, 0, 0, ZT_PLAN_HBONE, "10.0.0.2", 15008, "10.0.0.2:9090", NULL},
    /* Service with a waypoint: to the waypoint with the original VIP:port. */
    {"client", "10.96.0.2", 80, 0, 0, ZT_PLAN_HBONE, "10.0.0.9", 15008, "10.96.0.2:80",
     "spiffe://cluster.local/ns/m/sa/wp"},
    /* The waypoint itself goes straight to the endpoints. */
    {"wp-0", "10.96.0.2", 80, 0, 0, ZT_PLAN_HBONE, "10.0.0.2", 15008, "10.0.0.2:8080", NULL},
    /* Missing waypoint: fail closed. No endpoints: refused. */
    {"client", "10.96.0.3", 80, 0, -EHOSTUNREACH, ZT_PLAN_REFUSE, NULL, 0, NULL, NULL},
    {"client", "10.96.0.4", 80, 0, -EHOSTUNREACH, ZT_PLAN_REFUSE, NULL, 0, NULL, NULL},
    /* Not enrolled destinations: plaintext. */
    {"client", "10.96.1.1", 80, 0, 0, ZT_PLAN_PASSTHROUGH, "10.0.1.1", 8000, NULL, NULL},
    {"client", "10.0.1.1", 22, 0, 0, ZT_PLAN_PASSTHROUGH, "10.0.1.1", 22, NULL, NULL},
    {"client", "192.0.2.1", 443, 0, 0, ZT_PLAN_PASSTHROUGH, "192.0.2.1", 443, NULL, NULL},
    /* A VIP port the Service does not have is not the Service. */
    {"client", "10.96.0.1", 81, 0, 0, ZT_PLAN_PASSTHROUGH, "10.96.0.1", 81, NULL, NULL},
    /* Unknown source. */
    {NULL, "10.96.0.1", 80, 0, -EPERM, ZT_PLAN_REFUSE, NULL, 0, NULL, NULL},
};

static void test_plans(void)
{
    struct gm_snapshot *s = build(MESH);

    for (size_t i = 0; i < GM_ARRAY_LEN(PLANS); i++) {
        const struct plan_case *c = &PLANS[i];
        struct zt_plan p;
        struct gm_ip dst;
        char ip[64];
        gm_ip_parse(c->dst, &dst);
        const struct gm_workload *src = c->src ? gm_snapshot_workload(s, "m", c->src) : NULL;
        int rc = zt_outbound_plan(s, src, &dst, c->port, c->rnd, &p);
        fprintf(stderr, "plan case %zu: %s\n", i, p.reason ? p.reason : "-");
        CHECK_EQ_INT(rc, c->rc);
        CHECK_EQ_INT(p.kind, c->kind);
        if (c->connect) {
            CHECK_EQ_STR(gm_ip_format(&p.connect_ip, ip, sizeof(ip)), c->connect);
            CHECK_EQ_INT(p.connect_port, c->connect_port);
        }
        if (c->authority)
            CHECK_EQ_STR(p.authority, c->authority);
        if (c->identity)
            CHECK_EQ_STR(p.expected_identity, c->identity);
        if (c->kind == ZT_PLAN_HBONE && c->identity == NULL)
            CHECK(p.expected_identity != NULL && p.dst && p.dst->enrolled);
    }
    gm_snapshot_unref(s);
}

static const char *POLICIES =
    "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: "
    "allow-client, namespace: m}\nspec:\n  selector: {matchLabels: {app: srv}}\n  rules:\n  - "
    "from: "
    "[{source: {principals: [cluster.local/ns/m/sa/client]}}]\n    to: [{operation: {ports: "
    "[\"8080\"]}}]\n  - from: [{source: {ipBlocks: [10.0.1.0/24]}}]\n"
    "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: "
    "deny-other, namespace: m}\nspec:\n  selector: {matchLabels: {app: srv}}\n  action: DENY\n  "
    "rules: [{from: [{source: {namespaces: [evil]}}]}, {to: [{operation: {ports: [\"6666\"]}}]}]\n"
    "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: l7, "
    "namespace: m}\nspec:\n  selector: {matchLabels: {app: client}}\n  rules: [{to: [{operation: "
    "{methods: [GET]}}]}]\n"
    "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: "
    "deny-l7, namespace: plain}\nspec:\n  selector: {matchLabels: {app: legacy}}\n  action: DENY\n"
    "  rules: [{to: [{operation: {ports: [\"22\"], paths: [/admin]}}]}]\n";

struct authz_case {
    const char *dst;      /* workload name in m */
    const char *identity; /* NULL: plaintext */
    const char *ip;
    int port;
    int rc;
};

static const struct authz_case AUTHZ[] = {
    {"srv-1", "spiffe://cluster.local/ns/m/sa/client", "10.0.0.1", 8080, 0},
    {"srv-1", "spiffe://cluster.local/ns/m/sa/client", "10.0.0.1", 9090, -EPERM}, /* port */
    {"srv-1", "spiffe://cluster.local/ns/m/sa/other", "10.0.0.1", 8080, -EPERM},  /* principal */
    {"srv-1", NULL, "10.0.1.5", 8080, 0},      /* ipBlocks rule, plaintext */
    {"srv-1", NULL, "10.0.2.5", 8080, -EPERM}, /* no identity, no ip match */
    {"srv-1", "spiffe://cluster.local/ns/evil/sa/client", "10.0.1.5", 8080, -EPERM}, /* DENY ns */
    {"srv-1", "spiffe://cluster.local/ns/m/sa/client", "10.0.0.1", 6666, -EPERM},    /* DENY port */
    {"client", "spiffe://cluster.local/ns/m/sa/srv", "10.0.0.2", 80, -EPERM}, /* L7 ALLOW: no */
    {"wp-0", NULL, "10.0.0.1", 80, 0},                                        /* no policy */
};

static void test_authz(void)
{
    char *yaml = gm_xasprintf("%s%s", MESH, POLICIES);
    struct gm_snapshot *s = build(yaml);

    free(yaml);
    for (size_t i = 0; i < GM_ARRAY_LEN(AUTHZ); i++) {
        const struct authz_case *c = &AUTHZ[i];
        struct zt_authz_conn conn = {.src_identity = c->identity, .dst_port = c->port};
        char why[200] = "";
        gm_ip_parse(c->ip, &conn.src_ip);
        const struct gm_workload *w = gm_snapshot_workload(s, "m", c->dst);
        CHECK(w != NULL);
        int rc = zt_authz_check(w, &conn, why, sizeof(why));
        fprintf(stderr, "authz case %zu: %s\n", i, why);
        CHECK_EQ_INT(rc, c->rc);
    }
    /* DENY with an L7 field ignores it (fail safe): port 22 to legacy is denied from anyone. */
    const struct gm_workload *legacy = gm_snapshot_workload(s, "plain", "legacy");
    struct zt_authz_conn conn = {.dst_port = 22};
    CHECK(legacy != NULL);
    CHECK_EQ_INT(legacy->n_policies, 1); /* namespace-scoped: only plain's own policy */
    gm_ip_parse("10.0.0.1", &conn.src_ip);
    CHECK_EQ_INT(zt_authz_check(legacy, &conn, NULL, 0), -EPERM);
    conn.dst_port = 80;
    CHECK_EQ_INT(zt_authz_check(legacy, &conn, NULL, 0), 0);
    gm_snapshot_unref(s);
}

int main(void)
{
    gm_arena_init(&arena);
    gm_diags_init(&diags);
    test_plans();
    test_authz();
    gm_diags_done(&diags);
    gm_arena_done(&arena);
    return TEST_DONE();
}
