/* Worker threads with their own loops, and the task queue the control loop uses to reach them. */
#include "gammamesh/workers.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "gammamesh/log.h"

struct gm_worker_task {
    struct gm_worker_task *next;
    gm_worker_fn fn;
    void *arg;
};

struct start_args {
    struct gm_worker *w;
    gm_worker_fn init;
    void *ctx;
};

/* Puts tasks back at the head of the queue, for gm_workers_stop to drop. */
static void requeue(struct gm_worker *w, struct gm_worker_task *t)
{
    struct gm_worker_task *last = t;

    while (last->next)
        last = last->next;
    pthread_mutex_lock(&w->mu);
    last->next = w->head;
    w->head = t;
    if (w->tail == NULL)
        w->tail = last;
    pthread_mutex_unlock(&w->mu);
}

static void on_tasks(uv_async_t *a)
{
    struct gm_worker *w = container_of(a, struct gm_worker, async);

    pthread_mutex_lock(&w->mu);
    struct gm_worker_task *t = w->head;
    w->head = w->tail = NULL;
    pthread_mutex_unlock(&w->mu);
    while (t) {
        struct gm_worker_task *next = t->next;
        if (w->stopping) { /* what comes after the stop is dropped by gm_workers_stop */
            requeue(w, t);
            return;
        }
        t->fn(w, t->arg);
        free(t);
        t = next;
    }
}

static void on_walk_close(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void worker_main(void *arg)
{
    struct gm_worker *w = arg;

    uv_run(&w->loop, UV_RUN_DEFAULT);
    /* Stopped: close whatever is left and let the close callbacks run. */
    uv_walk(&w->loop, on_walk_close, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    if (w->pool->on_exit)
        w->pool->on_exit(w, w->pool->ctx);
    uv_loop_close(&w->loop);
}

void gm_workers_post(struct gm_worker *w, gm_worker_fn fn, void *arg)
{
    struct gm_worker_task *t = gm_xcalloc(1, sizeof(*t));

    t->fn = fn;
    t->arg = arg;
    pthread_mutex_lock(&w->mu);
    if (w->tail)
        w->tail->next = t;
    else
        w->head = t;
    w->tail = t;
    pthread_mutex_unlock(&w->mu);
    uv_async_send(&w->async);
}

static void run_init(struct gm_worker *w, void *arg)
{
    struct start_args *sa = arg;

    if (sa->init)
        sa->init(w, sa->ctx);
    free(sa);
}

int gm_workers_start(struct gm_workers *ws, unsigned n, gm_worker_fn init, gm_worker_fn on_stop,
                     void *ctx)
{
    ws->v = gm_xcalloc(n ? n : 1, sizeof(*ws->v));
    ws->n = n;
    ws->on_stop = on_stop;
    ws->ctx = ctx;
    for (unsigned i = 0; i < n; i++) {
        struct gm_worker *w = &ws->v[i];
        w->index = i;
        w->pool = ws;
        w->self_netns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        pthread_mutex_init(&w->mu, NULL);
        uv_loop_init(&w->loop);
        uv_async_init(&w->loop, &w->async, on_tasks);
        struct start_args *sa = gm_xcalloc(1, sizeof(*sa));
        sa->w = w;
        sa->init = init;
        sa->ctx = ctx;
        gm_workers_post(w, run_init, sa);
        int rc = uv_thread_create(&w->thread, worker_main, w);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static void swap_snapshot(struct gm_worker *w, void *arg)
{
    struct gm_snapshot *old = w->snap;

    w->snap = arg;
    gm_snapshot_unref(old);
}

void gm_workers_publish(struct gm_workers *ws, struct gm_snapshot *s)
{
    for (unsigned i = 0; i < ws->n; i++)
        gm_workers_post(&ws->v[i], swap_snapshot, gm_snapshot_ref(s));
}

static void on_stop_grace(uv_timer_t *t)
{
    GM_LOG_DEBUG("workers", "handles still open after the stop grace: closing them");
    uv_stop(t->loop);
}

/* on_stop starts closing the daemon's handles; the loop then runs until their close callbacks
 * have run (so a connection finishes its close and frees what it owns), with neither the task
 * handle nor the grace timer keeping it alive. A handle still open after the grace is closed
 * by worker_main without its owner's callback. */
static void stop_worker(struct gm_worker *w, void *arg)
{
    w->stopping = true;
    if (w->pool->on_stop)
        w->pool->on_stop(w, w->pool->ctx);
    gm_snapshot_unref(w->snap);
    w->snap = NULL;
    uv_unref((uv_handle_t *)&w->async);
    uv_timer_init(&w->loop, &w->grace);
    uv_timer_start(&w->grace, on_stop_grace, GM_WORKER_STOP_GRACE_MS, 0);
    uv_unref((uv_handle_t *)&w->grace);
}

void gm_workers_stop(struct gm_workers *ws)
{
    for (unsigned i = 0; i < ws->n; i++)
        gm_workers_post(&ws->v[i], stop_worker, NULL);
    for (unsigned i = 0; i < ws->n; i++) {
        struct gm_worker *w = &ws->v[i];
        uv_thread_join(&w->thread);
        /* Tasks posted after the stop are dropped (their arguments are snapshot refs). */
        for (struct gm_worker_task *t = w->head, *next; t; t = next) {
            next = t->next;
            if (t->fn == swap_snapshot)
                gm_snapshot_unref(t->arg);
            free(t);
        }
        pthread_mutex_destroy(&w->mu);
        if (w->self_netns >= 0)
            close(w->self_netns);
    }
    free(ws->v);
    ws->v = NULL;
    ws->n = 0;
}
