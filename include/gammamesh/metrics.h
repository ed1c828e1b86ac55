/*
 * metrics.h: counters, gauges and histograms with labels, rendered as Prometheus text 0.0.4.
 *
 * A registry holds families (a name, help text, type and label names); a family holds series,
 * one per distinct tuple of label values. The data path resolves a series once (per connection,
 * per request) and then updates it with lock-free atomics from any thread:
 *
 *     struct gm_metric_family *opened;
 *     static const char *const labels[] = {"reporter", "source_workload", NULL};
 *     gm_metrics_register(reg, &(struct gm_metric_desc){
 *         .name = "istio_tcp_connections_opened_total", .help = "...",
 *         .type = GM_METRIC_COUNTER, .labels = labels}, &opened);
 *
 *     const char *values[] = {"destination", "web-1"};
 *     struct gm_metric *m = gm_metrics_get(opened, values);   (locks the family, once)
 *     gm_metrics_inc(m);                                      (atomic, any thread)
 *     gm_metrics_unref(m);
 *
 * Series are reference counted. gm_metrics_remove() and gm_metrics_evict() take a series out of
 * the registry (it is no longer rendered; label sets of deleted workloads must go, or a churning
 * node grows without bound); holders may keep updating it until they unref it, and a later
 * gm_metrics_get() with the same values starts a fresh series from zero.
 *
 * Rendering sorts families by name and series by label values, so output is stable.
 */
#ifndef GAMMAMESH_METRICS_H
#define GAMMAMESH_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gammamesh/util.h"

#define GM_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define GM_METRICS_LABELS_MAX   32 /* label names in one family */
#define GM_METRICS_BUCKETS_MAX  64 /* histogram upper bounds, +Inf not counted */

/* What a family measures. */
enum gm_metric_type {
    GM_METRIC_COUNTER = 1, /* only goes up: gm_metrics_inc/add */
    GM_METRIC_GAUGE,       /* goes up and down: gm_metrics_add (any sign) and gm_metrics_set */
    GM_METRIC_HISTOGRAM,   /* distribution: gm_metrics_observe, rendered _bucket/_sum/_count */
    GM_METRIC__MAX
};

/* A family to register; everything is copied. */
struct gm_metric_desc {
    const char *name;          /* [a-zA-Z_:][a-zA-Z0-9_:]* */
    const char *help;          /* one line (newlines and backslashes are escaped) */
    enum gm_metric_type type;  /* counter, gauge or histogram */
    const char *const *labels; /* NULL-terminated label names, or NULL for none */
    const double *buckets;     /* HISTOGRAM: strictly ascending finite upper bounds */
    size_t n_buckets;          /* HISTOGRAM: 1..GM_METRICS_BUCKETS_MAX */
};

struct gm_metrics;
struct gm_metric_family;
struct gm_metric;

/* A new empty registry; aborts on OOM. */
struct gm_metrics *gm_metrics_new(void);

/* Frees the registry, its families and every series it still holds. Call it only once no one
 * updates a series any more (series outlive it only if they were removed and still held). */
void gm_metrics_free(struct gm_metrics *reg);

/*
 * Registers a family and sets *out (owned by the registry, valid until gm_metrics_free).
 * Registering the same name again with the same type and labels returns the existing family.
 * Returns 0, -EINVAL for a bad name, label or bucket list, -EEXIST for a name registered with a
 * different type or labels. Thread-safe.
 */
int gm_metrics_register(struct gm_metrics *reg, const struct gm_metric_desc *desc,
                        struct gm_metric_family **out);

/*
 * Returns the series of the family with these label values (one per label, in the family's
 * order; NULL for a family without labels), creating it at zero if needed. The caller owns one
 * reference. Never NULL (aborts on OOM); a NULL value is rendered as "". Locks the family.
 */
struct gm_metric *gm_metrics_get(struct gm_metric_family *fam, const char *const *values);

/* Another reference to m. */
struct gm_metric *gm_metrics_ref(struct gm_metric *m);

/* Drops a reference; the series is freed once it is out of the registry and unreferenced. */
void gm_metrics_unref(struct gm_metric *m);

/* Counter or gauge: adds n (a counter must not be given a negative n). Lock-free. */
void gm_metrics_add(struct gm_metric *m, int64_t n);

static inline void gm_metrics_inc(struct gm_metric *m)
{
    gm_metrics_add(m, 1);
}

/* Gauge: sets the value. Lock-free. */
void gm_metrics_set(struct gm_metric *m, int64_t v);

/* Counter or gauge: the current value. */
int64_t gm_metrics_value(const struct gm_metric *m);

/* Histogram: records one observation v (same unit as the buckets). Lock-free. */
void gm_metrics_observe(struct gm_metric *m, double v);

/* Takes the series with exactly these label values out of the family: 0 or -ENOENT. */
int gm_metrics_remove(struct gm_metric_family *fam, const char *const *values);

/*
 * Takes out of every family every series whose labels match all the given pairs: match is a
 * NULL-terminated list of alternating label names and values, e.g.
 * {"destination_workload", "web-1", "destination_workload_namespace", "shop", NULL}. Families
 * that lack one of the labels are left alone. Returns the number of series removed.
 */
size_t gm_metrics_evict(struct gm_metrics *reg, const char *const *match);

/*
 * Takes out of every family every series for which drop() is true. drop sees the family's
 * label names and the series' values (n of each) and runs with the registry locked: it must
 * not call into this registry. Returns the number of series removed.
 */
typedef bool (*gm_metrics_drop_fn)(const char *const *names, const char *const *values, size_t n,
                                   void *ctx);
size_t gm_metrics_evict_if(struct gm_metrics *reg, gm_metrics_drop_fn drop, void *ctx);

/*
 * Appends the Prometheus text exposition (format 0.0.4) of every non-empty family to out.
 * Returns 0, or the gm_buf_append() error (-ENOBUFS past out's cap). Updates that race with
 * rendering may or may not be included; a histogram's _count always equals its +Inf bucket.
 */
int gm_metrics_render(struct gm_metrics *reg, struct gm_buf *out);

#endif
