/* Directory watching for the local configuration source. */
#include "gammamesh/config_watch.h"

#define DEBOUNCE_MS 50
#define POLL_MS     1000

static void rescan(struct gm_config_watch *w)
{
    int rc = gm_config_store_scan(w->store);

    w->cb(w->ctx, rc);
}

static void on_debounce(uv_timer_t *t)
{
    rescan(container_of(t, struct gm_config_watch, debounce));
}

static void on_poll(uv_timer_t *t)
{
    rescan(container_of(t, struct gm_config_watch, poll));
}

static void on_event(uv_fs_event_t *ev, const char *name, int events, int status)
{
    struct gm_config_watch *w = container_of(ev, struct gm_config_watch, event);

    /* Coalesce bursts (an editor's write + rename) into one scan. */
    uv_timer_start(&w->debounce, on_debounce, DEBOUNCE_MS, 0);
}

int gm_config_watch_start(struct gm_config_watch *w, uv_loop_t *loop, struct gm_config_store *st,
                          gm_config_scan_cb cb, void *ctx)
{
    memset(w, 0, sizeof(*w));
    w->loop = loop;
    w->store = st;
    w->cb = cb;
    w->ctx = ctx;
    uv_timer_init(loop, &w->debounce);
    uv_timer_init(loop, &w->poll);
    uv_timer_start(&w->poll, on_poll, POLL_MS, POLL_MS);
    uv_fs_event_init(loop, &w->event);
    /* Without inotify (or on a missing directory) the poll timer still applies changes. */
    w->event_active = uv_fs_event_start(&w->event, on_event, st->dir, 0) == 0;
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    (void)h;
}

void gm_config_watch_stop(struct gm_config_watch *w)
{
    if (w->loop == NULL)
        return;
    uv_close((uv_handle_t *)&w->debounce, on_closed);
    uv_close((uv_handle_t *)&w->poll, on_closed);
    uv_close((uv_handle_t *)&w->event, on_closed);
    w->loop = NULL;
}
