/* gammamesh-waypoint: the L7 proxy. Settings → daemon skeleton → identity runtime → listeners →
 * workers → configuration runtime. `--check` validates a directory, `--explain` explains one
 * request. */
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "explain.h"
#include "gammamesh/log.h"
#include "telemetry.h"
#include "waypoint.h"
#include "worker.h"

/* clang-format off */
static const struct gm_setting wp_table[] = {
    GM_SETTINGS_COMMON(struct wp_settings, common),
    {.name = "pod-name", .env = "GM_POD_NAME", .type = GM_SETTING_STRING,
     .offset = offsetof(struct wp_settings, pod_name),
     .help = "this waypoint's Pod (its service account gives the identity)"},
    {.name = "pod-namespace", .env = "GM_POD_NAMESPACE", .type = GM_SETTING_STRING,
     .offset = offsetof(struct wp_settings, pod_namespace), .def = "default",
     .help = "namespace of this waypoint's Pod"},
    {.name = "service-account", .env = "GM_SERVICE_ACCOUNT", .type = GM_SETTING_STRING,
     .offset = offsetof(struct wp_settings, service_account),
     .help = "identity's service account; default: the Pod's, else its gateway-name label"},
    {.name = "listen-addr", .env = "GM_LISTEN_ADDR", .type = GM_SETTING_ADDR,
     .offset = offsetof(struct wp_settings, listen_addr), .def = "0.0.0.0:15008",
     .help = "HBONE listener (one SO_REUSEPORT socket per worker)"},
    {.name = "max-head-bytes", .env = "GM_MAX_HEAD_BYTES", .type = GM_SETTING_INT,
     .offset = offsetof(struct wp_settings, max_head_bytes), .def = "65536", .min = 1024,
     .max = 1 << 20, .help = "request head (HTTP/1) or header list (HTTP/2) bytes; more: 431"},
    {.name = "max-headers", .env = "GM_MAX_HEADERS", .type = GM_SETTING_INT,
     .offset = offsetof(struct wp_settings, max_headers), .def = "100", .min = 8, .max = 1000,
     .help = "header fields per request; more: 431"},
    {.name = "max-body-buffer", .env = "GM_MAX_BODY_BUFFER", .type = GM_SETTING_INT,
     .offset = offsetof(struct wp_settings, max_body_buffer), .def = "65536", .min = 0,
     .max = 16 << 20,
     .help = "request body bytes kept for retries and mirrors; larger bodies are streamed"},
    {.name = "max-streams", .env = "GM_MAX_STREAMS", .type = GM_SETTING_INT,
     .offset = offsetof(struct wp_settings, max_streams), .def = "100", .min = 1, .max = 1000,
     .help = "concurrent HTTP/2 streams per downstream connection"},
    {.name = "max-conns", .env = "GM_MAX_CONNS", .type = GM_SETTING_INT,
     .offset = offsetof(struct wp_settings, max_conns), .def = "10000", .min = 1,
     .max = 1000000, .help = "downstream connections per worker; more are refused (503)"},
    {.name = "max-idle-upstreams", .env = "GM_MAX_IDLE_UPSTREAMS", .type = GM_SETTING_INT,
     .offset = offsetof(struct wp_settings, max_idle_upstreams), .def = "256", .min = 0,
     .max = 100000, .help = "idle upstream HTTP connections kept per worker for reuse"},
    {.name = "h2-reset-rate", .env = "GM_H2_RESET_RATE", .type = GM_SETTING_INT,
     .offset = offsetof(struct wp_settings, h2_reset_rate), .def = "100", .min = 1,
     .max = 100000,
     .help = "HTTP/2 stream resets per second (either side) before a GOAWAY; burst 10x"},
    {.name = "head-timeout", .env = "GM_HEAD_TIMEOUT", .type = GM_SETTING_DURATION,
     .offset = offsetof(struct wp_settings, head_timeout_ms), .def = "10s", .min = 100,
     .max = 600000, .help = "a request head must arrive within this (408 and close)"},
    {.name = "idle-timeout", .env = "GM_IDLE_TIMEOUT", .type = GM_SETTING_DURATION,
     .offset = offsetof(struct wp_settings, idle_timeout_ms), .def = "5m", .min = 0,
     .max = 86400000, .help = "close a downstream connection idle this long (0: never)"},
    {.name = "connect-timeout", .env = "GM_CONNECT_TIMEOUT", .type = GM_SETTING_DURATION,
     .offset = offsetof(struct wp_settings, connect_timeout_ms), .def = "10s", .min = 1,
     .max = 600000, .help = "deadline to set up an upstream tunnel (503 after)"},
    {.name = "upstream-idle-timeout", .env = "GM_UPSTREAM_IDLE_TIMEOUT",
     .type = GM_SETTING_DURATION, .offset = offsetof(struct wp_settings, upstream_idle_ms),
     .def = "60s", .min = 0, .max = 3600000,
     .help = "close an idle upstream HTTP connection after this long"},
    {.name = "default-request-timeout", .env = "GM_DEFAULT_REQUEST_TIMEOUT",
     .type = GM_SETTING_DURATION, .offset = offsetof(struct wp_settings, default_timeout_ms),
     .def = "0", .min = 0, .max = 86400000,
     .help = "request timeout when the route sets none (504); 0: none"},
    {.name = "cert-lifetime", .env = "GM_CERT_LIFETIME", .type = GM_SETTING_DURATION,
     .offset = offsetof(struct wp_settings, cert_lifetime_ms), .def = "24h", .min = 60000,
     .max = 31622400000, .help = "lifetime of the waypoint's minted certificate"},
    {.name = "route-status", .env = "GM_ROUTE_STATUS", .type = GM_SETTING_BOOL,
     .offset = offsetof(struct wp_settings, route_status), .def = "true",
     .help = "write the status of HTTPRoutes on the Services it serves (config-source "
             "kubernetes)"},
    {.name = "upgrade-protocols", .env = "GM_UPGRADE_PROTOCOLS", .type = GM_SETTING_STRING,
     .offset = offsetof(struct wp_settings, upgrade_protocols), .def = "websocket",
     .help = "HTTP/1.1 Upgrade protocols passed to backends, comma-separated; after a 101 the "
             "connection is a tunnel that routes and policies no longer see. Others are dropped "
             "from the request (h2c always; \"none\": every one)"},
    {0},
};
/* clang-format on */

