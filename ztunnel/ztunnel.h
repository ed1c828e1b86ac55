/* The node daemon's shared state: settings, the daemon skeleton, the configuration runtime, the
 * worker loops, the capture manager and per-worker proxy state. */
#ifndef ZT_ZTUNNEL_H
#define ZT_ZTUNNEL_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "gammamesh/control.h"
#include "gammamesh/daemon.h"
#include "gammamesh/metrics.h"
#include "gammamesh/settings.h"
#include "gammamesh/workers.h"

struct zt_pod;
struct zt_identity;
struct zt_metrics;
struct zt_cni;

struct zt_settings {
    struct gm_common_settings common;
    uint64_t connect_timeout_ms; /* upstream TCP connect deadline */
    uint64_t hbone_keepalive_ms; /* PING interval on every tunnel (silent for 2x: closed) */
    uint64_t idle_timeout_ms;    /* a relayed connection with no bytes either way is closed */
    uint64_t cert_lifetime_ms;   /* lifetime of minted leaf certificates */
    int64_t max_conns;           /* open connections per worker */
    int64_t max_pods;            /* enrolled pods captured on this node */
    bool capture;                /* install capture rules in pod netns (off: listeners only) */
    bool preserve_source;        /* inbound: connect to the app from the client's IP */
    char *proc_root;             /* where pods without gammamesh.io/netns are found; "" = not */
    char *cni_socket;            /* the CNI gate's Unix socket; "" = no gate */
    int ipv6;                    /* enum zt_ipv6: what happens to enrolled pods' IPv6 TCP */
};

/* IPv6 is not captured yet. Enrolled pods' IPv6 TCP is refused (reset, so dual-stack clients
 * fall back to the captured IPv4 at once) or, by choice, passes outside the mesh. */
enum zt_ipv6 { ZT_IPV6_REFUSE = 0, ZT_IPV6_PASSTHROUGH };

/* Ports in each enrolled pod's netns (DESIGN §3). */
enum zt_listener {
    ZT_LISTEN_OUTBOUND = 0, /* 15001: captured outbound, original destination via SO_ORIGINAL_DST */
    ZT_LISTEN_INBOUND_PLAIN, /* 15006: captured inbound plaintext */
    ZT_LISTEN_HBONE,         /* 15008: inbound HBONE (mTLS, HTTP/2 CONNECT) */
    ZT_LISTEN__MAX
};

extern const int zt_listener_ports[ZT_LISTEN__MAX];

/* A sandbox netns that the CNI gate named for a pod (ztunnel/cni.c): it takes precedence over the
 * gammamesh.io/netns annotation and proc-root discovery, and the pod is wanted before its IP is
 * known. Dropped on the runtime's DEL or when the pod leaves the snapshot. */
struct zt_cni_pod {
    char *uid, *container_id, *netns;
};

/* Capture manager (control loop): one entry per enrolled pod of this node. */
#define ZT_POD_STATES 4 /* listening, captured, failed, removing (ztunnel/pods.c) */

struct zt_pods {
    struct zt *zt;
    struct zt_pod **v;
    size_t n, cap;
    uv_timer_t retry;
    uv_timer_t check;         /* every captured pod's netns, each second */
    uv_timer_t again;         /* a reconcile pass after a capture was dropped to move */
    struct gm_snapshot *snap; /* the last reconciled snapshot (a reference) */
    bool stopping;            /* shutting down: nothing is captured again */
    uint64_t moved;           /* captures moved to a re-created netns */
    struct gm_metric *m_state[ZT_POD_STATES]; /* gammamesh_ztunnel_pods{state} */
    struct gm_metric *m_moves;                /* gammamesh_ztunnel_capture_moves_total */
    unsigned rule_flags;                      /* zt_capture_rules flags: IPv6 present, refused */
    /* The last scan of proc-root for pods' processes: one scan serves every pod that starts
     * within ZT_SCAN_MAX_AGE_MS (a node's /proc has thousands of entries to read). */
    struct zt_pod_pid *scan;
    long n_scan;
    uint64_t scan_at_ms;
    struct zt_cni_pod *cni; /* netns named by the CNI gate, by pod uid */
    size_t n_cni, cap_cni;
};

