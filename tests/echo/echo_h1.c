/* HTTP/1.x for the echo server over llhttp: one request at a time (the parser pauses at each
 * message end until its reply is written), keep-alive, 400/431 and close on bad input. */
#include "echo.h"
#include "gammamesh/util.h"

#include <errno.h>
#include <strings.h>

static struct echo_req *cur(llhttp_t *p)
{
    struct echo_conn *c = p->data;

    return c->req;
}

static int on_message_begin(llhttp_t *p)
{
    struct echo_conn *c = p->data;

    echo_req_close(c->req);
    c->req = echo_req_new(c, 0);
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
    return echo_req_append(cur(p), ECHO_FIELD_URL, at, n) < 0 ? -1 : 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    return echo_req_append(cur(p), ECHO_FIELD_NAME, at, n) < 0 ? -1 : 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    return echo_req_append(cur(p), ECHO_FIELD_VALUE, at, n) < 0 ? -1 : 0;
}

static bool expects_continue(const struct echo_req *r)
{
    static const char name[] = "expect", value[] = "100-continue";

    for (size_t i = 0; i < r->nhdrs; i++) {
        const struct echo_hdr *h = &r->hdrs[i];
        if (h->name_len == sizeof(name) - 1 && h->value_len == sizeof(value) - 1 &&
            strncasecmp(r->arena.data + h->name, name, h->name_len) == 0 &&
            strncasecmp(r->arena.data + h->value, value, h->value_len) == 0)
            return true;
    }
    return false;
}

static int on_headers_complete(llhttp_t *p)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    struct echo_conn *c = p->data;
    struct echo_req *r = c->req;
    const char *m = llhttp_method_name(llhttp_get_method(p));

    if (echo_req_set(r, &r->method, m, strlen(m)) < 0)
        return -1;
    r->major = llhttp_get_http_major(p);
    r->minor = llhttp_get_http_minor(p);
    if (p->flags & (F_CONTENT_LENGTH | F_CHUNKED))
        r->has_body = true;
    /* Like Go's server: tell a client that waits for it to send the body. */
    if (r->has_body && r->major == 1 && r->minor == 1 && expects_continue(r) &&
        echo_conn_send(c, cont, sizeof(cont) - 1, false) < 0)
        return -1;
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    echo_req_body(cur(p), at, n);
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct echo_conn *c = p->data;
    struct echo_req *r = c->req;

    r->keep_alive = llhttp_should_keep_alive(p) && !llhttp_get_upgrade(p) &&
                    llhttp_get_method(p) != HTTP_CONNECT;
    c->h1_busy = true;
    echo_req_done(r);
    return HPE_PAUSED;
}

static const llhttp_settings_t h1_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void echo_h1_init(struct echo_conn *c)
{
    llhttp_init(&c->parser, HTTP_REQUEST, &h1_settings);
    c->parser.data = c;
}

/* Answer a request the parser rejected, then close. */
static void h1_error(struct echo_conn *c, int status, const char *reason)
{
    char buf[512];

    echo_req_close(c->req);
    c->req = NULL;
    int n = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\nerror=%s\n",
                     status, gm_http_reason(status), strlen(reason) + 7, reason);
    fprintf(stderr, "echo-server: %s port=%d: bad request: %s -> %d\n", c->peer_ip, c->port, reason,
            status);
    c->h1_busy = true;
    c->h1_close = true;
    if (n < 0 || (size_t)n >= sizeof(buf)) {
        echo_conn_close(c, "http: error reply too long");
        return;
    }
    echo_conn_send(c, buf, (size_t)n, true);
}

int echo_h1_feed(struct echo_conn *c, const char *p, size_t n, size_t *used)
{
    enum llhttp_errno e = llhttp_execute(&c->parser, p, n);

    if (c->closing) {
        *used = n;
        return -EPIPE;
    }
    if (e == HPE_OK) {
        *used = n;
        return 0;
    }
    if (e == HPE_PAUSED && c->h1_busy) {
        *used = (size_t)(llhttp_get_error_pos(&c->parser) - p);
        return 0;
    }
    *used = n;
    if (c->req && c->req->too_large)
        h1_error(c, 431, "request header too large");
    else
        h1_error(c, 400, llhttp_errno_name(e));
    return -EPROTO;
}

void echo_h1_emit(struct echo_req *r)
{
    struct echo_conn *c = r->conn;
    struct gm_buf out;
    bool head = r->method.len == 4 && memcmp(echo_req_str(r, r->method), "HEAD", 4) == 0;
    bool no_len = r->status == 204 || r->status == 304;
    int rc;

    if (c->closing || r->closing)
        return;
    gm_buf_init(&out, 0);
    rc = gm_buf_printf(&out, "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n", r->status,
                       gm_http_reason(r->status));
    for (size_t i = 0; i < r->knobs.nhdrs && rc == 0; i++)
        rc = gm_buf_printf(&out, "%s: %s\r\n", r->knobs.hdr_name[i], r->knobs.hdr_value[i]);
    if (rc == 0 && !no_len)
        rc = gm_buf_printf(&out, "Content-Length: %zu\r\n", r->body.len);
    if (rc == 0 && !r->keep_alive)
        rc = gm_buf_printf(&out, "Connection: close\r\n");
    else if (rc == 0 && r->minor == 0)
        rc = gm_buf_printf(&out, "Connection: keep-alive\r\n");
    if (rc == 0)
        rc = gm_buf_append(&out, "\r\n", 2);
    if (rc == 0 && !head && !no_len)
        rc = gm_buf_append(&out, r->body.data, r->body.len);
    GM_ASSERT(rc == 0); /* out is uncapped */
    c->h1_close = !r->keep_alive;
    echo_conn_send(c, out.data, out.len, true);
    gm_buf_done(&out);
}

void echo_h1_sent(struct echo_conn *c)
{
    echo_req_close(c->req);
    c->req = NULL;
    c->h1_busy = false;
    if (c->h1_close) {
        echo_conn_finish(c);
        return;
    }
    llhttp_resume(&c->parser);
    echo_conn_resume(c);
}

void echo_h1_eof(struct echo_conn *c)
{
    if (c->req) {
        echo_conn_close(c, "http: EOF inside a request");
        return;
    }
    echo_conn_finish(c);
}

void echo_h1_done(struct echo_conn *c)
{
    echo_req_close(c->req);
    c->req = NULL;
}
