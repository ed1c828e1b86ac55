/* The downstream HTTP/2 codec: an nghttp2 server session over the connection's bytes, one
 * exchange per stream. nghttp2's HTTP messaging checks stay on; its limits are set (header list
 * size, concurrent streams, CONTINUATION count, SETTINGS/PING ack floods, and the incoming
 * RST_STREAM rate: Rapid Reset). Resets we send are capped per second too (MadeYouReset), and an
 * abuser gets GOAWAY(ENHANCE_YOUR_CALM). Windows open only as request bodies go upstream. */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <nghttp2/nghttp2.h>
#include <string.h>

#include "conn.h"
#include "exch.h"
#include "gammamesh/log.h"
#include "worker.h"

#define WINDOW          (256 << 10)
#define CONN_WINDOW     (1 << 20)
#define NV_MAX          (WP_REQ_VIEW_MAX + 2)
#define DRAIN_NOTICE_MS 1000 /* between the shutdown notice and the final GOAWAY */

struct wp_h2s {
    struct wp_conn *c;
    nghttp2_session *s;
    struct wp_exch **held; /* exchanges whose stream is open (codec references) */
    size_t n_held, cap_held;
    bool in_recv;     /* inside nghttp2_session_mem_recv: no flushing, no closing */
    bool want_close;  /* close once the session returns */
    bool notice_sent; /* draining: the shutdown notice (GOAWAY with the largest id) went out */
    bool goaway_sent; /* the final GOAWAY went out */
    uint64_t rst_window_start;
    unsigned rst_sent; /* resets we sent in the current second */
};

static struct wp_h2s *h2(struct wp_conn *c)
{
    return c->codec;
}

static struct wp_exch *exch_of(nghttp2_session *s, int32_t id)
{
    return nghttp2_session_get_stream_user_data(s, id);
}

/* ---- held exchanges ---- */

static void hold(struct wp_h2s *h, struct wp_exch *x)
{
    GM_VEC_PUSH(h->held, h->n_held, h->cap_held);
    h->held[h->n_held - 1] = x;
}

static void unhold(struct wp_h2s *h, struct wp_exch *x)
{
    for (size_t i = 0; i < h->n_held; i++) {
        if (h->held[i] == x) {
            h->held[i] = h->held[--h->n_held];
            wp_exch_release(x);
            return;
        }
    }
}

/* ---- sending ---- */

static void check_end(struct wp_h2s *h)
{
    if (!nghttp2_session_want_read(h->s) && !nghttp2_session_want_write(h->s))
        h->want_close = true;
    if (h->want_close && !h->in_recv)
        wp_conn_close(h->c, NULL);
}

static void flush(struct wp_h2s *h)
{
    struct wp_conn *c = h->c;
    const uint8_t *data;
    ssize_t n;

    if (h->in_recv)
        return;
    wp_conn_ref(c);
    while (c->state == WP_CONN_H2 && wp_conn_writable(c) &&
           (n = nghttp2_session_mem_send(h->s, &data)) > 0) {
        if (wp_conn_write(c, data, (size_t)n) < 0) {
            wp_conn_close(c, "write failed");
            break;
        }
    }
    if (c->state == WP_CONN_H2)
        check_end(h);
    wp_conn_unref(c);
}

static void idle_check(struct wp_h2s *h)
{
    if (h->n_held == 0)
        wp_conn_timer(h->c, wp_worker_settings(h->c->w)->idle_timeout_ms);
}

/* ---- requests ---- */

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
    struct wp_h2s *h = user;
    struct wp_exch *x;

    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    if (h->c->draining) {
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_REFUSED_STREAM);
        return 0;
    }
    x = wp_exch_new(h->c->w, h->c, f->hd.stream_id);
    x->req.version = 20;
    hold(h, x);
    nghttp2_session_set_stream_user_data(s, f->hd.stream_id, x);
    wp_exch_head_deadline(x, wp_worker_settings(h->c->w)->head_timeout_ms);
    if (!h->notice_sent)
        wp_conn_timer(h->c, 0); /* the idle timer; a drain keeps its own */
    return 0;
}

static char *hdup(const uint8_t *p, size_t n)
{
    return gm_xstrndup((const char *)p, n);
}

