/* gammamesh-ztunnel: the node daemon. Settings → daemon skeleton → identity → configuration
 * runtime → workers → capture of this node's enrolled pods. `--check` validates a directory. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "gammamesh/log.h"
#include "gammamesh/metrics.h"
#include "identity.h"
#include "netns.h"
#include "proxy.h"
#include "telemetry.h"
#include "ztunnel.h"

/* enum zt_ipv6, in order */
static const char *const ipv6_choices[] = {"refuse", "passthrough", NULL};

static const struct gm_setting zt_table[] = {
    GM_SETTINGS_COMMON(struct zt_settings, common),
    {.name = "connect-timeout",
     .env = "GM_CONNECT_TIMEOUT",
     .type = GM_SETTING_DURATION,
     .offset = offsetof(struct zt_settings, connect_timeout_ms),
     .def = "10s",
     .min = 1,
     .max = 600000,
     .help = "deadline for an upstream TCP connect or tunnel setup"},
    {.name = "hbone-keepalive",
     .env = "GM_HBONE_KEEPALIVE",
     .type = GM_SETTING_DURATION,
     .offset = offsetof(struct zt_settings, hbone_keepalive_ms),
     .def = "10s",
     .min = 1000,
     .max = 3600000,
     .help = "HBONE PING interval on every tunnel, in and out; a tunnel that hears nothing for "
             "twice this long is closed"},
    {.name = "idle-timeout",
     .env = "GM_IDLE_TIMEOUT",
     .type = GM_SETTING_DURATION,
     .offset = offsetof(struct zt_settings, idle_timeout_ms),
     .def = "1h",
     .help = "close a relayed connection idle this long in both directions (0: never)"},
    {.name = "cert-lifetime",
     .env = "GM_CERT_LIFETIME",
     .type = GM_SETTING_DURATION,
     .offset = offsetof(struct zt_settings, cert_lifetime_ms),
     .def = "24h",
     .min = 60000,
     .max = 31622400000,
     .help = "lifetime of minted workload certificates (refreshed at half)"},
    {.name = "max-conns",
     .env = "GM_MAX_CONNS",
     .type = GM_SETTING_INT,
     .offset = offsetof(struct zt_settings, max_conns),
     .def = "100000",
     .min = 1,
     .max = 10000000,
     .help = "open proxied connections per worker; more are refused"},
    {.name = "max-pods",
     .env = "GM_MAX_PODS",
     .type = GM_SETTING_INT,
     .offset = offsetof(struct zt_settings, max_pods),
     .def = "1000",
     .min = 1,
     .max = 100000,
     .help = "enrolled pods captured on this node"},
    {.name = "capture",
     .env = "GM_CAPTURE",
     .type = GM_SETTING_BOOL,
     .offset = offsetof(struct zt_settings, capture),
     .def = "true",
     .help = "install redirection rules in enrolled pods (false: listeners only)"},
    {.name = "proc-root",
     .env = "GM_PROC_ROOT",
     .type = GM_SETTING_STRING,
     .offset = offsetof(struct zt_settings, proc_root),
     .def = "/proc",
     .help = "the host's /proc: a pod without the gammamesh.io/netns annotation is captured in "
             "the netns of a process whose cgroup names its uid; empty: only annotated pods"},
    {.name = "cni-socket",
     .env = "GM_CNI_SOCKET",
     .type = GM_SETTING_STRING,
     .offset = offsetof(struct zt_settings, cni_socket),
     .def = "",
     .help = "Unix socket of the CNI gate: the chained plugin gammamesh-cni asks here, while a "
             "pod's sandbox is made, and an enrolled pod starts only once captured; empty: off"},
    {.name = "preserve-source",
     .env = "GM_PRESERVE_SOURCE",
     .type = GM_SETTING_BOOL,
     .offset = offsetof(struct zt_settings, preserve_source),
     .def = "true",
     .help = "connect to the application from the client's IP (IP_TRANSPARENT), where the "
             "pod's reply routing could be installed"},
    {.name = "ipv6",
     .env = "GM_IPV6",
     .type = GM_SETTING_ENUM,
     .offset = offsetof(struct zt_settings, ipv6),
     .def = "refuse",
     .choices = ipv6_choices,
     .help = "enrolled pods' IPv6 TCP, which is not captured: refuse (TCP reset; dual-stack "
             "clients fall back to IPv4) or passthrough (plaintext, outside policy)"},
    {0},
};

