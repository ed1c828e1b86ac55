/* The CNI gate's wire format (ztunnel/cni_proto.h): what the plugin sends parses back to the
 * same request, and what must be refused is (a request reaches the capture manager). */
#include <sys/socket.h>

#include "cni_proto.h"
#include "test.h"

static int parse(const char *s, struct zt_cni_request *r, char *err)
{
    return zt_cni_request_parse(s, strlen(s), r, err, 200);
}

static void roundtrip(void)
{
    struct zt_cni_request r = {
        .command = ZT_CNI_ADD,
        .container_id = "0123abcd",
        .netns = "/var/run/netns/cni-1234",
        .namespace = "demo",
        .pod = "client-7d9f-x2",
        .uid = "6b5c74ef-afa7-49c2-95cf-91a3b7d87891",
        .timeout_ms = 5000,
    };
    struct zt_cni_request back;
    char err[200];

    gm_ip_parse("10.244.1.5", &r.ip);
    char *line = zt_cni_request_format(&r);
    CHECK(line[strlen(line) - 1] == '\n');
    CHECK_EQ_INT(parse(line, &back, err), 0);
    CHECK_EQ_INT(back.command, ZT_CNI_ADD);
    CHECK_EQ_STR(back.container_id, r.container_id);
    CHECK_EQ_STR(back.netns, r.netns);
    CHECK_EQ_STR(back.namespace, r.namespace);
    CHECK_EQ_STR(back.pod, r.pod);
    CHECK_EQ_STR(back.uid, r.uid);
    CHECK(gm_ip_equal(&back.ip, &r.ip));
    CHECK_EQ_INT(back.timeout_ms, 5000);
    zt_cni_request_free(&back);
    free(line);
}

static void defaults_and_ips(void)
{
    struct zt_cni_request r;
    char err[200], buf[64];

    /* no uid, no ips, no timeout: defaults; an IPv6 first, then "a.b.c.d/len" */
    CHECK_EQ_INT(parse("{\"command\":\"CHECK\",\"netns\":\"/proc/1/ns/net\",\"namespace\":\"a\","
                       "\"pod\":\"b\",\"ips\":[\"fd00::5/64\",\"10.0.0.9/24\"]}",
                       &r, err),
                 0);
    CHECK_EQ_STR(r.uid, "");
    CHECK_EQ_STR(r.container_id, "");
    CHECK_EQ_INT(r.timeout_ms, ZT_CNI_TIMEOUT_MS);
    CHECK_EQ_INT(r.ip.family, AF_INET);
    CHECK_EQ_STR(gm_ip_format(&r.ip, buf, sizeof(buf)), "10.0.0.9");
    zt_cni_request_free(&r);
    /* DEL needs only the container */
    CHECK_EQ_INT(parse("{\"command\":\"DEL\",\"container_id\":\"c1\"}", &r, err), 0);
    CHECK_EQ_INT(r.command, ZT_CNI_DEL);
    zt_cni_request_free(&r);
}

