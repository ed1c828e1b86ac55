/*
 * admin.c: the one-request-per-connection HTTP/1.1 server behind the admin, metrics and
 * readiness listeners (see gammamesh/admin.h).
 *
 * A connection goes READING (parse the head) → WRITING (response queued) → DRAINING (our side
 * shut down; discard input until the peer's FIN, so that closing does not reset a response the
 * peer has not read yet) → CLOSED. The idle timer, armed at accept, bounds the whole life.
 */
#include "gammamesh/admin.h"

#include <errno.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "gammamesh/log.h"

#define LISTEN_BACKLOG 128

enum conn_state {
    CONN_READING = 1, /* reading the request head */
    CONN_WRITING,     /* response queued */
    CONN_DRAINING,    /* response sent, write side shut; waiting for the peer's FIN */
    CONN_CLOSED,      /* handles closing; freed on the last close callback */
    CONN__MAX
};

struct route {
    char *method;
    char *path;
    gm_admin_handler_fn fn;
    void *ctx;
};

struct listener {
    uv_tcp_t tcp;
    struct gm_admin *admin;
};

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t write_req;
    uv_shutdown_t shutdown_req;
    llhttp_t parser;
    struct gm_admin *admin;
    struct conn *prev, *next;
    enum conn_state state;
    int handles;       /* open libuv handles; the conn is freed when this reaches 0 */
    bool complete;     /* the request head has been parsed */
    bool peer_eof;     /* the peer shut down its write side */
    int error_status;  /* set by a parser callback that rejects the request */
    size_t head_bytes; /* bytes fed to the parser */
    size_t url_len;
    char url[GM_ADMIN_HEAD_MAX + 1];
    char rbuf[4096];
    char head[512];
    char allow[128];
    struct gm_admin_response res;
};

struct gm_admin {
    uv_loop_t *loop;
    llhttp_settings_t parser_settings;
    struct listener *listeners[GM_ADMIN_LISTEN_MAX];
    size_t n_listeners;
    struct route *routes;
    size_t n_routes, cap_routes;
    struct conn *conns;
    size_t n_conns;
    size_t body_limit;
    unsigned timeout_ms;
    int handles; /* listeners and closer not yet closed */
    bool closing;
    uv_timer_t closer; /* never started: closing it defers the final callback */
    gm_admin_close_cb close_cb;
    void *close_arg;
};

static void conn_close(struct conn *c);

/* ---- lifecycle ---- */

static void maybe_finish(struct gm_admin *a)
{
    if (!a->closing || a->handles > 0 || a->n_conns > 0)
        return;
    if (a->close_cb)
        a->close_cb(a->close_arg);
    for (size_t i = 0; i < a->n_routes; i++) {
        free(a->routes[i].method);
        free(a->routes[i].path);
    }
    free(a->routes);
    free(a);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct gm_admin *a = h->data;

    if (h != (uv_handle_t *)&a->closer)
        free(container_of((uv_tcp_t *)h, struct listener, tcp));
    a->handles--;
    maybe_finish(a);
}

static int on_parser_url(llhttp_t *p, const char *at, size_t len);
static int on_parser_headers_complete(llhttp_t *p);
static int on_parser_message_complete(llhttp_t *p);

struct gm_admin *gm_admin_new(uv_loop_t *loop)
{
    struct gm_admin *a = gm_xcalloc(1, sizeof(*a));

    a->loop = loop;
    a->body_limit = GM_ADMIN_BODY_MAX;
    a->timeout_ms = GM_ADMIN_TIMEOUT_MS;
    llhttp_settings_init(&a->parser_settings);
    a->parser_settings.on_url = on_parser_url;
    a->parser_settings.on_headers_complete = on_parser_headers_complete;
    a->parser_settings.on_message_complete = on_parser_message_complete;
    uv_timer_init(loop, &a->closer);
    a->closer.data = a;
    a->handles = 1;
    return a;
}

void gm_admin_set_limits(struct gm_admin *a, size_t body_max, unsigned timeout_ms)
{
    a->body_limit = body_max;
    a->timeout_ms = timeout_ms;
}

