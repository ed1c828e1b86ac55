/* The daemons' configuration runtime: load, watch, rebuild, publish, report. */
#include "gammamesh/control.h"

#include <errno.h>
#include <getopt.h>
#include <malloc.h>

#include "gammamesh/log.h"
#include "gammamesh/snapshot_json.h"

static struct gm_metric_family *family(struct gm_daemon *d, const char *name, const char *help,
                                       int type, const char *const *labels)
{
    struct gm_metric_family *fam = NULL;
    struct gm_metric_desc desc = {.name = name, .help = help, .type = type, .labels = labels};

    if (gm_metrics_register(gm_daemon_metrics(d), &desc, &fam) < 0)
        return NULL;
    return fam;
}

static struct gm_metric *metric(struct gm_daemon *d, const char *name, const char *help, int type)
{
    struct gm_metric_family *fam = family(d, name, help, type, NULL);

    return fam ? gm_metrics_get(fam, NULL) : NULL;
}

static void update_metrics(struct gm_control *c)
{
    struct gm_diags d;

    gm_diags_init(&d);
    gm_config_store_diags(&c->store, &d);
    if (c->current)
        gm_diags_extend(&d, &c->current->diags);
    gm_metrics_set(c->m_diags, (int64_t)gm_diags_errors(&d));
    gm_diags_done(&d);
    gm_metrics_set(c->m_objects, c->current ? (int64_t)c->current->n_objects : 0);
    gm_metrics_add(c->m_errors, (int64_t)(c->store.load_errors_total - c->errors_seen));
    c->errors_seen = c->store.load_errors_total;
}

static void log_new_diags(const struct gm_diags *d)
{
    char line[2048];

    for (size_t i = 0; i < d->n; i++)
        GM_LOG_WARN("config", "configuration problem", "problem=%s",
                    gm_diag_format(&d->v[i], line, sizeof(line)));
}

static void rebuild(struct gm_control *c)
{
    uint64_t t0 = uv_hrtime();
    struct gm_snapshot *s = gm_config_store_snapshot(&c->store, &c->opts);
    struct gm_snapshot *old = c->current;
    unsigned build_us = (unsigned)((uv_hrtime() - t0) / 1000);

    c->current = s;
    c->loaded = true;
    gm_metrics_inc(c->m_loads);
    log_new_diags(&s->diags);
    GM_LOG_INFO("config", "snapshot built",
                "generation=%llu objects=%zu workloads=%zu services=%zu routes=%zu problems=%zu "
                "build_us=%u",
                (unsigned long long)s->generation, s->n_objects, s->n_workloads, s->n_services,
                s->n_routes, s->diags.n, build_us);
    if (c->on_snapshot)
        c->on_snapshot(c, s, c->ctx);
    gm_snapshot_unref(old);
}

static void on_scan(void *ctx, int rc)
{
    struct gm_control *c = ctx;

    if (c->store.load_errors_total != c->errors_seen) {
        struct gm_diags d;
        gm_diags_init(&d);
        gm_config_store_diags(&c->store, &d);
        log_new_diags(&d);
        gm_diags_done(&d);
    }
    if (rc < 0 && rc != -ENOENT)
        GM_LOG_WARN("config", "cannot read the config directory", "dir=%s error=%s", c->store.dir,
                    uv_strerror(rc));
    if (rc == 1 || (!c->loaded && rc == 0))
        rebuild(c);
    update_metrics(c);
}

static void on_kube_timer(uv_timer_t *t)
{
    rebuild(t->data);
    update_metrics(t->data);
}

/* The API source's events, in order, into the store; rebuild once everything was listed. */
static void on_kube(void *ctx)
{
    struct gm_control *c = ctx;
    struct gm_kube_event *list = gm_kube_take(c->kube);
    struct gm_diags d;
    bool changed = false;

    gm_diags_init(&d);
    for (struct gm_kube_event *e = list; e; e = e->next) {
        switch (e->op) {
        case GM_KUBE_PUT:
            changed |= gm_config_store_put(&c->store, e->key, e->obj, &d) > 0;
            break;
        case GM_KUBE_DELETE:
            changed |= gm_config_store_remove(&c->store, e->key) > 0;
            break;
        case GM_KUBE_SYNCED:
            c->kube_synced = true;
            break;
        }
    }
    gm_kube_events_free(list);
    log_new_diags(&d);
    gm_diags_done(&d);
    if (c->kube_synced && !c->loaded) {
        rebuild(c);
        /* The initial lists went through the threads' malloc arenas as JSON: hand what they
         * freed back to the system (glibc keeps it otherwise). */
        malloc_trim(0);
    } else if (c->kube_synced && changed && !uv_is_active((uv_handle_t *)&c->kube_timer))
        uv_timer_start(&c->kube_timer, on_kube_timer, 100, 0);
    update_metrics(c);
}

