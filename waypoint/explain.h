/* `waypoint --explain`: what the waypoint would do with one request, as JSON, computed from a
 * configuration directory with the same snapshot, route tables and filters the data path uses.
 *
 *   waypoint --explain --config-dir DIR --from-namespace NS --to HOST[:PORT]
 *            [--method M] [--path P[?QUERY]] [-H 'Name: value']... [--scheme http|https]
 *            [--cluster-domain D]
 *
 * HOST is a Service name (`name` in NS, `name.ns`, `name.ns.svc`, `name.ns.svc.<domain>`), a
 * Service VIP, or a pod IP; PORT defaults to 80. */
#ifndef WAYPOINT_EXPLAIN_H
#define WAYPOINT_EXPLAIN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "gammamesh/snapshot.h"

/* Cap on -H options. */
#define WP_EXPLAIN_MAX_HEADERS 64

/* One request to explain; strings are borrowed. */
struct wp_explain_req {
    const char *from_ns; /* the client's namespace (consumer routes, short names) */
    const char *to;      /* HOST[:PORT] as given */
    const char *method;  /* "GET" when NULL */
    const char *target;  /* path with optional "?query"; "/" when NULL */
    const char *scheme;  /* the request's scheme for redirects; "http" when NULL */
    const char *headers[WP_EXPLAIN_MAX_HEADERS]; /* "Name: value" */
    size_t n_headers;
};

/* Explain req against snapshot s. Returns a new JSON object the caller owns: the decision
 * (`action` forward, redirect, respond or passthrough, with details), or `{"error": …}` with
 * *resolved set to false when the target cannot be resolved or the request is malformed. Pure:
 * no I/O. */
json_t *wp_explain_request(const struct gm_snapshot *s, const struct wp_explain_req *req,
                           bool *resolved);

/* The command line above (argv[0] is the program; `--explain` itself is accepted and ignored).
 * Loads the directory with gm_config_check (problems go to err, not fatal), prints one JSON
 * object, indented by 2, to out. Returns the exit code: 0 when the decision was printed, 1 when
 * the target cannot be resolved or the directory cannot be read (a JSON `{"error": …}` is
 * printed), 2 on a usage error (message on err). */
int wp_explain_main(int argc, char **argv, FILE *out, FILE *err);

#endif
