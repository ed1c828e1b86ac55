/* The Kubernetes object model gammamesh reads: Namespace, Pod, Service, Gateway, HTTPRoute
 * (gateway.networking.k8s.io/v1, standard channel plus the experimental `retry`) and
 * AuthorizationPolicy (security.istio.io/v1). Objects are decoded from located YAML nodes; all
 * their memory lives in the arena of the object set that holds them. Optional integers use -1
 * for "unset"; optional strings use NULL. */
#ifndef GAMMAMESH_OBJECTS_H
#define GAMMAMESH_OBJECTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gammamesh/arena.h"
#include "gammamesh/diag.h"
#include "gammamesh/util.h"
#include "gammamesh/yaml.h"

enum gm_kind {
    GM_KIND_NAMESPACE = 0, /* v1 Namespace */
    GM_KIND_POD,           /* v1 Pod */
    GM_KIND_SERVICE,       /* v1 Service */
    GM_KIND_GATEWAY,       /* gateway.networking.k8s.io/v1 Gateway */
    GM_KIND_HTTPROUTE,     /* gateway.networking.k8s.io/v1 HTTPRoute */
    GM_KIND_AUTHZ,         /* security.istio.io/v1 AuthorizationPolicy */
    GM_KIND__MAX
};

const char *gm_kind_name(enum gm_kind k);

struct gm_kv {
    char *key;
    char *value;
};

struct gm_kvs {
    struct gm_kv *v;
    size_t n;
};

/* Value of key in kvs, or NULL. */
const char *gm_kvs_get(const struct gm_kvs *kvs, const char *key);
/* Every key of sel is in labels with the same value (an empty selector matches all). */
bool gm_kvs_subset(const struct gm_kvs *sel, const struct gm_kvs *labels);

struct gm_strs {
    char **v;
    size_t n;
};

struct gm_meta {
    char *name;
    char *namespace; /* NULL for Namespace; defaults to "default" for namespaced kinds */
    char *uid;       /* NULL when absent */
    int64_t created; /* metadata.creationTimestamp in Unix seconds; INT64_MAX when absent */
    int64_t generation;
    struct gm_kvs labels;
    struct gm_kvs annotations;
};

/* ---- Pod ---- */

struct gm_container_port {
    char *name; /* NULL when unnamed */
    int port;
    char *protocol; /* "TCP" by default */
};

struct gm_container {
    char *name;
    char *image;
    struct gm_strs command;
    struct gm_strs args;
    struct gm_kvs env; /* only literal `value` entries */
    struct gm_container_port *ports;
    size_t n_ports;
};

struct gm_pod {
    char *node_name;       /* spec.nodeName */
    char *service_account; /* spec.serviceAccountName, "default" when absent */
    bool host_network;
    struct gm_container *containers;
    size_t n_containers;
    char *pod_ip;    /* status.podIP or NULL */
    struct gm_ip ip; /* parsed pod_ip; family 0 when absent */
    char *phase;     /* status.phase or NULL */
    bool has_ready;  /* a Ready condition is present */
    bool ready_cond; /* its status is "True" */
};

/* DESIGN §4: ready when its Ready condition is "True", or, having none, once it has an IP. */
bool gm_pod_is_ready(const struct gm_pod *p);

/* ---- Service ---- */

struct gm_service_port {
    char *name; /* NULL when unnamed */
    int port;
    char *protocol;         /* "TCP" by default */
    char *app_protocol;     /* NULL when absent */
    int target_port;        /* numeric targetPort; defaults to port; -1 when named */
    char *target_port_name; /* named targetPort or NULL */
    struct gm_loc loc;
};

struct gm_service {
    char *type;        /* "ClusterIP" by default */
    char *cluster_ip;  /* NULL when absent; "None" for headless */
    struct gm_ip vip;  /* family 0 when there is no usable VIP */
    bool has_selector; /* spec.selector present (possibly empty) */
    struct gm_kvs selector;
    struct gm_service_port *ports;
    size_t n_ports;
};

/* ---- Gateway ---- */

struct gm_gateway_listener {
    char *name;
    char *hostname;
    int port;
    char *protocol;
};

struct gm_gateway {
    char *class_name;
    struct gm_gateway_listener *listeners;
    size_t n_listeners;
};

/* ---- HTTPRoute ---- */

