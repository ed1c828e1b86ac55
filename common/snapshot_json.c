/* JSON rendering of snapshots for /config_dump. */
#include "gammamesh/snapshot_json.h"

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *ip_json(const struct gm_ip *ip)
{
    char buf[64];

    return ip->family ? json_string(gm_ip_format(ip, buf, sizeof(buf))) : json_null();
}

json_t *gm_diags_to_json(const struct gm_diags *d)
{
    json_t *arr = json_array();

    for (size_t i = 0; i < d->n; i++) {
        const struct gm_diag *g = &d->v[i];
        char line[2048];
        json_array_append_new(arr,
                              json_pack("{s:s, s:o, s:i, s:i, s:o, s:o, s:s, s:s}", "severity",
                                        g->severity == GM_DIAG_ERROR ? "error" : "warning", "file",
                                        str_or_null(g->file), "line", g->line, "col", g->col,
                                        "object", str_or_null(g->object), "field",
                                        str_or_null(g->field), "reason", g->reason ? g->reason : "",
                                        "message", gm_diag_format(g, line, sizeof(line))));
    }
    return arr;
}

static json_t *workload_json(const struct gm_workload *w)
{
    json_t *pols = json_array();

    for (size_t i = 0; i < w->n_policies; i++)
        json_array_append_new(
            pols, json_sprintf("%s/%s", w->policies[i]->meta.namespace, w->policies[i]->meta.name));
    return json_pack("{s:s, s:s, s:s, s:o, s:o, s:s, s:o, s:b, s:b, s:o, s:o}", "name", w->name,
                     "namespace", w->namespace, "uid", w->uid, "ip", ip_json(&w->ip), "node",
                     str_or_null(w->node), "identity", w->identity, "netns", str_or_null(w->netns),
                     "ready", w->ready, "enrolled", w->enrolled, "waypoint_of",
                     str_or_null(w->waypoint_name), "policies", pols);
}

static json_t *table_json(const struct gm_route_table *t)
{
    json_t *arr = json_array();

    for (size_t i = 0; i < t->n; i++) {
        const struct gm_cmatch *m = t->v[i];
        const struct gm_object *r = m->rule->route;
        json_array_append_new(
            arr, json_pack("{s:s, s:s, s:i, s:o, s:i}", "namespace", r->meta.namespace, "route",
                           r->meta.name, "rule", (int)m->rule->index, "rule_name",
                           str_or_null(m->rule->name), "match", (int)m->match_index));
    }
    return arr;
}

static json_t *port_json(const struct gm_svc_port *p)
{
    json_t *o = json_pack("{s:i, s:o, s:o}", "port", p->port, "name", str_or_null(p->name),
                          "app_protocol", str_or_null(p->app_protocol));
    if (p->has_producer)
        json_object_set_new(o, "producer_routes", table_json(&p->producer));
    if (p->n_consumers) {
        json_t *c = json_object();
        for (size_t i = 0; i < p->n_consumers; i++)
            json_object_set_new(c, p->consumers[i].namespace, table_json(&p->consumers[i].table));
        json_object_set_new(o, "consumer_routes", c);
    }
    return o;
}

static json_t *service_json(const struct gm_svc *svc)
{
    json_t *ports = json_array(), *eps = json_array();

    for (size_t i = 0; i < svc->n_ports; i++)
        json_array_append_new(ports, port_json(&svc->ports[i]));
    for (size_t i = 0; i < svc->n_endpoints; i++) {
        const struct gm_endpoint *e = &svc->endpoints[i];
        json_t *tp = json_array();
        for (size_t k = 0; k < svc->n_ports; k++)
            json_array_append_new(tp, json_integer(e->target_ports[k]));
        json_array_append_new(eps, json_pack("{s:s, s:o, s:o}", "pod", e->w->name, "ip",
                                             ip_json(&e->w->ip), "target_ports", tp));
    }
    return json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:b, s:o}", "name", svc->name, "namespace",
                     svc->namespace, "hostname", svc->hostname, "vip", ip_json(&svc->vip), "ports",
                     ports, "endpoints", eps, "has_waypoint", svc->waypoint != NULL, "use_waypoint",
                     str_or_null(svc->use_waypoint));
}

static json_t *waypoint_json(const struct gm_waypoint *wp)
{
    json_t *pods = json_array();

    for (size_t i = 0; i < wp->n_pods; i++)
        json_array_append_new(pods, json_string(wp->pods[i]->name));
    return json_pack("{s:s, s:s, s:s, s:o}", "name", wp->name, "namespace", wp->namespace,
                     "identity", wp->identity, "pods", pods);
}

static json_t *object_names(const struct gm_object *const *v, size_t n)
{
    json_t *arr = json_array();

    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_sprintf("%s/%s", v[i]->meta.namespace, v[i]->meta.name));
    return arr;
}

json_t *gm_snapshot_to_json(const struct gm_snapshot *s)
{
    json_t *nss = json_array(), *wls = json_array(), *svcs = json_array(), *wps = json_array();

    for (size_t i = 0; i < s->n_namespaces; i++) {
        const struct gm_namespace_info *ns = &s->namespaces[i];
        json_array_append_new(nss, json_pack("{s:s, s:b, s:o}", "name", ns->name, "enrolled",
                                             ns->enrolled, "use_waypoint",
                                             str_or_null(ns->use_waypoint)));
    }
    for (size_t i = 0; i < s->n_workloads; i++)
        json_array_append_new(wls, workload_json(&s->workloads[i]));
    for (size_t i = 0; i < s->n_services; i++)
        json_array_append_new(svcs, service_json(&s->services[i]));
    for (size_t i = 0; i < s->n_waypoints; i++)
        json_array_append_new(wps, waypoint_json(&s->waypoints[i]));
    return json_pack("{s:I, s:I, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "generation",
                     (json_int_t)s->generation, "objects", (json_int_t)s->n_objects, "trust_domain",
                     s->opts.trust_domain, "namespaces", nss, "workloads", wls, "services", svcs,
                     "waypoints", wps, "policies", object_names(s->policies, s->n_policies),
                     "routes", object_names(s->routes, s->n_routes), "diagnostics",
                     gm_diags_to_json(&s->diags));
}