static const struct gm_settings_schema wp_schema = {
    .program = "gammamesh-waypoint",
    .summary = "L7 proxy: terminates HBONE, applies HTTPRoute, forwards over HBONE",
    .table = wp_table,
};

/* ---- identity ---- */

static void update_identity(struct wp *wp, const struct gm_snapshot *s)
{
    char id[GM_SPIFFE_ID_MAX];
    char why[sizeof(wp->identity_why)] = "";

    if (wp_self_identity(&wp->set, s, id, sizeof(id), why, sizeof(why)) < 0) {
        snprintf(wp->identity_why, sizeof(wp->identity_why), "%s", why);
        return; /* keep the last good identity */
    }
    wp->identity_why[0] = '\0';
    if (strcmp(id, wp->identity) == 0)
        return;
    snprintf(wp->identity, sizeof(wp->identity), "%s", id);
    GM_LOG_INFO("waypoint", "identity", "identity=%s", id);
    for (unsigned i = 0; wp->workers_started && i < wp->workers.n; i++)
        gm_workers_post(&wp->workers.v[i], wp_worker_set_identity, gm_xstrdup(id));
}

/* ---- daemon callbacks ---- */

static void on_snapshot(struct gm_control *c, struct gm_snapshot *s, void *ctx)
{
    struct wp *wp = ctx;

    update_identity(wp, s);
    if (wp->workers_started)
        gm_workers_publish(&wp->workers, s);
    wp_telemetry_evict(wp->metrics, s);
    wp_route_status(wp, s);
}

static bool on_ready(struct gm_daemon *d, void *ctx, char *reason, size_t len)
{
    struct wp *wp = ctx;
    struct gm_cert *cert = NULL;

    if (!gm_control_ready(&wp->control, reason, len))
        return false;
    if (wp->identity[0] == '\0') {
        snprintf(reason, len, "identity unknown: %s", wp->identity_why);
        return false;
    }
    if (gm_identity_rt_cert(wp->idrt, wp->identity, &cert) < 0) {
        snprintf(reason, len, "no certificate for %s", wp->identity);
        return false;
    }
    gm_cert_unref(cert);
    return true;
}

