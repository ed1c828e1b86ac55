/*
 * daemon.c: control loop, signals, standard admin routes (see gammamesh/daemon.h).
 *
 * State: NEW → RUNNING (started) → DRAINING (shutdown requested) → STOPPING (handles closing).
 */
#include "gammamesh/daemon.h"

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "gammamesh/log.h"

#define STOP_GRACE_MS 6000 /* after stop: longest wait for handles to close (> admin timeout) */
#define LEVEL_MAX     1024 /* bytes of a log level spec in /logging */

enum daemon_state {
    DAEMON_NEW = 1,  /* created, not started */
    DAEMON_RUNNING,  /* listeners open, signals handled */
    DAEMON_DRAINING, /* graceful shutdown in progress */
    DAEMON_STOPPING, /* handles closing; the loop is about to end */
    DAEMON__MAX
};

struct gm_daemon {
    struct gm_daemon_config cfg;
    uv_loop_t loop;
    struct gm_metrics *metrics;
    struct gm_metric *m_log_unwritten, *m_log_suppressed; /* held: read at each scrape */
    struct gm_admin *admin[GM_DAEMON__MAX];
    uv_signal_t signals[3];
    bool signals_on;
    uv_timer_t kick;     /* starts the drain callback outside of the caller's stack */
    uv_timer_t deadline; /* drain deadline */
    uv_timer_t grace;    /* after stop, unreferenced: forces the loop to end */
    enum daemon_state state;
    int exit_code;
    const char *drain_reason;
};

static const int signal_nums[3] = {SIGTERM, SIGINT, SIGHUP};

static const char *signal_name(int signum)
{
    return signum == SIGTERM ? "SIGTERM" : signum == SIGINT ? "SIGINT" : "SIGHUP";
}

static const char *listener_addr(const struct gm_daemon *d, enum gm_daemon_listener which)
{
    const struct gm_common_settings *c = d->cfg.common;

    if (c == NULL)
        return NULL;
    return which == GM_DAEMON_ADMIN     ? c->admin_addr
           : which == GM_DAEMON_METRICS ? c->metrics_addr
                                        : c->ready_addr;
}

/* ---- admin routes ---- */

static void on_config_dump(const struct gm_admin_request *req, struct gm_admin_response *res,
                           void *ctx)
{
    struct gm_daemon *d = ctx;
    json_t *root = json_object(), *extra;
    char level[LEVEL_MAX];
    char *text;

    json_object_set_new(root, "component", json_string(d->cfg.name ? d->cfg.name : ""));
    json_object_set_new(root, "version", json_string(d->cfg.version ? d->cfg.version : ""));
    json_object_set_new(root, "state",
                        json_string(d->state == DAEMON_RUNNING ? "running"
                                    : d->state == DAEMON_NEW   ? "starting"
                                                               : "draining"));
    if (d->cfg.schema && d->cfg.settings)
        json_object_set_new(root, "settings", gm_settings_to_json(d->cfg.schema, d->cfg.settings));
    if (gm_log_get_level(level, sizeof(level)) < 0)
        snprintf(level, sizeof(level), "?");
    json_object_set_new(root, "logging",
                        json_pack("{s:s, s:s}", "level", level, "format",
                                  gm_log_get_format() == GM_LOG_FORMAT_JSON ? "json" : "text"));
    extra = d->cfg.config_dump ? d->cfg.config_dump(d, d->cfg.ctx) : NULL;
    if (json_is_object(extra))
        json_object_update(root, extra);
    json_decref(extra);
    text = json_dumps(root, JSON_INDENT(2));
    json_decref(root);
    if (text == NULL) {
        gm_admin_reply(res, 500, "config dump failed\n");
        return;
    }
    res->content_type = "application/json";
    gm_admin_write(res, text, strlen(text));
    gm_admin_write(res, "\n", 1);
    free(text);
}

static void on_logging(const struct gm_admin_request *req, struct gm_admin_response *res, void *ctx)
{
    struct gm_daemon *d = ctx;
    const char *startup = d->cfg.common ? d->cfg.common->log_level : NULL;
    char spec[LEVEL_MAX];
    int rc;

    if (gm_admin_query(req, "reset", spec, sizeof(spec)) != -ENOENT) {
        gm_log_reset();
        if (startup)
            gm_log_set_level(startup);
        GM_LOG_INFO("admin", "log levels reset", "level=%s", startup ? startup : "info");
    }
    rc = gm_admin_query(req, "level", spec, sizeof(spec));
    if (rc >= 0 && gm_log_set_level(spec) < 0)
        rc = -EINVAL;
    if (rc < 0 && rc != -ENOENT) {
        res->status = 400;
        gm_admin_printf(res, "invalid level: use LEVEL or SUB=LEVEL,... with LEVEL one of "
                             "off, error, warn, info, debug, trace\n");
        return;
    }
    if (rc >= 0)
        GM_LOG_INFO("admin", "log levels changed", "level=%s", spec);
    if (gm_log_get_level(spec, sizeof(spec)) < 0)
        snprintf(spec, sizeof(spec), "?");
    gm_admin_printf(res, "%s\n", spec);
}

