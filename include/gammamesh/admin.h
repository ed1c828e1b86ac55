/*
 * admin.h: a tiny HTTP/1.1 server for the admin, metrics and readiness listeners.
 *
 * One request per connection: the server reads one request head (llhttp, strict mode, at most
 * GM_ADMIN_HEAD_MAX bytes, no body), calls the handler registered for its method and path
 * synchronously, writes the response with "Connection: close" and closes. Errors answer on
 * their own: 400 malformed, 404 unknown path, 405 known path with another method (with Allow),
 * 413 request with a body, 431 head too large, 500 response over its cap; a connection that
 * has not sent a complete head within GM_ADMIN_TIMEOUT_MS is closed.
 *
 * Everything runs on the loop given to gm_admin_new(); nothing here is thread-safe.
 *
 *     static void on_ready(const struct gm_admin_request *req, struct gm_admin_response *res,
 *                          void *ctx)
 *     {
 *         gm_admin_reply(res, 200, "ready\n");
 *     }
 *     struct gm_admin *a = gm_admin_new(loop);
 *     gm_admin_route(a, "GET", "/healthz/ready", on_ready, NULL);
 *     rc = gm_admin_listen(a, "0.0.0.0:15021");      (-EADDRINUSE, ...)
 */
#ifndef GAMMAMESH_ADMIN_H
#define GAMMAMESH_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "gammamesh/util.h"

#define GM_ADMIN_HEAD_MAX   8192       /* bytes of a request head (request line + headers) */
#define GM_ADMIN_TIMEOUT_MS 5000       /* from accept to the end of the response */
#define GM_ADMIN_CONNS_MAX  64         /* open connections per server; more are closed */
#define GM_ADMIN_BODY_MAX   (64 << 20) /* default cap of a response body */
#define GM_ADMIN_LISTEN_MAX 4          /* addresses one server listens on */

/* The request as a handler sees it; every pointer is valid during the handler call only. */
struct gm_admin_request {
    const char *method; /* "GET", "POST", … */
    const char *path;   /* "/logging": raw (not percent-decoded), without the query */
    const char *query;  /* "level=debug": raw, without '?'; "" when absent */
};

/* The response a handler fills. The server initialises it to 200, text/plain, empty body. */
struct gm_admin_response {
    int status;
    const char *content_type; /* must outlive the response: use a string literal */
    struct gm_buf body;       /* capped at the server's body limit */
    bool overflow;            /* a write went past the cap: the server answers 500 instead */
    const char *allow;        /* for 405: the Allow header; set by the server */
};

typedef void (*gm_admin_handler_fn)(const struct gm_admin_request *req,
                                    struct gm_admin_response *res, void *ctx);
typedef void (*gm_admin_close_cb)(void *arg);

struct gm_admin;

/* A server on loop, with no listener and no route yet. Aborts on OOM. */
struct gm_admin *gm_admin_new(uv_loop_t *loop);

/*
 * Listens on addr, "ip:port" or "[ipv6]:port" (port 0 picks a free port; see gm_admin_port).
 * Returns 0, -EINVAL for a bad address, -ENOSPC past GM_ADMIN_LISTEN_MAX, or the libuv error
 * (-EADDRINUSE, -EACCES, …). addr is borrowed.
 */
int gm_admin_listen(struct gm_admin *a, const char *addr);

/* The bound port of the first listener, or -ENOTCONN when there is none. */
int gm_admin_port(const struct gm_admin *a);

/*
 * Routes requests with this method and exact path (both copied) to fn(req, res, ctx). A HEAD
 * request runs the GET handler and sends no body. Returns 0 or -EEXIST.
 */
int gm_admin_route(struct gm_admin *a, const char *method, const char *path, gm_admin_handler_fn fn,
                   void *ctx);

/*
 * Caps response bodies at body_max bytes (default GM_ADMIN_BODY_MAX) and the life of a
 * connection at timeout_ms (default GM_ADMIN_TIMEOUT_MS); applies to later connections.
 */
void gm_admin_set_limits(struct gm_admin *a, size_t body_max, unsigned timeout_ms);

/*
 * Stops listening, closes idle and reading connections at once, lets responses being written
 * finish (within their timeout), then calls cb(arg) (may be NULL) and frees the server. cb never
 * runs before gm_admin_close() returns. NULL a is allowed.
 */
void gm_admin_close(struct gm_admin *a, gm_admin_close_cb cb, void *arg);

/* Response helpers: append to the body (-ENOBUFS past the cap; the server then answers 500). */
int gm_admin_write(struct gm_admin_response *res, const void *data, size_t len);
int gm_admin_printf(struct gm_admin_response *res, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Sets the status and replaces the body with text (text/plain). */
void gm_admin_reply(struct gm_admin_response *res, int status, const char *text);

/*
 * Finds query parameter name and writes its percent-decoded value ('+' is a space) to out.
 * Returns the value's length (0 for "?name" or "?name="), -ENOENT when absent, -EINVAL for a
 * bad escape, -ENOSPC when it does not fit in outlen bytes with its NUL.
 */
int gm_admin_query(const struct gm_admin_request *req, const char *name, char *out, size_t outlen);

#endif
