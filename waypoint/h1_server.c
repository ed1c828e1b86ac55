/* The downstream HTTP/1.1 codec: requests through wp_h1p (strict head validation + llhttp), one
 * at a time (pipelined requests wait in the connection's input), responses re-framed
 * (Content-Length, chunked, or close-delimited for HTTP/1.0).
 *
 * Upgrade (WebSocket): a request without a body that asks to upgrade goes upstream with its
 * Upgrade field (exch.h). Until the answer, the bytes after its head wait unparsed. A 101 makes
 * the connection a tunnel: the 101 head goes out, then raw bytes flow both ways, each direction
 * ending with its side's end, and the connection closes once both ended. Any other answer to an
 * upgrade request closes the connection after it (the waiting bytes are not a request). */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "conn.h"
#include "exch.h"
#include "gammamesh/log.h"
#include "h1_parse.h"
#include "h1_write.h"
#include "worker.h"

#define FEED_MAX      (16u << 10) /* body bytes parsed per step */
#define UNSENT_MAX    (64u << 10) /* stop parsing body while this much waits to go upstream */
#define DRAIN_IDLE_MS 1000        /* an idle connection lives this long into a drain */

struct wp_h1s {
    struct wp_conn *c;
    struct wp_h1p parser;
    struct wp_exch *x;    /* the current request (codec reference), or NULL */
    bool started;         /* wp_exch_start ran for x */
    bool pending_start;   /* the head arrived inside the parser: start after it returns */
    bool pending_end;     /* the body ended inside the parser */
    bool req_complete;    /* the whole request was parsed */
    bool keep_alive;      /* the request allows another one after it */
    bool expect_continue; /* Expect: 100-continue */
    bool resp_started;    /* the response head was written */
    bool resp_finished;   /* the whole response was written */
    bool close_after;     /* close once this response is out */
    bool head_timer;      /* the head deadline is armed */
    bool in_input;        /* inside h1_input: do not recurse into it */
    bool refused;         /* an error answer is on its way: parse nothing more */
    bool tunnel;          /* the 101 went out: raw bytes both ways */
    bool tunnel_in_end;   /* tunnel: the client's end was passed upstream */
    bool tunnel_out_end;  /* tunnel: the upstream's end was passed to the client */
    enum wp_h1w_framing framing;
};

static struct wp_h1s *h1(struct wp_conn *c)
{
    return c->codec;
}

/* ---- requests ---- */

static int add_field(struct wp_h1s *h, const char *buf, const struct wp_h1_field *f)
{
    const char *name = buf + f->name.off, *value = buf + f->value.off;

    if ((f->name.len == 14 && strncasecmp(name, "content-length", 14) == 0) ||
        (f->name.len == 17 && strncasecmp(name, "transfer-encoding", 17) == 0))
        return 0; /* framing: the parser's, re-written upstream */
    if (f->name.len == 6 && strncasecmp(name, "expect", 6) == 0 && f->value.len == 12 &&
        strncasecmp(value, "100-continue", 12) == 0) {
        h->expect_continue = true;
        return 0; /* answered here */
    }
    return gm_hlist_addn(&h->x->req.headers, name, f->name.len, value, f->value.len);
}

static int on_head(void *ctx, const char *buf, const struct wp_h1_head *head, bool has_body)
{
    struct wp_h1s *h = ctx;
    struct wp_req *r;

    h->x = wp_exch_new(h->c->w, h->c, 0);
    r = &h->x->req;
    r->method = gm_xstrndup(buf + head->method.off, head->method.len);
    r->scheme = gm_xstrdup("http");
    r->version = head->minor ? 11 : 10;
    r->content_length = head->content_length;
    r->has_body = has_body;
    for (size_t i = 0; i < head->n_fields; i++) {
        if (add_field(h, buf, &head->fields[i]) < 0) {
            wp_h1p_fail(&h->parser, 431, "header fields over the cap");
            return -ENOBUFS;
        }
    }
    if (wp_req_set_target(r, buf + head->target.off, head->target.len) < 0) {
        wp_h1p_fail(&h->parser, 400, "bad request target");
        return -EINVAL;
    }
    if (!has_body && r->version >= 11) {
        char *asked = wp_hop_upgrade(&r->headers);
        if (asked)
            r->upgrade =
                wp_hop_upgrade_allowed(asked, wp_worker_settings(h->c->w)->upgrade_protocols);
        free(asked);
    }
    h->pending_start = true;
    return 0;
}

