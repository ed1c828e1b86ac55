/* HTTPRoute filters as pure request/response transforms: header lists and header modifiers,
 * URL path rewrites (ReplaceFullPath, ReplacePrefixMatch), redirect Locations, weighted backend
 * choice and mirror sampling. Used by `waypoint --explain` and by the waypoint's data path. No
 * I/O, no globals; every result is a fresh heap object the caller owns. */
#ifndef GAMMAMESH_ROUTE_FILTER_H
#define GAMMAMESH_ROUTE_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gammamesh/objects.h"
#include "gammamesh/route.h"

/* ---- header lists ---- */

/* Per-field overhead counted against a list's cap, as in HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE. */
#define GM_HLIST_FIELD_OVERHEAD 32

/* One header field; name and value are owned by the list, NUL-terminated. */
struct gm_hfield {
    char *name;
    size_t name_len;
    char *value;
    size_t value_len;
};

/* An ordered list of header fields; names compare ASCII case-insensitively and keep the case
 * they were written with. */
struct gm_hlist {
    struct gm_hfield *v;
    size_t n, cap;
    size_t bytes;     /* sum of name_len + value_len + GM_HLIST_FIELD_OVERHEAD */
    size_t max_bytes; /* adding beyond this fails with -ENOBUFS; 0 = unlimited */
};

void gm_hlist_init(struct gm_hlist *h, size_t max_bytes);
/* Frees every field. Accepts a zeroed list. */
void gm_hlist_done(struct gm_hlist *h);

/* Append a field (name and value are copied). 0, -EINVAL for an empty name, or -ENOBUFS past
 * the cap (the list is unchanged). */
int gm_hlist_add(struct gm_hlist *h, const char *name, const char *value);
int gm_hlist_addn(struct gm_hlist *h, const char *name, size_t name_len, const char *value,
                  size_t value_len);
/* Replace every field called name by one `name: value` at the position of the first (appended
 * when absent; the new spelling of the name is kept). 0, -EINVAL or -ENOBUFS (unchanged). */
int gm_hlist_set(struct gm_hlist *h, const char *name, const char *value);
/* Remove every field called name; returns how many were removed. */
size_t gm_hlist_remove(struct gm_hlist *h, const char *name);
/* How many fields are called name. */
size_t gm_hlist_count(const struct gm_hlist *h, const char *name);
/* Every value of name joined with "," in list order, as a fresh heap string the caller frees;
 * NULL when the list has no such field. */
char *gm_hlist_get(const struct gm_hlist *h, const char *name);
/* Fill out[0..max) with borrowed views of the fields (valid until the list changes), for a
 * struct gm_req_view. Returns h->n (which may exceed max: then only max were filled). */
size_t gm_hlist_view(const struct gm_hlist *h, struct gm_hdr *out, size_t max);

/* Apply a RequestHeaderModifier / ResponseHeaderModifier: every `set` entry, then every `add`
 * entry (a further value, never merged into an existing one), then every `remove` entry. mod may
 * be NULL (nothing to do). 0, or -ENOBUFS when the cap was hit (the list is then partly
 * modified; the caller answers with an error). */
int gm_hlist_apply(struct gm_hlist *h, const struct gm_header_mod *mod);

/* ---- paths ---- */

/* ReplacePrefixMatch: replace the PathPrefix `prefix` (as compiled: trailing '/' removed, "/"
 * for the root) at the start of path with repl, segment-aligned (httproute.md §1.6): a trailing
 * '/' of repl is dropped, what followed the prefix is kept, an empty result becomes "/", and no
 * "//" is introduced at the seam. A path the prefix does not match (element-wise) is returned
 * unchanged. Returns a fresh heap string (the path only). */
char *gm_path_replace_prefix(const char *path, size_t path_len, const char *prefix,
                             size_t prefix_len, const char *repl);

/* The prefix a match contributes to ReplacePrefixMatch (its PathPrefix value); NULL and 0 for a
 * regex path. */
const char *gm_cmatch_prefix(const struct gm_cmatch *m, size_t *len);

/* A rule's (or backend's) request filters on a request matched by m: RequestHeaderModifier,
 * then URLRewrite (hostname into Host, then the path). headers is edited in place; *path (heap,
 * without the query) is replaced when rewritten. 0 or -ENOBUFS (the header list's cap). */
int gm_request_filters_apply(const struct gm_cfilters *f, const struct gm_cmatch *m,
                             struct gm_hlist *headers, char **path);

/* The request target after a URLRewrite/RequestRedirect path modifier: ReplaceFullPath, or
 * ReplacePrefixMatch of match_prefix (the matched rule's compiled PathPrefix), or the path
 * unchanged when mod is NULL or unset; then "?" and the original query when query is non-NULL.
 * Returns a fresh heap string. */
char *gm_path_rewrite(const struct gm_path_mod *mod, const char *match_prefix,
                      size_t match_prefix_len, const char *path, size_t path_len, const char *query,
                      size_t query_len);

/* ---- redirects ---- */

/* What a RequestRedirect needs to know about the request (borrowed). */
struct gm_redirect_in {
    const char *scheme; /* the request's scheme, "http" when NULL */
    const char *host;   /* Host / :authority; a port in it is ignored; NULL when absent */
    int port;           /* the Service port the client addressed; <= 0 when unknown */
    const char *path;   /* without the query */
    size_t path_len;
    const char *query; /* after '?', without it; NULL when none */
    size_t query_len;
    const char *match_prefix; /* the matched PathPrefix (compiled), for ReplacePrefixMatch */
    size_t match_prefix_len;
};

/* Build the Location of a RequestRedirect: scheme (the filter's, else the request's); hostname
 * (the filter's, else the Host header without its port); port (the filter's, else the
 * well-known port of the filter's scheme when it sets one, else in->port), omitted when it is
 * 80 for http or 443 for https; path (modified as gm_path_rewrite) plus the original query.
 * *status gets the filter's code (302 when unset). 0 and a fresh heap string in *location, or
 * -EINVAL when neither the filter nor the request names a host. */
int gm_redirect_location(const struct gm_redirect *rd, const struct gm_redirect_in *in,
                         char **location, int *status);

/* ---- backends and mirrors ---- */

/* The backend of r chosen by rnd (any 64-bit random number; it is reduced modulo
 * r->total_weight): backend i owns a share weight_i / total_weight, and weight 0 is never
 * chosen. Returns its index, or -ENOENT when r->total_weight is 0. An invalid target can be
 * chosen: the caller answers 500 for it (its share of the traffic). */
int gm_crule_pick(const struct gm_crule *r, uint64_t rnd);

/* Should this request be mirrored? rnd is any 32-bit random number; true with probability
 * fraction_num/fraction_den when a fraction is set, else percent/100. */
bool gm_cmirror_fires(const struct gm_cmirror *m, uint32_t rnd);

#endif