static struct gm_metric_family *kube_family(struct gm_control *c, const char *name,
                                            const char *help, int type)
{
    static const char *const labels[] = {"resource", NULL};

    return family(c->daemon, name, help, type, labels);
}

/* The resource's series of fam: set to v (a gauge), or added v to (a counter). */
static void kube_series(struct gm_metric_family *fam, const char *resource, int64_t v, bool set)
{
    const char *values[] = {resource, NULL};

    if (fam == NULL || (!set && v <= 0))
        return;
    struct gm_metric *m = gm_metrics_get(fam, values);
    if (set)
        gm_metrics_set(m, v);
    else
        gm_metrics_add(m, v);
    gm_metrics_unref(m);
}

static void count_delta(struct gm_metric_family *fam, const char *resource, uint64_t now,
                        uint64_t before)
{
    kube_series(fam, resource, now > before ? (int64_t)(now - before) : 0, false);
}

/* Every second: the API source's per-kind counts into /metrics. */
static void on_kube_stats(uv_timer_t *t)
{
    struct gm_control *c = t->data;
    struct gm_kube_stats now[GM_KUBE_RESOURCES];

    if (c->kube == NULL)
        return;
    gm_kube_stats(c->kube, now);
    for (size_t i = 0; i < GM_KUBE_RESOURCES; i++) {
        const struct gm_kube_stats *n = &now[i], *b = &c->kube_last[i];
        kube_series(c->m_kube_synced, n->resource, n->synced, true);
        count_delta(c->m_kube_lists, n->resource, n->lists, b->lists);
        count_delta(c->m_kube_watches, n->resource, n->watches, b->watches);
        count_delta(c->m_kube_events, n->resource, n->events, b->events);
        count_delta(c->m_kube_errors, n->resource, n->errors, b->errors);
    }
    memcpy(c->kube_last, now, sizeof(now));
}

static int start_kube(struct gm_control *c, const struct gm_common_settings *cs)
{
    struct gm_kube_config kc = {.api = cs->kube_api,
                                .token_file = cs->kube_token_file,
                                .ca_file = cs->kube_ca_file,
                                .user_agent = "gammamesh/" GM_VERSION};
    char err[300];

    gm_config_store_init(&c->store, "kubernetes");
    int rc = gm_kube_start(&c->kube, gm_daemon_loop(c->daemon), &kc, on_kube, c, err, sizeof(err));
    if (rc < 0) {
        GM_LOG_ERROR("config", "cannot use the Kubernetes API", "error=%s", err);
        c->stopped = true; /* nothing to stop */
        return rc;
    }
    uv_timer_init(gm_daemon_loop(c->daemon), &c->kube_timer);
    c->kube_timer.data = c;
    c->m_kube_synced =
        kube_family(c, "gammamesh_kube_synced",
                    "1 once the kind was listed from the Kubernetes API.", GM_METRIC_GAUGE);
    c->m_kube_lists = kube_family(c, "gammamesh_kube_lists_total",
                                  "Lists of the kind started (the first, and after 410 Gone).",
                                  GM_METRIC_COUNTER);
    c->m_kube_watches = kube_family(c, "gammamesh_kube_watches_total",
                                    "Watches of the kind started.", GM_METRIC_COUNTER);
    c->m_kube_events =
        kube_family(c, "gammamesh_kube_watch_events_total",
                    "Watch events received (bookmarks and errors included).", GM_METRIC_COUNTER);
    c->m_kube_errors =
        kube_family(c, "gammamesh_kube_request_errors_total",
                    "Requests to the Kubernetes API that failed (connection, TLS, status, body).",
                    GM_METRIC_COUNTER);
    uv_timer_init(gm_daemon_loop(c->daemon), &c->kube_stats_timer);
    c->kube_stats_timer.data = c;
    uv_timer_start(&c->kube_stats_timer, on_kube_stats, 0, 1000);
    return 0;
}

