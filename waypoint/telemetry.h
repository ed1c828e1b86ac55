/* Istio's L7 metrics (istio_requests_total, istio_request_duration_milliseconds, reporter
 * "waypoint") and one access-log line per request, written when the request finishes. */
#ifndef WP_TELEMETRY_H
#define WP_TELEMETRY_H

#include <stdbool.h>
#include <stdint.h>

#include "gammamesh/metrics.h"
#include "gammamesh/snapshot.h"

/* What one finished request looked like; every string is borrowed, NULL means unknown. */
struct wp_access {
    const char *method;
    const char *authority;
    const char *path; /* as received, with the query */
    int status;       /* sent downstream; 0 when none was */
    const char *route_ns, *route_name;
    int rule_index; /* -1: no rule */
    const char *rule_name;
    const char *upstream; /* endpoint "ip:port" of the last attempt */
    double duration_ms;
    int retries;
    const char *error;          /* close reason, NULL when clean */
    const char *response_flags; /* "-", "NR", "UH", "UF", "UT", "URX", "DC", ... */
    const char *protocol;       /* "HTTP/1.1", "HTTP/2" */
    const char *request_id;
    const char *src_addr, *src_workload, *src_namespace, *src_principal;
    const char *dst_service; /* FQDN */
    const char *dst_service_name, *dst_service_namespace;
    const char *dst_workload, *dst_workload_namespace, *dst_principal;
    uint64_t bytes_in, bytes_out; /* request and response body bytes */
    bool mirror;                  /* a mirrored copy: logged, not counted in the metrics */
};

struct wp_metrics;

/* Register the families in reg (the daemon's registry). Never NULL. */
struct wp_metrics *wp_telemetry_new(struct gm_metrics *reg);
void wp_telemetry_free(struct wp_metrics *m);

/* Count one request and write its access-log line. m may be NULL (tests: log only). Any
 * thread. */
void wp_telemetry_request(struct wp_metrics *m, const struct wp_access *a);

/* Drop the series of workloads that are no longer in snapshot s (control loop). */
void wp_telemetry_evict(struct wp_metrics *m, const struct gm_snapshot *s);

#endif
