/* HTTP/2 (prior knowledge) toward the upstream, one request at a time per connection: a client
 * session over the HBONE stream, the request's body from the exchange through a data provider,
 * response headers, DATA and trailers into the exchange. Our receive windows open only as the
 * downstream takes the body. */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>

#include "exch.h"
#include "gammamesh/log.h"
#include "upstream.h"
#include "worker.h"

#define WINDOW    (256 << 10)
#define NV_MAX    (WP_REQ_VIEW_MAX + 4)
#define CHUNK_MAX (16u << 10)

static bool gone(const struct wp_uconn *u)
{
    return u->state != WP_UCONN_ACTIVE || u->x == NULL;
}

static void fail(struct wp_uconn *u, const char *why)
{
    struct wp_exch *x = u->x;

    wp_uconn_close(u, why);
    if (x)
        wp_exch_up_error(x, why);
}

/* ---- callbacks ---- */

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user)
{
    struct wp_uconn *u = user;
    struct wp_exch *x = u->x;

    if (gone(u) || f->hd.stream_id != u->sid)
        return 0;
    if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
        x->resp.status = atoi((const char *)value);
        return 0;
    }
    if (name[0] == ':')
        return 0;
    if (x->state == WP_EXCH_RESPOND) /* after the response head: trailers */
        return gm_hlist_addn(&x->resp.trailers, (const char *)name, namelen, (const char *)value,
                             valuelen) < 0
                   ? NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE
                   : 0;
    if (namelen == 14 && memcmp(name, "content-length", 14) == 0) {
        x->resp.content_length = strtoll((const char *)value, NULL, 10);
        return 0;
    }
    if (gm_hlist_addn(&x->resp.headers, (const char *)name, namelen, (const char *)value,
                      valuelen) < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return 0;
}

static void response_end(struct wp_uconn *u)
{
    u->resp_done = true;
    wp_exch_up_end(u->x);
}

static void headers_frame(struct wp_uconn *u, const nghttp2_frame *f)
{
    struct wp_exch *x = u->x;
    bool end = f->hd.flags & NGHTTP2_FLAG_END_STREAM;

    if (x->state == WP_EXCH_WAIT && x->resp.status >= 100 && x->resp.status < 200) {
        gm_hlist_done(&x->resp.headers); /* interim: skipped */
        gm_hlist_init(&x->resp.headers, x->req.headers.max_bytes);
        x->resp.status = 0;
        return;
    }
    if (x->state == WP_EXCH_WAIT) {
        x->resp.no_body = strcmp(x->req.method, "HEAD") == 0;
        wp_exch_up_head(x);
    }
    if (end && !gone(u))
        response_end(u);
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
    struct wp_uconn *u = user;

    if (f->hd.type == NGHTTP2_GOAWAY)
        u->goaway = true;
    if (gone(u) || f->hd.stream_id != u->sid || u->resp_done)
        return 0;
    if (f->hd.type == NGHTTP2_HEADERS)
        headers_frame(u, f);
    else if (f->hd.type == NGHTTP2_DATA && (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
        response_end(u);
    return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *p, size_t n,
                         void *user)
{
    struct wp_uconn *u = user;

    if (gone(u) || id != u->sid || u->x->state != WP_EXCH_RESPOND) {
        nghttp2_session_consume(s, id, n);
        return 0;
    }
    wp_bytes_append(&u->x->resp.body, p, n);
    u->held += n;
    wp_exch_up_body(u->x);
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t code, void *user)
{
    struct wp_uconn *u = user;

    if (id != u->sid)
        return 0;
    u->sid = 0;
    if (!gone(u) && !u->resp_done)
        fail(u, code == NGHTTP2_REFUSED_STREAM ? "upstream refused the stream"
                                               : "upstream reset the stream");
    return 0;
}

/* The request body from the exchange. */
static ssize_t read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *user)
{
    struct wp_uconn *u = user;
    struct wp_exch *x = u->x;

    if (gone(u))
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    size_t n = (size_t)(x->body_total - x->sent);
    if (n > len)
        n = len;
    memcpy(buf, wp_bytes_data(&x->body) + (x->sent - x->body_base), n);
    x->sent += n;
    if (x->body_end && x->sent == x->body_total) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        u->req_done = true;
    } else if (n == 0) {
        return NGHTTP2_ERR_DEFERRED;
    }
    return (ssize_t)n;
}

static nghttp2_session_callbacks *cbs;

static void make_callbacks(void)
{
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
}

/* Built once per process (sessions copy them); reachable until exit. */
static nghttp2_session_callbacks *callbacks(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;

    pthread_once(&once, make_callbacks);
    return cbs;
}

/* ---- lifecycle ---- */