void gm_admin_close(struct gm_admin *a, gm_admin_close_cb cb, void *arg)
{
    if (a == NULL || a->closing)
        return;
    a->closing = true;
    a->close_cb = cb;
    a->close_arg = arg;
    for (size_t i = 0; i < a->n_listeners; i++)
        uv_close((uv_handle_t *)&a->listeners[i]->tcp, on_handle_closed);
    a->n_listeners = 0;
    for (struct conn *c = a->conns; c; c = c->next) {
        if (c->state != CONN_WRITING)
            conn_close(c);
    }
    uv_close((uv_handle_t *)&a->closer, on_handle_closed);
}

int gm_admin_route(struct gm_admin *a, const char *method, const char *path, gm_admin_handler_fn fn,
                   void *ctx)
{
    struct route *r;

    for (size_t i = 0; i < a->n_routes; i++) {
        if (strcmp(a->routes[i].method, method) == 0 && strcmp(a->routes[i].path, path) == 0)
            return -EEXIST;
    }
    GM_VEC_PUSH(a->routes, a->n_routes, a->cap_routes);
    r = &a->routes[a->n_routes - 1];
    r->method = gm_xstrdup(method);
    r->path = gm_xstrdup(path);
    r->fn = fn;
    r->ctx = ctx;
    return 0;
}

/* ---- listening ---- */

static void on_connection(uv_stream_t *server, int status);

static void to_sockaddr(const struct gm_ip *ip, int port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (ip->family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        memcpy(&sin->sin_addr, ip->addr, 4);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        memcpy(&sin6->sin6_addr, ip->addr, 16);
    }
}

int gm_admin_listen(struct gm_admin *a, const char *addr)
{
    struct sockaddr_storage ss;
    struct listener *l;
    struct gm_ip ip;
    int port, rc;

    if (a->closing)
        return -ECANCELED;
    if (a->n_listeners == GM_ADMIN_LISTEN_MAX)
        return -ENOSPC;
    if (gm_ipport_parse(addr, &ip, &port) < 0)
        return -EINVAL;
    to_sockaddr(&ip, port, &ss);
    l = gm_xcalloc(1, sizeof(*l));
    l->admin = a;
    rc = uv_tcp_init(a->loop, &l->tcp);
    if (rc < 0) {
        free(l);
        return rc;
    }
    l->tcp.data = a;
    a->handles++;
    rc = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&ss, 0);
    if (rc < 0)
        goto fail;
    rc = uv_listen((uv_stream_t *)&l->tcp, LISTEN_BACKLOG, on_connection);
    if (rc < 0)
        goto fail;
    a->listeners[a->n_listeners++] = l;
    return 0;
fail:
    uv_close((uv_handle_t *)&l->tcp, on_handle_closed);
    return rc;
}

int gm_admin_port(const struct gm_admin *a)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    if (a->n_listeners == 0 ||
        uv_tcp_getsockname(&a->listeners[0]->tcp, (struct sockaddr *)&ss, &len) < 0)
        return -ENOTCONN;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* ---- connections ---- */

static void on_conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    struct gm_admin *a = c->admin;

    if (--c->handles > 0)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        a->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    a->n_conns--;
    gm_buf_done(&c->res.body);
    free(c);
    maybe_finish(a);
}

static void conn_close(struct conn *c)
{
    if (c->state == CONN_CLOSED)
        return;
    c->state = CONN_CLOSED;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void on_timeout(uv_timer_t *t)
{
    conn_close(t->data);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct conn *c = req->data;

    if (status < 0 || c->peer_eof || c->admin->closing)
        conn_close(c);
    else if (c->state == CONN_WRITING)
        c->state = CONN_DRAINING;
}

static void on_write(uv_write_t *req, int status)
{
    struct conn *c = req->data;

    if (status < 0 || c->state != CONN_WRITING ||
        uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) < 0)
        conn_close(c);
}

