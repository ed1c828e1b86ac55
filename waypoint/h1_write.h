/* HTTP/1.1 serialization (pure): request and response heads with the waypoint's own framing
 * fields. Fields with a name that is not a token or a value holding CR, LF or NUL are never
 * written (they are dropped), whatever produced them. */
#ifndef WP_H1_WRITE_H
#define WP_H1_WRITE_H

#include <stdbool.h>
#include <stdint.h>

#include "gammamesh/route_filter.h"
#include "gammamesh/util.h"
#include "req.h"

/* "METHOD path[?query] HTTP/1.1", the fields, then Content-Length (content_length >= 0) or
 * Transfer-Encoding: chunked (has_body with an unknown length), then the empty line. 0 or
 * -ENOBUFS. */
int wp_h1w_request(struct gm_buf *out, const struct wp_req *r);

/* How a response body is framed toward an HTTP/1.x client. */
enum wp_h1w_framing {
    WP_H1W_NONE = 0, /* no body (HEAD, 204, 304): content_length written when >= 0 */
    WP_H1W_LENGTH,   /* Content-Length: content_length */
    WP_H1W_CHUNKED,  /* Transfer-Encoding: chunked */
    WP_H1W_CLOSE,    /* the body ends when the connection closes */
    WP_H1W__MAX
};

/* The Connection field of a response. */
enum wp_h1w_conn {
    WP_H1W_CONN_NONE = 0,   /* none: HTTP/1.1 keeps the connection */
    WP_H1W_CONN_CLOSE,      /* "connection: close" */
    WP_H1W_CONN_KEEP_ALIVE, /* "connection: keep-alive" (an HTTP/1.0 client asked for it) */
    WP_H1W_CONN__MAX
};

/* "HTTP/1.1 status reason", the fields, the framing field, the Connection field, then the empty
 * line. 0 or -ENOBUFS. */
int wp_h1w_response(struct gm_buf *out, int status, const struct gm_hlist *h,
                    enum wp_h1w_framing framing, int64_t content_length, enum wp_h1w_conn conn);

/* The reason phrase of a status ("OK", "Not Found"; "Unknown" for others). */
const char *wp_h1w_reason(int status);

/* Is the field safe to serialize (token name; value without CR, LF, NUL)? */
bool wp_h1w_field_ok(const char *name, size_t name_len, const char *value, size_t value_len);

#endif