static const struct gm_settings_schema zt_schema = {
    .program = "gammamesh-ztunnel",
    .summary = "node proxy: captures enrolled pods, mTLS HBONE tunnels, L4 authorization",
    .table = zt_table,
};

static void on_snapshot(struct gm_control *c, struct gm_snapshot *s, void *ctx)
{
    struct zt *zt = ctx;

    if (!zt->workers_started)
        return;
    gm_workers_publish(&zt->workers, s);
    for (unsigned i = 0; i < zt->workers.n; i++)
        gm_workers_post(&zt->workers.v[i], zt_proxy_recheck, NULL);
    zt_pods_reconcile(&zt->pods, s);
    zt_cni_poll(zt);
    zt_telemetry_evict(gm_daemon_metrics(zt->daemon), s);
}

static bool on_ready(struct gm_daemon *d, void *ctx, char *reason, size_t len)
{
    struct zt *zt = ctx;

    if (!gm_control_ready(&zt->control, reason, len))
        return false;
    return zt_pods_ready(&zt->pods, reason, len);
}

static json_t *on_dump(struct gm_daemon *d, void *ctx)
{
    struct zt *zt = ctx;
    json_t *o = gm_control_dump(&zt->control);
    unsigned conns = 0;

    for (unsigned i = 0; i < zt->workers.n; i++)
        conns += zt_proxy_open_conns(&zt->workers.v[i]);
    json_object_set_new(o, "node", json_string(zt->node));
    json_object_set_new(o, "pods", zt_pods_dump(&zt->pods));
    json_object_set_new(o, "ipv6", json_string(zt_pods_ipv6_mode(&zt->pods)));
    json_object_set_new(o, "captures_moved", json_integer((json_int_t)zt->pods.moved));
    json_object_set_new(o, "cni", zt_cni_dump(zt));
    json_object_set_new(o, "identity", zt_identity_dump(zt));
    json_object_set_new(o, "open_connections", json_integer(conns));
    json_object_set_new(o, "workers", json_integer(zt->workers.n));
    return o;
}

static uv_timer_t drain_poll;

static void on_drain_poll(uv_timer_t *t)
{
    struct zt *zt = t->data;
    unsigned open = 0;

    for (unsigned i = 0; i < zt->workers.n; i++)
        open += zt_proxy_open_conns(&zt->workers.v[i]);
    if (open == 0) {
        uv_timer_stop(t);
        gm_daemon_drained(zt->daemon);
    }
}

static void on_drain(struct gm_daemon *d, void *ctx)
{
    struct zt *zt = ctx;

    GM_LOG_INFO("ztunnel", "draining: listeners closed, tunnels told to GOAWAY", "");
    zt_cni_stop(zt); /* new sandboxes are another ztunnel's, or start as without the gate */
    for (unsigned i = 0; i < zt->workers.n; i++)
        gm_workers_post(&zt->workers.v[i], zt_proxy_drain, NULL);
    uv_timer_init(gm_daemon_loop(d), &drain_poll);
    drain_poll.data = zt;
    uv_timer_start(&drain_poll, on_drain_poll, 100, 100);
}

static void on_reload(struct gm_daemon *d, void *ctx)
{
    gm_control_reload(&((struct zt *)ctx)->control);
    zt_identity_reload(ctx);
}

static void on_stop(struct gm_daemon *d, void *ctx)
{
    struct zt *zt = ctx;

    /* Capture rules stay when the daemon exits: a restarted ztunnel (or the other one of a
     * rolling upgrade) keeps serving the pods without a window of uncaptured traffic. */
    if (uv_is_active((uv_handle_t *)&drain_poll))
        uv_close((uv_handle_t *)&drain_poll, NULL);
    zt_cni_stop(zt);
    gm_control_stop(&zt->control);
    zt_identity_stop(zt);
    if (zt->workers_started)
        gm_workers_stop(&zt->workers);
    zt->workers_started = false;
    zt_pods_done(&zt->pods);
    gm_metrics_unref(zt->metrics->stream_retries);
    zt->metrics->stream_retries = NULL;
}