struct gm_parent_ref {
    char *group;     /* "gateway.networking.k8s.io" when absent */
    char *kind;      /* "Gateway" when absent */
    char *namespace; /* the route's namespace when absent */
    char *name;
    char *section_name; /* NULL when absent */
    int port;           /* -1 when absent */
    struct gm_loc loc;
};

enum gm_path_match {
    GM_PATH_PREFIX = 0, /* PathPrefix, element-wise */
    GM_PATH_EXACT,      /* Exact */
    GM_PATH_REGEX,      /* RegularExpression (PCRE2) */
    GM_PATH__MAX
};

enum gm_value_match {
    GM_VALUE_EXACT = 0, /* Exact */
    GM_VALUE_REGEX,     /* RegularExpression (PCRE2) */
    GM_VALUE__MAX
};

struct gm_header_match {
    enum gm_value_match type;
    char *name;
    char *value;
    struct gm_loc loc;
};

struct gm_http_match {
    enum gm_path_match path_type; /* PathPrefix "/" when the match has no path */
    char *path;
    struct gm_loc path_loc;
    struct gm_header_match *headers;
    size_t n_headers;
    struct gm_header_match *queries; /* queryParams, same shape */
    size_t n_queries;
    char *method; /* NULL when absent */
    struct gm_loc loc;
};

struct gm_header_mod {
    struct gm_kvs set;
    struct gm_kvs add;
    struct gm_strs remove;
};

enum gm_path_mod_type {
    GM_PATHMOD_FULL = 0, /* ReplaceFullPath */
    GM_PATHMOD_PREFIX,   /* ReplacePrefixMatch */
    GM_PATHMOD__MAX
};

struct gm_path_mod {
    bool set;
    enum gm_path_mod_type type;
    char *value; /* replaceFullPath or replacePrefixMatch ("" allowed for prefix) */
};

struct gm_redirect {
    char *scheme;   /* NULL: the request's scheme */
    char *hostname; /* NULL: from the Host header */
    struct gm_path_mod path;
    int port;   /* -1 when absent */
    int status; /* 302 when absent */
};

struct gm_rewrite {
    char *hostname; /* NULL when absent */
    struct gm_path_mod path;
};

struct gm_backend_obj_ref {
    char *group; /* "" when absent (core) */
    char *kind;  /* "Service" when absent */
    char *name;
    char *namespace; /* the route's namespace when absent */
    int port;        /* -1 when absent */
    struct gm_loc loc;
};

struct gm_mirror {
    struct gm_backend_obj_ref backend;
    int percent;                    /* 0..100; 100 when neither percent nor fraction is set */
    int fraction_num, fraction_den; /* -1 when absent */
};

struct gm_cors {
    struct gm_strs allow_origins;
    bool allow_credentials;
    struct gm_strs allow_methods;
    struct gm_strs allow_headers;
    struct gm_strs expose_headers;
    int max_age; /* seconds; 5 when absent */
};

struct gm_ext_ref {
    char *group;
    char *kind;
    char *name;
};

enum gm_filter_type {
    GM_FILTER_REQUEST_HEADER = 0, /* RequestHeaderModifier */
    GM_FILTER_RESPONSE_HEADER,    /* ResponseHeaderModifier */
    GM_FILTER_REDIRECT,           /* RequestRedirect */
    GM_FILTER_REWRITE,            /* URLRewrite */
    GM_FILTER_MIRROR,             /* RequestMirror */
    GM_FILTER_CORS,               /* CORS */
    GM_FILTER_EXTENSION_REF,      /* ExtensionRef (never resolvable here: answers 500) */
    GM_FILTER__MAX
};

const char *gm_filter_type_name(enum gm_filter_type t);

struct gm_filter {
    enum gm_filter_type type;
    struct gm_loc loc;
    union {
        struct gm_header_mod header; /* REQUEST_HEADER, RESPONSE_HEADER */
        struct gm_redirect redirect;
        struct gm_rewrite rewrite;
        struct gm_mirror mirror;
        struct gm_cors cors;
        struct gm_ext_ref ext;
    };
};

struct gm_backend_ref {
    struct gm_backend_obj_ref ref;
    int weight; /* 1 when absent */
    struct gm_filter *filters;
    size_t n_filters;
    struct gm_loc loc;
};

/* Durations in milliseconds; -1 when absent, 0 disables. */
struct gm_timeouts {
    int64_t request_ms;
    int64_t backend_request_ms;
};