static int on_body(void *ctx, const char *p, size_t n)
{
    struct wp_h1s *h = ctx;

    wp_exch_body(h->x, p, n);
    return 0;
}

static int on_complete(void *ctx, bool keep_alive)
{
    struct wp_h1s *h = ctx;

    h->req_complete = true;
    h->keep_alive = keep_alive;
    h->pending_end = true;
    return 0;
}

static const struct wp_h1p_cbs parser_cbs = {
    .on_head = on_head,
    .on_body = on_body,
    .on_complete = on_complete,
};

/* The request cannot be parsed: answer status and close. */
static void refuse(struct wp_h1s *h, int status, const char *why)
{
    struct wp_conn *c = h->c;

    GM_LOG_DEBUG("h1", "request refused", "status=%d reason=%s authority=%s", status, why,
                 c->authority);
    h->close_after = true;
    h->refused = true;
    if (h->resp_started || (h->x && h->x->state == WP_EXCH_DONE)) {
        /* The response is under way: nothing sane can be said any more. */
        wp_conn_close(c, why);
        return;
    }
    if (h->x == NULL) {
        h->x = wp_exch_new(c->w, c, 0);
        h->x->req.method = gm_xstrdup("-");
    }
    h->started = true;
    h->req_complete = true;
    h->pending_start = h->pending_end = false;
    wp_exch_reply(h->x, status, why); /* cancels an attempt in flight */
}

/* The parser delivered a head and/or the end of a body: act on them now that llhttp returned.
 * Starting the exchange may answer at once and even close the connection (h is then gone). */
static void after_feed(struct wp_h1s *h)
{
    struct wp_conn *c = h->c;
    struct wp_exch *x = h->x;

    if (h->pending_start) {
        h->pending_start = false;
        h->started = true;
        h->head_timer = false;
        wp_conn_timer(c, 0);
        wp_exch_start(x);
        if (c->state != WP_CONN_H1)
            return;
        if (h->expect_continue && !h->resp_started &&
            (x->state == WP_EXCH_CONNECT || x->state == WP_EXCH_WAIT)) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            wp_conn_write(c, cont, sizeof(cont) - 1);
        }
    }
    if (h->pending_end && h->x == x) {
        h->pending_end = false;
        wp_exch_body_end(x);
    }
}

static bool input_blocked(const struct wp_h1s *h)
{
    if (h->refused)
        return true;
    if (h->tunnel)
        return h->x == NULL || h->tunnel_in_end || wp_exch_unsent(h->x) > UNSENT_MAX;
    if (h->x == NULL)
        return false;
    return h->req_complete || wp_exch_unsent(h->x) > UNSENT_MAX;
}

static void finish(struct wp_h1s *h, struct wp_exch *x);

/* Tunnel: the client's bytes go upstream as they are; its end follows the last of them. */
static void tunnel_input(struct wp_h1s *h)
{
    struct wp_conn *c = h->c;
    struct wp_exch *x = h->x;

    while (c->state == WP_CONN_H1 && !input_blocked(h)) {
        size_t n = wp_bytes_size(&c->in);
        if (n == 0)
            break;
        if (n > FEED_MAX)
            n = FEED_MAX;
        wp_exch_body(x, wp_bytes_data(&c->in), n);
        wp_conn_consume_input(c, n);
    }
    if (c->state != WP_CONN_H1 || h->tunnel_in_end || !c->peer_ended || wp_bytes_size(&c->in))
        return;
    h->tunnel_in_end = true;
    wp_exch_body_end(x);
    if (c->state == WP_CONN_H1 && h->tunnel_out_end)
        finish(h, x);
}

static void h1_input(struct wp_conn *c)
{
    struct wp_h1s *h = h1(c);

    if (h->in_input)
        return; /* the loop below picks up the new state */
    h->in_input = true;
    if (h->tunnel) {
        tunnel_input(h);
        if (c->state == WP_CONN_H1)
            h->in_input = false;
        return;
    }
    while (c->state == WP_CONN_H1 && !input_blocked(h)) {
        size_t avail = wp_bytes_size(&c->in);
        if (avail == 0)
            break;
        bool body = h->parser.state == WP_H1P_BODY;
        ssize_t n = wp_h1p_feed(&h->parser, wp_bytes_data(&c->in),
                                body && avail > FEED_MAX ? FEED_MAX : avail);
        if (n < 0) {
            refuse(h, (int)-n, h->parser.why ? h->parser.why : "bad request");
            break;
        }
        if (n == 0 && h->parser.state == WP_H1P_HEAD) {
            if (!h->head_timer) {
                h->head_timer = true;
                wp_conn_timer(c, wp_worker_settings(c->w)->head_timeout_ms);
            }
            break;
        }
        wp_conn_consume_input(c, (size_t)n);
        after_feed(h);
    }
    if (c->state == WP_CONN_H1)
        h->in_input = false;
}

