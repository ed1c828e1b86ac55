/* Outbound flow (listener 15001 in a pod's netns): original destination, plan, then plain TCP
 * or an HBONE stream from the pool. */
#include <errno.h>
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80 /* linux/netfilter_ipv4.h, which clashes with netinet/in.h */
#endif
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

#include "gammamesh/log.h"
#include "outbound_plan.h"
#include "proxy.h"
#include "telemetry.h"

/* The address the application dialled (REDIRECT keeps it for SO_ORIGINAL_DST). */
static int original_dst(uv_tcp_t *t, struct gm_ip *ip, int *port)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    uv_os_fd_t fd;

    if (uv_fileno((uv_handle_t *)t, &fd) < 0)
        return -EBADF;
    if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &sin, &len) < 0)
        return -errno;
    memset(ip, 0, sizeof(*ip));
    ip->family = AF_INET;
    memcpy(ip->addr, &sin.sin_addr, 4);
    *port = ntohs(sin.sin_port);
    return 0;
}

static void peer_of(uv_tcp_t *t, struct gm_ip *ip, int *port)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    memset(ip, 0, sizeof(*ip));
    *port = 0;
    if (uv_tcp_getpeername(t, (struct sockaddr *)&ss, &len) < 0)
        return;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        ip->family = AF_INET;
        memcpy(ip->addr, &sin->sin_addr, 4);
        *port = ntohs(sin->sin_port);
    }
}

void zt_sockaddr_of(const struct gm_ip *ip, int port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (ip->family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        memcpy(&s6->sin6_addr, ip->addr, 16);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        memcpy(&s4->sin_addr, ip->addr, 4);
    }
}

/* What the plan chose, for the access log (again when a retry plans anew). */
static void describe_dst(struct zt_conn *c, const struct zt_plan *p)
{
    if (p->svc)
        zt_conn_set_str(&c->dst_service, p->svc->hostname);
    if (p->dst) {
        zt_conn_set_str(&c->dst_workload, p->dst->name);
        zt_conn_set_str(&c->dst_namespace, p->dst->namespace);
    } else if (p->waypoint) {
        zt_conn_set_str(&c->dst_workload, p->waypoint->name);
        zt_conn_set_str(&c->dst_namespace, p->waypoint->namespace);
    }
    if (p->kind == ZT_PLAN_HBONE) {
        c->mtls = true;
        zt_conn_set_str(&c->dst_identity, p->expected_identity);
        zt_conn_set_str(&c->hbone_addr, p->authority);
    }
}

static void describe(struct zt_conn *c, const struct gm_workload *src, const struct zt_plan *p,
                     const struct gm_ip *sip, int sport, const struct gm_ip *dip, int dport)
{
    char buf[64];

    gm_ipport_format(sip, sport, buf, sizeof(buf));
    zt_conn_set_str(&c->src_addr, buf);
    gm_ipport_format(dip, dport, buf, sizeof(buf));
    zt_conn_set_str(&c->dst_addr, buf);
    if (src) {
        zt_conn_set_str(&c->src_workload, src->name);
        zt_conn_set_str(&c->src_namespace, src->namespace);
        zt_conn_set_str(&c->src_identity, src->identity);
    }
    describe_dst(c, p);
}

/* W3C trace context: a fresh trace id and span id per tunnelled connection, sampled. */
static void zt_traceparent(struct zt_worker *w, char buf[56])
{
    uint8_t id[24]; /* trace id (16 bytes), then span id (8) */

    for (int i = 0; i < 24; i += 4) {
        uint32_t r = zt_proxy_random(w);
        memcpy(id + i, &r, 4);
    }
    id[15] |= 1; /* never all zero: trace and span ids of zeros are invalid */
    id[23] |= 1;
    memcpy(buf, "00-", 3);
    char *p = gm_fmt_hex(buf + 3, id, 16);
    *p++ = '-';
    p = gm_fmt_hex(p, id + 16, 8);
    memcpy(p, "-01", 4);
}

