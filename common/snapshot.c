/* Snapshot construction and lookups: namespaces, workloads, services with endpoints, waypoints
 * and policies; routes are compiled by route.c into the service ports. */
#include "gammamesh/snapshot.h"

#include <errno.h>
#include <sys/socket.h>

#include "snapshot_int.h"

#define ROOT_NAMESPACE       "gammamesh-system"
#define ISTIO_ROOT_NAMESPACE "istio-system"

static const char *label(const struct gm_snapshot *s, const struct gm_kvs *labels, const char *ours,
                         const char *istio)
{
    const char *v = gm_kvs_get(labels, ours);

    if (v == NULL && s->opts.istio_compat)
        v = gm_kvs_get(labels, istio);
    return v;
}

static int cmp_str_pair(const char *an, const char *a, const char *bn, const char *b)
{
    int c = strcmp(an ? an : "", bn ? bn : "");
    return c ? c : strcmp(a, b);
}

static int ip_cmp(const struct gm_ip *a, const struct gm_ip *b)
{
    if (a->family != b->family)
        return a->family < b->family ? -1 : 1;
    return memcmp(a->addr, b->addr, sizeof(a->addr));
}

/* ---- namespaces ---- */

static int cmp_ns(const void *a, const void *b)
{
    return strcmp(((const struct gm_namespace_info *)a)->name,
                  ((const struct gm_namespace_info *)b)->name);
}

const struct gm_namespace_info *gm_snapshot_namespace(const struct gm_snapshot *s, const char *name)
{
    struct gm_namespace_info key = {.name = name};

    if (name == NULL)
        return NULL;
    return bsearch(&key, s->namespaces, s->n_namespaces, sizeof(key), cmp_ns);
}

static void build_namespaces(struct gm_snapshot *s, const struct gm_object *const *objs, size_t n)
{
    size_t cap = 0;
    struct gm_namespace_info *v = NULL;
    size_t nv = 0;

    for (size_t i = 0; i < n; i++) {
        const char *name =
            objs[i]->kind == GM_KIND_NAMESPACE ? objs[i]->meta.name : objs[i]->meta.namespace;
        bool found = false;
        for (size_t j = 0; j < nv && !found; j++) {
            if (strcmp(v[j].name, name) == 0) {
                found = true;
                if (objs[i]->kind == GM_KIND_NAMESPACE)
                    v[j].obj = objs[i];
            }
        }
        if (found)
            continue;
        GM_VEC_PUSH(v, nv, cap);
        v[nv - 1] = (struct gm_namespace_info){
            .name = name, .obj = objs[i]->kind == GM_KIND_NAMESPACE ? objs[i] : NULL};
    }
    for (size_t j = 0; j < nv; j++) {
        if (v[j].obj == NULL)
            continue;
        const struct gm_kvs *l = &v[j].obj->meta.labels;
        const char *mode = label(s, l, GM_LABEL_DATAPLANE_MODE, GM_ISTIO_LABEL_DATAPLANE_MODE);
        v[j].enrolled = mode && strcmp(mode, "ambient") == 0;
        v[j].use_waypoint = label(s, l, GM_LABEL_USE_WAYPOINT, GM_ISTIO_LABEL_USE_WAYPOINT);
    }
    if (nv > 1)
        qsort(v, nv, sizeof(*v), cmp_ns);
    s->namespaces = GM_ARENA_ARRAY(&s->arena, struct gm_namespace_info, nv ? nv : 1);
    if (nv)
        memcpy(s->namespaces, v, nv * sizeof(*v));
    s->n_namespaces = nv;
    free(v);
}

/* ---- workloads ---- */

static int cmp_workload_uid(const void *a, const void *b);

const char *gm_snapshot_identity(struct gm_snapshot *s, const char *ns, const char *sa)
{
    return gm_arena_printf(&s->arena, "spiffe://%s/ns/%s/sa/%s", s->opts.trust_domain, ns, sa);
}

static bool pod_enrolled(const struct gm_snapshot *s, const struct gm_object *o)
{
    const struct gm_namespace_info *ns = gm_snapshot_namespace(s, o->meta.namespace);
    const char *mode =
        label(s, &o->meta.labels, GM_LABEL_DATAPLANE_MODE, GM_ISTIO_LABEL_DATAPLANE_MODE);

    if (o->pod.host_network)
        return false;
    if (mode)
        return strcmp(mode, "ambient") == 0;
    return ns && ns->enrolled;
}