/* ---- responses ---- */

static enum wp_h1w_framing framing(struct wp_h1s *h, const struct wp_exch *x)
{
    if (x->resp.no_body)
        return WP_H1W_NONE;
    if (x->resp.content_length >= 0)
        return WP_H1W_LENGTH;
    if (x->req.version >= 11)
        return WP_H1W_CHUNKED;
    h->close_after = true;
    return WP_H1W_CLOSE;
}

/* The 101: the upstream's head with Connection: upgrade and its Upgrade, then raw bytes. */
static int write_switch(struct wp_h1s *h, struct wp_exch *x)
{
    struct gm_buf b;
    int rc;

    h->framing = WP_H1W_CLOSE; /* raw: delimited by the end of the connection */
    h->close_after = true;
    h->tunnel = true;
    rc = gm_hlist_add(&x->resp.headers, "connection", "upgrade");
    if (rc == 0)
        rc = gm_hlist_add(&x->resp.headers, "upgrade", x->resp.upgrade);
    gm_buf_init(&b, 0);
    if (rc == 0)
        rc = wp_h1w_response(&b, 101, &x->resp.headers, WP_H1W_NONE, -1, WP_H1W_CONN_NONE);
    if (rc == 0)
        rc = wp_conn_write(h->c, b.data, b.len);
    gm_buf_done(&b);
    h->resp_started = true;
    return rc;
}

static int write_head(struct wp_h1s *h, struct wp_exch *x)
{
    struct gm_buf b;
    int rc;

    if (x->tunnel)
        return write_switch(h, x);
    if (x->req.upgrade)
        h->close_after = true; /* what the client sent after the head is not a request */
    h->framing = framing(h, x);
    if (!h->req_complete || !h->keep_alive || h->c->draining || h->c->peer_ended)
        h->close_after = true;
    gm_buf_init(&b, 0);
    rc = wp_h1w_response(&b, x->resp.status, &x->resp.headers, h->framing, x->resp.content_length,
                         h->close_after         ? WP_H1W_CONN_CLOSE
                         : x->req.version == 10 ? WP_H1W_CONN_KEEP_ALIVE
                                                : WP_H1W_CONN_NONE);
    if (rc == 0)
        rc = wp_conn_write(h->c, b.data, b.len);
    gm_buf_done(&b);
    h->resp_started = true;
    return rc;
}

static int write_body(struct wp_h1s *h, struct wp_exch *x)
{
    while (wp_bytes_size(&x->resp.body) > 0 && wp_conn_writable(h->c)) {
        size_t n = wp_bytes_size(&x->resp.body);
        char hdr[24];
        int rc = 0;
        if (n > FEED_MAX)
            n = FEED_MAX;
        if (h->framing == WP_H1W_CHUNKED) {
            int k = snprintf(hdr, sizeof(hdr), "%zx\r\n", n);
            rc = wp_conn_write(h->c, hdr, (size_t)k);
        }
        if (rc == 0 && h->framing != WP_H1W_NONE)
            rc = wp_conn_write(h->c, wp_bytes_data(&x->resp.body), n);
        if (rc == 0 && h->framing == WP_H1W_CHUNKED)
            rc = wp_conn_write(h->c, "\r\n", 2);
        if (rc < 0)
            return rc;
        wp_exch_taken(x, n);
    }
    return 0;
}

static void next_request(struct wp_h1s *h)
{
    struct wp_conn *c = h->c;
    struct wp_exch *x = h->x;

    h->x = NULL;
    h->started = h->req_complete = h->expect_continue = false;
    h->resp_started = h->resp_finished = h->pending_start = h->pending_end = false;
    wp_exch_release(x);
    wp_h1p_next(&h->parser);
    if (wp_bytes_size(&c->in) == 0) {
        if (c->peer_ended) {
            wp_conn_close(c, NULL);
            return;
        }
        wp_conn_timer(c, wp_worker_settings(c->w)->idle_timeout_ms);
        return;
    }
    h->head_timer = true;
    wp_conn_timer(c, wp_worker_settings(c->w)->head_timeout_ms);
    h1_input(c);
}

