/* The HTTP/1.1 request path: strict head validation, then llhttp for framing (h1_parse.h). */
#include "h1_parse.h"

#include <errno.h>
#include <string.h>

static struct wp_h1p *of(llhttp_t *l)
{
    return l->data;
}

void wp_h1p_fail(struct wp_h1p *p, int status, const char *why)
{
    if (p->state == WP_H1P_ERROR)
        return;
    p->state = WP_H1P_ERROR;
    p->status = status;
    p->why = why;
}

static int on_headers_complete(llhttp_t *l)
{
    struct wp_h1p *p = of(l);
    const struct wp_h1_head *h = &p->head;

    if (p->state != WP_H1P_HEAD)
        return 0; /* the end of a trailer section */
    /* The head was validated: llhttp must agree on the framing. */
    if (((l->flags & F_CHUNKED) != 0) != h->chunked ||
        (h->content_length >= 0 && (l->flags & F_CONTENT_LENGTH) == 0)) {
        wp_h1p_fail(p, 400, "framing disagreement");
        return -1;
    }
    l->upgrade = 0; /* Upgrade is hop-by-hop: the request goes on as a plain request */
    bool has_body = h->chunked || h->content_length > 0;
    p->state = WP_H1P_BODY;
    if (p->cbs->on_head && p->cbs->on_head(p->ctx, p->head_buf, h, has_body) < 0) {
        p->cb_failed = true;
        return -1;
    }
    return 0;
}

static int on_body(llhttp_t *l, const char *at, size_t n)
{
    struct wp_h1p *p = of(l);

    if (p->cbs->on_body && p->cbs->on_body(p->ctx, at, n) < 0) {
        p->cb_failed = true;
        return -1;
    }
    return 0;
}

static int on_message_complete(llhttp_t *l)
{
    struct wp_h1p *p = of(l);
    bool keep_alive = llhttp_should_keep_alive(l);

    p->state = WP_H1P_DONE;
    if (p->cbs->on_complete && p->cbs->on_complete(p->ctx, keep_alive) < 0) {
        p->cb_failed = true;
        return -1;
    }
    return HPE_PAUSED;
}

static int on_chunk_header(llhttp_t *l)
{
    of(l)->ext_bytes = 0;
    return 0;
}

static int on_chunk_ext(llhttp_t *l, const char *at, size_t n)
{
    struct wp_h1p *p = of(l);

    p->ext_bytes += n;
    if (p->ext_bytes > WP_H1_CHUNK_EXT_MAX) {
        wp_h1p_fail(p, 400, "chunk extension too long");
        return -1;
    }
    return 0;
}

/* Field bytes seen by llhttp: the head's were validated already; count the trailers'. */
static int on_field_bytes(llhttp_t *l, const char *at, size_t n)
{
    struct wp_h1p *p = of(l);

    if (p->state != WP_H1P_BODY)
        return 0;
    p->trailer_bytes += n;
    if (p->trailer_bytes > p->head.lim.max_head_bytes) {
        wp_h1p_fail(p, 431, "trailer section too large");
        return -1;
    }
    return 0;
}

static int on_field_done(llhttp_t *l)
{
    struct wp_h1p *p = of(l);

    if (p->state == WP_H1P_BODY && ++p->n_trailers > p->head.lim.max_headers) {
        wp_h1p_fail(p, 431, "too many trailer fields");
        return -1;
    }
    return 0;
}

void wp_h1p_init(struct wp_h1p *p, const struct wp_h1_limits *lim, const struct wp_h1p_cbs *cbs,
                 void *ctx)
{
    memset(p, 0, sizeof(*p));
    llhttp_settings_init(&p->settings);
    p->settings.on_headers_complete = on_headers_complete;
    p->settings.on_body = on_body;
    p->settings.on_message_complete = on_message_complete;
    p->settings.on_chunk_header = on_chunk_header;
    p->settings.on_chunk_extension_name = on_chunk_ext;
    p->settings.on_chunk_extension_value = on_chunk_ext;
    p->settings.on_header_field = on_field_bytes;
    p->settings.on_header_value = on_field_bytes;
    p->settings.on_header_value_complete = on_field_done;
    llhttp_init(&p->llhttp, HTTP_REQUEST, &p->settings);
    p->llhttp.data = p;
    wp_h1_head_init(&p->head, lim);
    p->cbs = cbs;
    p->ctx = ctx;
}

void wp_h1p_done(struct wp_h1p *p)
{
    wp_h1_head_done(&p->head);
}

void wp_h1p_next(struct wp_h1p *p)
{
    if (p->state != WP_H1P_DONE)
        return;
    llhttp_resume(&p->llhttp);
    wp_h1_head_reset(&p->head);
    p->state = WP_H1P_HEAD;
    p->ext_bytes = p->trailer_bytes = p->n_trailers = 0;
}

/* Run llhttp over buf[0..len): bytes consumed, or -status. */
static ssize_t execute(struct wp_h1p *p, const char *buf, size_t len)
{
    llhttp_errno_t err = llhttp_execute(&p->llhttp, buf, len);

    if (err == HPE_OK && p->state != WP_H1P_ERROR)
        return (ssize_t)len;
    if (err == HPE_PAUSED && p->state == WP_H1P_DONE)
        return llhttp_get_error_pos(&p->llhttp) - buf;
    if (p->state != WP_H1P_ERROR)
        wp_h1p_fail(p, p->cb_failed ? 500 : 400, p->cb_failed ? "refused" : "malformed request");
    return -p->status;
}

/* Empty lines before a request line are ignored (RFC 9112 §2.2). */
static size_t leading_crlf(const char *buf, size_t len)
{
    size_t n = 0;

    while (n + 2 <= len && buf[n] == '\r' && buf[n + 1] == '\n')
        n += 2;
    return n;
}

ssize_t wp_h1p_feed(struct wp_h1p *p, const char *buf, size_t len)
{
    size_t skip;

    switch (p->state) {
    case WP_H1P_ERROR:
        return -p->status;
    case WP_H1P_DONE:
        return 0;
    case WP_H1P_BODY:
        return len ? execute(p, buf, len) : 0;
    default:
        break;
    }
    if (p->head.pos == 0 && (skip = leading_crlf(buf, len)) > 0) {
        wp_h1_head_reset(&p->head); /* the scan restarts at the new first byte */
        return (ssize_t)skip;
    }
    switch (wp_h1_head_scan(&p->head, buf, len)) {
    case WP_H1_MORE:
        return 0;
    case WP_H1_BAD:
        wp_h1p_fail(p, p->head.status, p->head.why);
        return -p->status;
    default:
        break;
    }
    p->head_buf = buf;
    ssize_t n = execute(p, buf, p->head.length);
    p->head_buf = NULL;
    if (n >= 0 && (size_t)n != p->head.length) {
        wp_h1p_fail(p, 400, "malformed request head");
        return -p->status;
    }
    return n;
}