static json_t *on_dump(struct gm_daemon *d, void *ctx)
{
    struct wp *wp = ctx;
    json_t *o = gm_control_dump(&wp->control);
    json_t *workers = json_array();

    for (unsigned i = 0; i < wp->workers.n; i++)
        json_array_append_new(workers, wp_worker_dump(&wp->workers.v[i]));
    json_object_set_new(o, "node", json_string(wp->node));
    json_object_set_new(o, "waypoint",
                        json_pack("{s:s, s:s, s:s, s:i, s:o}", "identity", wp->identity,
                                  "identity_problem", wp->identity_why, "listen_addr",
                                  wp->set.listen_addr, "listen_port", wp->listen_port, "workers",
                                  workers));
    json_object_set_new(o, "identity", gm_identity_rt_dump(wp->idrt));
    return o;
}

static uv_timer_t drain_poll;

static void on_drain_poll(uv_timer_t *t)
{
    struct wp *wp = t->data;
    unsigned busy = 0;

    for (unsigned i = 0; i < wp->workers.n; i++)
        busy += wp_worker_busy(&wp->workers.v[i]);
    if (busy == 0) {
        uv_timer_stop(t);
        gm_daemon_drained(wp->daemon);
    }
}

static void on_drain(struct gm_daemon *d, void *ctx)
{
    struct wp *wp = ctx;

    GM_LOG_INFO("waypoint", "draining: listeners closed, connections told to GOAWAY", "");
    for (unsigned i = 0; i < wp->workers.n; i++)
        gm_workers_post(&wp->workers.v[i], wp_worker_drain, NULL);
    uv_timer_init(gm_daemon_loop(d), &drain_poll);
    drain_poll.data = wp;
    uv_timer_start(&drain_poll, on_drain_poll, 50, 50);
}

static void on_ca_reload(void *arg)
{
    struct wp *wp = arg;

    for (unsigned i = 0; wp->workers_started && i < wp->workers.n; i++)
        gm_workers_post(&wp->workers.v[i], wp_worker_retire_tunnels, NULL);
}

static void on_reload(struct gm_daemon *d, void *ctx)
{
    gm_control_reload(&((struct wp *)ctx)->control);
    (void)gm_identity_rt_check_ca(((struct wp *)ctx)->idrt);
}

static void on_stop(struct gm_daemon *d, void *ctx)
{
    struct wp *wp = ctx;

    if (uv_is_active((uv_handle_t *)&drain_poll))
        uv_close((uv_handle_t *)&drain_poll, NULL);
    gm_control_stop(&wp->control);
    gm_identity_rt_stop(wp->idrt);
    if (wp->workers_started)
        gm_workers_stop(&wp->workers);
    wp->workers_started = false;
}

/* ---- listeners ---- */

static int listen_socket(const struct sockaddr *sa, socklen_t len)
{
    int one = 1;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 || bind(fd, sa, len) < 0 ||
        listen(fd, 1024) < 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    return fd;
}

