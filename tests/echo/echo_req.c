/* One request to the echo server: fields received by either protocol, the body hash, the knobs
 * and the rendered reply. */
#include "echo.h"
#include "echo_canon.h"

#include <ctype.h>
#include <errno.h>

#define REPLY_BODY_CAP (4 * ECHO_MAX_HEADER_BYTES) /* escaping can grow the header text */

struct echo_req *echo_req_new(struct echo_conn *c, int32_t stream_id)
{
    struct echo_req *r = gm_xcalloc(1, sizeof(*r));
    int rc = uv_timer_init(c->srv->loop, &r->timer);

    GM_ASSERT(rc == 0); /* uv_timer_init cannot fail on a live loop */
    c->handles++;
    r->conn = c;
    r->stream_id = stream_id;
    r->timer.data = r;
    r->status = 200;
    gm_buf_init(&r->arena, ECHO_MAX_HEADER_BYTES);
    gm_buf_init(&r->body, REPLY_BODY_CAP);
    echo_knobs_init(&r->knobs);
    return r;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct echo_req *r = h->data;
    struct echo_conn *c = r->conn;

    gm_buf_done(&r->arena);
    gm_buf_done(&r->body);
    free(r->hdrs);
    EVP_MD_CTX_free(r->sha);
    echo_knobs_done(&r->knobs);
    free(r);
    echo_conn_handle_closed(c);
}

void echo_req_close(struct echo_req *r)
{
    if (r == NULL || r->closing)
        return;
    r->closing = true;
    uv_close((uv_handle_t *)&r->timer, on_timer_closed);
}

static int start_field(struct echo_req *r, enum echo_req_field field)
{
    uint32_t at = (uint32_t)r->arena.len;

    switch (field) {
    case ECHO_FIELD_URL:
        r->url.off = at;
        r->url.len = 0;
        break;
    case ECHO_FIELD_NAME:
        if (r->nhdrs == ECHO_MAX_HEADERS)
            return -ENOBUFS;
        GM_VEC_PUSH(r->hdrs, r->nhdrs, r->hdrs_cap);
        r->hdrs[r->nhdrs - 1] = (struct echo_hdr){.name = at, .value = at};
        break;
    case ECHO_FIELD_VALUE:
        if (r->nhdrs == 0)
            return -EPROTO;
        r->hdrs[r->nhdrs - 1].value = at;
        break;
    default:
        return -EINVAL;
    }
    r->field = field;
    return 0;
}

int echo_req_append(struct echo_req *r, enum echo_req_field field, const char *p, size_t n)
{
    int rc = 0;

    if (r->too_large)
        return -ENOBUFS;
    if (field != r->field)
        rc = start_field(r, field);
    if (rc == 0)
        rc = gm_buf_append(&r->arena, p, n);
    if (rc < 0) {
        r->too_large = true;
        return -ENOBUFS;
    }
    if (field == ECHO_FIELD_URL)
        r->url.len += (uint32_t)n;
    else if (field == ECHO_FIELD_NAME)
        r->hdrs[r->nhdrs - 1].name_len += (uint32_t)n;
    else
        r->hdrs[r->nhdrs - 1].value_len += (uint32_t)n;
    return 0;
}

int echo_req_set(struct echo_req *r, struct echo_span *span, const char *p, size_t n)
{
    uint32_t at = (uint32_t)r->arena.len;

    r->field = ECHO_FIELD_NONE;
    if (r->too_large || gm_buf_append(&r->arena, p, n) < 0) {
        r->too_large = true;
        return -ENOBUFS;
    }
    span->off = at;
    span->len = (uint32_t)n;
    return 0;
}

int echo_req_header(struct echo_req *r, const char *name, size_t nlen, const char *value,
                    size_t vlen)
{
    r->field = ECHO_FIELD_NONE;
    int rc = echo_req_append(r, ECHO_FIELD_NAME, name, nlen);
    if (rc == 0)
        rc = echo_req_append(r, ECHO_FIELD_VALUE, value, vlen);
    r->field = ECHO_FIELD_NONE;
    return rc;
}

static void sha_init(struct echo_req *r)
{
    r->sha = EVP_MD_CTX_new();
    if (r->sha == NULL || EVP_DigestInit_ex(r->sha, EVP_sha256(), NULL) != 1) {
        fputs("echo-server: SHA-256 unavailable\n", stderr);
        abort();
    }
}

void echo_req_body(struct echo_req *r, const char *p, size_t n)
{
    r->has_body = true;
    if (n == 0)
        return;
    if (r->sha == NULL)
        sha_init(r);
    if (EVP_DigestUpdate(r->sha, p, n) != 1)
        abort();
    r->body_len += n;
}

static void sha_finish(struct echo_req *r)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    if (r->sha == NULL)
        sha_init(r);
    if (EVP_DigestFinal_ex(r->sha, md, &mdlen) != 1 || mdlen != 32)
        abort();
    for (unsigned i = 0; i < mdlen; i++)
        snprintf(r->body_sha + 2 * i, 3, "%02x", md[i]);
}

static bool name_is(const struct echo_req *r, const struct echo_hdr *h, const char *name)
{
    return h->name_len == strlen(name) &&
           strncasecmp(r->arena.data + h->name, name, h->name_len) == 0;
}

/* The Host the request named: :authority, else the first Host header. */
static struct echo_span host_of(const struct echo_req *r)
{
    if (r->authority.len)
        return r->authority;
    for (size_t i = 0; i < r->nhdrs; i++) {
        if (name_is(r, &r->hdrs[i], "host"))
            return (struct echo_span){r->hdrs[i].value, r->hdrs[i].value_len};
    }
    return (struct echo_span){0, 0};
}

