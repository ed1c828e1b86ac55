/* HTTP/1.1 serialization (h1_write.h). */
#include "h1_write.h"

#include <errno.h>
#include <string.h>

#include "gammamesh/util.h"
#include "h1_check.h"

const char *wp_h1w_reason(int status)
{
    return gm_http_reason(status);
}

bool wp_h1w_field_ok(const char *name, size_t name_len, const char *value, size_t value_len)
{
    if (name_len == 0)
        return false;
    for (size_t i = 0; i < name_len; i++)
        if (!wp_h1_tchar((unsigned char)name[i]))
            return false;
    for (size_t i = 0; i < value_len; i++)
        if (value[i] == '\r' || value[i] == '\n' || value[i] == '\0')
            return false;
    return true;
}

static int fields(struct gm_buf *out, const struct gm_hlist *h)
{
    int rc = 0;

    for (size_t i = 0; i < h->n && rc == 0; i++) {
        const struct gm_hfield *f = &h->v[i];
        if (!wp_h1w_field_ok(f->name, f->name_len, f->value, f->value_len))
            continue;
        rc = gm_buf_printf(out, "%.*s: %.*s\r\n", (int)f->name_len, f->name, (int)f->value_len,
                           f->value);
    }
    return rc;
}

int wp_h1w_request(struct gm_buf *out, const struct wp_req *r)
{
    int rc = gm_buf_printf(out, "%s %s%s%s HTTP/1.1\r\n", r->method, r->path, r->query ? "?" : "",
                           r->query ? r->query : "");

    if (rc == 0)
        rc = fields(out, &r->headers);
    if (rc == 0 && r->content_length >= 0)
        rc = gm_buf_printf(out, "content-length: %lld\r\n", (long long)r->content_length);
    else if (rc == 0 && r->has_body)
        rc = gm_buf_printf(out, "transfer-encoding: chunked\r\n");
    return rc ? rc : gm_buf_append(out, "\r\n", 2);
}

int wp_h1w_response(struct gm_buf *out, int status, const struct gm_hlist *h,
                    enum wp_h1w_framing framing, int64_t content_length, enum wp_h1w_conn conn)
{
    int rc = gm_buf_printf(out, "HTTP/1.1 %d %s\r\n", status, wp_h1w_reason(status));

    if (rc == 0)
        rc = fields(out, h);
    if (rc == 0 && (framing == WP_H1W_LENGTH || (framing == WP_H1W_NONE && content_length >= 0)))
        rc = gm_buf_printf(out, "content-length: %lld\r\n", (long long)content_length);
    else if (rc == 0 && framing == WP_H1W_CHUNKED)
        rc = gm_buf_printf(out, "transfer-encoding: chunked\r\n");
    if (rc == 0 && conn == WP_H1W_CONN_CLOSE)
        rc = gm_buf_printf(out, "connection: close\r\n");
    else if (rc == 0 && conn == WP_H1W_CONN_KEEP_ALIVE)
        rc = gm_buf_printf(out, "connection: keep-alive\r\n");
    return rc ? rc : gm_buf_append(out, "\r\n", 2);
}
