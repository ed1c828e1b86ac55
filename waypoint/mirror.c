/* RequestMirror: a fire-and-forget copy of the request to one endpoint of the mirror's Service.
 * The copy is its own exchange without a downstream; its response is read and dropped, and it
 * never touches the original's response. Only requests whose body is fully held are mirrored. */
#include <string.h>

#include "conn.h"
#include "exch_int.h"
#include "gammamesh/log.h"
#include "worker.h"

#define MIRRORS_MAX       1024  /* in flight per worker; more are skipped */
#define MIRROR_TIMEOUT_MS 30000 /* when the rule sets no request timeout */

static void copy_req(struct wp_req *dst, const struct wp_req *src)
{
    dst->method = gm_xstrdup(src->method);
    dst->scheme = gm_xstrdup(src->scheme ? src->scheme : "http");
    dst->path = gm_xstrdup(src->path);
    dst->query = src->query ? gm_xstrdup(src->query) : NULL;
    dst->target = src->target ? gm_xstrdup(src->target) : NULL;
    dst->version = src->version;
    dst->content_length = src->content_length;
    dst->has_body = src->has_body;
    for (size_t i = 0; i < src->headers.n; i++)
        gm_hlist_addn(&dst->headers, src->headers.v[i].name, src->headers.v[i].name_len,
                      src->headers.v[i].value, src->headers.v[i].value_len);
}

static void fire_one(struct wp_exch *x, const struct gm_cmirror *m)
{
    struct wp_exch *y;

    if (m->target.invalid || m->target.svc == NULL || m->target.svc_port < 0)
        return;
    if (!gm_cmirror_fires(m, (uint32_t)wp_worker_random(x->w)))
        return;
    if (x->w->n_mirrors >= MIRRORS_MAX || x->w->draining) {
        GM_LOG_DEBUG("mirror", "mirror skipped", "request_id=%s reason=%s", x->request_id,
                     x->w->draining ? "draining" : "too many in flight");
        return;
    }
    y = wp_exch_new(x->w, NULL, 0);
    y->origin = x->origin;
    if (y->origin)
        wp_conn_ref(y->origin);
    copy_req(&y->req, &x->req);
    y->authority = x->authority ? gm_xstrdup(x->authority) : NULL;
    memcpy(y->request_id, x->request_id, sizeof(y->request_id));
    wp_bytes_append(&y->body, wp_bytes_data(&x->body), wp_bytes_size(&x->body));
    y->body_total = y->bytes_in = x->body_total;
    y->body_end = true;
    y->h2_downstream = x->h2_downstream;
    y->svc = x->svc;
    y->port_index = x->port_index;
    y->d.action = WP_ACT_FORWARD;
    y->d.backend = -1;
    y->d.svc = m->target.svc;
    y->d.port_index = m->target.svc_port;
    y->d.timeouts = x->d.timeouts;
    if (y->d.timeouts.request_ms <= 0)
        y->d.timeouts.request_ms = MIRROR_TIMEOUT_MS; /* a mirror never waits forever */
    wp_exch_forward(y);
}

void wp_mirror_fire(struct wp_exch *x)
{
    if (x->body_streamed)
        return;
    for (int k = 0; k < 2; k++) {
        const struct gm_cfilters *f = x->d.mirror_from[k];
        for (size_t i = 0; f && i < f->n_mirrors; i++)
            fire_one(x, &f->mirrors[i]);
    }
}
