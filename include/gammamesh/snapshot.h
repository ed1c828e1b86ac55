/* The snapshot: one immutable, reference-counted view of the configuration that answers "who is
 * this workload", "where does this connection go" and "which route handles this request".
 * Built from a set of decoded objects; a change builds a new one and swaps the pointer; work in
 * flight keeps the snapshot it started with. Everything hangs off the snapshot's arena. */
#ifndef GAMMAMESH_SNAPSHOT_H
#define GAMMAMESH_SNAPSHOT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gammamesh/arena.h"
#include "gammamesh/diag.h"
#include "gammamesh/objects.h"
#include "gammamesh/route.h"

#define GM_LABEL_DATAPLANE_MODE       "gammamesh.io/dataplane-mode"
#define GM_LABEL_USE_WAYPOINT         "gammamesh.io/use-waypoint"
#define GM_ISTIO_LABEL_DATAPLANE_MODE "istio.io/dataplane-mode"
#define GM_ISTIO_LABEL_USE_WAYPOINT   "istio.io/use-waypoint"
#define GM_LABEL_GATEWAY_NAME         "gateway.networking.k8s.io/gateway-name"
#define GM_ANNOTATION_NETNS           "gammamesh.io/netns"
#define GM_WAYPOINT_CLASS             "gammamesh-waypoint"

struct gm_waypoint;

struct gm_namespace_info {
    const char *name;
    const struct gm_object *obj; /* NULL when only implied by other objects */
    bool enrolled;               /* dataplane-mode=ambient on the namespace */
    const char *use_waypoint;    /* use-waypoint label or NULL */
};

struct gm_workload {
    const struct gm_object *obj; /* the Pod */
    const char *uid;             /* metadata.uid, else "ns/name" */
    const char *name;
    const char *namespace;
    const char *node;
    const char *service_account;
    const char *identity; /* spiffe://<td>/ns/<ns>/sa/<sa> */
    const char *netns;    /* gammamesh.io/netns annotation or NULL */
    struct gm_ip ip;      /* family 0 when the pod has no IP yet */
    bool ready;
    bool enrolled;                     /* pod label beats namespace label; waypoints never */
    const char *waypoint_name;         /* this pod IS the waypoint of that Gateway (same ns) */
    const struct gm_object **policies; /* AuthorizationPolicies that apply to it */
    size_t n_policies;
};

struct gm_consumer_routes {
    const char *namespace; /* clients in this namespace use table */
    struct gm_route_table table;
};

struct gm_svc_port {
    const struct gm_service_port *spec;
    int port;
    const char *name;         /* NULL when unnamed */
    const char *app_protocol; /* NULL when absent */
    bool has_producer;        /* producer routes exist (table may still be empty) */
    struct gm_route_table producer;
    struct gm_consumer_routes *consumers;
    size_t n_consumers;
};

struct gm_endpoint {
    const struct gm_workload *w;
    int *target_ports; /* per service port; -1 when a named port does not resolve */
};

struct gm_svc {
    const struct gm_object *obj;
    const char *name;
    const char *namespace;
    const char *hostname; /* name.ns.svc.<cluster-domain> */
    struct gm_ip vip;     /* family 0: reachable by name only */
    struct gm_svc_port *ports;
    size_t n_ports;
    struct gm_endpoint *endpoints; /* ready pods selected by the selector, sorted by IP */
    size_t n_endpoints;
    const char *use_waypoint;           /* service label beats namespace label */
    const struct gm_waypoint *waypoint; /* resolved, or NULL when absent or not found */
    /* AuthorizationPolicies its waypoint enforces: those whose targetRefs name this Service or
     * its waypoint Gateway (empty without a waypoint) */
    const struct gm_object **policies;
    size_t n_policies;
};

struct gm_waypoint {
    const char *name;
    const char *namespace;
    const struct gm_object *gateway;
    const char *identity;            /* spiffe://<td>/ns/<ns>/sa/<name> */
    const struct gm_workload **pods; /* ready waypoint pods */
    size_t n_pods;
};

/* What the route compiler found for one parentRef of an HTTPRoute: what its status says. */
struct gm_parent_status {
    const struct gm_parent_ref *ref;
    const struct gm_svc *svc; /* the parent Service; NULL when not found or not a Service */
    bool service_parent;      /* group "", kind Service: a mesh parent */
    bool accepted;
    const char *accepted_reason; /* "Accepted", "UnsupportedValue", "NoMatchingParent" */
    const char *accepted_message;
};