static void on_quit(const struct gm_admin_request *req, struct gm_admin_response *res, void *ctx)
{
    gm_admin_reply(res, 200, "OK\n");
    gm_daemon_shutdown(ctx, "quitquitquit");
}

static void on_index(const struct gm_admin_request *req, struct gm_admin_response *res, void *ctx)
{
    gm_admin_reply(res, 200,
                   "GET  /config_dump     settings, logging and state as JSON\n"
                   "GET  /logging         log levels; ?level=SPEC sets, ?reset restores\n"
                   "POST /logging         same\n"
                   "POST /quitquitquit    graceful shutdown\n");
}

static void on_metrics(const struct gm_admin_request *req, struct gm_admin_response *res, void *ctx)
{
    struct gm_daemon *d = ctx;

    if (d->m_log_unwritten)
        gm_metrics_set(d->m_log_unwritten, (int64_t)gm_log_lines_unwritten());
    if (d->m_log_suppressed)
        gm_metrics_set(d->m_log_suppressed, (int64_t)gm_log_lines_suppressed());
    res->content_type = GM_METRICS_CONTENT_TYPE;
    if (gm_metrics_render(d->metrics, &res->body) < 0)
        res->overflow = true;
}

static void on_ready(const struct gm_admin_request *req, struct gm_admin_response *res, void *ctx)
{
    struct gm_daemon *d = ctx;
    char reason[256] = "unknown";

    if (d->state != DAEMON_RUNNING) {
        res->status = 503;
        gm_admin_printf(res, "not ready: %s\n", d->state == DAEMON_NEW ? "starting" : "draining");
    } else if (d->cfg.ready && !d->cfg.ready(d, d->cfg.ctx, reason, sizeof(reason))) {
        res->status = 503;
        gm_admin_printf(res, "not ready: %s\n", reason);
    } else {
        gm_admin_reply(res, 200, "ready\n");
    }
}

static void add_routes(struct gm_daemon *d, enum gm_daemon_listener which, struct gm_admin *a)
{
    switch (which) {
    case GM_DAEMON_ADMIN:
        gm_admin_route(a, "GET", "/", on_index, d);
        gm_admin_route(a, "GET", "/config_dump", on_config_dump, d);
        gm_admin_route(a, "GET", "/logging", on_logging, d);
        gm_admin_route(a, "POST", "/logging", on_logging, d);
        gm_admin_route(a, "POST", "/quitquitquit", on_quit, d);
        break;
    case GM_DAEMON_METRICS:
        gm_admin_route(a, "GET", "/metrics", on_metrics, d);
        gm_admin_route(a, "GET", "/stats/prometheus", on_metrics, d);
        break;
    default:
        gm_admin_route(a, "GET", "/healthz/ready", on_ready, d);
        break;
    }
}

/* ---- lifecycle ---- */

static void register_build_info(struct gm_daemon *d)
{
    static const char *const labels[] = {"component", "tag", NULL};
    const char *values[] = {d->cfg.name ? d->cfg.name : "", d->cfg.version ? d->cfg.version : ""};
    struct gm_metric_family *fam;
    struct gm_metric *m;

    if (gm_metrics_register(d->metrics,
                            &(struct gm_metric_desc){.name = "istio_build",
                                                     .help = "Component build information",
                                                     .type = GM_METRIC_GAUGE,
                                                     .labels = labels},
                            &fam) < 0)
        return;
    m = gm_metrics_get(fam, values);
    gm_metrics_set(m, 1);
    gm_metrics_unref(m);
}

/* Log lines that never reached the sink, read from the logger at each scrape. */
static void register_log_metrics(struct gm_daemon *d)
{
    static const char *const labels[] = {"reason", NULL};
    struct gm_metric_family *fam;

    if (gm_metrics_register(
            d->metrics,
            &(struct gm_metric_desc){.name = "gammamesh_log_lines_dropped_total",
                                     .help = "Log lines not written: the sink refused them "
                                             "(unwritable) or their call site was over its "
                                             "rate limit (suppressed).",
                                     .type = GM_METRIC_COUNTER,
                                     .labels = labels},
            &fam) < 0)
        return;
    d->m_log_unwritten = gm_metrics_get(fam, (const char *[]){"unwritable"});
    d->m_log_suppressed = gm_metrics_get(fam, (const char *[]){"suppressed"});
}

