/* HBONE server side: collecting and validating CONNECT requests, answering them. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>

#include "gammamesh/log.h"
#include "hbone_int.h"

#define AUTHORITY_MAX 64 /* "[ffff:...:ffff]:65535" fits with room to spare */

/* ---- pure validation --------------------------------------------------------------------- */

static bool str_eq(const char *p, size_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(p, lit, n) == 0;
}

/* Headers that only make sense hop-by-hop in HTTP/1 and are malformed in HTTP/2. */
static bool connection_specific(const char *name, size_t n, const char *value, size_t vlen)
{
    static const char *const names[] = {"connection", "keep-alive", "proxy-connection",
                                        "transfer-encoding", "upgrade"};

    for (size_t i = 0; i < GM_ARRAY_LEN(names); i++) {
        if (str_eq(name, n, names[i]))
            return true;
    }
    return str_eq(name, n, "te") && !str_eq(value, vlen, "trailers");
}

/* "ip:port" with IPv6 in brackets, IPv4 without, decimal port 1..65535. */
static int authority_parse(const char *a, size_t len, struct gm_ip *ip, uint16_t *port)
{
    char host[AUTHORITY_MAX];
    const char *h, *p;
    size_t hl;
    bool v6 = len > 0 && a[0] == '[';

    if (len == 0 || len >= AUTHORITY_MAX)
        return -EINVAL;
    if (v6) {
        const char *end = memchr(a, ']', len);
        if (end == NULL || (size_t)(end - a) + 1 >= len || end[1] != ':')
            return -EINVAL;
        h = a + 1;
        hl = (size_t)(end - h);
        p = end + 2;
    } else {
        const char *colon = memchr(a, ':', len);
        if (colon == NULL)
            return -EINVAL;
        h = a;
        hl = (size_t)(colon - a);
        p = colon + 1;
    }
    size_t pl = (size_t)(a + len - p);
    unsigned long v = 0;
    if (hl == 0 || pl == 0 || pl > 5)
        return -EINVAL;
    for (size_t i = 0; i < pl; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -EINVAL;
        v = v * 10 + (unsigned long)(p[i] - '0');
    }
    if (v == 0 || v > 65535)
        return -EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    if (gm_ip_parse(host, ip) < 0 || (ip->family == AF_INET6) != v6)
        return -EINVAL;
    *port = (uint16_t)v;
    return 0;
}

static bool value_ok(const char *v, size_t n)
{
    return nghttp2_check_header_value_rfc9113((const uint8_t *)v, n) != 0;
}

/* Records one pseudo-header; -EINVAL for an unknown or repeated one. */
static int pseudo_take(const struct gm_hbone_header *h, const struct gm_hbone_header **method,
                       const struct gm_hbone_header **authority)
{
    const char *n = h->name;
    size_t len = h->name_len;

    if (str_eq(n, len, ":method") && *method == NULL)
        *method = h;
    else if (str_eq(n, len, ":authority") && *authority == NULL)
        *authority = h;
    else
        return -EINVAL; /* :scheme, :path, :protocol, :status, unknown, or a repeat */
    return 0;
}

int gm_hbone_request_parse(const struct gm_hbone_header *hdrs, size_t n,
                           struct gm_hbone_request *out)
{
    const struct gm_hbone_header *method = NULL, *authority = NULL;
    size_t i = 0;

    memset(out, 0, sizeof(*out));
    for (; i < n && hdrs[i].name_len > 0 && hdrs[i].name[0] == ':'; i++) {
        const struct gm_hbone_header *h = &hdrs[i];
        if (!value_ok(h->value, h->value_len) || pseudo_take(h, &method, &authority) < 0)
            return -EINVAL;
    }
    out->headers = hdrs + i;
    out->n_headers = n - i;
    for (; i < n; i++) {
        const struct gm_hbone_header *h = &hdrs[i];
        if (h->name_len == 0 || !nghttp2_check_header_name((const uint8_t *)h->name, h->name_len))
            return -EINVAL; /* includes a pseudo-header after a regular one */
        if (!value_ok(h->value, h->value_len) ||
            connection_specific(h->name, h->name_len, h->value, h->value_len))
            return -EINVAL;
    }
    if (method == NULL || !str_eq(method->value, method->value_len, "CONNECT"))
        return -EINVAL;
    if (authority == NULL ||
        authority_parse(authority->value, authority->value_len, &out->ip, &out->port) < 0)
        return -EINVAL;
    out->authority = authority->value;
    out->authority_len = authority->value_len;
    return 0;
}