static void pseudo(struct wp_exch *x, const uint8_t *name, size_t nl, const uint8_t *v, size_t vl)
{
    struct wp_req *r = &x->req;

    if (nl == 7 && memcmp(name, ":method", 7) == 0 && r->method == NULL)
        r->method = hdup(v, vl);
    else if (nl == 7 && memcmp(name, ":scheme", 7) == 0 && r->scheme == NULL)
        r->scheme = hdup(v, vl);
    else if (nl == 5 && memcmp(name, ":path", 5) == 0 && r->target == NULL &&
             wp_req_set_target(r, (const char *)v, vl) < 0)
        x->head_error = 400;
    else if (nl == 10 && memcmp(name, ":authority", 10) == 0 &&
             gm_hlist_set(&r->headers, "host", (const char *)v) < 0)
        x->head_error = 431;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                     const uint8_t *value, size_t vl, uint8_t flags, void *user)
{
    struct wp_h2s *h = user;
    struct wp_exch *x = exch_of(s, f->hd.stream_id);

    if (x == NULL || x->head_error || x->state != WP_EXCH_HEAD ||
        f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0; /* trailers and refused streams: dropped */
    if (name[0] == ':') {
        pseudo(x, name, nl, value, vl);
        return 0;
    }
    if (x->req.headers.n >= (size_t)wp_worker_settings(h->c->w)->max_headers) {
        x->head_error = 431;
        return 0;
    }
    if (nl == 14 && memcmp(name, "content-length", 14) == 0) {
        x->req.content_length = strtoll((const char *)value, NULL, 10);
        return 0;
    }
    if (nl == 4 && memcmp(name, "host", 4) == 0 && wp_req_host(&x->req))
        return 0; /* :authority wins */
    if (gm_hlist_addn(&x->req.headers, (const char *)name, nl, (const char *)value, vl) < 0)
        x->head_error = 431;
    return 0;
}

static void request_head(struct wp_h2s *h, struct wp_exch *x, bool end)
{
    x->req.has_body = !end;
    if (x->req.scheme == NULL)
        x->req.scheme = gm_xstrdup("http");
    if (x->head_error == 0 && (x->req.method == NULL || x->req.target == NULL))
        x->head_error = 400; /* CONNECT (no :path) is not proxied here */
    if (x->head_error) {
        if (x->req.method == NULL)
            x->req.method = gm_xstrdup("-");
        wp_exch_reply(x, x->head_error,
                      x->head_error == 431 ? "request header fields too large" : "bad request");
        return;
    }
    wp_exch_start(x);
    if (end)
        wp_exch_body_end(x);
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
    struct wp_h2s *h = user;
    struct wp_exch *x = f->hd.stream_id ? exch_of(s, f->hd.stream_id) : NULL;
    bool end = f->hd.flags & NGHTTP2_FLAG_END_STREAM;

    if (x == NULL)
        return 0;
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST)
        request_head(h, x, end);
    else if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) && end)
        wp_exch_body_end(x);
    return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *p, size_t n,
                         void *user)
{
    struct wp_exch *x = exch_of(s, id);

    if (x == NULL) {
        nghttp2_session_consume(s, id, n);
        return 0;
    }
    wp_exch_body(x, (const char *)p, n); /* the window reopens in h2_drained */
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t code, void *user)
{
    struct wp_h2s *h = user;
    struct wp_exch *x = exch_of(s, id);

    if (x == NULL)
        return 0;
    nghttp2_session_set_stream_user_data(s, id, NULL);
    if (x->body_total > x->acked) {
        /* Body the client sent that never went upstream: give the window back. */
        nghttp2_session_consume_connection(s, (size_t)(x->body_total - x->acked));
        x->acked = x->body_total;
    }
    if (x->state != WP_EXCH_DONE)
        wp_exch_detach(x, code == NGHTTP2_NO_ERROR ? "stream closed" : "stream reset by client");
    unhold(h, x);
    if (h->goaway_sent && h->n_held == 0)
        h->want_close = true;
    else if (!h->notice_sent)
        idle_check(h);
    return 0;
}

/* The response ended while the client is still sending: tell it to stop (RFC 9113 §8.1). */
static void response_ended(nghttp2_session *s, const nghttp2_frame *f)
{
    struct wp_exch *x = exch_of(s, f->hd.stream_id);

    if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM) && x && !x->body_end)
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_NO_ERROR);
}

/* Resets we send because of the peer's errors are capped per second: a peer provoking them
 * (MadeYouReset) gets GOAWAY. */
static int on_frame_send(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
    struct wp_h2s *h = user;
    uint64_t now = uv_now(wp_worker_loop(h->c->w));
    uint64_t cap = (uint64_t)wp_worker_settings(h->c->w)->h2_reset_rate;

    if (f->hd.type != NGHTTP2_RST_STREAM) {
        response_ended(s, f);
        return 0;
    }
    if (f->rst_stream.error_code == NGHTTP2_NO_ERROR)
        return 0;
    if (now - h->rst_window_start >= 1000) {
        h->rst_window_start = now;
        h->rst_sent = 0;
    }
    if (++h->rst_sent > cap) {
        GM_LOG_WARN_LIMITED("h2", "too many stream resets: GOAWAY", "peer=%s", h->c->peer_id);
        nghttp2_session_terminate_session(s, NGHTTP2_ENHANCE_YOUR_CALM);
    }
    return 0;
}