static void send_response(struct conn *c, bool head_only)
{
    struct gm_admin_response *res = &c->res;
    uv_buf_t bufs[2];
    int n;

    n = snprintf(c->head, sizeof(c->head),
                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s%s"
                 "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                 res->status, gm_http_reason(res->status), res->content_type, res->body.len,
                 res->allow ? "Allow: " : "", res->allow ? res->allow : "",
                 res->allow ? "\r\n" : "");
    bufs[0] = uv_buf_init(c->head, (unsigned)n);
    bufs[1] = uv_buf_init(res->body.data, (unsigned)res->body.len);
    c->state = CONN_WRITING;
    c->write_req.data = c;
    c->shutdown_req.data = c;
    if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, bufs,
                 head_only || res->body.len == 0 ? 1 : 2, on_write) < 0)
        conn_close(c);
}

static void respond_error(struct conn *c, int status, const char *text)
{
    gm_admin_reply(&c->res, status, text);
    GM_LOG_DEBUG("admin", "request refused", "status=%d", status);
    send_response(c, false);
}

/* The routes for path: the one for method in *match, the methods in c->allow. */
static bool find_route(struct conn *c, const char *method, const char *path,
                       const struct route **match)
{
    struct gm_admin *a = c->admin;
    size_t used = 0;
    bool path_known = false;

    *match = NULL;
    c->allow[0] = '\0';
    for (size_t i = 0; i < a->n_routes; i++) {
        const struct route *r = &a->routes[i];
        if (strcmp(r->path, path) != 0)
            continue;
        path_known = true;
        if (strcmp(r->method, method) == 0)
            *match = r;
        if (used < sizeof(c->allow))
            used += (size_t)snprintf(c->allow + used, sizeof(c->allow) - used, "%s%s",
                                     used ? ", " : "", r->method);
    }
    return path_known;
}

static void dispatch(struct conn *c)
{
    const char *method = llhttp_method_name((llhttp_method_t)llhttp_get_method(&c->parser));
    bool head = strcmp(method, "HEAD") == 0;
    struct gm_admin_request req = {.method = method, .path = c->url, .query = ""};
    const struct route *r;
    char *q = strchr(c->url, '?');

    if (q) {
        *q = '\0';
        req.query = q + 1;
    }
    if (c->url[0] != '/') {
        respond_error(c, 400, "bad request target\n");
        return;
    }
    if (!find_route(c, method, req.path, &r)) {
        respond_error(c, 404, "not found\n");
        return;
    }
    if (r == NULL && head)
        find_route(c, "GET", req.path, &r);
    if (r == NULL) {
        c->res.allow = c->allow;
        respond_error(c, 405, "method not allowed\n");
        return;
    }
    r->fn(&req, &c->res, r->ctx);
    if (c->res.overflow)
        gm_admin_reply(&c->res, 500, "response too large\n");
    GM_LOG_DEBUG("admin", "request", "method=%s path=%s status=%d bytes=%zu", method, req.path,
                 c->res.status, c->res.body.len);
    send_response(c, head);
}

static int on_parser_url(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = p->data;

    if (len > GM_ADMIN_HEAD_MAX - c->url_len)
        return -1;
    memcpy(c->url + c->url_len, at, len);
    c->url_len += len;
    c->url[c->url_len] = '\0';
    return 0;
}

static int on_parser_headers_complete(llhttp_t *p)
{
    struct conn *c = p->data;

    if ((p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0)) {
        c->error_status = 413;
        return -1;
    }
    return 0;
}

