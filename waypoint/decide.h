/* What to do with one request (pure): the route table of the addressed Service port for the
 * client's namespace, the winning match, the rule's filters, the weighted backend and its
 * filters, exactly as `waypoint --explain` describes them:
 *
 *   no route table on the port    forward to the Service itself (plain L7 load balancing)
 *   no match                      404
 *   ExtensionRef we cannot run    500 (even before a redirect: it must not be skipped)
 *   RequestRedirect               3xx with the Location of route_filter.h
 *   no backendRefs, all weights 0, every weighted backend invalid      500
 *   the drawn backend is invalid  500 (its share of the traffic)
 *   the drawn Service has no ready endpoint                            503
 *   otherwise                     forward, after RequestHeaderModifier and URLRewrite (rule,
 *                                 then backend), with the rule's timeouts and retry.
 */
#ifndef WP_DECIDE_H
#define WP_DECIDE_H

#include <stdint.h>

#include "gammamesh/snapshot.h"
#include "req.h"

enum wp_action {
    WP_ACT_RESPOND = 0, /* answer status locally */
    WP_ACT_REDIRECT,    /* answer status with location */
    WP_ACT_FORWARD,     /* send to svc's port port_index */
    WP_ACT__MAX
};

struct wp_decision {
    enum wp_action action;
    int status;                               /* RESPOND, REDIRECT */
    const char *reason;                       /* RESPOND: why (static, or owned by the snapshot) */
    const char *flags;                        /* Envoy-style response flags: "-", "NR", "UH" */
    char *location;                           /* REDIRECT: heap (wp_decision_done frees it) */
    const struct gm_cmatch *match;            /* NULL: passthrough, or no match */
    const struct gm_crule *rule;              /* NULL: passthrough, or no match */
    int backend;                              /* index in rule->backends; -1 when none */
    const struct gm_svc *svc;                 /* FORWARD: the Service to send to */
    int port_index;                           /* FORWARD: its port */
    const struct gm_header_mod *resp_mod[2];  /* ResponseHeaderModifier: rule's, backend's */
    const struct gm_cfilters *mirror_from[2]; /* filters carrying RequestMirror: rule, backend */
    struct gm_timeouts timeouts;              /* -1: unset */
    const struct gm_retry *retry;             /* NULL: no retries */
};

/*
 * Decide for req (modified in place by the request filters) arriving at svc's port port_index
 * from a client in client_ns; rnd draws the weighted backend. Everything d points to lives in
 * the snapshot of svc (or in req). Always fills *d.
 */
void wp_decide(const struct gm_svc *svc, int port_index, const char *client_ns, struct wp_req *req,
               uint64_t rnd, struct wp_decision *d);
void wp_decision_done(struct wp_decision *d);

/* An endpoint of svc's port port_index drawn with rnd: its index in svc->endpoints, or -ENOENT
 * when no ready endpoint has an address and a resolved target port. */
int wp_decide_endpoint(const struct gm_svc *svc, int port_index, uint64_t rnd);

/* Why the rule's backends cannot take any request (500), or NULL. */
const char *wp_decide_rule_failure(const struct gm_crule *r);

/* Does port port_index of svc speak HTTP/2 (appProtocol http2, h2c, kubernetes.io/h2c, grpc)? */
bool wp_decide_port_h2(const struct gm_svc *svc, int port_index);

#endif
