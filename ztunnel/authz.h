/* L4 authorization (AuthorizationPolicy, security.istio.io/v1) evaluated at the destination:
 * any matching DENY denies; no ALLOW policy allows; otherwise a matching ALLOW is required.
 * A pure function over the snapshot's policies; no I/O. */
#ifndef ZT_AUTHZ_H
#define ZT_AUTHZ_H

#include <stddef.h>

#include "gammamesh/snapshot.h"

/* What the destination knows about a connection. */
struct zt_authz_conn {
    const char *src_identity; /* verified SPIFFE ID of the peer; NULL for plaintext */
    struct gm_ip src_ip;      /* the peer's address */
    int dst_port;             /* the destination (target) port */
};

/* 0 when allowed, -EPERM when denied; why (when non-NULL) says which policy decided, e.g.
 * "denied by ns/name" or "allow policies exist, but none allowed". Fields only a waypoint can
 * evaluate fail safe: an ALLOW rule using them never matches, a DENY rule ignores them. */
int zt_authz_check(const struct gm_workload *dst, const struct zt_authz_conn *c, char *why,
                   size_t why_len);

#endif
