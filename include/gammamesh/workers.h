/* Worker loops: N threads, each running its own uv loop. Connections never leave their worker,
 * so the data path takes no locks. The control loop talks to workers only by posting tasks
 * (a mutex-protected queue drained on the worker's uv_async), e.g. to publish a new snapshot. */
#ifndef GAMMAMESH_WORKERS_H
#define GAMMAMESH_WORKERS_H

#include <pthread.h>
#include <stdbool.h>
#include <uv.h>

#include "gammamesh/snapshot.h"

struct gm_worker;
typedef void (*gm_worker_fn)(struct gm_worker *w, void *arg);

struct gm_worker_task;

#define GM_WORKER_STOP_GRACE_MS 1000 /* a stopped worker waits this long for closes to finish */

struct gm_worker {
    unsigned index;
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t async;
    uv_timer_t grace; /* bounds the wait for close callbacks once stopped */
    pthread_mutex_t mu;
    struct gm_worker_task *head, *tail; /* posted tasks, protected by mu */
    struct gm_snapshot *snap;           /* this worker's current snapshot (its own reference) */
    bool stopping;
    int self_netns; /* fd of the daemon's own netns, for returning after setns; -1 if unknown */
    void *user;     /* the daemon's per-worker state */
    struct gm_workers *pool;
};

struct gm_workers {
    struct gm_worker *v;
    unsigned n;
    gm_worker_fn on_stop; /* runs on each worker when stopping: close the daemon's handles */
    gm_worker_fn on_exit; /* set before start (or NULL): runs on each worker thread once its
                             loop has closed every handle: free the per-worker state */
    void *ctx;
};

/* Start n workers. init (may be NULL) runs on each worker thread before its loop starts.
 * Returns 0 or -errno. */
int gm_workers_start(struct gm_workers *ws, unsigned n, gm_worker_fn init, gm_worker_fn on_stop,
                     void *ctx);
/* Run fn(w, arg) on worker w's thread, soon. Thread-safe. */
void gm_workers_post(struct gm_worker *w, gm_worker_fn fn, void *arg);
/* Give every worker a reference to snapshot s (swapped in on the worker thread). */
void gm_workers_publish(struct gm_workers *ws, struct gm_snapshot *s);
/* Stop every worker: on_stop runs, remaining handles are closed, threads joined. */
void gm_workers_stop(struct gm_workers *ws);

#endif