static int start_hbone(struct zt_worker *w, struct zt_wpod *pod, struct zt_conn *c,
                       const struct gm_workload *src, const struct zt_plan *p)
{
    char fwd[96], addr[64], trace[64], baggage[512];
    struct gm_hbone_stream *s = NULL;

    gm_str_join(fwd, sizeof(fwd),
                (const char *[]){"for=\"", c->src_addr ? c->src_addr : "unknown", "\""}, 3);
    zt_traceparent(w, trace);
    zt_baggage(src, baggage, sizeof(baggage));
    struct gm_hbone_header hdrs[] = {
        {"forwarded", 0, fwd, 0}, {"traceparent", 0, trace, 0}, {"baggage", 0, baggage, 0}};
    int rc = gm_hbone_pool_open_stream(&w->pool, pod->uid, src->identity, p->expected_identity,
                                       &p->connect_ip, p->connect_port, p->authority, hdrs, 3,
                                       &zt_conn_stream_cbs, c, &s);
    if (rc < 0) {
        gm_ipport_format(&p->connect_ip, p->connect_port, addr, sizeof(addr));
        GM_LOG_DEBUG("outbound", "tunnel open failed", "dst=%s error=%s", addr, strerror(-rc));
        return rc;
    }
    zt_conn_attach_stream(c, &c->up, s);
    c->attempts++;
    if (gm_hbone_conn_quiet_ms(gm_hbone_stream_conn(s)) >= ZT_QUIET_TUNNEL_MS) {
        /* The tunnel may be dead (its peer vanished without a word): nothing of the app's
         * goes out before the 200, so a lost stream can be opened again elsewhere. */
        zt_conn_hold_until_response(c);
        return 0;
    }
    /* Relay at once: what the application sends first travels right behind the CONNECT. */
    zt_conn_start_relay(c);
    return 0;
}

void zt_outbound_retry(struct zt_conn *c)
{
    struct zt_worker *w = c->w;
    const struct gm_snapshot *s = zt_proxy_snapshot(w);
    struct zt_wpod *pod = c->src_uid ? zt_proxy_find_pod(w, c->src_uid) : NULL;
    const struct gm_workload *src = s && pod ? gm_snapshot_workload_by_uid(s, pod->uid) : NULL;
    struct zt_plan p;

    c->up.kind = ZT_SIDE_NONE;
    if (src == NULL) {
        zt_conn_close(c, "tunnel lost before the response");
        return;
    }
    zt_outbound_plan(s, src, &c->dst_ip, c->dst_port, zt_proxy_random(w), &p);
    if (p.kind != ZT_PLAN_HBONE) {
        c->response_flags = "CONNECT";
        zt_conn_close(c, "tunnel lost before the response");
        return;
    }
    describe_dst(c, &p);
    zt_telemetry_stream_retry(w);
    if (start_hbone(w, pod, c, src, &p) < 0) {
        c->response_flags = "CONNECT";
        zt_conn_close(c, "upstream setup failed");
    }
}

static int start_plain(struct zt_worker *w, struct zt_wpod *pod, struct zt_conn *c,
                       const struct zt_plan *p)
{
    struct sockaddr_storage ss;
    int fd = zt_proxy_pod_socket(w, pod, p->connect_ip.family);

    if (fd < 0)
        return fd;
    zt_sockaddr_of(&p->connect_ip, p->connect_port, &ss);
    return zt_conn_connect_tcp(c, fd, (struct sockaddr *)&ss, NULL);
}

void zt_outbound_accept(struct zt_worker *w, struct zt_wpod *pod, uv_stream_t *listener)
{
    struct zt_conn *c = zt_conn_new(w, ZT_DIR_OUTBOUND);
    struct gm_ip sip, dip;
    int sport = 0, dport = 0, rc;
    struct zt_plan p;

    uv_tcp_init(zt_proxy_loop(w), &c->down.tcp);
    zt_conn_accepted(c);
    if (uv_accept(listener, (uv_stream_t *)&c->down.tcp) < 0) {
        zt_conn_close(c, "accept failed");
        return;
    }
    if (original_dst(&c->down.tcp, &dip, &dport) < 0) {
        zt_conn_close(c, "no original destination");
        return;
    }
    peer_of(&c->down.tcp, &sip, &sport);
    const struct gm_snapshot *s = zt_proxy_snapshot(w);
    const struct gm_workload *src = s ? gm_snapshot_workload_by_uid(s, pod->uid) : NULL;
    if (s == NULL) {
        zt_conn_close(c, "no configuration yet");
        return;
    }
    zt_outbound_plan(s, src, &dip, dport, zt_proxy_random(w), &p);
    describe(c, src, &p, &sip, sport, &dip, dport);
    c->src_uid = gm_xstrdup(pod->uid);
    c->dst_ip = dip;
    c->dst_port = dport;
    zt_telemetry_conn_opened(w, c);
    if (dport >= 15001 && dport <= 15021 && p.kind == ZT_PLAN_PASSTHROUGH && p.dst == NULL &&
        gm_ip_equal(&dip, &src->ip)) {
        zt_conn_close(c, "refusing a connection to our own capture port");
        return;
    }
    switch (p.kind) {
    case ZT_PLAN_HBONE:
        rc = start_hbone(w, pod, c, src, &p);
        break;
    case ZT_PLAN_PASSTHROUGH:
        rc = start_plain(w, pod, c, &p);
        break;
    default:
        c->response_flags = "CONNECT";
        zt_conn_close(c, p.reason);
        return;
    }
    if (rc < 0) {
        c->response_flags = "CONNECT";
        zt_conn_close(c, "upstream setup failed");
    }
}
