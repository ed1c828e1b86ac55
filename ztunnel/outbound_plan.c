/* The outbound decision. */
#include "outbound_plan.h"

#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>

static int refuse(struct zt_plan *p, int err, const char *reason)
{
    p->kind = ZT_PLAN_REFUSE;
    p->reason = reason;
    return err;
}

static void plan_hbone(struct zt_plan *p, const struct gm_ip *ip, int authority_port,
                       const struct gm_ip *authority_ip, const char *identity)
{
    p->kind = ZT_PLAN_HBONE;
    p->connect_ip = *ip;
    p->connect_port = ZT_HBONE_PORT;
    p->expected_identity = identity;
    gm_ipport_format(authority_ip, authority_port, p->authority, sizeof(p->authority));
}

/* To a workload (or an unknown address): HBONE when enrolled, else plain TCP. */
static int plan_direct(struct zt_plan *p, const struct gm_workload *w, const struct gm_ip *ip,
                       int port)
{
    p->dst = w;
    if (w && w->enrolled) {
        plan_hbone(p, &w->ip, port, &w->ip, w->identity);
        p->reason = "hbone";
        return 0;
    }
    p->kind = ZT_PLAN_PASSTHROUGH;
    p->connect_ip = *ip;
    p->connect_port = port;
    p->reason = w ? "destination not enrolled" : "destination unknown to the mesh";
    return 0;
}

static bool is_waypoint_itself(const struct gm_workload *src, const struct gm_waypoint *wp)
{
    return src->waypoint_name && strcmp(src->waypoint_name, wp->name) == 0 &&
           strcmp(src->namespace, wp->namespace) == 0;
}

static int plan_service(const struct gm_snapshot *s, const struct gm_workload *src,
                        const struct gm_svc *svc, int port_index, const struct gm_ip *odst,
                        int oport, uint32_t rnd, struct zt_plan *p)
{
    const struct gm_endpoint *ready[256];
    size_t n = 0;

    if (svc->use_waypoint && !(svc->waypoint && is_waypoint_itself(src, svc->waypoint))) {
        const struct gm_waypoint *wp = svc->waypoint;
        if (wp == NULL)
            return refuse(p, -EHOSTUNREACH, "service waypoint does not exist (fail closed)");
        if (wp->n_pods == 0)
            return refuse(p, -EHOSTUNREACH, "service waypoint has no ready pod (fail closed)");
        const struct gm_workload *w = wp->pods[rnd % wp->n_pods];
        plan_hbone(p, &w->ip, oport, odst, wp->identity);
        p->waypoint = wp;
        p->reason = "waypoint";
        return 0;
    }
    for (size_t i = 0; i < svc->n_endpoints && n < GM_ARRAY_LEN(ready); i++)
        if (svc->endpoints[i].target_ports[port_index] > 0)
            ready[n++] = &svc->endpoints[i];
    if (n == 0)
        return refuse(p, -EHOSTUNREACH, "no healthy upstream for the service");
    const struct gm_endpoint *e = ready[rnd % n];
    (void)s;
    return plan_direct(p, e->w, &e->w->ip, e->target_ports[port_index]);
}

int zt_outbound_plan(const struct gm_snapshot *s, const struct gm_workload *src,
                     const struct gm_ip *odst, int oport, uint32_t rnd, struct zt_plan *out)
{
    int port_index = -1;

    memset(out, 0, sizeof(*out));
    if (src == NULL)
        return refuse(out, -EPERM, "unknown source workload");
    const struct gm_svc *svc = gm_snapshot_service_by_vip(s, odst, oport, &port_index);
    if (svc) {
        out->svc = svc;
        return plan_service(s, src, svc, port_index, odst, oport, rnd, out);
    }
    return plan_direct(out, gm_snapshot_workload_by_ip(s, odst), odst, oport);
}
