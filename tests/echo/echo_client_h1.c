/* HTTP/1.1 for echo-client: one keep-alive connection, responses parsed by llhttp, one retry
 * on a fresh connection when a reused one turns out to be closed. */
#include "echo_client.h"

#include <errno.h>
#include <strings.h>
#include <unistd.h>

#include <llhttp.h>

enum field {
    FIELD_NONE = 0, /* no header in progress */
    FIELD_NAME,     /* receiving a header name */
    FIELD_VALUE,    /* receiving a header value */
    FIELD__MAX
};

struct ec_h1 {
    int fd; /* -1 when not connected */
    llhttp_t parser;
    struct ec_resp *resp;
    bool head;  /* the request is HEAD: the response has no body */
    bool done;  /* the final response is complete */
    bool limit; /* a response cap was hit */
    enum field field;
    struct gm_buf name, value; /* the header being received */
};

struct ec_h1 *ec_h1_new(void)
{
    struct ec_h1 *h = gm_xcalloc(1, sizeof(*h));

    h->fd = -1;
    gm_buf_init(&h->name, EC_MAX_HEADER_BYTES);
    gm_buf_init(&h->value, EC_MAX_HEADER_BYTES);
    return h;
}

static void drop(struct ec_h1 *h)
{
    if (h->fd >= 0)
        close(h->fd);
    h->fd = -1;
}

void ec_h1_free(struct ec_h1 *h)
{
    if (h == NULL)
        return;
    drop(h);
    gm_buf_done(&h->name);
    gm_buf_done(&h->value);
    free(h);
}

static int flush_header(struct ec_h1 *h)
{
    int rc = 0;

    if (h->field == FIELD_VALUE || h->field == FIELD_NAME)
        rc = ec_resp_header(h->resp, h->name.data ? h->name.data : "", h->name.len,
                            h->value.data ? h->value.data : "", h->value.len);
    h->name.len = 0;
    h->value.len = 0;
    h->field = FIELD_NONE;
    if (rc < 0)
        h->limit = true;
    return rc;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    struct ec_h1 *h = p->data;

    if (h->field == FIELD_VALUE && flush_header(h) < 0)
        return -1;
    h->field = FIELD_NAME;
    if (gm_buf_append(&h->name, at, n) < 0) {
        h->limit = true;
        return -1;
    }
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    struct ec_h1 *h = p->data;

    h->field = FIELD_VALUE;
    if (gm_buf_append(&h->value, at, n) < 0) {
        h->limit = true;
        return -1;
    }
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    struct ec_h1 *h = p->data;

    if (flush_header(h) < 0)
        return -1;
    h->resp->status = llhttp_get_status_code(p);
    return h->head ? 1 : 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    struct ec_h1 *h = p->data;

    if (gm_buf_append(&h->resp->body, at, n) < 0) {
        h->limit = true;
        return -1;
    }
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct ec_h1 *h = p->data;

    if (h->resp->status >= 100 && h->resp->status < 200 && h->resp->status != 101) {
        ec_resp_done(h->resp); /* an interim response: wait for the final one */
        ec_resp_init(h->resp);
        return 0;
    }
    h->done = true;
    return HPE_PAUSED;
}

static const llhttp_settings_t h1_settings = {
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void build(const struct ec_opts *o, struct gm_buf *out)
{
    bool ua = false;
    size_t blen = o->body ? strlen(o->body) : 0;
    int rc = gm_buf_printf(out, "%s %s HTTP/1.1\r\nHost: %s\r\n", o->method, o->path, o->authority);

    for (size_t i = 0; i < o->nhdrs && rc == 0; i++) {
        ua = ua || strcasecmp(o->hdr_name[i], "user-agent") == 0;
        rc = gm_buf_printf(out, "%s: %s\r\n", o->hdr_name[i], o->hdr_value[i]);
    }
    if (rc == 0 && !ua)
        rc = gm_buf_printf(out, "User-Agent: gammamesh-echo-client\r\n");
    if (rc == 0 && o->body)
        rc = gm_buf_printf(out, "Content-Length: %zu\r\n", blen);
    if (rc == 0)
        rc = gm_buf_append(out, "\r\n", 2);
    if (rc == 0 && blen)
        rc = gm_buf_append(out, o->body, blen);
    GM_ASSERT(rc == 0); /* out is uncapped */
}

static int parse_error(struct ec_h1 *h, enum llhttp_errno e, char *err)
{
    if (h->limit)
        snprintf(err, EC_ERR_LEN, "response exceeds limits");
    else
        snprintf(err, EC_ERR_LEN, "malformed response: %s", llhttp_errno_name(e));
    return -EPROTO;
}

/* Send req on h->fd and read one final response. *got says whether any response byte came. */
static int exchange(struct ec_h1 *h, const struct gm_buf *req, uint64_t deadline, char *err,
                    bool *got)
{
    char buf[16384];
    int rc = ec_net_send(h->fd, req->data, req->len, deadline);

    if (rc < 0) {
        snprintf(err, EC_ERR_LEN, "write: %s", ec_net_strerror(rc));
        return rc;
    }
    llhttp_init(&h->parser, HTTP_RESPONSE, &h1_settings);
    h->parser.data = h;
    h->done = h->limit = false;
    h->field = FIELD_NONE;
    while (!h->done) {
        ssize_t n = ec_net_recv(h->fd, buf, sizeof(buf), deadline);
        if (n < 0) {
            snprintf(err, EC_ERR_LEN, "read: %s", ec_net_strerror((int)n));
            return (int)n;
        }
        enum llhttp_errno e =
            n == 0 ? llhttp_finish(&h->parser) : llhttp_execute(&h->parser, buf, (size_t)n);
        if (e != HPE_OK && !(e == HPE_PAUSED && h->done))
            return parse_error(h, e, err);
        if (n == 0 && !h->done) {
            snprintf(err, EC_ERR_LEN, "connection closed before the response%s",
                     *got ? " was complete" : "");
            return -ECONNRESET;
        }
        *got = true;
    }
    return 0;
}

int ec_h1_request(struct ec_h1 *h, const struct ec_opts *o, struct ec_resp *resp, char *err)
{
    uint64_t deadline = ec_now_ms() + o->timeout_ms;
    struct gm_buf req;
    int rc;

    gm_buf_init(&req, 0);
    build(o, &req);
    h->resp = resp;
    h->head = strcasecmp(o->method, "HEAD") == 0;
    for (int attempt = 0;; attempt++) {
        bool fresh = h->fd < 0, got = false;
        if (fresh) {
            rc = ec_net_dial(o->host, o->port, deadline, err);
            if (rc < 0)
                goto out;
            h->fd = rc;
        }
        rc = exchange(h, &req, deadline, err, &got);
        if (rc == 0)
            break;
        drop(h);
        /* A kept-alive connection the server closed meanwhile: redial once. */
        if (attempt > 0 || fresh || got || rc == -ETIMEDOUT)
            goto out;
        ec_resp_done(resp);
        ec_resp_init(resp);
    }
    if (!llhttp_should_keep_alive(&h->parser))
        drop(h);
out:
    gm_buf_done(&req);
    h->resp = NULL;
    return rc;
}
