/* One HTTP request as the waypoint models it, whatever the protocol it arrived in: method, scheme,
 * path and query, and the header fields (Host included, as "host"; hop-by-hop fields and the
 * framing fields removed by the codec). Strings are heap copies owned by the request. */
#ifndef WP_REQ_H
#define WP_REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gammamesh/route_filter.h"

#define WP_REQ_VIEW_MAX 256 /* header views handed to route matching */

struct wp_req {
    char *method;
    char *scheme; /* "http" unless an HTTP/2 request says otherwise */
    char *path;   /* without the query; never empty */
    char *query;  /* after '?', without it; NULL when none */
    char *target; /* as received (path and query), for logs */
    int version;  /* 10, 11 or 20 */
    struct gm_hlist headers;
    int64_t content_length; /* -1: unknown (chunked, or HTTP/2 without content-length) */
    bool has_body;          /* a body follows the head */
    char *upgrade; /* HTTP/1.1: the protocol the client asks to switch to (Upgrade), or NULL */
};

/* max_bytes caps the header list (gm_hlist accounting). */
void wp_req_init(struct wp_req *r, size_t max_bytes);
void wp_req_done(struct wp_req *r);

/*
 * Set path, query and target from a request target: origin-form ("/p?q"), absolute-form
 * ("http://host:port/p?q": the host replaces the Host field, as RFC 9112 §3.2.2 says) or "*".
 * 0, or -EINVAL for anything else.
 */
int wp_req_set_target(struct wp_req *r, const char *t, size_t n);

/* The route-matching view of r, with header views in views[0..max). Valid until r changes. */
void wp_req_view(const struct wp_req *r, struct gm_hdr *views, size_t max, struct gm_req_view *out);

/* The Host field's value (NULL when absent), borrowed. */
const char *wp_req_host(const struct wp_req *r);

/* True for gRPC (content-type application/grpc…). */
bool wp_req_is_grpc(const struct wp_req *r);

#endif