struct gm_route_status {
    const struct gm_object *route;
    bool resolved;               /* every backendRef that carries weight resolves */
    const char *resolved_reason; /* "ResolvedRefs", "BackendNotFound", "InvalidKind" */
    const char *resolved_message;
    struct gm_parent_status *parents; /* one per spec.parentRefs entry */
    size_t n_parents;
};

struct gm_snapshot_options {
    const char *trust_domain;   /* "cluster.local" when NULL */
    const char *cluster_domain; /* "cluster.local" when NULL */
    bool istio_compat;          /* also honour istio.io/ labels */
};

struct gm_snapshot {
    atomic_int refs;
    uint64_t generation;
    struct gm_arena arena;
    struct gm_snapshot_options opts;
    struct gm_namespace_info *namespaces; /* sorted by name */
    size_t n_namespaces;
    struct gm_workload *workloads; /* sorted by namespace/name */
    size_t n_workloads;
    struct gm_workload **by_ip; /* workloads with an IP, sorted by IP */
    size_t n_by_ip;
    struct gm_workload **by_uid; /* every workload, sorted by uid (looked up per connection) */
    struct gm_svc *services;     /* sorted by namespace/name */
    size_t n_services;
    struct gm_svc **by_vip; /* services with a VIP, sorted by VIP */
    size_t n_by_vip;
    struct gm_waypoint *waypoints; /* sorted by namespace/name */
    size_t n_waypoints;
    const struct gm_object **policies; /* AuthorizationPolicies */
    size_t n_policies;
    const struct gm_object **routes; /* accepted HTTPRoutes */
    size_t n_routes;
    struct gm_route_status *route_status; /* every HTTPRoute, as decoded */
    size_t n_route_status;
    size_t n_objects;
    struct gm_diags diags; /* what building rejected (bad regex, unknown parent, ...) */
    gm_regex **regexes;    /* every compiled regex, freed with the snapshot */
    size_t n_regexes, cap_regexes;
    void *owner; /* opaque: what keeps the objects alive (see owner_free) */
    void (*owner_free)(void *owner);
};

/* Build a snapshot from objects (borrowed: they must outlive the snapshot; pass an owner to
 * release with it). Never fails: rejected pieces become diagnostics in snap->diags. The result
 * has one reference. */
struct gm_snapshot *gm_snapshot_build(const struct gm_object *const *objs, size_t n,
                                      const struct gm_snapshot_options *opts, void *owner,
                                      void (*owner_free)(void *));

struct gm_snapshot *gm_snapshot_ref(struct gm_snapshot *s);
/* Drops one reference; frees (and calls owner_free) on the last. Accepts NULL. */
void gm_snapshot_unref(struct gm_snapshot *s);

const struct gm_workload *gm_snapshot_workload_by_ip(const struct gm_snapshot *s,
                                                     const struct gm_ip *ip);
const struct gm_workload *gm_snapshot_workload_by_uid(const struct gm_snapshot *s, const char *uid);
const struct gm_workload *gm_snapshot_workload(const struct gm_snapshot *s, const char *ns,
                                               const char *name);
const struct gm_svc *gm_snapshot_service(const struct gm_snapshot *s, const char *ns,
                                         const char *name);
/* Service with this VIP that has port; *port_index set to the port's index. */
const struct gm_svc *gm_snapshot_service_by_vip(const struct gm_snapshot *s,
                                                const struct gm_ip *vip, int port, int *port_index);
/* Resolve `name` (in client_ns), `name.ns`, `name.ns.svc`, `name.ns.svc.<cluster-domain>`. */
const struct gm_svc *gm_snapshot_service_by_host(const struct gm_snapshot *s, const char *host,
                                                 const char *client_ns);
int gm_svc_port_index(const struct gm_svc *svc, int port);
const struct gm_namespace_info *gm_snapshot_namespace(const struct gm_snapshot *s,
                                                      const char *name);

/* Route table for a client in client_ns calling svc's port: the consumer table of client_ns
 * when one exists, else the producer table; NULL when the port has no routes (passthrough). */
const struct gm_route_table *gm_snapshot_routes(const struct gm_svc *svc, int port_index,
                                                const char *client_ns);

/* The SPIFFE identity of (ns, sa) in trust domain td, in the snapshot's arena. */
const char *gm_snapshot_identity(struct gm_snapshot *s, const char *ns, const char *sa);

#endif
