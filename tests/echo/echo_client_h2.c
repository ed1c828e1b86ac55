/* h2c with prior knowledge for echo-client: one nghttp2 client session over one connection,
 * one stream per request; redials when the server has gone away. */
#include "echo_client.h"

#include <ctype.h>
#include <errno.h>
#include <strings.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

struct ec_h2 {
    int fd; /* -1 when not connected */
    nghttp2_session *s;
    bool goaway;           /* the server sent GOAWAY: redial for the next request */
    int32_t stream;        /* the current request's stream */
    bool got;              /* a frame arrived on the current stream */
    bool final;            /* the final (non-1xx) response headers arrived */
    bool closed;           /* the current stream is closed */
    uint32_t stream_error; /* its RST_STREAM / GOAWAY code */
    struct ec_resp *resp;
    const char *body;
    size_t body_len, body_off;
};

struct ec_h2 *ec_h2_new(void)
{
    struct ec_h2 *h = gm_xcalloc(1, sizeof(*h));

    h->fd = -1;
    return h;
}

static void drop(struct ec_h2 *h)
{
    nghttp2_session_del(h->s);
    h->s = NULL;
    if (h->fd >= 0)
        close(h->fd);
    h->fd = -1;
    h->goaway = false;
}

void ec_h2_free(struct ec_h2 *h)
{
    if (h == NULL)
        return;
    drop(h);
    free(h);
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    struct ec_h2 *h = ud;

    if (f->hd.type == NGHTTP2_HEADERS && f->hd.stream_id == h->stream && !h->final) {
        h->got = true;
        ec_resp_done(h->resp); /* drop an interim response's headers */
        ec_resp_init(h->resp);
    }
    return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
    struct ec_h2 *h = ud;

    if (f->hd.type != NGHTTP2_HEADERS || f->hd.stream_id != h->stream || h->final)
        return 0; /* not ours, or trailers */
    if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
        int st = 0;
        for (size_t i = 0; i < valuelen && i < 3; i++)
            st = st * 10 + (value[i] - '0');
        h->resp->status = st;
        return 0;
    }
    if (namelen > 0 && name[0] == ':')
        return 0;
    if (ec_resp_header(h->resp, (const char *)name, namelen, (const char *)value, valuelen) < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    struct ec_h2 *h = ud;

    if (f->hd.type == NGHTTP2_GOAWAY)
        h->goaway = true;
    if (f->hd.type == NGHTTP2_HEADERS && f->hd.stream_id == h->stream && h->resp->status >= 200)
        h->final = true;
    return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *ud)
{
    struct ec_h2 *h = ud;

    if (id != h->stream)
        return 0;
    h->got = true;
    if (gm_buf_append(&h->resp->body, data, len) < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
    struct ec_h2 *h = ud;

    if (id == h->stream) {
        h->closed = true;
        h->stream_error = code;
    }
    return 0;
}

static int dial(struct ec_h2 *h, const struct ec_opts *o, uint64_t deadline, char *err)
{
    nghttp2_session_callbacks *cbs = NULL;
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
    int rc = ec_net_dial(o->host, o->port, deadline, err);

    if (rc < 0)
        return rc;
    h->fd = rc;
    rc = -ENOMEM;
    if (nghttp2_session_callbacks_new(&cbs) != 0)
        goto fail;
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    if (nghttp2_session_client_new(&h->s, cbs, h) != 0)
        goto fail;
    if (nghttp2_submit_settings(h->s, NGHTTP2_FLAG_NONE, iv, GM_ARRAY_LEN(iv)) != 0)
        goto fail;
    nghttp2_session_callbacks_del(cbs);
    return 0;
fail:
    snprintf(err, EC_ERR_LEN, "http2: session setup failed");
    nghttp2_session_callbacks_del(cbs);
    drop(h);
    return rc;
}

/* Write everything nghttp2 has queued. */
static int flush(struct ec_h2 *h, uint64_t deadline, char *err)
{
    for (;;) {
        const uint8_t *data = NULL;
        ssize_t n = nghttp2_session_mem_send(h->s, &data);
        if (n < 0) {
            snprintf(err, EC_ERR_LEN, "http2: %s", nghttp2_strerror((int)n));
            return -EPROTO;
        }
        if (n == 0)
            return 0;
        int rc = ec_net_send(h->fd, data, (size_t)n, deadline);
        if (rc < 0) {
            snprintf(err, EC_ERR_LEN, "write: %s", ec_net_strerror(rc));
            return rc;
        }
    }
}

static ssize_t body_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    struct ec_h2 *h = ud;
    size_t n = h->body_len - h->body_off;

    if (n > length)
        n = length;
    memcpy(buf, h->body + h->body_off, n);
    h->body_off += n;
    if (h->body_off == h->body_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static bool hop_by_hop(const char *name)
{
    static const char *const names[] = {"connection", "keep-alive", "proxy-connection",
                                        "transfer-encoding", "upgrade"};

    for (size_t i = 0; i < GM_ARRAY_LEN(names); i++) {
        if (strcasecmp(name, names[i]) == 0)
            return true;
    }
    return false;
}

static nghttp2_nv nv(const char *name, const char *value)
{
    return (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value),
                        NGHTTP2_NV_FLAG_NONE};
}

/* Open the request's stream; 0 or a negative errno with err set. */
static int submit(struct ec_h2 *h, const struct ec_opts *o, char *err)
{
    nghttp2_nv nva[6 + EC_MAX_HEADERS];
    char *lower[EC_MAX_HEADERS];
    char clen[32];
    size_t n = 0, nl = 0;
    bool ua = false;

    nva[n++] = nv(":method", o->method);
    nva[n++] = nv(":scheme", "http");
    nva[n++] = nv(":authority", o->authority);
    nva[n++] = nv(":path", o->path);
    for (size_t i = 0; i < o->nhdrs; i++) {
        if (hop_by_hop(o->hdr_name[i]))
            continue;
        char *l = lower[nl++] = gm_xstrdup(o->hdr_name[i]);
        for (char *p = l; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        ua = ua || strcmp(l, "user-agent") == 0;
        nva[n++] = nv(l, o->hdr_value[i]);
    }
    if (!ua)
        nva[n++] = nv("user-agent", "gammamesh-echo-client");
    h->body = o->body;
    h->body_len = o->body ? strlen(o->body) : 0;
    h->body_off = 0;
    snprintf(clen, sizeof(clen), "%zu", h->body_len);
    if (o->body)
        nva[n++] = nv("content-length", clen);
    nghttp2_data_provider prd = {.read_callback = body_read};
    h->stream = nghttp2_submit_request(h->s, NULL, nva, n, h->body_len ? &prd : NULL, NULL);
    for (size_t i = 0; i < nl; i++)
        free(lower[i]);
    if (h->stream < 0) {
        snprintf(err, EC_ERR_LEN, "http2: %s", nghttp2_strerror(h->stream));
        return -EPROTO;
    }
    return 0;
}

static int exchange(struct ec_h2 *h, const struct ec_opts *o, uint64_t deadline, char *err)
{
    uint8_t buf[16384];
    int rc;

    h->got = h->final = h->closed = false;
    h->stream_error = 0;
    rc = submit(h, o, err);
    while (rc == 0 && !h->closed) {
        rc = flush(h, deadline, err);
        if (rc < 0 || h->closed)
            break;
        if (!nghttp2_session_want_read(h->s) && !nghttp2_session_want_write(h->s)) {
            snprintf(err, EC_ERR_LEN, "http2: connection closed by the server");
            return -ECONNRESET;
        }
        ssize_t n = ec_net_recv(h->fd, buf, sizeof(buf), deadline);
        if (n <= 0) {
            snprintf(err, EC_ERR_LEN, "read: %s",
                     n == 0 ? "connection closed before the response" : ec_net_strerror((int)n));
            return n == 0 ? -ECONNRESET : (int)n;
        }
        ssize_t used = nghttp2_session_mem_recv(h->s, buf, (size_t)n);
        if (used < 0) {
            snprintf(err, EC_ERR_LEN, "http2: %s", nghttp2_strerror((int)used));
            return -EPROTO;
        }
    }
    if (rc < 0)
        return rc;
    flush(h, deadline, err); /* window updates; a failure shows up on the next request */
    if (h->stream_error != NGHTTP2_NO_ERROR || !h->final) {
        snprintf(err, EC_ERR_LEN, "http2: stream reset: %s",
                 nghttp2_http2_strerror(h->stream_error));
        return -ECONNRESET;
    }
    return 0;
}

int ec_h2_request(struct ec_h2 *h, const struct ec_opts *o, struct ec_resp *resp, char *err)
{
    uint64_t deadline = ec_now_ms() + o->timeout_ms;
    int rc;

    h->resp = resp;
    for (int attempt = 0;; attempt++) {
        bool fresh = h->s == NULL || h->goaway;
        if (fresh) {
            drop(h);
            rc = dial(h, o, deadline, err);
            if (rc < 0)
                break;
        }
        rc = exchange(h, o, deadline, err);
        if (rc == 0)
            break;
        drop(h);
        /* A reused connection the server closed or refused our stream on: redial once. */
        if (attempt > 0 || fresh || h->got || rc == -ETIMEDOUT)
            break;
        ec_resp_done(resp);
        ec_resp_init(resp);
    }
    h->resp = NULL;
    return rc;
}
