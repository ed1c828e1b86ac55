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

/* Appends each string of the NULL-terminated list (per request and response: no printf). */
static int put(struct gm_buf *out, const char *const *parts)
{
    int rc = 0;

    for (size_t i = 0; parts[i] && rc == 0; i++)
        rc = gm_buf_append(out, parts[i], strlen(parts[i]));
    return rc;
}

/* "NAME: <decimal>\r\n" */
static int put_number_field(struct gm_buf *out, const char *name, long long v)
{
    char num[24];
    unsigned long long mag = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;

    num[0] = '-';
    num[(v < 0) + gm_fmt_u64(num + (v < 0), mag)] = '\0';
    return put(out, (const char *[]){name, ": ", num, "\r\n", NULL});
}

static int fields(struct gm_buf *out, const struct gm_hlist *h)
{
    int rc = 0;

    for (size_t i = 0; i < h->n && rc == 0; i++) {
        const struct gm_hfield *f = &h->v[i];
        if (!wp_h1w_field_ok(f->name, f->name_len, f->value, f->value_len))
            continue;
        rc = gm_buf_append(out, f->name, f->name_len);
        if (rc == 0)
            rc = gm_buf_append(out, ": ", 2);
        if (rc == 0)
            rc = gm_buf_append(out, f->value, f->value_len);
        if (rc == 0)
            rc = gm_buf_append(out, "\r\n", 2);
    }
    return rc;
}

int wp_h1w_request(struct gm_buf *out, const struct wp_req *r)
{
    int rc = put(out, (const char *[]){r->method, " ", r->path, r->query ? "?" : "",
                                       r->query ? r->query : "", " HTTP/1.1\r\n", NULL});

    if (rc == 0)
        rc = fields(out, &r->headers);
    if (rc == 0 && r->content_length >= 0)
        rc = put_number_field(out, "content-length", (long long)r->content_length);
    else if (rc == 0 && r->has_body)
        rc = put(out, (const char *[]){"transfer-encoding: chunked\r\n", NULL});
    return rc ? rc : gm_buf_append(out, "\r\n", 2);
}

int wp_h1w_response(struct gm_buf *out, int status, const struct gm_hlist *h,
                    enum wp_h1w_framing framing, int64_t content_length, enum wp_h1w_conn conn)
{
    char code[4] = {(char)('0' + status / 100 % 10), (char)('0' + status / 10 % 10),
                    (char)('0' + status % 10), '\0'};
    int rc = status >= 100 && status <= 999
                 ? put(out, (const char *[]){"HTTP/1.1 ", code, " ", wp_h1w_reason(status), "\r\n",
                                             NULL})
                 : gm_buf_printf(out, "HTTP/1.1 %d %s\r\n", status, wp_h1w_reason(status));

    if (rc == 0)
        rc = fields(out, h);
    if (rc == 0 && (framing == WP_H1W_LENGTH || (framing == WP_H1W_NONE && content_length >= 0)))
        rc = put_number_field(out, "content-length", (long long)content_length);
    else if (rc == 0 && framing == WP_H1W_CHUNKED)
        rc = put(out, (const char *[]){"transfer-encoding: chunked\r\n", NULL});
    if (rc == 0 && conn == WP_H1W_CONN_CLOSE)
        rc = put(out, (const char *[]){"connection: close\r\n", NULL});
    else if (rc == 0 && conn == WP_H1W_CONN_KEEP_ALIVE)
        rc = put(out, (const char *[]){"connection: keep-alive\r\n", NULL});
    return rc ? rc : gm_buf_append(out, "\r\n", 2);
}
