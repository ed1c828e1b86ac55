/* AuthorizationPolicy evaluation (security.istio.io/v1), shared by ztunnel (L4: at the
 * destination workload) and the waypoint (L7: per request, for the policies that target the
 * Service or the waypoint). Any matching DENY denies; without ALLOW policies the request is
 * allowed; otherwise a matching ALLOW is required. CUSTOM and AUDIT policies do not decide.
 * A field that cannot be evaluated fails safe: an ALLOW rule that uses it never matches, a DENY
 * rule matches as if it held. Pure; no I/O. */
#ifndef GAMMAMESH_AUTHZ_H
#define GAMMAMESH_AUTHZ_H

#include <stdbool.h>
#include <stddef.h>

#include "gammamesh/objects.h"
#include "gammamesh/util.h"

/* What the enforcing point knows about a connection or a request. */
struct gm_authz_request {
    const char *src_identity; /* verified SPIFFE ID of the peer; NULL for plaintext */
    struct gm_ip src_ip;      /* the client's address */
    int dst_port;             /* the destination port (target port at L4, Service port at L7) */
    /* HTTP, known at a waypoint only: method NULL makes the check L4 (HTTP fields cannot be
     * evaluated there) */
    const char *method;
    const char *path; /* without the query */
    size_t path_len;
    const char *host; /* Host or :authority */
    /* a request header's value (first), NULL when absent; name is case-insensitive */
    const char *(*header)(const void *ctx, const char *name);
    const void *ctx;
};

/* 0 when allowed, -EPERM when denied; why (when non-NULL) says which policy decided:
 * "explicitly denied by ns/name", "allowed by ns/name", "allow policies exist, but none
 * allowed", or "no policy". */
int gm_authz_evaluate(const struct gm_object *const *policies, size_t n,
                      const struct gm_authz_request *r, char *why, size_t why_len);

#endif
