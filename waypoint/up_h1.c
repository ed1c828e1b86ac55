/* HTTP/1.1 toward the upstream: the request re-serialized (h1_write.c) with the body re-framed,
 * and the response parsed by llhttp (strict). Interim 1xx responses are skipped; a response to
 * HEAD has no body; framing bytes give their flow-control window back at once, body bytes when
 * the downstream took them. */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "exch.h"
#include "gammamesh/log.h"
#include "h1_write.h"
#include "hop.h"
#include "upstream.h"
#include "worker.h"

#define CHUNK      (16u << 10)
#define NAME_MAX_B 256

static struct wp_uconn *of(llhttp_t *p)
{
    return p->data;
}

/* A callback ends parsing when the connection was closed or released under it. */
static int gone(const struct wp_uconn *u)
{
    return u->state != WP_UCONN_ACTIVE || u->x == NULL;
}

static int on_field(llhttp_t *p, const char *at, size_t n)
{
    struct wp_uconn *u = of(p);

    u->resp_head_bytes += n;
    if (u->resp_head_bytes > (size_t)u->w->wp->set.max_head_bytes ||
        gm_buf_append(&u->fname, at, n) < 0)
        return -1;
    return 0;
}

static int on_value(llhttp_t *p, const char *at, size_t n)
{
    struct wp_uconn *u = of(p);

    u->resp_head_bytes += n;
    if (u->resp_head_bytes > (size_t)u->w->wp->set.max_head_bytes ||
        gm_buf_append(&u->fvalue, at, n) < 0)
        return -1;
    return 0;
}

static bool framing_field(const struct gm_buf *name)
{
    return (name->len == 14 && strncasecmp(name->data, "content-length", 14) == 0) ||
           (name->len == 17 && strncasecmp(name->data, "transfer-encoding", 17) == 0);
}

static int on_value_complete(llhttp_t *p)
{
    struct wp_uconn *u = of(p);
    int rc = 0;

    if (gone(u))
        return HPE_PAUSED;
    if (!framing_field(&u->fname) &&
        wp_h1w_field_ok(u->fname.data, u->fname.len, u->fvalue.data ? u->fvalue.data : "",
                        u->fvalue.len))
        rc = gm_hlist_addn(&u->x->resp.headers, u->fname.data, u->fname.len,
                           u->fvalue.data ? u->fvalue.data : "", u->fvalue.len);
    u->fname.len = u->fvalue.len = 0;
    if (u->fname.data)
        u->fname.data[0] = '\0';
    if (u->fvalue.data)
        u->fvalue.data[0] = '\0';
    return rc < 0 ? -1 : 0;
}

/* A 101 is an answer only to an upgrade request, and must name the protocol with Upgrade and
 * Connection: upgrade (llhttp then stops after the head: what follows is the new protocol). */
static int switch_protocols(struct wp_uconn *u, struct wp_exch *x, llhttp_t *p)
{
    if (x->req.upgrade == NULL || !p->upgrade)
        return -1; /* not asked for, or not a switch: a malformed response */
    free(x->resp.upgrade);
    x->resp.upgrade = wp_hop_upgrade(&x->resp.headers);
    if (x->resp.upgrade == NULL || !wp_hop_tokens_in(x->resp.upgrade, x->req.upgrade))
        return -1; /* it must switch to a protocol the request offered */
    wp_hop_strip(&x->resp.headers, false);
    x->resp.status = 101;
    x->resp.content_length = -1;
    u->tunnel = true;
    u->keep_alive = false;
    u->req_done = false; /* the client's bytes follow the head */
    wp_exch_up_switch(x);
    return gone(u) ? HPE_PAUSED : 0;
}