static int cmp_workload(const void *a, const void *b)
{
    const struct gm_workload *x = a, *y = b;
    return cmp_str_pair(x->namespace, x->name, y->namespace, y->name);
}

static int cmp_workload_ip(const void *a, const void *b)
{
    const struct gm_workload *x = *(struct gm_workload *const *)a;
    const struct gm_workload *y = *(struct gm_workload *const *)b;
    int c = ip_cmp(&x->ip, &y->ip);

    if (c)
        return c;
    /* Ready pods first, so a lookup by IP prefers the live owner of a reused address. */
    if (x->ready != y->ready)
        return x->ready ? -1 : 1;
    return cmp_workload(x, y);
}

static void init_workload(struct gm_snapshot *s, struct gm_workload *w, const struct gm_object *o)
{
    w->obj = o;
    w->name = o->meta.name;
    w->namespace = o->meta.namespace;
    w->uid = o->meta.uid ? o->meta.uid
                         : gm_arena_printf(&s->arena, "%s/%s", o->meta.namespace, o->meta.name);
    w->node = o->pod.node_name;
    w->service_account = o->pod.service_account ? o->pod.service_account : "default";
    w->identity = gm_snapshot_identity(s, w->namespace, w->service_account);
    w->netns = gm_kvs_get(&o->meta.annotations, GM_ANNOTATION_NETNS);
    w->ip = o->pod.ip;
    w->ready = gm_pod_is_ready(&o->pod);
    w->waypoint_name = gm_kvs_get(&o->meta.labels, GM_LABEL_GATEWAY_NAME);
    w->enrolled = w->waypoint_name == NULL && pod_enrolled(s, o);
}

static void build_workloads(struct gm_snapshot *s, const struct gm_object *const *objs, size_t n)
{
    size_t np = 0, nip = 0;

    for (size_t i = 0; i < n; i++)
        np += objs[i]->kind == GM_KIND_POD;
    s->workloads = GM_ARENA_ARRAY(&s->arena, struct gm_workload, np ? np : 1);
    for (size_t i = 0; i < n; i++)
        if (objs[i]->kind == GM_KIND_POD)
            init_workload(s, &s->workloads[s->n_workloads++], objs[i]);
    qsort(s->workloads, s->n_workloads, sizeof(struct gm_workload), cmp_workload);
    s->by_ip = GM_ARENA_ARRAY(&s->arena, struct gm_workload *, np ? np : 1);
    for (size_t i = 0; i < s->n_workloads; i++)
        if (s->workloads[i].ip.family)
            s->by_ip[nip++] = &s->workloads[i];
    qsort(s->by_ip, nip, sizeof(*s->by_ip), cmp_workload_ip);
    s->n_by_ip = nip;
    s->by_uid = GM_ARENA_ARRAY(&s->arena, struct gm_workload *, np ? np : 1);
    for (size_t i = 0; i < s->n_workloads; i++)
        s->by_uid[i] = &s->workloads[i];
    if (s->n_workloads > 1)
        qsort(s->by_uid, s->n_workloads, sizeof(*s->by_uid), cmp_workload_uid);
}

