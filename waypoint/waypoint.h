/* The waypoint daemon's shared state: settings, the daemon skeleton, the configuration runtime,
 * the identity runtime, the listeners and the worker loops. Everything in struct wp belongs to
 * the control loop except what the comments say is read by workers. */
#ifndef WP_WAYPOINT_H
#define WP_WAYPOINT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "gammamesh/control.h"
#include "gammamesh/daemon.h"
#include "gammamesh/identity_rt.h"
#include "gammamesh/metrics.h"
#include "gammamesh/settings.h"
#include "gammamesh/spiffe.h"
#include "gammamesh/workers.h"

#define WP_PORT 15008

struct wp_settings {
    struct gm_common_settings common;
    char *pod_name;              /* this waypoint's Pod (its service account) */
    char *pod_namespace;         /* and namespace */
    char *service_account;       /* NULL: from the Pod, else its gateway-name label */
    char *listen_addr;           /* HBONE listener */
    int64_t max_head_bytes;      /* HTTP/1 request head / HTTP/2 header list */
    int64_t max_headers;         /* header fields per request */
    int64_t max_body_buffer;     /* request body kept for retries and mirrors */
    int64_t max_streams;         /* inner HTTP/2 concurrent streams per connection */
    int64_t max_conns;           /* downstream connections (CONNECT streams) per worker */
    int64_t max_idle_upstreams;  /* idle upstream HTTP connections kept per worker */
    int64_t h2_reset_rate;       /* inner HTTP/2: resets per second before GOAWAY */
    uint64_t head_timeout_ms;    /* request head must arrive within this (408) */
    uint64_t idle_timeout_ms;    /* downstream connection idle between requests */
    uint64_t connect_timeout_ms; /* upstream tunnel setup */
    uint64_t upstream_idle_ms;   /* idle upstream connection lifetime */
    uint64_t default_timeout_ms; /* request timeout when the route sets none; 0: none */
    uint64_t cert_lifetime_ms;   /* minted certificate lifetime */
    bool route_status;           /* write HTTPRoute status (config-source kubernetes) */
    char *upgrade_protocols;     /* HTTP/1.1 Upgrade protocols passed on (comma-separated) */
};

struct wp_metrics;
struct wp_worker;

struct wp {
    struct wp_settings set;
    const char *node;
    struct gm_daemon *daemon;
    struct gm_control control;
    struct gm_workers workers;
    struct gm_identity_rt *idrt; /* thread-safe accessors */
    struct wp_metrics *metrics;  /* families: read-only after start, used by workers */
    int *listen_fds;             /* one SO_REUSEPORT socket per worker, adopted by it */
    unsigned n_listen;
    int listen_port;                 /* bound port (listen-addr may say 0) */
    char identity[GM_SPIFFE_ID_MAX]; /* control loop's view; workers get copies */
    char identity_why[128];          /* why identity is empty */
    struct wp_worker *wws;           /* per-worker state, indexed like workers.v */
    bool workers_started;
    json_t *status_sent; /* route "ns/name" -> the status entries last handed to the writer */
};

/* This waypoint's namespace (pod-namespace, default "default"), and its own Pod in the snapshot
 * (NULL when pod-name is unset or the Pod is not there yet). */
const char *wp_self_namespace(const struct wp_settings *set);
const struct gm_workload *wp_self_pod(const struct wp_settings *set, const struct gm_snapshot *s);

/* The identity this waypoint presents, from its settings and the snapshot: writes the SPIFFE ID
 * to out and returns 0, or -ENOENT with a reason in why (the Pod is not in the snapshot yet).
 * Pure. */
int wp_self_identity(const struct wp_settings *set, const struct gm_snapshot *s, char *out,
                     size_t len, char *why, size_t why_len);

/* Write the status of the HTTPRoutes on the Services this waypoint serves, where it changed
 * (waypoint/status.c). Control loop. */
void wp_route_status(struct wp *wp, const struct gm_snapshot *s);

#endif