static int apply_logging(const struct gm_common_settings *c)
{
    gm_log_set_format(c->log_format == GM_LOG_FORMAT_JSON ? GM_LOG_FORMAT_JSON
                                                          : GM_LOG_FORMAT_TEXT);
    gm_log_reset();
    return c->log_level ? gm_log_set_level(c->log_level) : 0;
}

int gm_daemon_new(const struct gm_daemon_config *cfg, struct gm_daemon **out)
{
    struct gm_daemon *d;
    int rc;

    *out = NULL;
    if (cfg->common && apply_logging(cfg->common) < 0)
        return -EINVAL;
    /* Proxies free and reallocate buffers at a high rate: keep freed memory in the heap
     * instead of returning it to the kernel after every burst (madvise churn, page faults). */
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    d = gm_xcalloc(1, sizeof(*d));
    d->cfg = *cfg;
    d->state = DAEMON_NEW;
    rc = uv_loop_init(&d->loop);
    if (rc < 0) {
        free(d);
        return rc;
    }
    signal(SIGPIPE, SIG_IGN);
    uv_timer_init(&d->loop, &d->kick);
    uv_timer_init(&d->loop, &d->deadline);
    uv_timer_init(&d->loop, &d->grace);
    d->kick.data = d->deadline.data = d->grace.data = d;
    d->metrics = gm_metrics_new();
    register_build_info(d);
    register_log_metrics(d);
    *out = d;
    return 0;
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct gm_daemon *d = h->data;

    if (signum == SIGHUP) {
        GM_LOG_INFO("daemon", "reload requested", "signal=SIGHUP handled=%s",
                    d->cfg.reload ? "yes" : "no");
        if (d->cfg.reload)
            d->cfg.reload(d, d->cfg.ctx);
    } else if (d->state == DAEMON_RUNNING) {
        gm_daemon_shutdown(d, signal_name(signum));
    } else if (d->state == DAEMON_DRAINING) {
        GM_LOG_WARN("daemon", "second signal, stopping now", "signal=%s", signal_name(signum));
        gm_daemon_stop(d, 0);
    }
}

static int start_signals(struct gm_daemon *d)
{
    int rc = 0;

    for (size_t i = 0; i < 3; i++) {
        uv_signal_init(&d->loop, &d->signals[i]);
        d->signals[i].data = d;
    }
    d->signals_on = true;
    for (size_t i = 0; i < 3 && rc == 0; i++)
        rc = uv_signal_start(&d->signals[i], on_signal, signal_nums[i]);
    return rc;
}

static int start_listener(struct gm_daemon *d, enum gm_daemon_listener which)
{
    static const char *const names[GM_DAEMON__MAX] = {"admin", "metrics", "ready"};
    const char *addr = listener_addr(d, which);
    int rc;

    if (addr == NULL || *addr == '\0')
        return 0;
    d->admin[which] = gm_admin_new(&d->loop);
    add_routes(d, which, d->admin[which]);
    rc = gm_admin_listen(d->admin[which], addr);
    if (rc < 0)
        GM_LOG_ERROR("daemon", "cannot listen", "listener=%s addr=%s error=%s", names[which], addr,
                     uv_strerror(rc));
    return rc;
}

int gm_daemon_start(struct gm_daemon *d)
{
    int rc;

    if (d->state != DAEMON_NEW)
        return -EALREADY;
    rc = start_signals(d);
    if (rc < 0) {
        GM_LOG_ERROR("daemon", "cannot handle signals", "error=%s", uv_strerror(rc));
        return rc;
    }
    for (int i = 0; i < GM_DAEMON__MAX; i++) {
        rc = start_listener(d, (enum gm_daemon_listener)i);
        if (rc < 0)
            return rc;
    }
    d->state = DAEMON_RUNNING;
    GM_LOG_INFO("daemon", "started",
                "component=%s version=%s workers=%u admin=%s metrics=%s ready=%s",
                d->cfg.name ? d->cfg.name : "-", d->cfg.version ? d->cfg.version : "-",
                gm_daemon_workers(d), listener_addr(d, GM_DAEMON_ADMIN) ?: "",
                listener_addr(d, GM_DAEMON_METRICS) ?: "", listener_addr(d, GM_DAEMON_READY) ?: "");
    return 0;
}

static void on_kick(uv_timer_t *t)
{
    struct gm_daemon *d = t->data;

    if (d->state != DAEMON_DRAINING)
        return;
    if (d->cfg.drain)
        d->cfg.drain(d, d->cfg.ctx);
    else
        gm_daemon_drained(d);
}

static void on_deadline(uv_timer_t *t)
{
    struct gm_daemon *d = t->data;

    GM_LOG_WARN("daemon", "drain deadline passed, stopping", "reason=%s",
                d->drain_reason ? d->drain_reason : "-");
    gm_daemon_stop(d, 0);
}

