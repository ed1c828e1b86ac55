/* HTTPRoute status from the waypoint (config-source kubernetes): for every parentRef whose
 * Service this waypoint serves, the Accepted and ResolvedRefs conditions the route compiler
 * found (gm_route_status), handed to the API source's writer whenever they change. A route's
 * other parents, and other controllers' entries, are left to their owners. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "gammamesh/kube.h"
#include "waypoint.h"

/* The Gateway this waypoint's Pod belongs to (its gateway-name label), or false. */
static bool own_gateway(const struct wp *wp, const struct gm_snapshot *s, const char **ns,
                        const char **name)
{
    const struct gm_workload *w = wp_self_pod(&wp->set, s);

    if (w == NULL || w->waypoint_name == NULL)
        return false;
    *ns = w->namespace;
    *name = w->waypoint_name;
    return true;
}

static json_t *condition(const char *type, bool ok, const char *reason, const char *message,
                         int64_t generation)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:I}", "type", type, "status", ok ? "True" : "False",
                     "reason", reason, "message", message ? message : "", "observedGeneration",
                     (json_int_t)generation);
}

static json_t *parent_ref(const struct gm_parent_ref *p)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "group", p->group, "kind", p->kind, "namespace",
                          p->namespace, "name", p->name);

    if (p->section_name)
        json_object_set_new(o, "sectionName", json_string(p->section_name));
    if (p->port >= 0)
        json_object_set_new(o, "port", json_integer(p->port));
    return o;
}

/* Our entries for one route: one per parentRef this waypoint serves (an empty array: none). */
static json_t *entries_for(const struct gm_route_status *rs, const char *gw_ns, const char *gw)
{
    json_t *out = json_array();
    int64_t gen = rs->route->meta.generation;

    for (size_t i = 0; i < rs->n_parents; i++) {
        const struct gm_parent_status *ps = &rs->parents[i];
        const struct gm_waypoint *wp = ps->svc ? ps->svc->waypoint : NULL;
        if (!ps->service_parent || wp == NULL || strcmp(wp->namespace, gw_ns) != 0 ||
            strcmp(wp->name, gw) != 0)
            continue;
        json_t *conds = json_pack(
            "[o, o]",
            condition("Accepted", ps->accepted, ps->accepted_reason, ps->accepted_message, gen),
            condition("ResolvedRefs", rs->resolved, rs->resolved_reason, rs->resolved_message,
                      gen));
        json_array_append_new(out, json_pack("{s:o, s:s, s:o}", "parentRef", parent_ref(ps->ref),
                                             "controllerName", GM_KUBE_CONTROLLER_NAME,
                                             "conditions", conds));
    }
    return out;
}

static void stamp_transition_time(json_t *entries)
{
    char now[32];
    size_t i, k;
    json_t *e, *c;

    if (gm_fmt_rfc3339(now, sizeof(now), (int64_t)time(NULL)) == NULL)
        return;
    json_array_foreach(entries, i, e)
    {
        json_array_foreach(json_object_get(e, "conditions"), k, c)
            json_object_set_new(c, "lastTransitionTime", json_string(now));
    }
}

void wp_route_status(struct wp *wp, const struct gm_snapshot *s)
{
    const char *gw_ns, *gw;

    if (!wp->set.route_status || wp->control.kube == NULL || !own_gateway(wp, s, &gw_ns, &gw))
        return;
    if (wp->status_sent == NULL)
        wp->status_sent = json_object();
    json_t *seen = json_object();
    for (size_t i = 0; i < s->n_route_status; i++) {
        const struct gm_route_status *rs = &s->route_status[i];
        char key[512];
        json_t *entries = entries_for(rs, gw_ns, gw);
        if (json_array_size(entries) == 0) {
            json_decref(entries);
            continue;
        }
        snprintf(key, sizeof(key), "%s/%s", rs->route->meta.namespace, rs->route->meta.name);
        char *text = json_dumps(entries, JSON_COMPACT | JSON_SORT_KEYS);
        const char *was = json_string_value(json_object_get(wp->status_sent, key));
        bool same = was && strcmp(was, text) == 0;
        json_object_set_new(seen, key, json_string(text));
        free(text);
        if (same) {
            json_decref(entries);
            continue;
        }
        stamp_transition_time(entries);
        gm_kube_route_status(wp->control.kube, rs->route->meta.namespace, rs->route->meta.name,
                             entries);
    }
    json_decref(wp->status_sent); /* routes that are gone are forgotten */
    wp->status_sent = seen;
}
