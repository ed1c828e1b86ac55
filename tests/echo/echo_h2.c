/* HTTP/2 (h2c by prior knowledge, or h2 over TLS) for the echo server over nghttp2: one request
 * per stream, many streams at once, each with its own ?delay= timer. */
#include "echo.h"

#include <ctype.h>
#include <errno.h>

#define MAX_STREAMS 100

static struct echo_req *stream_req(nghttp2_session *s, int32_t id)
{
    return nghttp2_session_get_stream_user_data(s, id);
}

static bool is_request(const nghttp2_frame *f)
{
    return f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST;
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    struct echo_conn *c = ud;

    if (!is_request(f) || c->closing)
        return 0;
    struct echo_req *r = echo_req_new(c, f->hd.stream_id);
    r->major = 2;
    r->minor = 0;
    r->next = c->streams;
    c->streams = r;
    if (nghttp2_session_set_stream_user_data(s, f->hd.stream_id, r) != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    return 0;
}

static bool name_eq(const uint8_t *name, size_t len, const char *want)
{
    return len == strlen(want) && memcmp(name, want, len) == 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
    struct echo_req *r = is_request(f) ? stream_req(s, f->hd.stream_id) : NULL;
    const char *v = (const char *)value;
    int rc = 0;

    if (r == NULL || r->closing)
        return 0; /* trailers, or a stream we are already done with */
    if (namelen > 0 && name[0] == ':') {
        if (name_eq(name, namelen, ":method"))
            rc = echo_req_set(r, &r->method, v, valuelen);
        else if (name_eq(name, namelen, ":path"))
            rc = echo_req_set(r, &r->url, v, valuelen);
        else if (name_eq(name, namelen, ":authority"))
            rc = echo_req_set(r, &r->authority, v, valuelen);
    } else {
        rc = echo_req_header(r, (const char *)name, namelen, v, valuelen);
        if (name_eq(name, namelen, "content-length"))
            r->has_body = true;
    }
    return rc < 0 ? NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE : 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *ud)
{
    struct echo_req *r = stream_req(s, id);

    if (r && !r->closing)
        echo_req_body(r, (const char *)data, len);
    return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA)
        return 0;
    if (!(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    struct echo_req *r = stream_req(s, f->hd.stream_id);
    if (r && !r->closing && !r->responded && r->method.len > 0)
        echo_req_done(r);
    return 0;
}

static void unlink_req(struct echo_conn *c, struct echo_req *r)
{
    for (struct echo_req **pp = &c->streams; *pp; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            r->next = NULL;
            return;
        }
    }
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t error_code, void *ud)
{
    struct echo_conn *c = ud;
    struct echo_req *r = stream_req(s, id);

    if (r == NULL)
        return 0;
    nghttp2_session_set_stream_user_data(s, id, NULL);
    unlink_req(c, r);
    echo_req_close(r);
    return 0;
}

int echo_h2_init(struct echo_conn *c)
{
    nghttp2_session_callbacks *cbs = NULL;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, MAX_STREAMS},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, ECHO_MAX_HEADER_BYTES},
    };
    int rc = -ENOMEM;

    if (nghttp2_session_callbacks_new(&cbs) != 0)
        goto fail;
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    if (nghttp2_session_server_new(&c->h2, cbs, c) != 0)
        goto fail;
    if (nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, GM_ARRAY_LEN(iv)) != 0) {
        rc = -EPROTO;
        goto fail;
    }
    rc = 0;
fail:
    nghttp2_session_callbacks_del(cbs);
    return rc;
}

int echo_h2_feed(struct echo_conn *c, const char *p, size_t n)
{
    c->in_h2_recv = true; /* nghttp2 must not be re-entered from its callbacks */
    ssize_t rv = nghttp2_session_mem_recv(c->h2, (const uint8_t *)p, n);
    c->in_h2_recv = false;

    if (rv < 0) {
        fprintf(stderr, "echo-server: %s port=%d: http2: %s\n", c->peer_ip, c->port,
                nghttp2_strerror((int)rv));
        return -EPROTO;
    }
    return 0;
}

void echo_h2_flush(struct echo_conn *c)
{
    struct gm_buf out;

    if (c->closing || c->finishing || c->h2 == NULL)
        return;
    gm_buf_init(&out, 0);
    for (;;) {
        const uint8_t *data = NULL;
        ssize_t n = nghttp2_session_mem_send(c->h2, &data);
        if (n < 0) {
            gm_buf_done(&out);
            echo_conn_close(c, nghttp2_strerror((int)n));
            return;
        }
        if (n == 0)
            break;
        int rc = gm_buf_append(&out, data, (size_t)n);
        GM_ASSERT(rc == 0); /* out is uncapped */
    }
    if (out.len)
        echo_conn_send(c, out.data, out.len, false);
    gm_buf_done(&out);
    if (c->closing)
        return;
    bool over = !nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2);
    if (over || (c->eof && c->streams == NULL))
        echo_conn_finish(c);
}

void echo_h2_eof(struct echo_conn *c)
{
    if (c->streams == NULL)
        echo_conn_finish(c);
}

static ssize_t data_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    struct echo_req *r = src->ptr;
    size_t left = r->body.len - r->body_off;
    size_t n = left < length ? left : length;

    memcpy(buf, r->body.data + r->body_off, n);
    r->body_off += n;
    if (r->body_off == r->body.len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static nghttp2_nv nv(const char *name, const char *value)
{
    return (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value),
                        NGHTTP2_NV_FLAG_NONE};
}

void echo_h2_emit(struct echo_req *r)
{
    struct echo_conn *c = r->conn;
    nghttp2_nv nva[3 + ECHO_MAX_RESP_HEADERS];
    char status[16], clen[32];
    size_t n = 0;
    bool head = r->method.len == 4 && memcmp(echo_req_str(r, r->method), "HEAD", 4) == 0;
    bool no_body = r->status == 204 || r->status == 304;

    if (c->closing || r->closing)
        return;
    snprintf(status, sizeof(status), "%d", r->status);
    snprintf(clen, sizeof(clen), "%zu", r->body.len);
    nva[n++] = nv(":status", status);
    nva[n++] = nv("content-type", "text/plain");
    for (size_t i = 0; i < r->knobs.nhdrs; i++) {
        for (char *p = r->knobs.hdr_name[i]; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        nva[n++] = nv(r->knobs.hdr_name[i], r->knobs.hdr_value[i]);
    }
    if (!no_body)
        nva[n++] = nv("content-length", clen);
    nghttp2_data_provider prd = {.source.ptr = r, .read_callback = data_read};
    bool data = !head && !no_body && r->body.len > 0;
    int rv = nghttp2_submit_response(c->h2, r->stream_id, nva, n, data ? &prd : NULL);
    if (rv != 0)
        fprintf(stderr, "echo-server: %s port=%d: http2 stream %d: %s\n", c->peer_ip, c->port,
                r->stream_id, nghttp2_strerror(rv));
    if (!c->in_h2_recv)
        echo_h2_flush(c);
}

void echo_h2_done(struct echo_conn *c)
{
    while (c->streams) {
        struct echo_req *r = c->streams;
        c->streams = r->next;
        r->next = NULL;
        echo_req_close(r);
    }
}