/* ---- responses ---- */

static ssize_t read_resp(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *user)
{
    struct wp_exch *x = src->ptr;
    size_t n = wp_bytes_size(&x->resp.body);

    if (n > len)
        n = len;
    memcpy(buf, wp_bytes_data(&x->resp.body), n);
    wp_exch_taken(x, n);
    if (x->resp.end && wp_bytes_size(&x->resp.body) == 0) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (x->resp.trailers.n) {
            nghttp2_nv v[NV_MAX];
            size_t k = 0;
            for (size_t i = 0; i < x->resp.trailers.n && k < NV_MAX; i++) {
                const struct gm_hfield *t = &x->resp.trailers.v[i];
                v[k++] = (nghttp2_nv){(uint8_t *)t->name, (uint8_t *)t->value, t->name_len,
                                      t->value_len, NGHTTP2_NV_FLAG_NONE};
            }
            if (nghttp2_submit_trailer(s, id, v, k) == 0)
                *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        }
        wp_exch_sent(x);
    } else if (n == 0) {
        return NGHTTP2_ERR_DEFERRED;
    }
    return (ssize_t)n;
}

static bool connection_specific(const char *name)
{
    return gm_str_ieq(name, "connection") || gm_str_ieq(name, "keep-alive") ||
           gm_str_ieq(name, "proxy-connection") || gm_str_ieq(name, "transfer-encoding") ||
           gm_str_ieq(name, "upgrade") || gm_str_ieq(name, "te");
}

static void submit_head(struct wp_h2s *h, struct wp_exch *x)
{
    nghttp2_nv v[NV_MAX];
    char status[8], cl[24];
    char *names[NV_MAX];
    size_t n = 0, k = 0;
    bool body = !x->resp.no_body &&
                !(x->resp.end && wp_bytes_size(&x->resp.body) == 0 && x->resp.trailers.n == 0);
    nghttp2_data_provider dp = {.source.ptr = x, .read_callback = read_resp};

    snprintf(status, sizeof(status), "%d", x->resp.status);
    v[n++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)status, 7, strlen(status), 0};
    for (size_t i = 0; i < x->resp.headers.n && n + 1 < NV_MAX; i++) {
        const struct gm_hfield *f = &x->resp.headers.v[i];
        if (connection_specific(f->name))
            continue;
        names[k] = gm_xmalloc(f->name_len + 1);
        for (size_t j = 0; j < f->name_len; j++)
            names[k][j] = (char)tolower((unsigned char)f->name[j]);
        v[n++] = (nghttp2_nv){(uint8_t *)names[k++], (uint8_t *)f->value, f->name_len, f->value_len,
                              NGHTTP2_NV_FLAG_NONE};
    }
    if (x->resp.content_length >= 0 && x->resp.status != 204 && x->resp.status != 304) {
        snprintf(cl, sizeof(cl), "%lld", (long long)x->resp.content_length);
        v[n++] = (nghttp2_nv){(uint8_t *)"content-length", (uint8_t *)cl, 14, strlen(cl), 0};
    }
    x->codec_head = true;
    if (nghttp2_submit_response(h->s, x->sid, v, n, body ? &dp : NULL) != 0)
        nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, x->sid, NGHTTP2_INTERNAL_ERROR);
    else if (!body)
        wp_exch_sent(x);
    for (size_t i = 0; i < k; i++)
        free(names[i]);
}

static void h2_response(struct wp_conn *c, struct wp_exch *x)
{
    struct wp_h2s *h = h2(c);

    if (x->state == WP_EXCH_DONE && x->codec_head)
        return;
    if (!x->codec_head)
        submit_head(h, x);
    else
        nghttp2_session_resume_data(h->s, x->sid);
    flush(h);
}

static void h2_abort(struct wp_conn *c, struct wp_exch *x)
{
    struct wp_h2s *h = h2(c);

    nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, x->sid, NGHTTP2_INTERNAL_ERROR);
    flush(h);
}

static void h2_drained(struct wp_conn *c, struct wp_exch *x, size_t n)
{
    struct wp_h2s *h = h2(c);

    nghttp2_session_consume(h->s, x->sid, n);
    flush(h);
}

/* ---- connection ---- */