const struct gm_hbone_header *gm_hbone_request_header(const struct gm_hbone_request *req,
                                                      const char *name)
{
    size_t len = strlen(name);

    for (size_t i = 0; i < req->n_headers; i++) {
        const struct gm_hbone_header *h = &req->headers[i];
        if (h->name_len == len && memcmp(h->name, name, len) == 0)
            return h;
    }
    return NULL;
}

int gm_hbone_authority_format(const struct sockaddr *addr, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN];
    int n;

    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)addr;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
        n = snprintf(buf, len, "%s:%u", ip, (unsigned)ntohs(a->sin_port));
    } else if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)addr;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
        n = snprintf(buf, len, "[%s]:%u", ip, (unsigned)ntohs(a->sin6_port));
    } else {
        return -EAFNOSUPPORT;
    }
    return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

/* An extra header the owner wants to send: valid lower-case name, not pseudo, not
 * connection-specific, valid value. Fills in the lengths given as 0. */
bool hbone_header_ok(const struct gm_hbone_header *h, size_t *name_len, size_t *value_len)
{
    if (h->name == NULL || h->value == NULL)
        return false;
    *name_len = h->name_len ? h->name_len : strlen(h->name);
    *value_len = h->value_len ? h->value_len : strlen(h->value);
    if (*name_len == 0 || !nghttp2_check_header_name((const uint8_t *)h->name, *name_len))
        return false;
    return value_ok(h->value, *value_len) &&
           !connection_specific(h->name, *name_len, h->value, *value_len);
}

/* ---- collecting a request ------------------------------------------------------------------ */

void hbone_server_on_header(struct gm_hbone_stream *s, const uint8_t *name, size_t namelen,
                            const uint8_t *value, size_t valuelen)
{
    struct hbone_hdr_ref r;

    if (s->bad)
        return;
    s->hdr_bytes += namelen + valuelen + 32;
    if (s->hdr_bytes > s->conn->settings.max_header_bytes) {
        s->bad = true;
        return;
    }
    r.name_off = s->hbuf.len;
    r.name_len = namelen;
    r.value_off = s->hbuf.len + namelen + 1;
    r.value_len = valuelen;
    if (gm_buf_append(&s->hbuf, name, namelen) < 0 || gm_buf_append(&s->hbuf, "", 1) < 0 ||
        gm_buf_append(&s->hbuf, value, valuelen) < 0 || gm_buf_append(&s->hbuf, "", 1) < 0) {
        s->bad = true;
        return;
    }
    GM_VEC_PUSH(s->hrefs, s->n_hrefs, s->cap_hrefs);
    s->hrefs[s->n_hrefs - 1] = r;
}

/* The block is complete: hbuf will not move any more, so positions become pointers. */
static void headers_build(struct gm_hbone_stream *s)
{
    s->hdrs = gm_xcalloc(s->n_hrefs ? s->n_hrefs : 1, sizeof(*s->hdrs));
    for (size_t i = 0; i < s->n_hrefs; i++) {
        const struct hbone_hdr_ref *r = &s->hrefs[i];
        s->hdrs[i] = (struct gm_hbone_header){
            .name = s->hbuf.data + r->name_off,
            .name_len = r->name_len,
            .value = s->hbuf.data + r->value_off,
            .value_len = r->value_len,
        };
    }
    free(s->hrefs);
    s->hrefs = NULL;
}