static int run(struct zt *zt)
{
    struct gm_daemon_config dc = {
        .name = "ztunnel",
        .version = GM_VERSION,
        .schema = &zt_schema,
        .settings = &zt->set,
        .common = &zt->set.common,
        .drain = on_drain,
        .stop = on_stop,
        .reload = on_reload,
        .ready = on_ready,
        .config_dump = on_dump,
        .ctx = zt,
    };
    static char host[256];
    static struct zt_metrics metrics;
    int rc = gm_daemon_new(&dc, &zt->daemon);

    if (rc < 0)
        return 2;
    zt->node = zt->set.common.node_name;
    if (zt->node == NULL && gethostname(host, sizeof(host)) == 0)
        zt->node = host;
    zt->metrics = &metrics;
    zt_telemetry_init(&metrics, gm_daemon_metrics(zt->daemon));
    if (gm_daemon_start(zt->daemon) < 0 || zt_identity_start(zt) < 0) {
        gm_daemon_free(zt->daemon);
        return 1;
    }
    zt_pods_init(&zt->pods, zt);
    zt->workers.on_exit = zt_proxy_worker_exit;
    rc = gm_workers_start(&zt->workers, gm_daemon_workers(zt->daemon), zt_proxy_worker_init,
                          zt_proxy_worker_stop, zt);
    if (rc < 0) {
        GM_LOG_ERROR("ztunnel", "cannot start workers", "error=%s", uv_strerror(rc));
        gm_daemon_free(zt->daemon);
        return 1;
    }
    zt->workers_started = true;
    rc = gm_control_start(&zt->control, zt->daemon, &zt->set.common, on_snapshot, zt);
    if (rc < 0 && zt->set.common.config_source == GM_CONFIG_SOURCE_KUBERNETES) {
        gm_daemon_stop(zt->daemon, 1);
        rc = gm_daemon_run(zt->daemon);
        gm_daemon_free(zt->daemon);
        return rc;
    }
    if (zt_cni_start(zt) < 0) {
        gm_daemon_stop(zt->daemon, 1);
        rc = gm_daemon_run(zt->daemon);
        gm_daemon_free(zt->daemon);
        return rc;
    }
    GM_LOG_INFO("ztunnel", "started", "node=%s workers=%u config=%s ipv6=%s", zt->node,
                zt->workers.n, gm_control_source(&zt->control), zt_pods_ipv6_mode(&zt->pods));
    if (zt->set.capture && (zt->pods.rule_flags & ZT_CAPTURE_IPV6) &&
        zt->set.ipv6 == ZT_IPV6_PASSTHROUGH)
        GM_LOG_WARN("ztunnel", "enrolled pods' IPv6 TCP passes outside the mesh",
                    "setting=ipv6=passthrough");
    rc = gm_daemon_run(zt->daemon);
    gm_daemon_free(zt->daemon);
    return rc;
}

int main(int argc, char **argv)
{
    static struct zt zt;
    char err[512];

    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--check") == 0)
            return gm_check_main("ztunnel", argc, argv);
    int rc = gm_settings_parse(&zt_schema, &zt.set, argc, argv, err, sizeof(err));
    if (rc == GM_SETTINGS_HELP) {
        gm_settings_help(&zt_schema, stdout);
        printf("\n  --check --config-dir DIR   validate a configuration directory and exit\n");
        return 0;
    }
    if (rc == GM_SETTINGS_VERSION) {
        printf("gammamesh-ztunnel %s\n", GM_VERSION);
        return 0;
    }
    if (rc < 0) {
        fprintf(stderr, "ztunnel: %s\n", err);
        return 2;
    }
    rc = run(&zt);
    gm_settings_done(&zt_schema, &zt.set);
    return rc;
}
