/* Istio TCP metrics and one access-log line per connection, written at close. */
#include <string.h>

#include "gammamesh/log.h"
#include "gammamesh/snapshot.h"
#include "proxy.h"
#include "telemetry.h"

static const char *const tcp_labels[] = {
    "reporter",
    "source_workload",
    "source_workload_namespace",
    "source_principal",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_service",
    "request_protocol",
    "response_flags",
    "connection_security_policy",
    NULL,
};

static int family(struct gm_metrics *reg, const char *name, const char *help,
                  struct gm_metric_family **out)
{
    struct gm_metric_desc d = {
        .name = name, .help = help, .type = GM_METRIC_COUNTER, .labels = tcp_labels};

    return gm_metrics_register(reg, &d, out);
}

int zt_telemetry_init(struct zt_metrics *m, struct gm_metrics *reg)
{
    int rc = 0;

    rc |= family(reg, "istio_tcp_connections_opened_total", "TCP connections opened.", &m->opened);
    rc |= family(reg, "istio_tcp_connections_closed_total", "TCP connections closed.", &m->closed);
    rc |= family(reg, "istio_tcp_sent_bytes_total",
                 "Bytes sent toward the destination during TCP connections.", &m->sent);
    rc |= family(reg, "istio_tcp_received_bytes_total",
                 "Bytes received from the destination during TCP connections.", &m->received);
    rc |= family(reg, "istio_tcp_connections_failed_total",
                 "TCP connections that failed: refused by policy, their tunnel or their "
                 "destination, or refused at the TLS handshake.",
                 &m->failed);
    struct gm_metric_family *fam = NULL;
    if (gm_metrics_register(reg,
                            &(struct gm_metric_desc){
                                .name = "gammamesh_ztunnel_stream_retries_total",
                                .help = "Outbound HBONE streams opened again after their tunnel "
                                        "was lost before the 200 (nothing of the app's sent).",
                                .type = GM_METRIC_COUNTER},
                            &fam) == 0)
        m->stream_retries = gm_metrics_get(fam, NULL);
    return rc ? -EINVAL : 0;
}

void zt_telemetry_stream_retry(struct zt_worker *w)
{
    if (w->zt->metrics->stream_retries)
        gm_metrics_inc(w->zt->metrics->stream_retries);
}

static const char *or_unknown(const char *s)
{
    return s && *s ? s : "unknown";
}

/* Istio principals are the SPIFFE ID itself. */
static void label_values(const struct zt_conn *c, const char **v)
{
    v[0] = c->dir == ZT_DIR_OUTBOUND ? "source" : "destination";
    v[1] = or_unknown(c->src_workload);
    v[2] = or_unknown(c->src_namespace);
    v[3] = c->mtls ? or_unknown(c->src_identity) : "unknown";
    v[4] = or_unknown(c->dst_workload);
    v[5] = or_unknown(c->dst_namespace);
    v[6] = c->mtls ? or_unknown(c->dst_identity) : "unknown";
    v[7] = or_unknown(c->dst_service);
    v[8] = "tcp";
    v[9] = c->response_flags ? c->response_flags : "-";
    v[10] = c->mtls ? "mutual_tls" : "unknown";
    v[11] = NULL;
}

static void add(struct gm_metric_family *fam, const char **v, int64_t n)
{
    struct gm_metric *m = fam ? gm_metrics_get(fam, v) : NULL;

    if (m) {
        gm_metrics_add(m, n);
        gm_metrics_unref(m);
    }
}

void zt_telemetry_conn_opened(struct zt_worker *w, struct zt_conn *c)
{
    const char *v[12];

    label_values(c, v);
    v[9] = "-";
    add(w->zt->metrics->opened, v, 1);
}