struct zt {
    struct zt_settings set;
    const char *node;
    struct gm_daemon *daemon;
    struct gm_control control;
    struct gm_workers workers;
    struct zt_pods pods;
    struct zt_identity *identity;
    struct zt_metrics *metrics;
    bool workers_started;
    struct zt_cni *cni;
};

/* Per-worker proxy state (ztunnel/proxy.c). */
struct zt_worker;

/* Capture manager (ztunnel/pods.c). */
void zt_pods_init(struct zt_pods *p, struct zt *zt);
/* Bring capture in line with the snapshot: new enrolled pods of this node get listeners in
 * every worker then their rules; pods that left get their rules then listeners removed. */
void zt_pods_reconcile(struct zt_pods *p, const struct gm_snapshot *s);
bool zt_pods_ready(const struct zt_pods *p, char *reason, size_t len);
json_t *zt_pods_dump(const struct zt_pods *p);
/* What enrolled pods' IPv6 TCP meets: "refused", "passthrough", or "absent" (no IPv6). */
const char *zt_pods_ipv6_mode(const struct zt_pods *p);
/* Remove every pod's rules (asynchronously) and listeners: on drain and stop. */
void zt_pods_stop_listening(struct zt_pods *p);
void zt_pods_done(struct zt_pods *p);
/* The CNI gate named the pod's new sandbox netns: capture there (a capture in another netns
 * moves at once). */
void zt_pods_cni_add(struct zt_pods *p, const char *uid, const char *container_id,
                     const char *netns);
/* The runtime removed the sandbox container_id: forget the netns it named. */
void zt_pods_cni_del(struct zt_pods *p, const char *container_id);
/* 1 when the pod's listeners and rules are in place in the netns at path, else 0 with why. */
int zt_pods_cni_captured(const struct zt_pods *p, const char *uid, const char *path, char *why,
                         size_t len);

/* The CNI gate's socket (ztunnel/cni.c), on the control loop; off without --cni-socket. */
int zt_cni_start(struct zt *zt);
/* After each reconcile: answer the requests that can be answered now. */
void zt_cni_poll(struct zt *zt);
json_t *zt_cni_dump(const struct zt *zt);
void zt_cni_stop(struct zt *zt);

/* Worker side (ztunnel/proxy.c). */
void zt_proxy_worker_init(struct gm_worker *w, void *zt);
void zt_proxy_worker_stop(struct gm_worker *w, void *zt);
/* After the worker's loop closed every handle: free its state. */
void zt_proxy_worker_exit(struct gm_worker *w, void *zt);
/* Adopt the listener fds of a pod on worker w (runs on the worker thread). */
struct zt_adopt {
    char *uid;
    int nsfd; /* a dup owned by the worker's pod entry */
    int fds[ZT_LISTEN__MAX];
};
void zt_proxy_adopt(struct gm_worker *w, void *adopt);
/* Close the pod's listeners on worker w; open connections continue. arg: heap uid string. */
void zt_proxy_release(struct gm_worker *w, void *uid);
/* The pod's reply routing is in: inbound connections to it may now keep the client's source
 * address. arg: heap uid string. */
void zt_proxy_source_ready(struct gm_worker *w, void *uid);
/* Drain: stop accepting everywhere on worker w and GOAWAY tunnels. */
void zt_proxy_drain(struct gm_worker *w, void *unused);
/* GOAWAY on every tunnel, in and out, without closing listeners (after a CA reload). */
void zt_proxy_retire_tunnels(struct gm_worker *w, void *unused);
/* Re-check inbound connections against the worker's (new) snapshot. */
void zt_proxy_recheck(struct gm_worker *w, void *unused);
/* Open connections on this worker (approximate, read from the control loop for drain). */
unsigned zt_proxy_open_conns(const struct gm_worker *w);

#endif