void gm_daemon_shutdown(struct gm_daemon *d, const char *reason)
{
    uint64_t deadline = d->cfg.common ? d->cfg.common->drain_deadline_ms : 30000;
    char text[32];

    if (d->state != DAEMON_RUNNING)
        return;
    d->state = DAEMON_DRAINING;
    d->drain_reason = reason;
    GM_LOG_INFO("daemon", "draining", "reason=%s deadline=%s", reason ? reason : "-",
                gm_settings_format_duration(deadline, text, sizeof(text)));
    uv_timer_start(&d->kick, on_kick, 0, 0);
    uv_timer_start(&d->deadline, on_deadline, deadline, 0);
}

void gm_daemon_drained(struct gm_daemon *d)
{
    if (d->state != DAEMON_DRAINING)
        return;
    GM_LOG_INFO("daemon", "drained", "reason=%s", d->drain_reason ? d->drain_reason : "-");
    gm_daemon_stop(d, 0);
}

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void on_grace(uv_timer_t *t)
{
    struct gm_daemon *d = t->data;

    GM_LOG_WARN("daemon", "handles still open after stop, forcing the loop to end");
    uv_stop(&d->loop);
}

/* Closes the daemon's own handles; the loop ends once the daemon's other handles are closed. */
static void stop_handles(struct gm_daemon *d)
{
    for (int i = 0; i < GM_DAEMON__MAX; i++) {
        gm_admin_close(d->admin[i], NULL, NULL);
        d->admin[i] = NULL;
    }
    for (size_t i = 0; i < 3 && d->signals_on; i++)
        close_handle((uv_handle_t *)&d->signals[i]);
    d->signals_on = false;
    close_handle((uv_handle_t *)&d->kick);
    close_handle((uv_handle_t *)&d->deadline);
    if (!uv_is_closing((uv_handle_t *)&d->grace)) {
        uv_timer_start(&d->grace, on_grace, STOP_GRACE_MS, 0);
        uv_unref((uv_handle_t *)&d->grace);
    }
}

void gm_daemon_stop(struct gm_daemon *d, int exit_code)
{
    if (d->state == DAEMON_STOPPING)
        return;
    d->state = DAEMON_STOPPING;
    d->exit_code = exit_code;
    GM_LOG_INFO("daemon", "stopping", "exit_code=%d", exit_code);
    if (d->cfg.stop)
        d->cfg.stop(d, d->cfg.ctx);
    stop_handles(d);
}

static void on_walk_close(uv_handle_t *h, void *arg)
{
    size_t *n = arg;

    if (!uv_is_closing(h)) {
        uv_close(h, NULL);
        (*n)++;
    }
}

/* Closes whatever is still open on the loop and lets the close callbacks run. */
static void close_all(struct gm_daemon *d)
{
    size_t n = 0;

    uv_walk(&d->loop, on_walk_close, &n);
    uv_run(&d->loop, UV_RUN_DEFAULT);
    if (n > 1) /* the grace timer is expected */
        GM_LOG_DEBUG("daemon", "closed leftover handles", "count=%zu", n);
}

int gm_daemon_run(struct gm_daemon *d)
{
    uv_run(&d->loop, UV_RUN_DEFAULT);
    close_all(d);
    return d->exit_code;
}

void gm_daemon_free(struct gm_daemon *d)
{
    if (d == NULL)
        return;
    if (d->state != DAEMON_STOPPING) {
        d->state = DAEMON_STOPPING;
        stop_handles(d);
    }
    uv_run(&d->loop, UV_RUN_NOWAIT);
    close_all(d);
    if (uv_loop_close(&d->loop) < 0)
        GM_LOG_WARN("daemon", "control loop still busy at exit");
    if (d->m_log_unwritten)
        gm_metrics_unref(d->m_log_unwritten);
    if (d->m_log_suppressed)
        gm_metrics_unref(d->m_log_suppressed);
    gm_metrics_free(d->metrics);
    free(d);
}

uv_loop_t *gm_daemon_loop(struct gm_daemon *d)
{
    return &d->loop;
}

struct gm_metrics *gm_daemon_metrics(struct gm_daemon *d)
{
    return d->metrics;
}

struct gm_admin *gm_daemon_admin(struct gm_daemon *d, enum gm_daemon_listener which)
{
    return which < GM_DAEMON__MAX ? d->admin[which] : NULL;
}

unsigned gm_daemon_workers(const struct gm_daemon *d)
{
    if (d->cfg.common && d->cfg.common->workers > 0)
        return (unsigned)d->cfg.common->workers;
    return uv_available_parallelism();
}

bool gm_daemon_draining(const struct gm_daemon *d)
{
    return d->state == DAEMON_DRAINING || d->state == DAEMON_STOPPING;
}
