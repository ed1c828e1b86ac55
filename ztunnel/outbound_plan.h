/* "Where does this connection go": the outbound decision of DESIGN §5 as a pure function over
 * a snapshot. Fails closed: an enrolled destination is never planned in plaintext. */
#ifndef ZT_OUTBOUND_PLAN_H
#define ZT_OUTBOUND_PLAN_H

#include <stdint.h>

#include "gammamesh/snapshot.h"

#define ZT_HBONE_PORT 15008

enum zt_plan_kind {
    ZT_PLAN_REFUSE = 0,  /* close the application connection; reason says why */
    ZT_PLAN_PASSTHROUGH, /* plain TCP to the original destination */
    ZT_PLAN_HBONE,       /* mTLS HBONE tunnel to connect_ip:15008 with CONNECT authority */
    ZT_PLAN__MAX
};

struct zt_plan {
    enum zt_plan_kind kind;
    const char *reason;                 /* REFUSE: why; otherwise a short description */
    struct gm_ip connect_ip;            /* where the TCP connection goes */
    int connect_port;                   /* 15008 for HBONE, else the destination port */
    char authority[64];                 /* HBONE: "ip:port" (IPv6 in brackets) */
    const char *expected_identity;      /* HBONE: the peer identity to require */
    const struct gm_svc *svc;           /* the Service addressed, or NULL */
    const struct gm_workload *dst;      /* the destination workload, or NULL (waypoint / unknown) */
    const struct gm_waypoint *waypoint; /* set when handed to a waypoint */
};

/* Plan a connection from src (NULL: unknown source → refused) to the original destination
 * (odst, oport). rnd picks among endpoints or waypoint pods. Always fills *out; returns 0, or
 * -EHOSTUNREACH / -EPERM for refusals (then out->reason says why). */
int zt_outbound_plan(const struct gm_snapshot *s, const struct gm_workload *src,
                     const struct gm_ip *odst, int oport, uint32_t rnd, struct zt_plan *out);

#endif
