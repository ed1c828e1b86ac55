/* The configuration side of both daemons, on the control loop: the config store and its watch,
 * the current snapshot (rebuilt on change, published by pointer swap), the config-load metrics,
 * and the snapshot's part of /config_dump. Also `--check`, shared by both binaries. */
#ifndef GAMMAMESH_CONTROL_H
#define GAMMAMESH_CONTROL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "gammamesh/config.h"
#include "gammamesh/config_watch.h"
#include "gammamesh/daemon.h"
#include "gammamesh/kube.h"
#include "gammamesh/metrics.h"
#include "gammamesh/settings.h"

struct gm_control;
/* A new snapshot is current: s is borrowed (take a ref to keep it); old may be NULL. */
typedef void (*gm_control_snapshot_cb)(struct gm_control *c, struct gm_snapshot *s, void *ctx);

struct gm_control {
    struct gm_daemon *daemon;
    struct gm_config_store store;
    struct gm_config_watch watch;
    struct gm_snapshot_options opts;
    struct gm_snapshot *current; /* owned reference; control loop only */
    bool loaded;                 /* a snapshot was built at least once */
    gm_control_snapshot_cb on_snapshot;
    void *ctx;
    struct gm_metric *m_loads, *m_errors, *m_objects, *m_diags;
    uint64_t errors_seen;
    struct gm_kube *kube;        /* config-source kubernetes; NULL for the directory */
    uv_timer_t kube_timer;       /* coalesces the API's changes into one rebuild */
    bool kube_synced;            /* every kind listed once: the first snapshot can be built */
    uv_timer_t kube_stats_timer; /* copies the API source's counts into the metrics */
    struct gm_kube_stats kube_last[GM_KUBE_RESOURCES];
    struct gm_metric_family *m_kube_synced, *m_kube_lists, *m_kube_watches, *m_kube_events,
        *m_kube_errors;
    bool stopped;
};

/* Directory source: load the directory now (so readiness can be decided at once), build the
 * first snapshot, start watching; on_snapshot runs for the first snapshot before this returns.
 * Kubernetes source: start the list+watch threads; the first snapshot is built once every kind
 * is listed, and later changes are applied 100 ms after they arrive. 0 or -errno (a missing
 * directory is not an error: the watch picks it up when it appears; an unusable API address is,
 * and is logged). */
int gm_control_start(struct gm_control *c, struct gm_daemon *d, const struct gm_common_settings *cs,
                     gm_control_snapshot_cb on_snapshot, void *ctx);
void gm_control_stop(struct gm_control *c);
/* "kubernetes", or the configuration directory: for log lines. */
const char *gm_control_source(const struct gm_control *c);
/* True once a snapshot was built; otherwise why not in reason (for /healthz/ready). */
bool gm_control_ready(struct gm_control *c, char *reason, size_t len);
/* Rescan the directory now (SIGHUP; the watch does the same on its own within a second), or
 * list every kind of the Kubernetes API again. */
void gm_control_reload(struct gm_control *c);
/* {"config_source": …, "config_dir": … or "kubernetes": {…}, "snapshot": …, "config_errors": […],
 * "loads_total": …} (new object). */
json_t *gm_control_dump(struct gm_control *c);

/* `PROG --check --config-dir DIR [--trust-domain TD] [--istio-compat]`: print every problem,
 * return 0 when clean, 1 when not, 2 on usage errors. */
int gm_check_main(const char *prog, int argc, char **argv);

#endif