static int on_parser_message_complete(llhttp_t *p)
{
    struct conn *c = p->data;

    c->complete = true;
    return HPE_PAUSED;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;

    *buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    size_t feed;
    llhttp_errno_t err;

    if (nread < 0) {
        c->peer_eof = true;
        if (nread != UV_EOF || c->state != CONN_WRITING)
            conn_close(c);
        return;
    }
    if (nread == 0 || c->state != CONN_READING)
        return; /* after the head: discard */
    feed = (size_t)nread;
    if (feed > GM_ADMIN_HEAD_MAX - c->head_bytes)
        feed = GM_ADMIN_HEAD_MAX - c->head_bytes;
    c->head_bytes += feed;
    err = llhttp_execute(&c->parser, buf->base, feed);
    if (c->complete)
        dispatch(c);
    else if (c->error_status == 413)
        respond_error(c, 413, "request bodies are not accepted\n");
    else if (err != HPE_OK)
        respond_error(c, 400, "bad request\n");
    else if (c->head_bytes == GM_ADMIN_HEAD_MAX)
        respond_error(c, 431, "request head too large\n");
}

static void conn_start(struct gm_admin *a, uv_stream_t *server)
{
    struct conn *c = gm_xcalloc(1, sizeof(*c));

    c->admin = a;
    c->state = CONN_READING;
    uv_tcp_init(a->loop, &c->tcp);
    uv_timer_init(a->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    c->next = a->conns;
    if (a->conns)
        a->conns->prev = c;
    a->conns = c;
    a->n_conns++;
    c->res.status = 200;
    c->res.content_type = "text/plain; charset=utf-8";
    gm_buf_init(&c->res.body, a->body_limit);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0 || a->n_conns > GM_ADMIN_CONNS_MAX) {
        GM_LOG_DEBUG("admin", "connection refused", "open=%zu", a->n_conns - 1);
        conn_close(c);
        return;
    }
    llhttp_init(&c->parser, HTTP_REQUEST, &a->parser_settings);
    c->parser.data = c;
    uv_timer_start(&c->timer, on_timeout, a->timeout_ms, 0);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
        conn_close(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct gm_admin *a = server->data;

    if (status < 0) {
        GM_LOG_WARN("admin", "accept failed", "error=%s", uv_strerror(status));
        return;
    }
    if (!a->closing)
        conn_start(a, server);
}

/* ---- responses ---- */

int gm_admin_write(struct gm_admin_response *res, const void *data, size_t len)
{
    int rc = res->overflow ? -ENOBUFS : gm_buf_append(&res->body, data, len);

    res->overflow |= rc < 0;
    return rc;
}

int gm_admin_printf(struct gm_admin_response *res, const char *fmt, ...)
{
    char small[512], *big = NULL;
    va_list ap;
    int n, rc;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    if ((size_t)n >= sizeof(small)) {
        big = gm_xmalloc((size_t)n + 1);
        va_start(ap, fmt);
        vsnprintf(big, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    rc = gm_admin_write(res, big ? big : small, (size_t)n);
    free(big);
    return rc;
}

void gm_admin_reply(struct gm_admin_response *res, int status, const char *text)
{
    res->status = status;
    res->content_type = "text/plain; charset=utf-8";
    res->body.len = 0;
    res->overflow = false;
    gm_admin_write(res, text, strlen(text));
}

/* ---- query strings ---- */

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

static int decode(const char *s, size_t len, char *out, size_t outlen)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        int ch = (unsigned char)s[i];
        if (ch == '+') {
            ch = ' ';
        } else if (ch == '%') {
            if (i + 2 >= len || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0)
                return -EINVAL;
            ch = hexval(s[i + 1]) * 16 + hexval(s[i + 2]);
            i += 2;
            if (ch == 0)
                return -EINVAL;
        }
        if (o + 1 >= outlen)
            return -ENOSPC;
        out[o++] = (char)ch;
    }
    if (outlen == 0)
        return -ENOSPC;
    out[o] = '\0';
    return (int)o;
}

int gm_admin_query(const struct gm_admin_request *req, const char *name, char *out, size_t outlen)
{
    const char *p = req->query ? req->query : "";
    size_t nlen = strlen(name);

    while (*p) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        size_t klen = eq ? (size_t)(eq - p) : len;

        if (klen == nlen && memcmp(p, name, nlen) == 0)
            return eq ? decode(eq + 1, len - klen - 1, out, outlen) : decode("", 0, out, outlen);
        if (amp == NULL)
            break;
        p = amp + 1;
    }
    return -ENOENT;
}