int wp_up_h2_init(struct wp_uconn *u)
{
    nghttp2_option *opt;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)u->w->wp->set.max_head_bytes},
    };
    int rc;

    nghttp2_option_new(&opt);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_max_continuations(opt, 8);
    rc = nghttp2_session_client_new2(&u->h2s, callbacks(), u, opt);
    nghttp2_option_del(opt);
    if (rc == 0)
        rc = nghttp2_submit_settings(u->h2s, NGHTTP2_FLAG_NONE, iv, GM_ARRAY_LEN(iv));
    return rc == 0 ? 0 : -ENOMEM;
}

void wp_up_h2_done(struct wp_uconn *u)
{
    nghttp2_session_del(u->h2s);
    u->h2s = NULL;
}

static void lower(char *dst, const char *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = (char)tolower((unsigned char)src[i]);
}

static nghttp2_nv nv(const char *name, size_t nl, const char *value, size_t vl)
{
    return (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, nl, vl, NGHTTP2_NV_FLAG_NONE};
}

/* The request's header block; names lower-cased into names[] (freed by the caller). */
static size_t request_nv(const struct wp_exch *x, nghttp2_nv *v, char **names, char *path)
{
    const struct wp_req *r = &x->req;
    const char *host = wp_req_host(r);
    size_t n = 0;

    v[n++] = nv(":method", 7, r->method, strlen(r->method));
    v[n++] = nv(":scheme", 7, "http", 4);
    v[n++] = nv(":authority", 10, host ? host : x->upstream, strlen(host ? host : x->upstream));
    v[n++] = nv(":path", 5, path, strlen(path));
    for (size_t i = 0; i < r->headers.n && n < NV_MAX; i++) {
        const struct gm_hfield *f = &r->headers.v[i];
        if (gm_str_ieq(f->name, "host"))
            continue;
        names[i] = gm_xmalloc(f->name_len + 1);
        lower(names[i], f->name, f->name_len);
        v[n++] = nv(names[i], f->name_len, f->value, f->value_len);
    }
    return n;
}

int wp_up_h2_begin(struct wp_uconn *u)
{
    struct wp_exch *x = u->x;
    nghttp2_nv v[NV_MAX];
    char **names = gm_xcalloc(x->req.headers.n + 1, sizeof(char *));
    char *path = gm_xasprintf("%s%s%s", x->req.path, x->req.query ? "?" : "",
                              x->req.query ? x->req.query : "");
    size_t n = request_nv(x, v, names, path);
    nghttp2_data_provider dp = {.read_callback = read_body};
    bool body = x->req.has_body || x->body_total > 0;

    if (!body)
        u->req_done = true;
    u->sid = nghttp2_submit_request(u->h2s, NULL, v, n, body ? &dp : NULL, NULL);
    for (size_t i = 0; i < x->req.headers.n; i++)
        free(names[i]);
    free(names);
    free(path);
    u->head_written = true;
    return u->sid > 0 ? 0 : -EINVAL;
}

/* Everything nghttp2 wants to send, while the stream takes it. */
static void flush(struct wp_uconn *u)
{
    const uint8_t *data;
    ssize_t n;

    while (u->stream && gm_hbone_stream_writable(u->stream) &&
           (n = nghttp2_session_mem_send(u->h2s, &data)) > 0) {
        if (gm_hbone_stream_write(u->stream, data, (size_t)n) < 0) {
            fail(u, "upstream write failed");
            return;
        }
    }
}

void wp_up_h2_send(struct wp_uconn *u)
{
    struct wp_exch *x = u->x;
    uint64_t before = x ? x->sent : 0;

    if (u->sid > 0 && !u->req_done)
        nghttp2_session_resume_data(u->h2s, u->sid);
    flush(u);
    if (x && u->x == x && x->sent > before)
        wp_exch_progress(x);
}

void wp_up_h2_input(struct wp_uconn *u, const uint8_t *p, size_t n)
{
    ssize_t rc = nghttp2_session_mem_recv(u->h2s, p, n);

    if (u->stream)
        gm_hbone_stream_consumed(u->stream, n); /* HTTP/2 flow control governs from here */
    if (rc < 0) {
        GM_LOG_DEBUG("upstream", "HTTP/2 error", "authority=%s error=%s", u->authority,
                     nghttp2_strerror((int)rc));
        fail(u, "upstream HTTP/2 protocol error");
        return;
    }
    if (u->state != WP_UCONN_CLOSING)
        flush(u);
}

void wp_up_h2_consumed(struct wp_uconn *u, size_t n)
{
    if (u->h2s == NULL)
        return;
    if (u->sid > 0)
        nghttp2_session_consume(u->h2s, u->sid, n);
    else
        nghttp2_session_consume_connection(u->h2s, n);
    flush(u);
}
