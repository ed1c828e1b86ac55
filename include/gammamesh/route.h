/* Compiled HTTPRoute tables: for each Service port, every (rule, match) pair of every route
 * attached to it, sorted by Gateway API precedence, ready for matching requests. Tables live in
 * the snapshot's arena and are immutable. Pure functions: no I/O, no globals.
 *
 * Regular expressions are PCRE2, matched against the whole value (anchored at both ends), with
 * match and depth limits; they compile once, when the snapshot is built. */
#ifndef GAMMAMESH_ROUTE_H
#define GAMMAMESH_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gammamesh/objects.h"

struct gm_svc;
struct gm_snapshot;
typedef struct pcre2_real_code_8 gm_regex;

/* A backend or mirror target resolved against the snapshot. */
struct gm_ctarget {
    const char *name;
    const char *namespace;
    int port;
    const struct gm_svc *svc;   /* NULL when invalid */
    int svc_port;               /* index into svc->ports; -1 when invalid */
    const char *invalid;        /* NULL, or why this target answers 500 */
    const char *invalid_reason; /* its Gateway API reason: "BackendNotFound", "InvalidKind" */
};

/* The filters of a rule or of a backendRef, at most one of each singular kind. */
struct gm_cfilters {
    const struct gm_header_mod *request_header;  /* RequestHeaderModifier or NULL */
    const struct gm_header_mod *response_header; /* ResponseHeaderModifier or NULL */
    const struct gm_redirect *redirect;          /* RequestRedirect or NULL */
    const struct gm_rewrite *rewrite;            /* URLRewrite or NULL */
    const struct gm_cors *cors;                  /* CORS or NULL */
    struct gm_cmirror *mirrors;
    size_t n_mirrors;
    const char *unresolvable; /* an ExtensionRef we cannot run: requests get 500 */
};

struct gm_cmirror {
    struct gm_ctarget target;
    int percent;                    /* 0..100 */
    int fraction_num, fraction_den; /* -1 unless a fraction was given */
};

struct gm_cbackend {
    struct gm_ctarget target;
    uint32_t weight;
    struct gm_cfilters filters;
};

struct gm_crule {
    const struct gm_object *route; /* the HTTPRoute */
    size_t index;                  /* rule index in the route */
    const char *name;              /* rules[].name or NULL */
    struct gm_cfilters filters;
    struct gm_cbackend *backends; /* weight-0 backends are kept (never chosen) */
    size_t n_backends;
    uint64_t total_weight; /* 0: no backend can be chosen */
    struct gm_timeouts timeouts;
    const struct gm_retry *retry; /* NULL when absent */
};

struct gm_cvalue {
    const char *name; /* header names lower-cased; query names as written */
    enum gm_value_match type;
    const char *value;
    gm_regex *re; /* REGEX only */
};

struct gm_cmatch {
    const struct gm_crule *rule;
    size_t match_index; /* index in rules[].matches */
    enum gm_path_match path_type;
    const char *path; /* PathPrefix: trailing '/' removed ("/" stays "/") */
    size_t path_len;
    gm_regex *path_re;
    struct gm_cvalue *headers; /* first entry wins for repeated names */
    size_t n_headers;
    struct gm_cvalue *queries;
    size_t n_queries;
    const char *method; /* NULL: any */
};

struct gm_route_table {
    struct gm_cmatch **v; /* in precedence order: the first that matches wins */
    size_t n;
};

/* One request header; names compare case-insensitively. */
struct gm_hdr {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* What route selection needs to know about a request (borrowed slices). */
struct gm_req_view {
    const char *method;
    const char *path; /* without the query */
    size_t path_len;
    const char *query; /* after '?', without it; NULL when none */
    size_t query_len;
    const struct gm_hdr *headers;
    size_t n_headers;
};

/* Regex helpers shared by compiler and matcher. gm_regex_compile returns NULL and fills err
 * (a message with the offset) on a bad pattern. */
gm_regex *gm_regex_compile(const char *pattern, char *err, size_t errlen);
void gm_regex_free(gm_regex *re);
/* Whole-value match; false on no match or when the match limit is hit. */
bool gm_regex_full_match(const gm_regex *re, const char *s, size_t len);

/* Compare two matches by precedence (Gateway API order); < 0 when a wins. */
int gm_cmatch_cmp(const struct gm_cmatch *a, const struct gm_cmatch *b);

/* The first match in t that the request satisfies, or NULL (the caller answers 404). */
const struct gm_cmatch *gm_route_select(const struct gm_route_table *t,
                                        const struct gm_req_view *r);

/* Does one compiled match accept the request? */
bool gm_cmatch_matches(const struct gm_cmatch *m, const struct gm_req_view *r);

#endif