struct gm_retry {
    bool present;
    int attempts; /* -1 when absent */
    int *codes;
    size_t n_codes;
    int64_t backoff_ms; /* -1 when absent */
};

struct gm_route_rule {
    char *name;                    /* NULL when absent */
    struct gm_http_match *matches; /* one default PathPrefix "/" match when absent */
    size_t n_matches;
    struct gm_filter *filters;
    size_t n_filters;
    struct gm_backend_ref *backends;
    size_t n_backends;
    struct gm_timeouts timeouts;
    struct gm_retry retry;
    struct gm_loc loc;
};

struct gm_httproute {
    struct gm_parent_ref *parents;
    size_t n_parents;
    struct gm_strs hostnames;
    struct gm_route_rule *rules; /* one default rule when spec.rules is absent */
    size_t n_rules;
};

/* ---- AuthorizationPolicy (security.istio.io/v1) ---- */

enum gm_authz_action {
    GM_AUTHZ_ALLOW = 0, /* ALLOW (the default) */
    GM_AUTHZ_DENY,      /* DENY */
    GM_AUTHZ_AUDIT,     /* AUDIT: logged, not enforced */
    GM_AUTHZ_CUSTOM,    /* CUSTOM: unsupported, never matches */
    GM_AUTHZ__MAX
};

struct gm_authz_source {
    struct gm_strs principals, not_principals;
    struct gm_strs request_principals, not_request_principals; /* L7 */
    struct gm_strs namespaces, not_namespaces;
    struct gm_strs ip_blocks, not_ip_blocks;
    struct gm_strs remote_ip_blocks, not_remote_ip_blocks; /* L7 */
};

struct gm_authz_operation {
    struct gm_strs ports, not_ports;
    struct gm_strs hosts, not_hosts;     /* L7 */
    struct gm_strs methods, not_methods; /* L7 */
    struct gm_strs paths, not_paths;     /* L7 */
};

struct gm_authz_condition {
    char *key;
    struct gm_strs values, not_values;
};

struct gm_authz_rule {
    struct gm_authz_source *from; /* rules[].from[].source */
    size_t n_from;
    struct gm_authz_operation *to; /* rules[].to[].operation */
    size_t n_to;
    struct gm_authz_condition *when;
    size_t n_when;
    bool has_l7; /* some field only a waypoint can evaluate is set */
};

/* spec.targetRefs[] (or targetRef): what a waypoint enforces the policy for. */
struct gm_policy_target {
    char *group; /* "" (core) or "gateway.networking.k8s.io" */
    char *kind;  /* "Service" or "Gateway"; other kinds are dropped with a warning */
    char *name;
    char *namespace; /* NULL, or the policy's own */
};

struct gm_authz {
    struct gm_policy_target *targets; /* supported targets; the policy is then a waypoint's */
    size_t n_targets;
    bool has_targets; /* targetRefs given (even if none of them is supported) */
    bool has_selector;
    struct gm_kvs selector; /* spec.selector.matchLabels */
    enum gm_authz_action action;
    struct gm_authz_rule *rules;
    size_t n_rules;
    bool rules_present; /* spec.rules given (an ALLOW with `rules: [{}]` allows all) */
};

/* ---- the object ---- */

struct gm_object {
    enum gm_kind kind;
    struct gm_meta meta;
    struct gm_loc loc; /* where the document starts */
    union {
        struct gm_pod pod;
        struct gm_service service;
        struct gm_gateway gateway;
        struct gm_httproute route;
        struct gm_authz authz;
    };
};

/* "Kind namespace/name" into buf; returns buf. */
const char *gm_object_label(const struct gm_object *o, char *buf, size_t len);

/* Decode one YAML document. Returns:
 *   1 and *out for an object of a known kind (allocated in a),
 *   0 for a document of another kind (skipped; *out NULL),
 *   -EINVAL after adding located diagnostics when a known kind is malformed.
 * Warnings may be added even when the object decodes. */
int gm_object_decode(struct gm_arena *a, const struct gm_ynode *doc, struct gm_object **out,
                     struct gm_diags *diags);

/* Parse Gateway API duration (GEP-2257: 1-4 components of 1-5 digits with h|m|s|ms);
 * 0 and *ms, or -EINVAL. */
int gm_duration_parse(const char *s, int64_t *ms);

#endif