static void h2_input(struct wp_conn *c)
{
    struct wp_h2s *h = h2(c);
    size_t n = wp_bytes_size(&c->in);
    ssize_t rc;

    if (n == 0)
        return;
    h->in_recv = true;
    rc = nghttp2_session_mem_recv(h->s, (const uint8_t *)wp_bytes_data(&c->in), n);
    h->in_recv = false;
    if (c->state != WP_CONN_H2)
        return;
    wp_conn_consume_input(c, n); /* nghttp2 keeps what it needs */
    if (rc < 0) {
        GM_LOG_DEBUG("h2", "protocol error", "peer=%s error=%s", c->peer_id,
                     nghttp2_strerror((int)rc));
        /* Fatal errors leave no GOAWAY queued: say why before closing. */
        nghttp2_session_terminate_session(h->s, rc == NGHTTP2_ERR_FLOODED ||
                                                        rc == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS
                                                    ? NGHTTP2_ENHANCE_YOUR_CALM
                                                    : NGHTTP2_PROTOCOL_ERROR);
        h->want_close = true;
    }
    flush(h);
    if (rc < 0 && c->state == WP_CONN_H2)
        wp_conn_finish(c, "HTTP/2 protocol error"); /* the GOAWAY goes out first */
}

static void h2_writable(struct wp_conn *c)
{
    flush(h2(c));
}

/* The final GOAWAY: streams up to the last one processed finish, then the connection closes. */
static void goaway(struct wp_h2s *h)
{
    if (!h->goaway_sent) {
        h->goaway_sent = true;
        nghttp2_submit_goaway(h->s, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(h->s), NGHTTP2_NO_ERROR, NULL,
                              0);
    }
    if (h->n_held == 0)
        h->want_close = true;
    flush(h);
}

/* The client ended its direction: streams still waiting for its bytes never complete. */
static void h2_peer_end(struct wp_conn *c)
{
    struct wp_h2s *h = h2(c);

    for (size_t i = 0; i < h->n_held; i++)
        if (!h->held[i]->body_end)
            nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, h->held[i]->sid, NGHTTP2_CANCEL);
    goaway(h);
}

/* Graceful: a shutdown notice first (streams the client is opening right now still count), the
 * final GOAWAY a moment later. */
static void h2_drain(struct wp_conn *c)
{
    struct wp_h2s *h = h2(c);

    if (h->notice_sent)
        return;
    h->notice_sent = true;
    nghttp2_submit_shutdown_notice(h->s);
    wp_conn_timer(c, DRAIN_NOTICE_MS);
    flush(h);
}

static void h2_timeout(struct wp_conn *c)
{
    struct wp_h2s *h = h2(c);

    if (h->notice_sent || h->n_held == 0)
        goaway(h); /* after the notice, or idle */
}

static void h2_free(struct wp_conn *c)
{
    struct wp_h2s *h = h2(c);

    if (h == NULL)
        return;
    for (size_t i = 0; i < h->n_held; i++)
        wp_exch_release(h->held[i]);
    free(h->held);
    nghttp2_session_del(h->s);
    free(h);
    c->codec = NULL;
}

const struct wp_codec_ops wp_h2s_ops = {
    .name = "HTTP/2",
    .input = h2_input,
    .response = h2_response,
    .abort = h2_abort,
    .drained = h2_drained,
    .writable = h2_writable,
    .peer_end = h2_peer_end,
    .drain = h2_drain,
    .timeout = h2_timeout,
    .free = h2_free,
};

static nghttp2_session_callbacks *cbs;

static void make_callbacks(void)
{
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
}

/* Built once per process (sessions copy them); reachable until exit. */
static nghttp2_session_callbacks *callbacks(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;

    pthread_once(&once, make_callbacks);
    return cbs;
}

void wp_h2s_start(struct wp_conn *c)
{
    const struct wp_settings *set = wp_worker_settings(c->w);
    struct wp_h2s *h = gm_xcalloc(1, sizeof(*h));
    nghttp2_option *opt;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, (uint32_t)set->max_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)set->max_head_bytes},
    };

    h->c = c;
    nghttp2_option_new(&opt);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_max_continuations(opt, 8);
    nghttp2_option_set_max_outbound_ack(opt, 1000);
    nghttp2_option_set_max_settings(opt, 32);
    nghttp2_option_set_stream_reset_rate_limit(opt, (uint64_t)set->h2_reset_rate * 10,
                                               (uint64_t)set->h2_reset_rate);
    nghttp2_session_server_new2(&h->s, callbacks(), h, opt);
    nghttp2_option_del(opt);
    nghttp2_submit_settings(h->s, NGHTTP2_FLAG_NONE, iv, GM_ARRAY_LEN(iv));
    nghttp2_session_set_local_window_size(h->s, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW);
    c->codec = h;
    c->ops = &wp_h2s_ops;
    if (wp_bytes_size(&c->in) > 0)
        h2_input(c); /* flushes, and may close the connection (h is then gone) */
    else
        flush(h);
}