const struct gm_workload *gm_snapshot_workload_by_ip(const struct gm_snapshot *s,
                                                     const struct gm_ip *ip)
{
    size_t lo = 0, hi = s->n_by_ip;

    while (lo < hi) { /* lower bound: the first (ready-preferred) owner of the address */
        size_t mid = (lo + hi) / 2;
        if (ip_cmp(&s->by_ip[mid]->ip, ip) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < s->n_by_ip && ip_cmp(&s->by_ip[lo]->ip, ip) == 0)
        return s->by_ip[lo];
    return NULL;
}

static int cmp_workload_uid(const void *a, const void *b)
{
    return strcmp((*(struct gm_workload *const *)a)->uid, (*(struct gm_workload *const *)b)->uid);
}

const struct gm_workload *gm_snapshot_workload_by_uid(const struct gm_snapshot *s, const char *uid)
{
    struct gm_workload key = {.uid = uid}, *kp = &key;
    struct gm_workload **hit =
        bsearch(&kp, s->by_uid, s->n_workloads, sizeof(*s->by_uid), cmp_workload_uid);

    return hit ? *hit : NULL;
}

const struct gm_workload *gm_snapshot_workload(const struct gm_snapshot *s, const char *ns,
                                               const char *name)
{
    struct gm_workload key = {.namespace = ns, .name = name};

    return bsearch(&key, s->workloads, s->n_workloads, sizeof(key), cmp_workload);
}

/* ---- waypoints ---- */

static int cmp_waypoint(const void *a, const void *b)
{
    const struct gm_waypoint *x = a, *y = b;
    return cmp_str_pair(x->namespace, x->name, y->namespace, y->name);
}

static void build_waypoints(struct gm_snapshot *s, const struct gm_object *const *objs, size_t n)
{
    size_t ng = 0;

    for (size_t i = 0; i < n; i++)
        ng += objs[i]->kind == GM_KIND_GATEWAY &&
              strcmp(objs[i]->gateway.class_name, GM_WAYPOINT_CLASS) == 0;
    s->waypoints = GM_ARENA_ARRAY(&s->arena, struct gm_waypoint, ng ? ng : 1);
    for (size_t i = 0; i < n; i++) {
        const struct gm_object *o = objs[i];
        if (o->kind != GM_KIND_GATEWAY || strcmp(o->gateway.class_name, GM_WAYPOINT_CLASS))
            continue;
        struct gm_waypoint *wp = &s->waypoints[s->n_waypoints++];
        wp->name = o->meta.name;
        wp->namespace = o->meta.namespace;
        wp->gateway = o;
        wp->identity = gm_snapshot_identity(s, wp->namespace, wp->name);
        wp->pods = GM_ARENA_ARRAY(&s->arena, const struct gm_workload *, s->n_workloads + 1);
        for (size_t j = 0; j < s->n_workloads; j++) {
            const struct gm_workload *w = &s->workloads[j];
            if (w->ready && w->ip.family && w->waypoint_name &&
                strcmp(w->waypoint_name, wp->name) == 0 && strcmp(w->namespace, wp->namespace) == 0)
                wp->pods[wp->n_pods++] = w;
        }
    }
    qsort(s->waypoints, s->n_waypoints, sizeof(struct gm_waypoint), cmp_waypoint);
}

static const struct gm_waypoint *find_waypoint(const struct gm_snapshot *s, const char *ns,
                                               const char *name)
{
    struct gm_waypoint key = {.namespace = ns, .name = name};

    return bsearch(&key, s->waypoints, s->n_waypoints, sizeof(key), cmp_waypoint);
}

/* ---- services ---- */

static int cmp_svc(const void *a, const void *b)
{
    const struct gm_svc *x = a, *y = b;
    return cmp_str_pair(x->namespace, x->name, y->namespace, y->name);
}

static int cmp_svc_vip(const void *a, const void *b)
{
    const struct gm_svc *x = *(struct gm_svc *const *)a;
    const struct gm_svc *y = *(struct gm_svc *const *)b;
    int c = ip_cmp(&x->vip, &y->vip);

    return c ? c : cmp_svc(x, y);
}

/* The container port number a named targetPort means on this pod, or -1. */
static int resolve_named_port(const struct gm_pod *pod, const char *name)
{
    for (size_t c = 0; c < pod->n_containers; c++)
        for (size_t p = 0; p < pod->containers[c].n_ports; p++)
            if (pod->containers[c].ports[p].name &&
                strcmp(pod->containers[c].ports[p].name, name) == 0)
                return pod->containers[c].ports[p].port;
    return -1;
}

static void add_endpoint(struct gm_snapshot *s, struct gm_svc *svc, const struct gm_workload *w)
{
    struct gm_endpoint *ep = &svc->endpoints[svc->n_endpoints++];

    ep->w = w;
    ep->target_ports = GM_ARENA_ARRAY(&s->arena, int, svc->n_ports ? svc->n_ports : 1);
    for (size_t p = 0; p < svc->n_ports; p++) {
        const struct gm_service_port *sp = svc->ports[p].spec;
        ep->target_ports[p] = sp->target_port_name
                                  ? resolve_named_port(&w->obj->pod, sp->target_port_name)
                                  : sp->target_port;
    }
}

/* Workloads with an address by namespace, each namespace's in by_ip order, so that a Service
 * looks at the pods of its own namespace only. */
struct by_ns {
    struct gm_workload **v;
    size_t n;
};

static int cmp_workload_ns_ip(const void *a, const void *b)
{
    const struct gm_workload *x = *(struct gm_workload *const *)a;
    const struct gm_workload *y = *(struct gm_workload *const *)b;
    int c = strcmp(x->namespace, y->namespace);

    return c ? c : cmp_workload_ip(a, b);
}

/* [*first, *end) of the namespace in idx. */
static void ns_range(const struct by_ns *idx, const char *ns, size_t *first, size_t *end)
{
    size_t lo = 0, hi = idx->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(idx->v[mid]->namespace, ns) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *first = lo;
    for (hi = lo; hi < idx->n && strcmp(idx->v[hi]->namespace, ns) == 0; hi++)
        ;
    *end = hi;
}

/* The ready pods a Service selects, in address order, one per address (two ready pods that
 * claim one IP: the first); into v when not NULL. Returns how many. */
static size_t select_endpoints(const struct by_ns *idx, const struct gm_svc *svc,
                               const struct gm_workload **v)
{
    const struct gm_service *spec = &svc->obj->service;
    const struct gm_workload *last = NULL;
    size_t n = 0, first, end;

    if (!spec->has_selector || spec->selector.n == 0)
        return 0; /* no selector: endpoints are managed elsewhere; none here */
    ns_range(idx, svc->namespace, &first, &end);
    for (size_t i = first; i < end; i++) {
        const struct gm_workload *w = idx->v[i];
        if (!w->ready || !gm_kvs_subset(&spec->selector, &w->obj->meta.labels))
            continue;
        if (last && gm_ip_equal(&last->ip, &w->ip))
            continue;
        last = w;
        if (v)
            v[n] = w;
        n++;
    }
    return n;
}

static void build_endpoints(struct gm_snapshot *s, const struct by_ns *idx, struct gm_svc *svc)
{
    /* counted first: sized for every workload, 500 Services over 5,000 pods took 40 MB */
    size_t n = select_endpoints(idx, svc, NULL);
    const struct gm_workload **v = gm_xcalloc(n + 1, sizeof(*v));

    select_endpoints(idx, svc, v);
    svc->endpoints = GM_ARENA_ARRAY(&s->arena, struct gm_endpoint, n + 1);
    for (size_t i = 0; i < n; i++)
        add_endpoint(s, svc, v[i]);
    free(v);
}

static void resolve_service_waypoint(struct gm_snapshot *s, struct gm_svc *svc)
{
    const struct gm_namespace_info *ns = gm_snapshot_namespace(s, svc->namespace);
    const char *wp =
        label(s, &svc->obj->meta.labels, GM_LABEL_USE_WAYPOINT, GM_ISTIO_LABEL_USE_WAYPOINT);

    if (wp == NULL && ns)
        wp = ns->use_waypoint;
    if (wp == NULL || strcmp(wp, "none") == 0)
        return;
    svc->use_waypoint = wp;
    svc->waypoint = find_waypoint(s, svc->namespace, wp);
    /* A waypoint never serves itself: its own Service is reached directly. */
    if (svc->waypoint && strcmp(svc->name, wp) == 0) {
        svc->use_waypoint = NULL;
        svc->waypoint = NULL;
        return;
    }
    if (svc->waypoint == NULL) {
        char obj[300];
        gm_diags_add(&s->diags, GM_DIAG_WARNING, &svc->obj->loc,
                     gm_object_label(svc->obj, obj, sizeof(obj)), "metadata.labels",
                     "use-waypoint names Gateway %s/%s, which is not a %s Gateway; traffic to "
                     "this Service is refused until it exists",
                     svc->namespace, wp, GM_WAYPOINT_CLASS);
    }
}

static void init_service(struct gm_snapshot *s, struct gm_svc *svc, const struct gm_object *o)
{
    svc->obj = o;
    svc->name = o->meta.name;
    svc->namespace = o->meta.namespace;
    svc->hostname = gm_arena_printf(&s->arena, "%s.%s.svc.%s", svc->name, svc->namespace,
                                    s->opts.cluster_domain);
    svc->vip = o->service.vip;
    svc->n_ports = o->service.n_ports;
    svc->ports = GM_ARENA_ARRAY(&s->arena, struct gm_svc_port, svc->n_ports ? svc->n_ports : 1);
    for (size_t p = 0; p < svc->n_ports; p++) {
        const struct gm_service_port *sp = &o->service.ports[p];
        svc->ports[p].spec = sp;
        svc->ports[p].port = sp->port;
        svc->ports[p].name = sp->name;
        svc->ports[p].app_protocol = sp->app_protocol;
    }
}

static void build_services(struct gm_snapshot *s, const struct gm_object *const *objs, size_t n)
{
    size_t ns = 0, nv = 0;

    for (size_t i = 0; i < n; i++)
        ns += objs[i]->kind == GM_KIND_SERVICE;
    s->services = GM_ARENA_ARRAY(&s->arena, struct gm_svc, ns ? ns : 1);
    for (size_t i = 0; i < n; i++)
        if (objs[i]->kind == GM_KIND_SERVICE)
            init_service(s, &s->services[s->n_services++], objs[i]);
    qsort(s->services, s->n_services, sizeof(struct gm_svc), cmp_svc);
    s->by_vip = GM_ARENA_ARRAY(&s->arena, struct gm_svc *, ns ? ns : 1);
    struct by_ns idx = {.v = gm_xcalloc(s->n_by_ip + 1, sizeof(*idx.v)), .n = s->n_by_ip};
    memcpy(idx.v, s->by_ip, s->n_by_ip * sizeof(*idx.v));
    qsort(idx.v, idx.n, sizeof(*idx.v), cmp_workload_ns_ip);
    for (size_t i = 0; i < s->n_services; i++) {
        struct gm_svc *svc = &s->services[i];
        build_endpoints(s, &idx, svc);
        resolve_service_waypoint(s, svc);
        if (svc->vip.family)
            s->by_vip[nv++] = svc;
    }
    free(idx.v);
    qsort(s->by_vip, nv, sizeof(*s->by_vip), cmp_svc_vip);
    s->n_by_vip = nv;
}

const struct gm_svc *gm_snapshot_service(const struct gm_snapshot *s, const char *ns,
                                         const char *name)
{
    struct gm_svc key = {.namespace = ns, .name = name};

    if (ns == NULL || name == NULL)
        return NULL;
    return bsearch(&key, s->services, s->n_services, sizeof(key), cmp_svc);
}

int gm_svc_port_index(const struct gm_svc *svc, int port)
{
    for (size_t p = 0; p < svc->n_ports; p++)
        if (svc->ports[p].port == port)
            return (int)p;
    return -1;
}

const struct gm_svc *gm_snapshot_service_by_vip(const struct gm_snapshot *s,
                                                const struct gm_ip *vip, int port, int *port_index)
{
    for (size_t i = 0; i < s->n_by_vip; i++) {
        const struct gm_svc *svc = s->by_vip[i];
        if (!gm_ip_equal(&svc->vip, vip))
            continue;
        int idx = gm_svc_port_index(svc, port);
        if (idx >= 0) {
            if (port_index)
                *port_index = idx;
            return svc;
        }
    }
    return NULL;
}

const struct gm_svc *gm_snapshot_service_by_host(const struct gm_snapshot *s, const char *host,
                                                 const char *client_ns)
{
    char name[254], ns[254];
    const char *dot = strchr(host, '.');

    if (strlen(host) >= sizeof(name))
        return NULL;
    if (dot == NULL)
        return gm_snapshot_service(s, client_ns, host);
    memcpy(name, host, (size_t)(dot - host));
    name[dot - host] = '\0';
    const char *rest = dot + 1;
    const char *dot2 = strchr(rest, '.');
    size_t nl = dot2 ? (size_t)(dot2 - rest) : strlen(rest);
    memcpy(ns, rest, nl);
    ns[nl] = '\0';
    if (dot2) {
        const char *tail = dot2 + 1;
        if (strcmp(tail, "svc") != 0 &&
            !(strncmp(tail, "svc.", 4) == 0 && strcmp(tail + 4, s->opts.cluster_domain) == 0))
            return NULL;
    }
    return gm_snapshot_service(s, ns, name);
}

const struct gm_route_table *gm_snapshot_routes(const struct gm_svc *svc, int port_index,
                                                const char *client_ns)
{
    if (port_index < 0 || (size_t)port_index >= svc->n_ports)
        return NULL;
    const struct gm_svc_port *p = &svc->ports[port_index];
    if (client_ns) {
        for (size_t i = 0; i < p->n_consumers; i++)
            if (strcmp(p->consumers[i].namespace, client_ns) == 0)
                return &p->consumers[i].table;
    }
    return p->has_producer ? &p->producer : NULL;
}

/* ---- policies ---- */

static bool policy_applies(const struct gm_snapshot *s, const struct gm_object *pol,
                           const struct gm_workload *w)
{
    const char *ns = pol->meta.namespace;
    bool root = strcmp(ns, ROOT_NAMESPACE) == 0 ||
                (s->opts.istio_compat && strcmp(ns, ISTIO_ROOT_NAMESPACE) == 0);

    if (pol->authz.has_targets)
        return false; /* a waypoint's policy */
    if (!root && strcmp(ns, w->namespace) != 0)
        return false;
    return !pol->authz.has_selector || gm_kvs_subset(&pol->authz.selector, &w->obj->meta.labels);
}

/* Does the policy target this Service, or the waypoint that serves it? */
static bool policy_targets(const struct gm_object *pol, const struct gm_svc *svc)
{
    if (svc->waypoint == NULL || strcmp(pol->meta.namespace, svc->namespace) != 0)
        return false;
    for (size_t i = 0; i < pol->authz.n_targets; i++) {
        const struct gm_policy_target *t = &pol->authz.targets[i];
        if (strcmp(t->kind, "Service") == 0 && strcmp(t->name, svc->name) == 0)
            return true;
        if (strcmp(t->kind, "Gateway") == 0 && strcmp(t->name, svc->waypoint->name) == 0 &&
            strcmp(svc->waypoint->namespace, pol->meta.namespace) == 0)
            return true;
    }
    return false;
}

static void build_policies(struct gm_snapshot *s, const struct gm_object *const *objs, size_t n)
{
    s->policies = GM_ARENA_ARRAY(&s->arena, const struct gm_object *, n + 1);
    for (size_t i = 0; i < n; i++)
        if (objs[i]->kind == GM_KIND_AUTHZ)
            s->policies[s->n_policies++] = objs[i];
    for (size_t j = 0; j < s->n_workloads; j++) {
        struct gm_workload *w = &s->workloads[j];
        w->policies = GM_ARENA_ARRAY(&s->arena, const struct gm_object *, s->n_policies + 1);
        for (size_t i = 0; i < s->n_policies; i++)
            if (policy_applies(s, s->policies[i], w))
                w->policies[w->n_policies++] = s->policies[i];
    }
    for (size_t j = 0; j < s->n_services; j++) {
        struct gm_svc *svc = &s->services[j];
        svc->policies = GM_ARENA_ARRAY(&s->arena, const struct gm_object *, s->n_policies + 1);
        for (size_t i = 0; i < s->n_policies; i++)
            if (policy_targets(s->policies[i], svc))
                svc->policies[svc->n_policies++] = s->policies[i];
    }
}

/* ---- build and lifetime ---- */

struct gm_snapshot *gm_snapshot_build(const struct gm_object *const *objs, size_t n,
                                      const struct gm_snapshot_options *opts, void *owner,
                                      void (*owner_free)(void *))
{
    static atomic_uint_fast64_t generations;
    struct gm_snapshot *s = gm_xcalloc(1, sizeof(*s));

    atomic_init(&s->refs, 1);
    s->generation = atomic_fetch_add(&generations, 1) + 1;
    gm_arena_init(&s->arena);
    gm_diags_init(&s->diags);
    s->owner = owner;
    s->owner_free = owner_free;
    s->n_objects = n;
    s->opts.trust_domain = gm_arena_strdup(
        &s->arena, opts && opts->trust_domain ? opts->trust_domain : "cluster.local");
    s->opts.cluster_domain = gm_arena_strdup(
        &s->arena, opts && opts->cluster_domain ? opts->cluster_domain : "cluster.local");
    s->opts.istio_compat = opts && opts->istio_compat;

    build_namespaces(s, objs, n);
    build_workloads(s, objs, n);
    build_waypoints(s, objs, n);
    build_services(s, objs, n);
    build_policies(s, objs, n);
    gm_routes_compile(s, objs, n);
    return s;
}

struct gm_snapshot *gm_snapshot_ref(struct gm_snapshot *s)
{
    atomic_fetch_add(&s->refs, 1);
    return s;
}

void gm_snapshot_unref(struct gm_snapshot *s)
{
    if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    gm_routes_free(s);
    gm_diags_done(&s->diags);
    gm_arena_done(&s->arena);
    if (s->owner_free)
        s->owner_free(s->owner);
    free(s);
}