static void finish(struct wp_h1s *h, struct wp_exch *x)
{
    if (h->framing == WP_H1W_CHUNKED && wp_conn_write(h->c, "0\r\n\r\n", 5) < 0) {
        wp_conn_close(h->c, "write failed");
        return;
    }
    h->resp_finished = true;
    wp_exch_sent(x);
    if (h->close_after) {
        wp_conn_close(h->c, NULL);
        return;
    }
    next_request(h);
}

static void h1_response(struct wp_conn *c, struct wp_exch *x)
{
    struct wp_h1s *h = h1(c);

    if (x != h->x || h->resp_finished)
        return;
    if (!h->resp_started) {
        if (write_head(h, x) < 0) {
            wp_conn_close(c, "write failed");
            return;
        }
        if (h->tunnel) {
            h1_input(c); /* the bytes that waited behind the upgrade request */
            if (c->state != WP_CONN_H1 || h->x != x)
                return; /* closed (the codec is gone), or finished */
        }
    }
    if (write_body(h, x) < 0) {
        wp_conn_close(c, "write failed");
        return;
    }
    if (!x->resp.end || wp_bytes_size(&x->resp.body) > 0)
        return;
    if (!h->tunnel) {
        finish(h, x);
        return;
    }
    if (!h->tunnel_out_end) {
        h->tunnel_out_end = true;
        wp_conn_half_close(c);
    }
    if (h->tunnel_in_end)
        finish(h, x);
}

static void h1_abort(struct wp_conn *c, struct wp_exch *x)
{
    wp_conn_close(c, x->error ? x->error : "upstream failed mid-response");
}

static void h1_drained(struct wp_conn *c, struct wp_exch *x, size_t n)
{
    if (!input_blocked(h1(c)))
        h1_input(c);
}

static void h1_writable(struct wp_conn *c)
{
    struct wp_h1s *h = h1(c);

    if (h->x && h->resp_started && !h->resp_finished)
        h1_response(c, h->x);
}

static void h1_peer_end(struct wp_conn *c)
{
    struct wp_h1s *h = h1(c);

    if (h->tunnel) {
        h1_input(c); /* the end goes upstream after the last bytes */
        return;
    }
    if (h->x == NULL)
        wp_conn_close(c, wp_bytes_size(&c->in) ? "request cut short" : NULL);
    else
        h->close_after = true;
}

/* Every response from now on says Connection: close. An idle connection gets a moment before
 * it is closed: a client reusing it right now is still answered rather than cut off. */
static void h1_drain(struct wp_conn *c)
{
    struct wp_h1s *h = h1(c);

    h->close_after = true;
    if (h->x == NULL && wp_bytes_size(&c->in) == 0)
        wp_conn_timer(c, DRAIN_IDLE_MS);
}

static void h1_timeout(struct wp_conn *c)
{
    struct wp_h1s *h = h1(c);

    if (h->x == NULL && h->head_timer && wp_bytes_size(&c->in) > 0) {
        refuse(h, 408, "request head timeout");
        return;
    }
    if (h->x == NULL)
        wp_conn_close(c, NULL); /* idle */
}

static void h1_free(struct wp_conn *c)
{
    struct wp_h1s *h = h1(c);

    if (h == NULL)
        return;
    if (h->x)
        wp_exch_release(h->x);
    wp_h1p_done(&h->parser);
    free(h);
    c->codec = NULL;
}

const struct wp_codec_ops wp_h1s_ops = {
    .name = "HTTP/1.1",
    .input = h1_input,
    .response = h1_response,
    .abort = h1_abort,
    .drained = h1_drained,
    .writable = h1_writable,
    .peer_end = h1_peer_end,
    .drain = h1_drain,
    .timeout = h1_timeout,
    .free = h1_free,
};

void wp_h1s_start(struct wp_conn *c)
{
    struct wp_h1s *h = gm_xcalloc(1, sizeof(*h));
    const struct wp_settings *set = wp_worker_settings(c->w);
    struct wp_h1_limits lim = {.max_head_bytes = (size_t)set->max_head_bytes,
                               .max_headers = (size_t)set->max_headers};

    h->c = c;
    wp_h1p_init(&h->parser, &lim, &parser_cbs, h);
    c->codec = h;
    c->ops = &wp_h1s_ops;
}
