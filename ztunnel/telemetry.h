/* The ztunnel's metric families (Istio's TCP set). */
#ifndef ZT_TELEMETRY_H
#define ZT_TELEMETRY_H

#include <errno.h>

#include "gammamesh/metrics.h"

struct zt_metrics {
    struct gm_metric_family *opened, *closed, *sent, *received, *failed;
    struct gm_metric *stream_retries; /* gammamesh_ztunnel_stream_retries_total (may be NULL) */
};

/* Register the families on reg; 0 or -EINVAL. */
int zt_telemetry_init(struct zt_metrics *m, struct gm_metrics *reg);

struct zt_worker;
/* A held outbound stream lost before its 200 is opened again (counted; any thread). */
void zt_telemetry_stream_retry(struct zt_worker *w);

struct gm_snapshot;

/* Drops the series whose source or destination workload is no longer in snapshot s, so that
 * pod churn does not grow /metrics without bound (DESIGN §9). A connection still open when its
 * workload left brings its series back when it closes; the next snapshot drops it again. */
void zt_telemetry_evict(struct gm_metrics *reg, const struct gm_snapshot *s);

#endif
