/* Kubernetes objects from located YAML: kind detection, metadata, Namespace, Pod, Service and
 * Gateway, and the table-driven field decoder shared with objects_route.c and
 * objects_authz.c. Every problem becomes a diagnostic naming the node's location, the object
 * and the dotted field path; decoding carries on so one pass reports every error. */
#include "objects_int.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

/* ---- names and small queries ---- */

static const char *const kind_names[GM_KIND__MAX] = {
    [GM_KIND_NAMESPACE] = "Namespace", [GM_KIND_POD] = "Pod",
    [GM_KIND_SERVICE] = "Service",     [GM_KIND_GATEWAY] = "Gateway",
    [GM_KIND_HTTPROUTE] = "HTTPRoute", [GM_KIND_AUTHZ] = "AuthorizationPolicy",
};

const char *gm_kind_name(enum gm_kind k)
{
    return (unsigned)k < GM_KIND__MAX ? kind_names[k] : "Unknown";
}

const char *gm_kvs_get(const struct gm_kvs *kvs, const char *key)
{
    for (size_t i = 0; i < kvs->n; i++)
        if (strcmp(kvs->v[i].key, key) == 0)
            return kvs->v[i].value;
    return NULL;
}

bool gm_kvs_subset(const struct gm_kvs *sel, const struct gm_kvs *labels)
{
    for (size_t i = 0; i < sel->n; i++) {
        const char *v = gm_kvs_get(labels, sel->v[i].key);
        if (v == NULL || strcmp(v, sel->v[i].value) != 0)
            return false;
    }
    return true;
}

bool gm_pod_is_ready(const struct gm_pod *p)
{
    if (p->has_ready)
        return p->ready_cond;
    return p->ip.family != 0;
}

static void format_label(enum gm_kind k, const char *ns, const char *name, char *buf, size_t len)
{
    if (name == NULL)
        name = "(unnamed)";
    if (ns)
        snprintf(buf, len, "%s %s/%s", gm_kind_name(k), ns, name);
    else
        snprintf(buf, len, "%s %s", gm_kind_name(k), name);
}

const char *gm_object_label(const struct gm_object *o, char *buf, size_t len)
{
    format_label(o->kind, o->meta.namespace, o->meta.name, buf, len);
    return buf;
}

/* ---- checks ---- */

static const char *check_protocol(const char *s)
{
    if (strcmp(s, "TCP") == 0 || strcmp(s, "UDP") == 0 || strcmp(s, "SCTP") == 0)
        return NULL;
    return "protocol must be TCP, UDP or SCTP";
}

static const char *check_service_type(const char *s)
{
    static const char *const types[] = {"ClusterIP", "NodePort", "LoadBalancer", "ExternalName"};

    for (size_t i = 0; i < GM_ARRAY_LEN(types); i++)
        if (strcmp(s, types[i]) == 0)
            return NULL;
    return "type must be ClusterIP, NodePort, LoadBalancer or ExternalName";
}

/* ---- metadata ---- */

static bool take_digits(const char **p, int n, int *out)
{
    *out = 0;
    for (int i = 0; i < n; i++, (*p)++) {
        if (**p < '0' || **p > '9')
            return false;
        *out = *out * 10 + (**p - '0');
    }
    return true;
}

static bool take_char(const char **p, char c)
{
    if (**p != c)
        return false;
    (*p)++;
    return true;
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

    return m == 2 && leap ? 29 : days[m - 1];
}

/* Offset "Z" or "+hh:mm"/"-hh:mm" in seconds east of UTC. */
static bool take_offset(const char **p, int *secs)
{
    int sign = **p == '-' ? -1 : 1, hh, mm;

    if (take_char(p, 'Z')) {
        *secs = 0;
        return true;
    }
    if (!take_char(p, '+') && !take_char(p, '-'))
        return false;
    if (!take_digits(p, 2, &hh) || !take_char(p, ':') || !take_digits(p, 2, &mm) || hh > 23 ||
        mm > 59)
        return false;
    *secs = sign * (hh * 3600 + mm * 60);
    return true;
}