void zt_telemetry_conn_closed(struct zt_worker *w, struct zt_conn *c)
{
    struct zt_metrics *m = w->zt->metrics;
    const char *v[12];
    /* down side bytes_in: from the client; up side bytes_in: from the destination. */
    uint64_t sent = c->down.bytes_in, recv = c->up.bytes_in;
    uint64_t ms = uv_now(zt_proxy_loop(w)) - c->start_ms;

    label_values(c, v);
    add(m->closed, v, 1);
    if (strcmp(v[9], "-") != 0)
        add(m->failed, v, 1);
    add(m->sent, v, (int64_t)sent);
    add(m->received, v, (int64_t)recv);
    GM_LOG(c->error ? GM_LOG_LEVEL_WARN : GM_LOG_LEVEL_INFO, "access", "connection complete",
           "direction=%s src.addr=%s src.workload=%s src.namespace=%s src.identity=%s "
           "dst.addr=%s dst.hbone_addr=%s dst.service=%s dst.workload=%s dst.namespace=%s "
           "dst.identity=%s bytes_sent=%llu bytes_recv=%llu duration=%llums mtls=%s "
           "response_flags=%s error=%s",
           c->dir == ZT_DIR_OUTBOUND ? "outbound" : "inbound", or_unknown(c->src_addr),
           or_unknown(c->src_workload), or_unknown(c->src_namespace),
           c->src_identity ? c->src_identity : "-", or_unknown(c->dst_addr),
           c->hbone_addr ? c->hbone_addr : "-", c->dst_service ? c->dst_service : "-",
           or_unknown(c->dst_workload), or_unknown(c->dst_namespace),
           c->dst_identity && c->mtls ? c->dst_identity : "-", (unsigned long long)sent,
           (unsigned long long)recv, (unsigned long long)ms, c->mtls ? "true" : "false",
           c->response_flags ? c->response_flags : "-", c->error ? c->error : "-");
}

void zt_telemetry_tunnel_refused(struct zt_worker *w, const struct gm_workload *dst,
                                 const struct gm_ip *peer, const char *reason)
{
    char addr[64] = "unknown";
    const char *v[12] = {"destination",
                         "unknown",
                         "unknown",
                         "unknown",
                         dst ? or_unknown(dst->name) : "unknown",
                         dst ? or_unknown(dst->namespace) : "unknown",
                         dst ? or_unknown(dst->identity) : "unknown",
                         "unknown",
                         "tcp",
                         "TLS_FAILURE",
                         "unknown",
                         NULL};

    add(w->zt->metrics->failed, v, 1);
    if (peer->family)
        gm_ip_format(peer, addr, sizeof(addr));
    GM_LOG_WARN_LIMITED("inbound", "tunnel refused at the handshake",
                        "src.addr=%s dst.workload=%s dst.namespace=%s reason=%s", addr, v[4], v[5],
                        reason);
}

/* A series names a workload that the snapshot no longer has: as source or as destination. */
static bool names_gone_workload(const char *const *names, const char *const *values, size_t n,
                                void *ctx)
{
    const struct gm_snapshot *s = ctx;
    static const char *const pairs[2][2] = {
        {"source_workload", "source_workload_namespace"},
        {"destination_workload", "destination_workload_namespace"}};

    for (size_t p = 0; p < 2; p++) {
        const char *name = NULL, *ns = NULL;
        for (size_t i = 0; i < n; i++) {
            if (strcmp(names[i], pairs[p][0]) == 0)
                name = values[i];
            else if (strcmp(names[i], pairs[p][1]) == 0)
                ns = values[i];
        }
        if (name && ns && strcmp(name, "unknown") != 0 && strcmp(ns, "unknown") != 0 &&
            gm_snapshot_workload(s, ns, name) == NULL)
            return true;
    }
    return false;
}

void zt_telemetry_evict(struct gm_metrics *reg, const struct gm_snapshot *s)
{
    size_t n = gm_metrics_evict_if(reg, names_gone_workload, (void *)s);

    if (n > 0)
        GM_LOG_DEBUG("telemetry", "series of deleted workloads evicted", "series=%zu", n);
}