static int on_headers_complete(llhttp_t *p)
{
    struct wp_uconn *u = of(p);
    struct wp_exch *x = u->x;
    int status = p->status_code;

    if (gone(u))
        return HPE_PAUSED;
    if (status == 101)
        return switch_protocols(u, x, p);
    if (status >= 100 && status < 200) {
        gm_hlist_done(&x->resp.headers); /* an interim response: skipped */
        gm_hlist_init(&x->resp.headers, x->req.headers.max_bytes);
        u->resp_head_bytes = 0;
        return 0;
    }
    x->resp.status = status;
    x->resp.content_length = (p->flags & F_CONTENT_LENGTH) ? (int64_t)p->content_length : -1;
    wp_hop_strip(&x->resp.headers, false);
    bool head = strcmp(x->req.method, "HEAD") == 0;
    x->resp.no_body = head;
    wp_exch_up_head(x);
    if (gone(u))
        return HPE_PAUSED;
    return head ? 1 : 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    struct wp_uconn *u = of(p);

    if (gone(u))
        return HPE_PAUSED;
    wp_bytes_append(&u->x->resp.body, at, n);
    u->held += n;
    wp_exch_up_body(u->x);
    return gone(u) ? HPE_PAUSED : 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct wp_uconn *u = of(p);

    if (p->status_code >= 100 && p->status_code < 200)
        return 0; /* the final response follows */
    if (gone(u))
        return HPE_PAUSED;
    u->resp_done = true;
    u->keep_alive = llhttp_should_keep_alive(p);
    wp_exch_up_end(u->x);
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_header_value_complete = on_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void wp_up_h1_init(struct wp_uconn *u)
{
    gm_buf_init(&u->fname, NAME_MAX_B);
    gm_buf_init(&u->fvalue, (size_t)u->w->wp->set.max_head_bytes);
    llhttp_init(&u->parser, HTTP_RESPONSE, &settings);
    u->parser.data = u;
}

void wp_up_h1_done(struct wp_uconn *u)
{
    gm_buf_done(&u->fname);
    gm_buf_done(&u->fvalue);
}

void wp_up_h1_begin(struct wp_uconn *u)
{
    llhttp_init(&u->parser, HTTP_RESPONSE, &settings);
    u->parser.data = u;
    u->resp_head_bytes = 0;
    u->fname.len = u->fvalue.len = 0;
}

/* Tunnel bytes from the upstream: the response body, as they are. */
static void tunnel_input(struct wp_uconn *u, const uint8_t *p, size_t n)
{
    if (gone(u) || n == 0)
        return;
    wp_bytes_append(&u->x->resp.body, p, n);
    u->held += n;
    wp_exch_up_body(u->x);
}

void wp_up_h1_input(struct wp_uconn *u, const uint8_t *p, size_t n)
{
    if (u->raw) {
        tunnel_input(u, p, n);
        return;
    }
    size_t held = u->held;
    llhttp_errno_t err = llhttp_execute(&u->parser, (const char *)p, n);
    size_t body = u->held > held ? u->held - held : 0;
    size_t rest = 0; /* after a 101: bytes of the new protocol */

    if (err == HPE_PAUSED_UPGRADE && u->tunnel)
        rest = n - (size_t)((const uint8_t *)llhttp_get_error_pos(&u->parser) - p);
    if (u->stream && n > body + rest)
        gm_hbone_stream_consumed(u->stream, n - body - rest); /* framing and headers */
    if (u->state == WP_UCONN_CLOSING)
        return;
    if (err == HPE_PAUSED_UPGRADE && u->tunnel) {
        u->raw = true;
        tunnel_input(u, p + (n - rest), rest);
        return;
    }
    if (err == HPE_PAUSED) {
        if (u->resp_done && llhttp_get_error_pos(&u->parser) < (const char *)p + n)
            wp_uconn_close(u, "bytes after the response"); /* never reused */
        return;
    }
    if (err != HPE_OK) {
        struct wp_exch *x = u->x;
        GM_LOG_DEBUG("upstream", "bad response", "authority=%s error=%s", u->authority,
                     llhttp_errno_name(err));
        wp_uconn_close(u, "malformed upstream response");
        if (x)
            wp_exch_up_error(x, "malformed upstream response");
    }
}

void wp_up_h1_eof(struct wp_uconn *u)
{
    struct wp_exch *x = u->x;

    if (x == NULL || u->resp_done)
        return;
    if (u->raw) {
        u->resp_done = true;
        wp_exch_up_eof(x);
        return;
    }
    /* A response delimited by the end of the connection completes here. */
    if (llhttp_finish(&u->parser) == HPE_OK && u->resp_done)
        return;
    if (u->state != WP_UCONN_ACTIVE || u->x == NULL)
        return;
    wp_uconn_close(u, "upstream closed before the response ended");
    wp_exch_up_error(x, "upstream closed before the response ended");
}

static int write_head(struct wp_uconn *u, struct wp_exch *x)
{
    struct gm_buf b;
    int rc = 0;

    gm_hlist_remove(&x->req.headers, "te"); /* trailers are not asked of an HTTP/1.1 server */
    gm_buf_init(&b, 0);
    if (x->req.upgrade) {
        /* asked of this hop only: added for the serialization, then taken out again */
        rc = gm_hlist_add(&x->req.headers, "connection", "upgrade");
        if (rc == 0)
            rc = gm_hlist_add(&x->req.headers, "upgrade", x->req.upgrade);
    }
    if (rc == 0)
        rc = wp_h1w_request(&b, &x->req);
    if (x->req.upgrade) {
        gm_hlist_remove(&x->req.headers, "connection");
        gm_hlist_remove(&x->req.headers, "upgrade");
    }
    if (rc == 0)
        rc = gm_hbone_stream_write(u->stream, b.data, b.len);
    gm_buf_done(&b);
    u->head_written = true;
    return rc;
}

static bool chunked(const struct wp_exch *x)
{
    return x->req.has_body && x->req.content_length < 0;
}

/* One step of body: 1 when something was written, 0 when nothing could be, or -errno. */
static int write_body_step(struct wp_uconn *u, struct wp_exch *x)
{
    size_t n = (size_t)(x->body_total - x->sent);
    const char *p = wp_bytes_data(&x->body) + (x->sent - x->body_base);
    char hdr[24];
    int rc = 0;

    if (n == 0 || !gm_hbone_stream_writable(u->stream))
        return 0;
    if (n > CHUNK)
        n = CHUNK;
    if (chunked(x)) {
        int k = snprintf(hdr, sizeof(hdr), "%zx\r\n", n);
        rc = gm_hbone_stream_write(u->stream, hdr, (size_t)k);
    }
    if (rc == 0)
        rc = gm_hbone_stream_write(u->stream, p, n);
    if (rc == 0 && chunked(x))
        rc = gm_hbone_stream_write(u->stream, "\r\n", 2);
    if (rc < 0)
        return rc;
    x->sent += n;
    return 1;
}

void wp_up_h1_send(struct wp_uconn *u)
{
    struct wp_exch *x = u->x;
    int rc = 0;

    if (!u->head_written && (rc = write_head(u, x)) < 0)
        goto fail;
    while (u->x == x && !u->req_done) {
        if ((rc = write_body_step(u, x)) < 0)
            goto fail;
        if (rc > 0) {
            wp_exch_progress(x); /* may bring more body, or close u */
            continue;
        }
        if (x->body_end && x->sent == x->body_total) {
            if (chunked(x) && (rc = gm_hbone_stream_write(u->stream, "0\r\n\r\n", 5)) < 0)
                goto fail;
            if (u->tunnel && !u->raw_shut) {
                u->raw_shut = true; /* the client ended its direction: so do we, upstream */
                if ((rc = gm_hbone_stream_shutdown(u->stream)) < 0)
                    goto fail;
            }
            u->req_done = true;
        }
        break;
    }
    return;
fail:
    wp_uconn_close(u, "upstream write failed");
    wp_exch_up_error(x, "upstream write failed");
}