/* One listening socket per worker on listen-addr; a port of 0 is chosen by the first. */
static int open_listeners(struct wp *wp, unsigned n)
{
    char host[256];
    uint16_t port;
    struct sockaddr_storage ss = {0};
    socklen_t len;

    if (gm_settings_split_addr(wp->set.listen_addr, host, sizeof(host), &port) < 0 ||
        (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) < 0 &&
         uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) < 0))
        return -EINVAL;
    len = ss.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    wp->listen_fds = gm_xcalloc(n, sizeof(int));
    for (unsigned i = 0; i < n; i++) {
        int fd = listen_socket((struct sockaddr *)&ss, len);
        if (fd < 0)
            return fd;
        wp->listen_fds[wp->n_listen++] = fd;
        if (i == 0 && getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
            wp->listen_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    return 0;
}

/* ---- run ---- */

static int start(struct wp *wp)
{
    struct gm_identity_rt_opts io = {
        .ca_cert = wp->set.common.ca_cert,
        .ca_key = wp->set.common.ca_key,
        .trust_domain = wp->set.common.trust_domain,
        .lifetime_s = (int64_t)(wp->set.cert_lifetime_ms / 1000),
        .on_ca_reload = on_ca_reload,
        .on_ca_reload_arg = wp,
    };
    unsigned n = gm_daemon_workers(wp->daemon);
    int rc;

    if (gm_daemon_start(wp->daemon) < 0)
        return -EINVAL;
    if ((rc = gm_identity_rt_start(gm_daemon_loop(wp->daemon), &io, &wp->idrt)) < 0)
        return rc;
    if ((rc = open_listeners(wp, n)) < 0) {
        GM_LOG_ERROR("waypoint", "cannot listen", "addr=%s error=%s", wp->set.listen_addr,
                     strerror(-rc));
        return rc;
    }
    update_identity(wp, NULL);
    wp->wws = gm_xcalloc(n, sizeof(*wp->wws));
    rc = gm_workers_start(&wp->workers, n, wp_worker_init, wp_worker_stop, wp);
    if (rc < 0) {
        GM_LOG_ERROR("waypoint", "cannot start workers", "error=%s", uv_strerror(rc));
        return rc;
    }
    wp->workers_started = true;
    return gm_control_start(&wp->control, wp->daemon, &wp->set.common, on_snapshot, wp);
}

static int run(struct wp *wp)
{
    struct gm_daemon_config dc = {
        .name = "waypoint",
        .version = GM_VERSION,
        .schema = &wp_schema,
        .settings = &wp->set,
        .common = &wp->set.common,
        .drain = on_drain,
        .stop = on_stop,
        .reload = on_reload,
        .ready = on_ready,
        .config_dump = on_dump,
        .ctx = wp,
    };
    static char host[256];
    int rc = gm_daemon_new(&dc, &wp->daemon);

    if (rc < 0)
        return 2;
    wp->node = wp->set.common.node_name;
    if (wp->node == NULL && gethostname(host, sizeof(host)) == 0)
        wp->node = host;
    wp->metrics = wp_telemetry_new(gm_daemon_metrics(wp->daemon));
    if (start(wp) < 0) {
        if (wp->workers_started)
            gm_workers_stop(&wp->workers);
        gm_daemon_free(wp->daemon);
        return 1;
    }
    GM_LOG_INFO("waypoint", "started", "node=%s workers=%u listen=%s port=%d config=%s", wp->node,
                wp->workers.n, wp->set.listen_addr, wp->listen_port,
                gm_control_source(&wp->control));
    rc = gm_daemon_run(wp->daemon);
    gm_daemon_free(wp->daemon);
    gm_identity_rt_free(wp->idrt);
    wp_telemetry_free(wp->metrics);
    for (unsigned i = 0; i < wp->n_listen; i++)
        if (wp->listen_fds[i] >= 0)
            close(wp->listen_fds[i]);
    free(wp->listen_fds);
    free(wp->wws); /* the worker threads are joined */
    json_decref(wp->status_sent);
    return rc;
}

static bool has_flag(int argc, char **argv, const char *flag)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], flag) == 0)
            return true;
    return false;
}

int main(int argc, char **argv)
{
    static struct wp wp;
    char err[GM_SETTINGS_ERR_MAX];

    if (has_flag(argc, argv, "--explain"))
        return wp_explain_main(argc, argv, stdout, stderr);
    if (has_flag(argc, argv, "--check"))
        return gm_check_main("waypoint", argc, argv);
    int rc = gm_settings_parse(&wp_schema, &wp.set, argc, argv, err, sizeof(err));
    if (rc == GM_SETTINGS_HELP) {
        gm_settings_help(&wp_schema, stdout);
        printf("\n  --check --config-dir DIR   validate a configuration directory and exit\n"
               "  --explain …                explain one request (--explain --help)\n");
        return 0;
    }
    if (rc == GM_SETTINGS_VERSION) {
        printf("gammamesh-waypoint %s\n", GM_VERSION);
        return 0;
    }
    if (rc < 0) {
        fprintf(stderr, "waypoint: %s\n", err);
        return 2;
    }
    rc = run(&wp);
    gm_settings_done(&wp_schema, &wp.set);
    return rc;
}