/* RFC 3339 date-time ("2026-01-02T03:04:05Z", fraction and offset allowed) to Unix seconds. */
static int parse_rfc3339(const char *s, int64_t *out)
{
    struct tm tm = {0};
    int y, mo, da, h, mi, se, off;

    if (!take_digits(&s, 4, &y) || !take_char(&s, '-') || !take_digits(&s, 2, &mo) ||
        !take_char(&s, '-') || !take_digits(&s, 2, &da) || !take_char(&s, 'T') ||
        !take_digits(&s, 2, &h) || !take_char(&s, ':') || !take_digits(&s, 2, &mi) ||
        !take_char(&s, ':') || !take_digits(&s, 2, &se))
        return -EINVAL;
    if (mo < 1 || mo > 12 || da < 1 || da > days_in_month(y, mo) || h > 23 || mi > 59 || se > 59)
        return -EINVAL;
    if (take_char(&s, '.')) {
        if (*s < '0' || *s > '9')
            return -EINVAL;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    if (!take_offset(&s, &off) || *s != '\0')
        return -EINVAL;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = da;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se;
    *out = (int64_t)timegm(&tm) - off;
    return 0;
}

static int decode_created(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    struct gm_meta *m = base;
    char *s;

    if (gm_objects_str(d, v, &s) != 0)
        return 0;
    if (parse_rfc3339(s, &m->created) < 0)
        gm_objects_error(d, v, NULL, "\"%s\" is not an RFC 3339 time (2006-01-02T15:04:05Z)", s);
    return 0;
}

static const struct gm_field meta_fields[] = {
    GM_FIELD_STR(struct gm_meta, "name", name, NULL, GM_F_REQUIRED),
    GM_FIELD_STR(struct gm_meta, "namespace", namespace, NULL, 0),
    GM_FIELD_STR(struct gm_meta, "uid", uid, NULL, 0),
    GM_FIELD_FUNC("creationTimestamp", decode_created, 0),
    GM_FIELD_INT64(struct gm_meta, "generation", generation, 0, INT64_MAX),
    GM_FIELD_KVS(struct gm_meta, "labels", labels),
    GM_FIELD_KVS(struct gm_meta, "annotations", annotations),
};

static int decode_meta(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    struct gm_object *o = base;

    gm_objects_map(d, v, meta_fields, GM_ARRAY_LEN(meta_fields), false, &o->meta);
    if (o->meta.name && o->meta.name[0] == '\0')
        gm_objects_error(d, gm_ynode_get(v, "name"), "name", "must not be empty");
    return 0;
}

/* ---- Pod ---- */

static const struct gm_field container_port_fields[] = {
    GM_FIELD_INT(struct gm_container_port, "containerPort", port, 1, 65535, GM_F_REQUIRED),
    GM_FIELD_STR(struct gm_container_port, "name", name, gm_objects_check_port_name, 0),
    GM_FIELD_STR(struct gm_container_port, "protocol", protocol, check_protocol, 0),
};

static int decode_container_port(struct gm_objdec *d, const struct gm_ynode *item, void *elem)
{
    struct gm_container_port *p = elem;

    gm_objects_map(d, item, container_port_fields, GM_ARRAY_LEN(container_port_fields), false, p);
    if (p->protocol == NULL)
        p->protocol = "TCP";
    return 0;
}

static int decode_container_ports(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    struct gm_container *c = base;

    return gm_objects_seq(d, v, GM_NO_LIMIT, sizeof(*c->ports), (void **)&c->ports, &c->n_ports,
                          decode_container_port);
}

static const struct gm_field env_fields[] = {
    GM_FIELD_STR(struct gm_kv, "name", key, NULL, GM_F_REQUIRED),
    GM_FIELD_STR(struct gm_kv, "value", value, NULL, 0),
};

static int decode_env_var(struct gm_objdec *d, const struct gm_ynode *item, void *elem)
{
    return gm_objects_map(d, item, env_fields, GM_ARRAY_LEN(env_fields), false, elem);
}

/* Only literal values are kept: valueFrom needs the API server. */
static int decode_env(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    struct gm_container *c = base;
    struct gm_kv *kv;
    size_t n, k = 0;

    gm_objects_seq(d, v, GM_NO_LIMIT, sizeof(*kv), (void **)&kv, &n, decode_env_var);
    for (size_t i = 0; i < n; i++)
        if (kv[i].key && kv[i].value)
            kv[k++] = kv[i];
    c->env.v = kv;
    c->env.n = k;
    return 0;
}

static const struct gm_field container_fields[] = {
    GM_FIELD_STR(struct gm_container, "name", name, NULL, 0),
    GM_FIELD_STR(struct gm_container, "image", image, NULL, 0),
    GM_FIELD_STRS(struct gm_container, "command", command, 0, NULL),
    GM_FIELD_STRS(struct gm_container, "args", args, 0, NULL),
    GM_FIELD_FUNC("env", decode_env, 0),
    GM_FIELD_FUNC("ports", decode_container_ports, 0),
};

static int decode_container(struct gm_objdec *d, const struct gm_ynode *item, void *elem)
{
    return gm_objects_map(d, item, container_fields, GM_ARRAY_LEN(container_fields), false, elem);
}

static int decode_containers(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    struct gm_pod *p = base;

    return gm_objects_seq(d, v, GM_NO_LIMIT, sizeof(*p->containers), (void **)&p->containers,
                          &p->n_containers, decode_container);
}

/* Deprecated spelling; serviceAccountName wins whichever comes first. */
static int decode_sa_deprecated(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    struct gm_pod *p = base;
    char *s;

    if (gm_objects_str(d, v, &s) == 0 && p->service_account == NULL)
        p->service_account = s;
    return 0;
}

static const struct gm_field pod_spec_fields[] = {
    GM_FIELD_STR(struct gm_pod, "nodeName", node_name, NULL, 0),
    GM_FIELD_STR(struct gm_pod, "serviceAccountName", service_account, NULL, 0),
    GM_FIELD_FUNC("serviceAccount", decode_sa_deprecated, 0),
    GM_FIELD_BOOL(struct gm_pod, "hostNetwork", host_network),
    GM_FIELD_FUNC("containers", decode_containers, 0),
};

struct pod_condition {
    char *type;
    char *status;
};

static const struct gm_field condition_fields[] = {
    GM_FIELD_STR(struct pod_condition, "type", type, NULL, GM_F_REQUIRED),
    GM_FIELD_STR(struct pod_condition, "status", status, NULL, GM_F_REQUIRED),
};

static int decode_condition(struct gm_objdec *d, const struct gm_ynode *item, void *elem)
{
    return gm_objects_map(d, item, condition_fields, GM_ARRAY_LEN(condition_fields), false, elem);
}

static int decode_conditions(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    struct gm_pod *p = base;
    struct pod_condition *c;
    size_t n;

    gm_objects_seq(d, v, GM_NO_LIMIT, sizeof(*c), (void **)&c, &n, decode_condition);
    for (size_t i = 0; i < n; i++) {
        if (c[i].type && c[i].status && strcmp(c[i].type, "Ready") == 0) {
            p->has_ready = true;
            p->ready_cond = strcmp(c[i].status, "True") == 0;
        }
    }
    return 0;
}

static int decode_pod_ip(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    struct gm_pod *p = base;
    char *s;

    if (gm_objects_str(d, v, &s) != 0 || *s == '\0')
        return 0;
    if (gm_ip_parse(s, &p->ip) < 0) {
        gm_objects_error(d, v, NULL, "\"%s\" is not an IP address", s);
        return -EINVAL;
    }
    p->pod_ip = s;
    return 0;
}

static const struct gm_field pod_status_fields[] = {
    GM_FIELD_FUNC("podIP", decode_pod_ip, 0),
    GM_FIELD_STR(struct gm_pod, "phase", phase, NULL, 0),
    GM_FIELD_FUNC("conditions", decode_conditions, 0),
};

static int decode_pod_spec(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    struct gm_object *o = base;

    return gm_objects_map(d, v, pod_spec_fields, GM_ARRAY_LEN(pod_spec_fields), false, &o->pod);
}

static int decode_pod_status(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    struct gm_object *o = base;

    return gm_objects_map(d, v, pod_status_fields, GM_ARRAY_LEN(pod_status_fields), false, &o->pod);
}

/* ---- Service ---- */

static int decode_target_port(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    struct gm_service_port *p = base;
    int64_t port;

    if (v->type == GM_YNODE_SCALAR && v->plain && gm_objects_parse_int(v->str, &port) == 0) {
        if (gm_objects_int(d, v, 1, 65535, &port) == 0)
            p->target_port = (int)port;
        return 0;
    }
    if (gm_objects_str(d, v, &p->target_port_name) != 0)
        return 0;
    const char *why = gm_objects_check_port_name(p->target_port_name);
    if (why)
        gm_objects_error(d, v, NULL, "\"%s\": %s", p->target_port_name, why);
    return 0;
}

static const struct gm_field service_port_fields[] = {
    GM_FIELD_STR(struct gm_service_port, "name", name, gm_check_dns_label, 0),
    GM_FIELD_INT(struct gm_service_port, "port", port, 1, 65535, GM_F_REQUIRED),
    GM_FIELD_STR(struct gm_service_port, "protocol", protocol, check_protocol, 0),
    GM_FIELD_STR(struct gm_service_port, "appProtocol", app_protocol, NULL, 0),
    GM_FIELD_FUNC("targetPort", decode_target_port, 0),
};

static int decode_service_port(struct gm_objdec *d, const struct gm_ynode *item, void *elem)
{
    struct gm_service_port *p = elem;

    p->loc = gm_objects_loc(d, item);
    gm_objects_map(d, item, service_port_fields, GM_ARRAY_LEN(service_port_fields), false, p);
    if (p->protocol == NULL)
        p->protocol = "TCP";
    if (p->target_port_name)
        p->target_port = -1;
    else if (p->target_port == 0)
        p->target_port = p->port;
    return 0;
}

static int decode_service_ports(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    struct gm_service *s = base;

    return gm_objects_seq(d, v, GM_NO_LIMIT, sizeof(*s->ports), (void **)&s->ports, &s->n_ports,
                          decode_service_port);
}

static int decode_cluster_ip(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    struct gm_service *s = base;

    if (gm_objects_str(d, v, &s->cluster_ip) != 0)
        return 0;
    if (s->cluster_ip[0] == '\0' || strcmp(s->cluster_ip, "None") == 0)
        return 0;
    if (gm_ip_parse(s->cluster_ip, &s->vip) < 0)
        gm_objects_error(d, v, NULL, "\"%s\" is not an IP address or \"None\"", s->cluster_ip);
    return 0;
}

static int decode_selector(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    struct gm_service *s = base;
    s->has_selector = true;
    gm_objects_kvs(d, v, &s->selector);
    return 0;
}

static const struct gm_field service_spec_fields[] = {
    GM_FIELD_STR(struct gm_service, "type", type, check_service_type, 0),
    GM_FIELD_FUNC("clusterIP", decode_cluster_ip, 0),
    GM_FIELD_FUNC("selector", decode_selector, 0),
    GM_FIELD_FUNC("ports", decode_service_ports, 0),
};

static int decode_service_spec(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    struct gm_object *o = base;

    return gm_objects_map(d, v, service_spec_fields, GM_ARRAY_LEN(service_spec_fields), false,
                          &o->service);
}

/* ---- Gateway ---- */

static const struct gm_field listener_fields[] = {
    GM_FIELD_STR(struct gm_gateway_listener, "name", name, NULL, GM_F_REQUIRED),
    GM_FIELD_STR(struct gm_gateway_listener, "hostname", hostname, NULL, 0),
    GM_FIELD_INT(struct gm_gateway_listener, "port", port, 1, 65535, GM_F_REQUIRED),
    GM_FIELD_STR(struct gm_gateway_listener, "protocol", protocol, NULL, GM_F_REQUIRED),
};

static int decode_listener(struct gm_objdec *d, const struct gm_ynode *item, void *elem)
{
    return gm_objects_map(d, item, listener_fields, GM_ARRAY_LEN(listener_fields), false, elem);
}

static int decode_listeners(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    struct gm_gateway *g = base;

    return gm_objects_seq(d, v, 64, sizeof(*g->listeners), (void **)&g->listeners, &g->n_listeners,
                          decode_listener);
}

static const struct gm_field gateway_spec_fields[] = {
    GM_FIELD_STR(struct gm_gateway, "gatewayClassName", class_name, NULL, GM_F_REQUIRED),
    GM_FIELD_FUNC("listeners", decode_listeners, GM_F_REQUIRED),
};

static int decode_gateway_spec(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    struct gm_object *o = base;

    return gm_objects_map(d, v, gateway_spec_fields, GM_ARRAY_LEN(gateway_spec_fields), false,
                          &o->gateway);
}

static int decode_route_spec(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    gm_objects_route_decode(d, v, base);
    return 0;
}

static int decode_authz_spec(struct gm_objdec *d, const struct gm_ynode *v, void *base)
{
    gm_objects_authz_decode(d, v, base);
    return 0;
}

/* ---- kinds ---- */

#define TOP_COMMON GM_FIELD_IGNORE("apiVersion"), GM_FIELD_IGNORE("kind")
#define TOP_META   GM_FIELD_FUNC("metadata", decode_meta, GM_F_REQUIRED)

static const struct gm_field namespace_top[] = {TOP_COMMON, TOP_META};
static const struct gm_field pod_top[] = {TOP_COMMON, TOP_META,
                                          GM_FIELD_FUNC("spec", decode_pod_spec, 0),
                                          GM_FIELD_FUNC("status", decode_pod_status, 0)};
static const struct gm_field service_top[] = {TOP_COMMON, TOP_META,
                                              GM_FIELD_FUNC("spec", decode_service_spec, 0)};
static const struct gm_field gateway_top[] = {
    TOP_COMMON, TOP_META, GM_FIELD_FUNC("spec", decode_gateway_spec, GM_F_REQUIRED),
    GM_FIELD_IGNORE("status")};
static const struct gm_field route_top[] = {TOP_COMMON, TOP_META,
                                            GM_FIELD_FUNC("spec", decode_route_spec, GM_F_REQUIRED),
                                            GM_FIELD_IGNORE("status")};
static const struct gm_field authz_top[] = {
    TOP_COMMON, TOP_META, GM_FIELD_FUNC("spec", decode_authz_spec, 0), GM_FIELD_IGNORE("status")};

static const struct kind_def {
    const char *group; /* apiVersion before the '/', "" for the core group */
    const char *versions[2];
    const char *name;
    enum gm_kind kind;
    const struct gm_field *top;
    size_t n_top;
    bool strict; /* unknown top-level fields are errors */
} kind_defs[] = {
    {"", {"v1"}, "Namespace", GM_KIND_NAMESPACE, namespace_top, GM_ARRAY_LEN(namespace_top), 0},
    {"", {"v1"}, "Pod", GM_KIND_POD, pod_top, GM_ARRAY_LEN(pod_top), 0},
    {"", {"v1"}, "Service", GM_KIND_SERVICE, service_top, GM_ARRAY_LEN(service_top), 0},
    {"gateway.networking.k8s.io",
     {"v1", "v1beta1"},
     "Gateway",
     GM_KIND_GATEWAY,
     gateway_top,
     GM_ARRAY_LEN(gateway_top),
     0},
    {"gateway.networking.k8s.io",
     {"v1", "v1beta1"},
     "HTTPRoute",
     GM_KIND_HTTPROUTE,
     route_top,
     GM_ARRAY_LEN(route_top),
     1},
    {"security.istio.io",
     {"v1", "v1beta1"},
     "AuthorizationPolicy",
     GM_KIND_AUTHZ,
     authz_top,
     GM_ARRAY_LEN(authz_top),
     1},
};

static bool group_is(const char *api_version, const char *group)
{
    const char *slash = strrchr(api_version, '/');
    size_t gl = slash ? (size_t)(slash - api_version) : 0;

    return strlen(group) == gl && strncmp(api_version, group, gl) == 0;
}

static bool version_is(const struct kind_def *k, const char *api_version)
{
    const char *slash = strrchr(api_version, '/');
    const char *v = slash ? slash + 1 : api_version;

    for (size_t i = 0; i < GM_ARRAY_LEN(k->versions) && k->versions[i]; i++)
        if (strcmp(v, k->versions[i]) == 0)
            return true;
    return false;
}

/* The known kind for apiVersion/kind; NULL (with a warning for a known kind in an unsupported
 * version of its group) for everything else. */
static const struct kind_def *kind_lookup(struct gm_objdec *d, const struct gm_ynode *av,
                                          const char *api_version, const char *kind)
{
    for (size_t i = 0; i < GM_ARRAY_LEN(kind_defs); i++) {
        const struct kind_def *k = &kind_defs[i];
        if (strcmp(kind, k->name) != 0 || !group_is(api_version, k->group))
            continue;
        if (version_is(k, api_version))
            return k;
        size_t old = gm_objects_push(d, "apiVersion");
        gm_objects_warn(d, av, NULL, "%s %s is not supported; the object is skipped", api_version,
                        kind);
        gm_objects_pop(d, old);
    }
    return NULL;
}

/* apiVersion and kind as strings; 0, or -EINVAL after reporting. */
static int read_type_field(struct gm_objdec *d, const struct gm_ynode *doc, const char *key,
                           char **out)
{
    size_t old = gm_objects_push(d, key);
    int rc = gm_objects_str(d, gm_ynode_get(doc, key), out);

    if (rc == 1)
        gm_objects_error(d, doc, NULL, "missing required field");
    else if (rc == 0 && **out == '\0')
        gm_objects_error(d, gm_ynode_get(doc, key), NULL, "must not be empty");
    gm_objects_pop(d, old);
    return rc == 0 && **out ? 0 : -EINVAL;
}

static int read_type(struct gm_objdec *d, const struct gm_ynode *doc, char **av, char **kind)
{
    int rc_av = read_type_field(d, doc, "apiVersion", av);
    int rc_kind = read_type_field(d, doc, "kind", kind);

    return rc_av == 0 && rc_kind == 0 ? 0 : -EINVAL;
}

static const char *peek_str(const struct gm_ynode *map, const char *key)
{
    const struct gm_ynode *v = gm_ynode_get(map, key);

    if (v == NULL || v->type != GM_YNODE_SCALAR || gm_ynode_is_null(v) || v->len == 0)
        return NULL;
    return v->str;
}

/* Label and namespace from metadata before it is decoded, so every diagnostic carries them. */
static void set_identity(struct gm_objdec *d, struct gm_object *o, const struct gm_ynode *doc)
{
    const struct gm_ynode *meta = gm_ynode_get(doc, "metadata");
    const char *ns = peek_str(meta, "namespace");
    char label[384];

    if (o->kind == GM_KIND_NAMESPACE)
        ns = NULL;
    else if (ns == NULL)
        ns = "default";
    d->ns = ns ? gm_arena_strdup(d->a, ns) : NULL;
    format_label(o->kind, d->ns, peek_str(meta, "name"), label, sizeof(label));
    d->label = gm_arena_strdup(d->a, label);
}

static void object_init(struct gm_objdec *d, struct gm_object *o, const struct kind_def *k,
                        const struct gm_ynode *doc)
{
    o->kind = k->kind;
    o->loc = gm_objects_loc(d, doc);
    o->meta.created = INT64_MAX;
}

static void object_defaults(struct gm_objdec *d, struct gm_object *o)
{
    o->meta.namespace = (char *)d->ns;
    if (o->kind == GM_KIND_POD && o->pod.service_account == NULL)
        o->pod.service_account = "default";
    if (o->kind == GM_KIND_SERVICE && o->service.type == NULL)
        o->service.type = "ClusterIP";
}

int gm_object_decode(struct gm_arena *a, const struct gm_ynode *doc, struct gm_object **out,
                     struct gm_diags *diags)
{
    struct gm_objdec d = {.a = a, .diags = diags};
    char *av, *kind;

    *out = NULL;
    if (doc == NULL || doc->type != GM_YNODE_MAP) {
        gm_diags_add(diags, GM_DIAG_ERROR, doc ? &doc->loc : NULL, NULL, NULL,
                     "a Kubernetes object must be a mapping, got %s",
                     doc ? gm_objects_node_kind(doc) : "nothing");
        return -EINVAL;
    }
    if (read_type(&d, doc, &av, &kind) < 0)
        return -EINVAL;
    d.file = gm_arena_strdup(a, doc->loc.file);
    const struct kind_def *k = kind_lookup(&d, gm_ynode_get(doc, "apiVersion"), av, kind);
    if (k == NULL)
        return 0;
    struct gm_object *o = GM_ARENA_NEW(a, struct gm_object);
    object_init(&d, o, k, doc);
    set_identity(&d, o, doc);
    gm_objects_check_dups(&d, doc, 0);
    gm_objects_map(&d, doc, k->top, k->n_top, k->strict, o);
    object_defaults(&d, o);
    if (d.errors)
        return -EINVAL;
    *out = o;
    return 1;
}
