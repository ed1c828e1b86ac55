/*
 * kube.h: the Kubernetes API configuration source (DESIGN.md §4, source 2).
 *
 * One thread per kind the daemons read (namespaces, pods, services, gateways, httproutes,
 * authorizationpolicies) lists it (pages of 500) and then watches it from the list's
 * resourceVersion, with bookmarks; a watch that ends is resumed from the last resourceVersion
 * seen, and a 410 Gone (as a status or as an ERROR event) starts a new list, after which the
 * objects that disappeared meanwhile are deleted. Errors back off from 0.5 s to 30 s. A kind the
 * server does not serve (404: its CRD is not installed) counts as listed and empty and is
 * listed again every 30 s. Every request reads the bearer token file again (projected tokens
 * rotate) and verifies the server against the CA file, by IP or by name.
 *
 * What the threads see reaches the control loop as a queue of events (put, delete, synced),
 * applied in order; the callback runs on the loop whenever events are waiting.
 *
 *     gm_kube_start(&k, loop, &(struct gm_kube_config){...}, on_events, ctx, err, sizeof(err));
 *     ... in on_events: for (e = gm_kube_take(k); e; e = e->next) ...; gm_kube_events_free(list);
 *     gm_kube_stop(k);
 */
#ifndef GAMMAMESH_KUBE_H
#define GAMMAMESH_KUBE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct gm_kube_config {
    const char *api;        /* "https://HOST[:PORT]"; "" or NULL: KUBERNETES_SERVICE_HOST/_PORT */
    const char *token_file; /* "" or NULL: no Authorization header */
    const char *ca_file;    /* PEM bundle that verifies the server */
    const char *user_agent; /* "gammamesh-ztunnel/0.1.0" */
};

enum gm_kube_op {
    GM_KUBE_PUT = 0, /* key now holds obj */
    GM_KUBE_DELETE,  /* key is gone */
    GM_KUBE_SYNCED,  /* every kind has been listed at least once (sent once) */
};

struct gm_kube_event {
    struct gm_kube_event *next;
    enum gm_kube_op op;
    char *key;   /* "kube:pods/NAMESPACE/NAME", "kube:namespaces/NAME" */
    json_t *obj; /* PUT: the object with kind and apiVersion set (owned by the event) */
};

struct gm_kube;
typedef void (*gm_kube_cb)(void *ctx);

/* Starts the threads. -EINVAL with a reason in err when the API address is unusable. */
int gm_kube_start(struct gm_kube **out, uv_loop_t *loop, const struct gm_kube_config *cfg,
                  gm_kube_cb cb, void *ctx, char *err, size_t errlen);
/* Joins the threads and drops what is still queued; k is freed once the loop closed its handle. */
void gm_kube_stop(struct gm_kube *k);
/* The queued events, oldest first; the caller frees them with gm_kube_events_free(). */
struct gm_kube_event *gm_kube_take(struct gm_kube *k);
void gm_kube_events_free(struct gm_kube_event *e);
/* True once every kind was listed; otherwise why not ("pods: HTTP 403: ...") in why. */
bool gm_kube_synced(struct gm_kube *k, char *why, size_t len);
/* The controllerName of gammamesh's route status entries (the GatewayClass's). */
#define GM_KUBE_CONTROLLER_NAME "gammamesh.io/mesh-controller"

/* Writes an HTTPRoute's status, asynchronously (one writer thread): entries (a JSON array of
 * status.parents entries, taken) replace the entries with our controllerName and the same
 * parentRef; everyone else's stay. Read-merge-write with the route's resourceVersion; a 409
 * reads again. Nothing is written when the status already says it (lastTransitionTime is kept
 * for conditions that did not change). A newer call for the same route replaces a pending one. */
void gm_kube_route_status(struct gm_kube *k, const char *ns, const char *name, json_t *entries);
/* Lists every kind again (SIGHUP). */
void gm_kube_relist(struct gm_kube *k);
/* What one kind's thread has done so far. */
struct gm_kube_stats {
    const char *resource; /* "pods" */
    bool synced;          /* listed at least once */
    bool served;          /* the server has the kind (no 404) */
    uint64_t lists, watches, events, errors;
};
#define GM_KUBE_RESOURCES 6
/* Fills out[GM_KUBE_RESOURCES]. */
void gm_kube_stats(struct gm_kube *k, struct gm_kube_stats *out);
/* {"api": …, "resources": {"pods": {"synced", "served", "lists", "watches", "events", "errors",
 * "last_error"}, …}} */
json_t *gm_kube_dump(struct gm_kube *k);

#endif