static void refused(void)
{
    static const char *const bad[] = {
        "",
        "[]",
        "{\"command\":\"ADD\"",
        "{\"command\":\"add\",\"netns\":\"/x/y\",\"namespace\":\"a\",\"pod\":\"b\"}",
        "{\"command\":\"ADD\",\"netns\":\"x/y\",\"namespace\":\"a\",\"pod\":\"b\"}",
        "{\"command\":\"ADD\",\"netns\":\"/x/../y\",\"namespace\":\"a\",\"pod\":\"b\"}",
        "{\"command\":\"ADD\",\"netns\":\"/x/./y\",\"namespace\":\"a\",\"pod\":\"b\"}",
        "{\"command\":\"ADD\",\"netns\":\"/x//y\",\"namespace\":\"a\",\"pod\":\"b\"}",
        "{\"command\":\"ADD\",\"netns\":\"/x/y \",\"namespace\":\"a\",\"pod\":\"b\"}",
        "{\"command\":\"ADD\",\"netns\":\"/x/y\",\"namespace\":\"A\",\"pod\":\"b\"}",
        "{\"command\":\"ADD\",\"netns\":\"/x/y\",\"namespace\":\"a\",\"pod\":\"-b\"}",
        "{\"command\":\"ADD\",\"netns\":\"/x/y\",\"namespace\":\"a\"}",
        "{\"command\":\"ADD\",\"netns\":\"/x/y\",\"namespace\":\"a\",\"pod\":\"b\",\"uid\":\"a "
        "b\"}",
        "{\"command\":\"ADD\",\"netns\":\"/x/y\",\"namespace\":\"a\",\"pod\":\"b\",\"ips\":\"1\"}",
        "{\"command\":\"ADD\",\"netns\":\"/x/y\",\"namespace\":\"a\",\"pod\":\"b\",\"ips\":[1]}",
        "{\"command\":\"ADD\",\"netns\":\"/x/"
        "y\",\"namespace\":\"a\",\"pod\":\"b\",\"ips\":[\"x\"]}",
        "{\"command\":\"ADD\",\"netns\":\"/x/y\",\"namespace\":\"a\",\"pod\":\"b\","
        "\"timeout_ms\":0}",
        "{\"command\":\"ADD\",\"netns\":\"/x/y\",\"namespace\":\"a\",\"pod\":\"b\","
        "\"timeout_ms\":600001}",
        "{\"command\":\"ADD\",\"command\":\"DEL\",\"netns\":\"/x/y\",\"namespace\":\"a\","
        "\"pod\":\"b\"}",
        "{\"command\":\"DEL\"}",
    };
    struct zt_cni_request r;
    char err[200];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        int rc = parse(bad[i], &r, err);
        if (rc == 0) {
            fprintf(stderr, "accepted: %s\n", bad[i]);
            zt_cni_request_free(&r);
        }
        CHECK(rc < 0);
        CHECK(err[0] != '\0');
    }
}

static void replies_and_args(void)
{
    enum zt_cni_result res = ZT_CNI_OK;
    char msg[64], v[32];

    for (int i = 0; i < ZT_CNI_RESULT__MAX; i++) {
        char *line = zt_cni_reply_format((enum zt_cni_result)i, i == ZT_CNI_ERROR ? "boom" : "");
        CHECK_EQ_INT(zt_cni_reply_parse(line, strlen(line) - 1, &res, msg, sizeof(msg)), 0);
        CHECK_EQ_INT(res, i);
        CHECK_EQ_STR(msg, i == ZT_CNI_ERROR ? "boom" : "");
        free(line);
    }
    CHECK(zt_cni_reply_parse("{\"result\":\"yes\"}", 16, &res, msg, sizeof(msg)) < 0);
    CHECK(zt_cni_reply_parse("nope", 4, &res, msg, sizeof(msg)) < 0);

    const char *args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=demo;K8S_POD_NAME=web-1;K8S_POD_UID=";
    CHECK(zt_cni_args_get(args, "K8S_POD_NAMESPACE", v, sizeof(v)));
    CHECK_EQ_STR(v, "demo");
    CHECK(zt_cni_args_get(args, "K8S_POD_NAME", v, sizeof(v)));
    CHECK_EQ_STR(v, "web-1");
    CHECK(zt_cni_args_get(args, "K8S_POD_UID", v, sizeof(v)));
    CHECK_EQ_STR(v, "");
    CHECK(!zt_cni_args_get(args, "K8S_POD", v, sizeof(v)));
    CHECK(!zt_cni_args_get(args, "K8S_POD_INFRA_CONTAINER_ID", v, sizeof(v)));
    CHECK(!zt_cni_args_get("K8S_POD_NAME=0123456789012345678901234567890123", "K8S_POD_NAME", v,
                           sizeof(v)));
}

int main(void)
{
    roundtrip();
    defaults_and_ips();
    refused();
    replies_and_args();
    return TEST_DONE();
}
