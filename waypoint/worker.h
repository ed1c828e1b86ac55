/* Per-worker state of the waypoint: the worker's SO_REUSEPORT listener on 15008, its downstream
 * tunnels and connections, its upstream HBONE pool and idle HTTP connections, and its copy of
 * the waypoint identity. Everything here lives on one worker thread. */
#ifndef WP_WORKER_H
#define WP_WORKER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "gammamesh/hbone_pool.h"
#include "gammamesh/snapshot.h"
#include "gammamesh/spiffe.h"
#include "gammamesh/workers.h"
#include "waypoint.h"

struct wp_tunnel;
struct wp_conn;
struct wp_uconn;
struct wp_exch;

struct wp_worker {
    struct gm_worker *gw;
    struct wp *wp;
    uv_tcp_t listener;
    bool listening;
    char identity[GM_SPIFFE_ID_MAX]; /* "" until known: accepts are refused */
    struct wp_tunnel *tunnels;       /* downstream HBONE connections */
    unsigned n_tunnels;
    struct gm_hbone_settings server_settings; /* of downstream tunnels */
    struct wp_conn *conns;                    /* downstream inner connections (CONNECT streams) */
    unsigned n_conns;        /* read (relaxed) by the control loop while draining */
    struct wp_exch *mirrors; /* fire-and-forget mirror requests in flight */
    unsigned n_mirrors;
    struct gm_hbone_pool pool; /* upstream HBONE tunnels */
    struct wp_uconn *idle;     /* idle upstream HTTP connections, most recent first */
    unsigned n_idle;
    uv_timer_t sweep; /* closes idle upstream connections past their time */
    bool draining;
    uint64_t rnd; /* xorshift64* state */
};

/* Lifecycle (gm_workers callbacks; ctx is the struct wp). */
void wp_worker_init(struct gm_worker *gw, void *wp);
void wp_worker_stop(struct gm_worker *gw, void *wp);
/* Stop accepting, GOAWAY every tunnel, finish in-flight requests. */
void wp_worker_drain(struct gm_worker *gw, void *unused);
/* GOAWAY on every tunnel, in and out, and idle upstream connections closed, without closing the
 * listener (after a CA reload). */
void wp_worker_retire_tunnels(struct gm_worker *gw, void *unused);
/* A new identity (heap string, freed here) for later connections. */
void wp_worker_set_identity(struct gm_worker *gw, void *identity);
/* Open downstream connections and mirrors (approximate; any thread). */
unsigned wp_worker_busy(const struct gm_worker *gw);
/* {"conns", "tunnels", "idle_upstreams", "mirrors", "pooled_tunnels"} of a worker. Approximate;
 * read from the control loop. */
json_t *wp_worker_dump(const struct gm_worker *gw);

uv_loop_t *wp_worker_loop(struct wp_worker *w);
const struct wp_settings *wp_worker_settings(const struct wp_worker *w);
/* The worker's current snapshot (borrowed; take a reference to keep it). NULL before the first. */
struct gm_snapshot *wp_worker_snapshot(struct wp_worker *w);
/* A 64-bit pseudo-random number (load balancing, sampling: spread, not secrecy). */
uint64_t wp_worker_random(struct wp_worker *w);

#endif