int gm_control_start(struct gm_control *c, struct gm_daemon *d, const struct gm_common_settings *cs,
                     gm_control_snapshot_cb on_snapshot, void *ctx)
{
    memset(c, 0, sizeof(*c));
    c->daemon = d;
    c->on_snapshot = on_snapshot;
    c->ctx = ctx;
    c->opts.trust_domain = cs->trust_domain;
    c->opts.istio_compat = cs->istio_compat;
    c->m_loads = metric(d, "gammamesh_config_loads_total",
                        "Snapshots built from the configuration directory.", GM_METRIC_COUNTER);
    c->m_errors =
        metric(d, "gammamesh_config_load_errors_total",
               "Files or objects rejected while loading configuration.", GM_METRIC_COUNTER);
    c->m_objects =
        metric(d, "gammamesh_config_objects", "Objects in the current snapshot.", GM_METRIC_GAUGE);
    c->m_diags = metric(d, "gammamesh_config_problems",
                        "Current configuration errors (files, objects, routes).", GM_METRIC_GAUGE);
    if (cs->config_source == GM_CONFIG_SOURCE_KUBERNETES)
        return start_kube(c, cs);
    gm_config_store_init(&c->store, cs->config_dir);
    on_scan(c, gm_config_store_scan(&c->store));
    return gm_config_watch_start(&c->watch, gm_daemon_loop(d), &c->store, on_scan, c);
}

const char *gm_control_source(const struct gm_control *c)
{
    return c->kube_timer.data ? "kubernetes" : c->store.dir;
}

bool gm_control_ready(struct gm_control *c, char *reason, size_t len)
{
    if (c->loaded)
        return true;
    if (c->kube == NULL || gm_kube_synced(c->kube, reason, len))
        snprintf(reason, len, "configuration not loaded");
    return false;
}

void gm_control_reload(struct gm_control *c)
{
    if (c->kube) {
        GM_LOG_INFO("config", "reload requested: listing the Kubernetes API again", "");
        gm_kube_relist(c->kube);
        return;
    }
    GM_LOG_INFO("config", "reload requested: rescanning", "dir=%s", c->store.dir);
    on_scan(c, gm_config_store_scan(&c->store));
}

void gm_control_stop(struct gm_control *c)
{
    if (c->stopped)
        return;
    c->stopped = true;
    if (c->kube_timer.data) {
        gm_kube_stop(c->kube);
        c->kube = NULL;
        uv_close((uv_handle_t *)&c->kube_timer, NULL);
        uv_close((uv_handle_t *)&c->kube_stats_timer, NULL);
    } else {
        gm_config_watch_stop(&c->watch);
    }
}

json_t *gm_control_dump(struct gm_control *c)
{
    struct gm_diags d;

    gm_diags_init(&d);
    gm_config_store_diags(&c->store, &d);
    json_t *o = json_pack(
        "{s:s, s:I, s:I, s:o, s:o}", "config_source", c->kube ? "kubernetes" : "directory",
        "loads_total", (json_int_t)c->store.loads_total, "load_errors_total",
        (json_int_t)c->store.load_errors_total, "config_errors", gm_diags_to_json(&d), "snapshot",
        c->current ? gm_snapshot_to_json(c->current) : json_null());
    if (c->kube)
        json_object_set_new(o, "kubernetes", gm_kube_dump(c->kube));
    else
        json_object_set_new(o, "config_dir", json_string(c->store.dir));
    gm_diags_done(&d);
    return o;
}

int gm_check_main(const char *prog, int argc, char **argv)
{
    static const struct option opts[] = {
        {"check", no_argument, NULL, 'c'},
        {"config-dir", required_argument, NULL, 'd'},
        {"trust-domain", required_argument, NULL, 't'},
        {"istio-compat", no_argument, NULL, 'i'},
        {NULL, 0, NULL, 0},
    };
    struct gm_snapshot_options so = {0};
    const char *dir = NULL;
    int opt;

    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            break;
        case 'd':
            dir = optarg;
            break;
        case 't':
            so.trust_domain = optarg;
            break;
        case 'i':
            so.istio_compat = true;
            break;
        default:
            goto usage;
        }
    }
    if (dir == NULL || optind < argc)
        goto usage;
    int errors = gm_config_check(dir, &so, stdout, NULL);
    if (errors < 0) {
        fprintf(stderr, "%s: %s: %s\n", prog, dir, strerror(-errors));
        return 1;
    }
    fprintf(stderr, "%s: %s: %d error%s\n", prog, dir, errors, errors == 1 ? "" : "s");
    return errors ? 1 : 0;
usage:
    fprintf(stderr, "usage: %s --check --config-dir DIR [--trust-domain TD] [--istio-compat]\n",
            prog);
    return 2;
}
