/* The ztunnel's metric families (Istio's TCP set). */
#ifndef ZT_TELEMETRY_H
#define ZT_TELEMETRY_H

#include <errno.h>

#include "gammamesh/metrics.h"

struct zt_metrics {
    struct gm_metric_family *opened, *closed, *sent, *received;
};

/* Register the families on reg; 0 or -EINVAL. */
int zt_telemetry_init(struct zt_metrics *m, struct gm_metrics *reg);

#endif