struct sorted_hdr {
    char *name; /* owned; canonical */
    size_t idx; /* arrival order */
};

static int cmp_sorted(const void *a, const void *b)
{
    const struct sorted_hdr *x = a, *y = b;
    int c = strcmp(x->name, y->name);

    if (c)
        return c;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Value without leading/trailing blanks, as Go's textproto stores it. */
static void trimmed(const struct echo_req *r, const struct echo_hdr *h, const char **p, int *n)
{
    const char *s = r->arena.data + h->value;
    size_t len = h->value_len;

    while (len && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    *p = s;
    *n = (int)len;
}

static int render_headers(const struct echo_req *r, struct gm_buf *out)
{
    struct sorted_hdr *v = gm_xcalloc(r->nhdrs, sizeof(*v));
    size_t n = 0;
    int rc = 0;

    for (size_t i = 0; i < r->nhdrs; i++) {
        const struct echo_hdr *h = &r->hdrs[i];
        if (h->name_len == 0 || name_is(r, h, "host") || name_is(r, h, "transfer-encoding"))
            continue;
        v[n].name = gm_xcalloc(1, h->name_len + 1);
        echo_canon(r->arena.data + h->name, h->name_len, v[n].name);
        v[n].idx = i;
        n++;
    }
    qsort(v, n, sizeof(*v), cmp_sorted);
    for (size_t i = 0; i < n && rc == 0; i++) {
        const char *val;
        int vlen;
        trimmed(r, &r->hdrs[v[i].idx], &val, &vlen);
        rc = gm_buf_printf(out, "RequestHeader=%s:%.*s\n", v[i].name, vlen, val);
    }
    for (size_t i = 0; i < n; i++)
        free(v[i].name);
    free(v);
    return rc;
}

int echo_req_render(const struct echo_req *r, const struct echo_info *info, int port,
                    const char *peer_ip, const char *alpn, struct gm_buf *out)
{
    struct echo_span host = host_of(r);
    int rc;

    rc = gm_buf_printf(out,
                       "ServiceVersion=%s\nServicePort=%d\nHost=%.*s\nURL=%.*s\nCluster=%s\n"
                       "IstioVersion=%s\nMethod=%.*s\nProto=HTTP/%d.%d\nIP=%s\nAlpn=%s\n",
                       info->version, port, (int)host.len, echo_req_str(r, host), (int)r->url.len,
                       echo_req_str(r, r->url), info->cluster, info->istio_version,
                       (int)r->method.len, echo_req_str(r, r->method), r->major, r->minor, peer_ip,
                       alpn);
    if (rc == 0)
        rc = render_headers(r, out);
    if (rc == 0)
        rc = gm_buf_printf(out, "Hostname=%s\n", info->hostname);
    if (rc == 0 && r->has_body)
        rc = gm_buf_printf(out, "BodyLength=%llu\nBodySha256=%s\n", (unsigned long long)r->body_len,
                           r->body_sha);
    return rc;
}

/* Copy at most n bytes of s into buf with control bytes replaced, for the log line. */
static const char *printable(const char *s, size_t n, char *buf, size_t size)
{
    size_t i;

    for (i = 0; i < n && i + 1 < size; i++)
        buf[i] = isprint((unsigned char)s[i]) ? s[i] : '?';
    buf[i] = '\0';
    return buf;
}

static void respond(struct echo_req *r)
{
    struct echo_conn *c = r->conn;
    char m[32], u[256];

    if (r->body.len == 0) { /* a knob error has already written its reason */
        if (echo_req_render(r, &c->srv->info, c->port, c->peer_ip, c->alpn, &r->body) < 0) {
            r->body.len = 0;
            r->status = 500;
        }
    }
    bool v6 = strchr(c->peer_ip, ':') != NULL;
    fprintf(stderr, "echo-server: peer=%s%s%s:%d %s %s HTTP/%d.%d %d port=%d\n", v6 ? "[" : "",
            c->peer_ip, v6 ? "]" : "", c->peer_port,
            printable(echo_req_str(r, r->method), r->method.len, m, sizeof(m)),
            printable(echo_req_str(r, r->url), r->url.len, u, sizeof(u)), r->major, r->minor,
            r->status, c->port);
    r->responded = true;
    if (c->mode == ECHO_MODE_H2)
        echo_h2_emit(r);
    else
        echo_h1_emit(r);
}

static void on_delay(uv_timer_t *t)
{
    struct echo_req *r = t->data;

    if (!r->closing && !r->conn->closing)
        respond(r);
}

void echo_req_done(struct echo_req *r)
{
    struct echo_server *srv = r->conn->srv;
    const char *url = echo_req_str(r, r->url);
    const char *q = memchr(url, '?', r->url.len);
    size_t qlen = q ? r->url.len - (size_t)(q + 1 - url) : 0;
    char err[160];

    sha_finish(r);
    if (echo_knobs_parse(&r->knobs, q ? q + 1 : "", qlen, err, sizeof(err)) < 0) {
        echo_knobs_done(&r->knobs);
        r->status = 400;
        if (gm_buf_printf(&r->body, "error=%s\n", err) < 0)
            r->body.len = 0;
        respond(r);
        return;
    }
    r->status = echo_knobs_status(&r->knobs, &srv->codes, &srv->fails);
    if (r->knobs.delay_ms == 0) {
        respond(r);
        return;
    }
    int rc = uv_timer_start(&r->timer, on_delay, r->knobs.delay_ms, 0);
    GM_ASSERT(rc == 0);
}