/* ---- answering ----------------------------------------------------------------------------- */

#define RESPONSE_HDRS_MAX 16

/* Hands the response HEADERS to nghttp2, with our data provider behind a 2xx. */
static int submit_headers(struct gm_hbone_stream *s, int status, const struct gm_hbone_header *hdrs,
                          size_t n)
{
    nghttp2_nv nva[1 + RESPONSE_HDRS_MAX];
    char code[4];
    nghttp2_data_provider prd = {.source.ptr = s, .read_callback = hbone_data_source_read};
    bool ok = status >= 200 && status < 300;

    if (n > RESPONSE_HDRS_MAX)
        return -EINVAL;
    snprintf(code, sizeof(code), "%03d", status);
    nva[0] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)code, 7, 3, NGHTTP2_NV_FLAG_NONE};
    for (size_t i = 0; i < n; i++) {
        size_t nl, vl;
        if (!hbone_header_ok(&hdrs[i], &nl, &vl))
            return -EINVAL;
        nva[1 + i] = (nghttp2_nv){(uint8_t *)hdrs[i].name, (uint8_t *)hdrs[i].value, nl, vl,
                                  NGHTTP2_NV_FLAG_NONE};
    }
    if (nghttp2_submit_response(s->conn->h2, s->id, nva, 1 + n, ok ? &prd : NULL) != 0)
        return -ENOTCONN;
    if (ok)
        s->prd_attached = true;
    return 0;
}

/* Frees the copied headers of a deferred 2xx. */
void hbone_server_respond_free(struct gm_hbone_stream *s)
{
    for (size_t i = 0; i < s->n_resp_hdrs; i++) {
        free((char *)s->resp_hdrs[i].name);
        free((char *)s->resp_hdrs[i].value);
    }
    free(s->resp_hdrs);
    s->resp_hdrs = NULL;
    s->n_resp_hdrs = 0;
}

/* A deferred 2xx goes to nghttp2 now: the owner is about to send bytes or END_STREAM, is
 * resetting the stream, or the deferral ran out. */
void hbone_server_respond_flush(struct gm_hbone_stream *s)
{
    if (!s->resp_deferred)
        return;
    s->resp_deferred = false;
    int rc = submit_headers(s, s->stats.status, s->resp_hdrs, s->n_resp_hdrs);
    hbone_server_respond_free(s);
    if (rc == 0)
        hbone_stream_resume(s);
}

void hbone_server_respond_flush_all(struct gm_hbone_conn *c)
{
    for (struct gm_hbone_stream *s = c->streams; s && hbone_conn_usable(c); s = s->next)
        hbone_server_respond_flush(s);
}

static void on_respond_timer(uv_timer_t *t)
{
    struct gm_hbone_conn *c = container_of(t, struct gm_hbone_conn, respond);

    if (!hbone_conn_usable(c))
        return;
    hbone_conn_enter(c);
    hbone_server_respond_flush_all(c);
    hbone_conn_leave(c);
}

/* A 2xx for a client that sent data right behind its CONNECT (so it is not waiting for the
 * answer) waits up to HBONE_RESPOND_DEFER_MS for the first upstream bytes, END_STREAM or a
 * reset, and travels in the same TLS record: on a request/response exchange the client's node
 * wakes once instead of twice. A client that waits for the 2xx before sending gets it at once. */
static bool respond_deferrable(const struct gm_hbone_stream *s, int status)
{
    return status >= 200 && status < 300 && s->early_data && !s->shut_wr &&
           HBONE_RESPOND_DEFER_MS > 0;
}

