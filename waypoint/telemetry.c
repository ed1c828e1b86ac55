/* Request metrics with Istio's names and labels, and the per-request access log. */
#include "telemetry.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "gammamesh/log.h"
#include "gammamesh/util.h"

#define SEEN_MAX 4096 /* workloads remembered for eviction */

static const char *const request_labels[] = {
    "reporter",
    "source_workload",
    "source_workload_namespace",
    "source_principal",
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "request_protocol",
    "response_code",
    "response_flags",
    "connection_security_policy",
    NULL,
};

#define N_LABELS (GM_ARRAY_LEN(request_labels) - 1)

/* Istio's default duration buckets, in milliseconds. */
static const double duration_buckets[] = {0.5,   1,      5,      10,      25,     50,    100,
                                          250,   500,    1000,   2500,    5000,   10000, 30000,
                                          60000, 300000, 600000, 1800000, 3600000};

struct seen {
    char *workload, *ns;
};

struct wp_metrics {
    struct gm_metrics *reg;
    struct gm_metric_family *requests, *duration;
    pthread_mutex_t mu; /* guards seen */
    struct seen *seen;
    size_t n_seen, cap_seen;
};

struct wp_metrics *wp_telemetry_new(struct gm_metrics *reg)
{
    struct wp_metrics *m = gm_xcalloc(1, sizeof(*m));
    struct gm_metric_desc req = {
        .name = "istio_requests_total",
        .help = "Requests handled by the waypoint.",
        .type = GM_METRIC_COUNTER,
        .labels = request_labels,
    };
    struct gm_metric_desc dur = {
        .name = "istio_request_duration_milliseconds",
        .help = "Request duration at the waypoint, from the request head to the last byte.",
        .type = GM_METRIC_HISTOGRAM,
        .labels = request_labels,
        .buckets = duration_buckets,
        .n_buckets = GM_ARRAY_LEN(duration_buckets),
    };

    m->reg = reg;
    pthread_mutex_init(&m->mu, NULL);
    if (gm_metrics_register(reg, &req, &m->requests) < 0 ||
        gm_metrics_register(reg, &dur, &m->duration) < 0)
        GM_LOG_ERROR("telemetry", "cannot register the request metrics", "");
    return m;
}

void wp_telemetry_free(struct wp_metrics *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->n_seen; i++) {
        free(m->seen[i].workload);
        free(m->seen[i].ns);
    }
    free(m->seen);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static const char *or_unknown(const char *s)
{
    return s && *s ? s : "unknown";
}

static void remember(struct wp_metrics *m, const char *workload, const char *ns)
{
    if (workload == NULL || ns == NULL)
        return;
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->n_seen; i++) {
        if (strcmp(m->seen[i].workload, workload) == 0 && strcmp(m->seen[i].ns, ns) == 0) {
            pthread_mutex_unlock(&m->mu);
            return;
        }
    }
    if (m->n_seen < SEEN_MAX) {
        GM_VEC_PUSH(m->seen, m->n_seen, m->cap_seen);
        m->seen[m->n_seen - 1] = (struct seen){gm_xstrdup(workload), gm_xstrdup(ns)};
    }
    pthread_mutex_unlock(&m->mu);
}

static void count(struct wp_metrics *m, const struct wp_access *a)
{
    const char *v[N_LABELS + 1];
    char code[8];

    snprintf(code, sizeof(code), "%d", a->status);
    v[0] = "waypoint";
    v[1] = or_unknown(a->src_workload);
    v[2] = or_unknown(a->src_namespace);
    v[3] = or_unknown(a->src_principal);
    v[4] = or_unknown(a->dst_service);
    v[5] = or_unknown(a->dst_service_name);
    v[6] = or_unknown(a->dst_service_namespace);
    v[7] = or_unknown(a->dst_workload);
    v[8] = or_unknown(a->dst_workload_namespace);
    v[9] = or_unknown(a->dst_principal);
    v[10] = "http"; /* Istio's request_protocol for HTTP/1.x and HTTP/2 alike */
    v[11] = code;
    v[12] = a->response_flags ? a->response_flags : "-";
    v[13] = "mutual_tls"; /* the waypoint only accepts mTLS HBONE */
    v[14] = NULL;
    if (m->requests) {
        struct gm_metric *s = gm_metrics_get(m->requests, v);
        gm_metrics_inc(s);
        gm_metrics_unref(s);
    }
    if (m->duration) {
        struct gm_metric *s = gm_metrics_get(m->duration, v);
        gm_metrics_observe(s, a->duration_ms);
        gm_metrics_unref(s);
    }
    remember(m, a->src_workload, a->src_namespace);
    remember(m, a->dst_workload, a->dst_workload_namespace);
}

static const char *dash(const char *s)
{
    return s && *s ? s : "-";
}

void wp_telemetry_request(struct wp_metrics *m, const struct wp_access *a)
{
    if (m && !a->mirror)
        count(m, a);
    GM_LOG_INFO("access", a->mirror ? "mirror" : "request",
                "method=%s authority=%s path=%s status=%d protocol=%s route=%s/%s rule=%d "
                "rule_name=%s upstream=%s duration_ms=%.3f retries=%d flags=%s request_id=%s "
                "src.addr=%s src.workload=%s src.namespace=%s src.identity=%s dst.service=%s "
                "dst.workload=%s dst.identity=%s bytes_in=%llu bytes_out=%llu error=%s",
                dash(a->method), dash(a->authority), dash(a->path), a->status, dash(a->protocol),
                dash(a->route_ns), dash(a->route_name), a->rule_index, dash(a->rule_name),
                dash(a->upstream), a->duration_ms, a->retries, dash(a->response_flags),
                dash(a->request_id), dash(a->src_addr), dash(a->src_workload),
                dash(a->src_namespace), dash(a->src_principal), dash(a->dst_service),
                dash(a->dst_workload), dash(a->dst_principal), (unsigned long long)a->bytes_in,
                (unsigned long long)a->bytes_out, dash(a->error));
}

static bool present(const struct gm_snapshot *s, const struct seen *e)
{
    return gm_snapshot_workload(s, e->ns, e->workload) != NULL;
}

static void evict_one(struct wp_metrics *m, const struct seen *e)
{
    const char *dst[] = {"destination_workload", e->workload, "destination_workload_namespace",
                         e->ns, NULL};
    const char *src[] = {"source_workload", e->workload, "source_workload_namespace", e->ns, NULL};

    gm_metrics_evict(m->reg, dst);
    gm_metrics_evict(m->reg, src);
}

void wp_telemetry_evict(struct wp_metrics *m, const struct gm_snapshot *s)
{
    size_t keep = 0;

    if (m == NULL || s == NULL)
        return;
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->n_seen; i++) {
        if (present(s, &m->seen[i])) {
            m->seen[keep++] = m->seen[i];
            continue;
        }
        evict_one(m, &m->seen[i]);
        free(m->seen[i].workload);
        free(m->seen[i].ns);
    }
    m->n_seen = keep;
    pthread_mutex_unlock(&m->mu);
}
