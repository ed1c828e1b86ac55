/* Watches a configuration directory on a libuv loop: inotify events (debounced) plus a periodic
 * rescan as a fallback, so a change is applied within one second. */
#ifndef GAMMAMESH_CONFIG_WATCH_H
#define GAMMAMESH_CONFIG_WATCH_H

#include <uv.h>

#include "gammamesh/config.h"

/* Called on the loop after every rescan that read something: rc is what gm_config_store_scan
 * returned (1 = the object set changed, 0 = only diagnostics may have changed, -errno). */
typedef void (*gm_config_scan_cb)(void *ctx, int rc);

struct gm_config_watch {
    uv_loop_t *loop;
    struct gm_config_store *store;
    gm_config_scan_cb cb;
    void *ctx;
    uv_fs_event_t event;
    uv_timer_t debounce;
    uv_timer_t poll;
    int pending_closes;
    bool event_active;
};

/* Start watching st->dir. The callback never runs before this returns. 0 or -errno. */
int gm_config_watch_start(struct gm_config_watch *w, uv_loop_t *loop, struct gm_config_store *st,
                          gm_config_scan_cb cb, void *ctx);
/* Close the handles; the struct must stay valid until the loop has run the close callbacks. */
void gm_config_watch_stop(struct gm_config_watch *w);

#endif
