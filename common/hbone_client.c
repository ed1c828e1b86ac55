/* HBONE client side: opening CONNECT streams and reading their responses. */
#include <errno.h>

#include "gammamesh/log.h"
#include "hbone_int.h"

#define REQUEST_HDRS_MAX 16

bool gm_hbone_conn_available(struct gm_hbone_conn *c)
{
    if (c->server || !hbone_conn_usable(c) || c->goaway_recv || c->goaway_sent)
        return false;
    if (c->state != GM_HBONE_CONN_NEW && c->state != GM_HBONE_CONN_HANDSHAKE &&
        c->state != GM_HBONE_CONN_OPEN)
        return false;
    if (!nghttp2_session_check_request_allowed(c->h2))
        return false;
    uint32_t peer_max =
        nghttp2_session_get_remote_settings(c->h2, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    uint32_t max = peer_max < c->settings.max_streams ? peer_max : c->settings.max_streams;
    return c->stats.streams_active < max;
}

/* Builds the CONNECT header list: :method, :authority, then the owner's headers. */
static int request_nva(nghttp2_nv *nva, const char *authority, const struct gm_hbone_header *hdrs,
                       size_t n)
{
    static const char method[] = "CONNECT";

    if (n > REQUEST_HDRS_MAX || authority == NULL)
        return -EINVAL;
    /* The same strictness as the server: what we send, we would accept. */
    struct gm_hbone_header probe[2] = {
        {":method", 7, method, 7},
        {":authority", 10, authority, strlen(authority)},
    };
    struct gm_hbone_request req;
    if (gm_hbone_request_parse(probe, 2, &req) < 0)
        return -EINVAL;
    nva[0] = (nghttp2_nv){(uint8_t *)":method", (uint8_t *)method, 7, 7, NGHTTP2_NV_FLAG_NONE};
    nva[1] = (nghttp2_nv){(uint8_t *)":authority", (uint8_t *)authority, 10, strlen(authority),
                          NGHTTP2_NV_FLAG_NONE};
    for (size_t i = 0; i < n; i++) {
        size_t nl, vl;
        if (!hbone_header_ok(&hdrs[i], &nl, &vl))
            return -EINVAL;
        nva[2 + i] = (nghttp2_nv){(uint8_t *)hdrs[i].name, (uint8_t *)hdrs[i].value, nl, vl,
                                  NGHTTP2_NV_FLAG_NONE};
    }
    return 0;
}

int gm_hbone_stream_open(struct gm_hbone_conn *c, const char *authority,
                         const struct gm_hbone_header *hdrs, size_t n_hdrs,
                         const struct gm_hbone_stream_cbs *cbs, void *ctx,
                         struct gm_hbone_stream **ret)
{
    nghttp2_nv nva[2 + REQUEST_HDRS_MAX];
    struct gm_hbone_stream *s;
    int32_t id;

    if (c->server || cbs == NULL || request_nva(nva, authority, hdrs, n_hdrs) < 0)
        return -EINVAL;
    if (!hbone_conn_usable(c) || c->goaway_recv || c->goaway_sent ||
        c->state == GM_HBONE_CONN_DRAINING)
        return -ENOTCONN;
    if (!gm_hbone_conn_available(c))
        return -EBUSY;
    s = hbone_stream_new(c, 0);
    s->cbs = cbs;
    s->ctx = ctx;
    s->owned = true;
    s->prd_attached = true;
    nghttp2_data_provider prd = {.source.ptr = s, .read_callback = hbone_data_source_read};
    hbone_conn_enter(c);
    id = nghttp2_submit_request(c->h2, NULL, nva, 2 + n_hdrs, &prd, s);
    if (id < 0) {
        hbone_conn_leave(c);
        hbone_stream_free(s);
        return id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE ? -EBUSY : -ENOTCONN;
    }
    s->id = id;
    hbone_stream_link(s);
    hbone_conn_schedule(c);
    hbone_conn_leave(c);
    *ret = s;
    return 0;
}

void hbone_client_on_header(struct gm_hbone_stream *s, const uint8_t *name, size_t namelen,
                            const uint8_t *value, size_t valuelen)
{
    if (namelen != 7 || memcmp(name, ":status", 7) != 0 || valuelen != 3)
        return;
    int v = 0;
    for (size_t i = 0; i < 3; i++) {
        if (value[i] < '0' || value[i] > '9')
            return;
        v = v * 10 + (value[i] - '0');
    }
    s->stats.status = v;
}

/* The response HEADERS are in (nghttp2 validated them): 2xx opens the tunnel, anything else
 * ends the stream. */
void hbone_client_on_response(struct gm_hbone_stream *s)
{
    struct gm_hbone_conn *c = s->conn;
    int status = s->stats.status;

    if (s->state != GM_HBONE_STREAM_OPENING || status < 200)
        return; /* 1xx, or trailers: nothing to do */
    if (status < 300) {
        hbone_stream_set_state(s, GM_HBONE_STREAM_OPEN);
        hbone_stream_resume(s); /* data written before the response */
    } else {
        hbone_stream_set_state(s, GM_HBONE_STREAM_FAILED);
        s->reason = GM_HBONE_REASON_REJECTED;
        hbone_queue_clear(&s->sendq);
        if (!nghttp2_session_get_stream_local_close(c->h2, s->id))
            nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
    }
    if (s->cbs->on_response)
        s->cbs->on_response(s, status, s->ctx);
}
