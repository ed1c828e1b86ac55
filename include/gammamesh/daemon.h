/*
 * daemon.h: the process skeleton shared by gammamesh-ztunnel and gammamesh-waypoint.
 *
 * It owns the control loop, the signal handling, the metrics registry and the three HTTP
 * listeners with the routes that do not depend on the snapshot:
 *
 *   admin-addr    GET  /config_dump     {"component", "version", "settings", "logging", …}
 *                                       plus whatever the config_dump callback returns
 *                 GET  /logging         current levels; ?level=SPEC sets them (GET or POST),
 *                 POST /logging         ?reset restores the startup levels; 400 on a bad spec
 *                 POST /quitquitquit    200, then the same graceful shutdown as SIGTERM
 *                 GET  /                the list of admin routes
 *   metrics-addr  GET  /metrics, /stats/prometheus   the registry, Prometheus text 0.0.4
 *   ready-addr    GET  /healthz/ready   200 "ready" when the ready callback says so (and the
 *                                       daemon is not draining), else 503 with the reason
 *
 * Signals: SIGTERM or SIGINT start a graceful shutdown: the drain callback runs, and the daemon
 * stops when it calls gm_daemon_drained() or when drain-deadline passes; a second SIGTERM or
 * SIGINT stops at once. SIGHUP runs the reload callback. SIGPIPE is ignored process-wide.
 *
 *     struct gm_daemon *d;
 *     gm_daemon_new(&(struct gm_daemon_config){.name = "ztunnel", …}, &d);
 *     if (gm_daemon_start(d) < 0) exit(1);
 *     … open listeners, start watchers on gm_daemon_loop(d) …
 *     rc = gm_daemon_run(d);
 *     gm_daemon_free(d);
 *
 * Workers: the N worker loops (gm_daemon_workers() says how many) are not started here yet.
 * Their place is between gm_daemon_start() and gm_daemon_run(): the daemon starts them, stops
 * their listeners in its drain callback, and joins them in its stop callback.
 *
 * Everything here runs on the control loop's thread.
 */
#ifndef GAMMAMESH_DAEMON_H
#define GAMMAMESH_DAEMON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "gammamesh/admin.h"
#include "gammamesh/metrics.h"
#include "gammamesh/settings.h"

struct gm_daemon;

/* The three HTTP listeners. */
enum gm_daemon_listener {
    GM_DAEMON_ADMIN = 0, /* admin-addr: config_dump, logging, quitquitquit */
    GM_DAEMON_METRICS,   /* metrics-addr: /metrics */
    GM_DAEMON_READY,     /* ready-addr: /healthz/ready */
    GM_DAEMON__MAX
};

typedef void (*gm_daemon_cb)(struct gm_daemon *d, void *ctx);

/* Readiness: true when ready; otherwise writes why not ("config not loaded") to reason. */
typedef bool (*gm_daemon_ready_fn)(struct gm_daemon *d, void *ctx, char *reason, size_t len);

/* The daemon's part of /config_dump: a new JSON object whose members are merged in, or NULL. */
typedef json_t *(*gm_daemon_dump_fn)(struct gm_daemon *d, void *ctx);

/* Everything is borrowed and must outlive the daemon. */
struct gm_daemon_config {
    const char *name;                        /* component: "ztunnel", "waypoint" */
    const char *version;                     /* "0.1.0" */
    const struct gm_settings_schema *schema; /* for /config_dump */
    const void *settings;                    /* the struct the schema describes */
    const struct gm_common_settings *common; /* inside settings */
    gm_daemon_cb drain;            /* stop accepting, finish, then gm_daemon_drained(); or NULL */
    gm_daemon_cb reload;           /* SIGHUP; NULL: logged and ignored */
    gm_daemon_cb stop;             /* close every handle of the daemon on the control loop */
    gm_daemon_ready_fn ready;      /* NULL: ready once started */
    gm_daemon_dump_fn config_dump; /* NULL: settings and logging only */
    void *ctx;                     /* passed to every callback */
};

/*
 * Creates the daemon with its own control loop and metrics registry, ignores SIGPIPE, and
 * applies the log level and format of cfg->common. Returns 0, or -EINVAL when the common
 * settings' log level is invalid, with *out NULL.
 */
int gm_daemon_new(const struct gm_daemon_config *cfg, struct gm_daemon **out);

/*
 * Installs the signal handlers and opens the listeners (an empty address disables one).
 * Returns 0 or the first listener's error (-EADDRINUSE, -EINVAL, …), logged with its address;
 * the caller then calls gm_daemon_free() and exits.
 */
int gm_daemon_start(struct gm_daemon *d);

/* Runs the control loop until the daemon stops; returns the exit code for main(). */
int gm_daemon_run(struct gm_daemon *d);

/*
 * Starts the graceful shutdown (what SIGTERM does): readiness turns 503, the drain callback runs
 * and the drain deadline starts. reason is logged. Idempotent. Safe from a handler: the drain
 * starts on the next loop iteration.
 */
void gm_daemon_shutdown(struct gm_daemon *d, const char *reason);

/* Called by the daemon when its drain is complete: stops with exit code 0. */
void gm_daemon_drained(struct gm_daemon *d);

/*
 * Stops now: calls the stop callback, closes the listeners and signal handlers; the loop then
 * ends once every handle is closed (handles still open after a grace period are closed by
 * gm_daemon_run). exit_code is what gm_daemon_run() returns. Idempotent.
 */
void gm_daemon_stop(struct gm_daemon *d, int exit_code);

/* Frees the daemon after gm_daemon_run() returned (or after a failed start). NULL is fine. */
void gm_daemon_free(struct gm_daemon *d);

uv_loop_t *gm_daemon_loop(struct gm_daemon *d);
struct gm_metrics *gm_daemon_metrics(struct gm_daemon *d);

/* One of the HTTP servers, to add routes (or read its port in tests); NULL when disabled. */
struct gm_admin *gm_daemon_admin(struct gm_daemon *d, enum gm_daemon_listener which);

/* Worker loops to run: the workers setting, or the number of CPUs when it is 0. */
unsigned gm_daemon_workers(const struct gm_daemon *d);

/* True once a graceful shutdown has begun. */
bool gm_daemon_draining(const struct gm_daemon *d);

#endif