/* Copies the headers of a deferred 2xx (the caller's are borrowed for the call only). */
static int respond_keep_headers(struct gm_hbone_stream *s, const struct gm_hbone_header *hdrs,
                                size_t n)
{
    if (n > RESPONSE_HDRS_MAX)
        return -EINVAL;
    s->resp_hdrs = n ? gm_xcalloc(n, sizeof(*s->resp_hdrs)) : NULL;
    for (size_t i = 0; i < n; i++) {
        size_t nl, vl;
        if (!hbone_header_ok(&hdrs[i], &nl, &vl)) {
            hbone_server_respond_free(s);
            return -EINVAL;
        }
        s->resp_hdrs[i] = (struct gm_hbone_header){gm_xstrndup(hdrs[i].name, nl), nl,
                                                   gm_xstrndup(hdrs[i].value, vl), vl};
        s->n_resp_hdrs = i + 1;
    }
    return 0;
}

static int submit_response(struct gm_hbone_stream *s, int status,
                           const struct gm_hbone_header *hdrs, size_t n)
{
    struct gm_hbone_conn *c = s->conn;
    bool ok = status >= 200 && status < 300;

    if (respond_deferrable(s, status)) {
        int rc = respond_keep_headers(s, hdrs, n);
        if (rc < 0)
            return rc;
        s->resp_deferred = true;
        if (!uv_is_active((uv_handle_t *)&c->respond))
            uv_timer_start(&c->respond, on_respond_timer, HBONE_RESPOND_DEFER_MS, 0);
    } else {
        int rc = submit_headers(s, status, hdrs, n);
        if (rc < 0)
            return rc;
    }
    s->stats.status = status;
    if (ok) {
        hbone_stream_set_state(s, GM_HBONE_STREAM_OPEN);
        hbone_stream_resume(s); /* held data, queued writes, a shutdown asked early */
        return 0;
    }
    hbone_stream_set_state(s, GM_HBONE_STREAM_FAILED);
    if (s->reason == GM_HBONE_REASON_OK)
        s->reason = GM_HBONE_REASON_REJECTED;
    /* Held request bytes will never be read: re-open the windows. */
    if (s->held.bytes > 0) {
        nghttp2_session_consume(s->conn->h2, s->id, s->held.bytes);
        s->unconsumed -= s->held.bytes;
        hbone_queue_clear(&s->held);
    }
    hbone_conn_schedule(s->conn);
    return 0;
}

int gm_hbone_stream_respond(struct gm_hbone_stream *s, int status,
                            const struct gm_hbone_header *hdrs, size_t n_hdrs)
{
    struct gm_hbone_conn *c = s->conn;
    int rc;

    if (!c->server || status < 200 || status > 599)
        return -EINVAL;
    if (s->state == GM_HBONE_STREAM_CLOSED || !hbone_conn_usable(c))
        return -ENOTCONN;
    if (s->state != GM_HBONE_STREAM_OPENING || s->stats.status != 0)
        return -EALREADY;
    hbone_conn_enter(c);
    rc = submit_response(s, status, hdrs, n_hdrs);
    hbone_conn_leave(c);
    return rc;
}

/* A request header block is complete: answer 400 ourselves, or hand it to the owner. */
void hbone_server_on_request(struct gm_hbone_stream *s)
{
    struct gm_hbone_conn *c = s->conn;

    headers_build(s);
    if (s->bad || gm_hbone_request_parse(s->hdrs, s->n_hrefs, &s->req) < 0) {
        GM_LOG_DEBUG("hbone", "bad CONNECT request", "id=%d", (int)s->id);
        s->reason = GM_HBONE_REASON_BAD_REQUEST;
        submit_response(s, 400, NULL, 0);
        return;
    }
    if (c->cbs->on_request == NULL) {
        submit_response(s, 503, NULL, 0);
        return;
    }
    s->owned = true;
    c->cbs->on_request(c, s, &s->req, c->ctx);
}

void gm_hbone_stream_set_cbs(struct gm_hbone_stream *s, const struct gm_hbone_stream_cbs *cbs,
                             void *ctx)
{
    s->cbs = cbs;
    s->ctx = ctx;
}

const struct gm_hbone_request *gm_hbone_stream_request(const struct gm_hbone_stream *s)
{
    return s->conn->server && s->req.authority ? &s->req : NULL;
}
