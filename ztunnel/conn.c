/* The relay between the two sides of a proxied connection. Back-pressure: TCP→TCP stops reading
 * when the other socket's write queue passes the high watermark; TCP→stream stops reading while
 * the stream is not writable; stream→TCP reports bytes consumed only once written, so HTTP/2
 * flow control pauses the remote sender. Half-close is carried both ways. */
#include "conn.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gammamesh/log.h"
#include "proxy.h"

#define CHUNK      262144
#define HIGH_WATER (256 * 1024)
#define LOW_WATER  (64 * 1024)

struct tcp_write {
    uv_write_t req;
    struct zt_conn *c;
    struct zt_side *from; /* where the bytes came from */
    size_t n;
    char data[];
};

static void flush_unlink(struct zt_conn *c);
static void flush_side(struct zt_conn *c, struct zt_side *to);

static struct zt_side *other(struct zt_conn *c, struct zt_side *s)
{
    return s == &c->down ? &c->up : &c->down;
}

static void touch(struct zt_conn *c)
{
    c->last_activity_ms = uv_now(zt_proxy_loop(c->w));
}

void zt_conn_set_str(char **field, const char *value)
{
    free(*field);
    *field = value ? gm_xstrdup(value) : NULL;
}

/* ---- lifetime ---- */

static void conn_free(struct zt_conn *c)
{
    flush_unlink(c);
    free(c->down.pend);
    free(c->up.pend);
    zt_proxy_conn_done(c->w, c);
    free(c->src_addr);
    free(c->dst_addr);
    free(c->hbone_addr);
    free(c->src_workload);
    free(c->src_namespace);
    free(c->src_identity);
    free(c->dst_workload);
    free(c->dst_namespace);
    free(c->dst_identity);
    free(c->dst_service);
    free(c->dst_uid);
    free(c->src_uid);
    free(c);
}

static void maybe_free(struct zt_conn *c)
{
    if (c->closing && c->pending_closes == 0 && !c->down.open && !c->up.open)
        conn_free(c);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct zt_conn *c = h->data;

    c->pending_closes--;
    maybe_free(c);
}

static void close_side(struct zt_conn *c, struct zt_side *s)
{
    if (!s->open)
        return;
    if (s->kind == ZT_SIDE_TCP) {
        s->open = false;
        c->pending_closes++;
        uv_close((uv_handle_t *)&s->tcp, on_handle_closed);
    } else if (s->kind == ZT_SIDE_STREAM && s->stream) {
        /* After both directions ended cleanly the stream closes by itself: no reset. */
        if (c->error || !s->eof || !s->shut)
            gm_hbone_stream_reset(s->stream, c->error ? 8 /* CANCEL */ : 0);
    }
}

void zt_conn_close(struct zt_conn *c, const char *reason)
{
    if (c->error == NULL && reason)
        c->error = reason;
    if (c->closing)
        return;
    c->closing = true;
    if (c->timer_open) {
        c->timer_open = false;
        c->pending_closes++;
        uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    }
    close_side(c, &c->down);
    close_side(c, &c->up);
    maybe_free(c);
}

/* Both directions finished, and every byte was handed to the kernel: a clean close. */
static void maybe_done(struct zt_conn *c)
{
    if (c->down.eof && c->up.shut_done && c->up.eof && c->down.shut_done)
        zt_conn_close(c, NULL);
}

/* ---- timers ---- */

static void on_timer(uv_timer_t *t)
{
    struct zt_conn *c = t->data;
    uint64_t idle = zt_proxy_settings(c->w)->idle_timeout_ms;

    if (!c->up.connected) {
        c->response_flags = "CONNECT";
        zt_conn_close(c, "upstream connect timeout");
        return;
    }
    uint64_t now = uv_now(zt_proxy_loop(c->w));
    if (idle && now - c->last_activity_ms >= idle) {
        zt_conn_close(c, "idle timeout");
        return;
    }
    uv_timer_start(&c->timer, on_timer, idle ? idle - (now - c->last_activity_ms) : 0, 0);
}

void zt_conn_hold_until_response(struct zt_conn *c)
{
    c->held = true;
    uv_timer_start(&c->timer, on_timer, zt_proxy_settings(c->w)->connect_timeout_ms, 0);
}

/* Reasons a held stream (nothing of the app's sent, so a retry cannot deliver anything twice)
 * is opened again: its connection died (reset, EOF, silence) or went away (GOAWAY, refused).
 * Not an answer of the destination, nor a failure another attempt would only repeat (TLS,
 * identity, protocol). */
static bool retryable(enum gm_hbone_reason reason)
{
    switch (reason) {
    case GM_HBONE_REASON_IO:
    case GM_HBONE_REASON_PEER_CLOSED:
    case GM_HBONE_REASON_PING_TIMEOUT:
    case GM_HBONE_REASON_GOAWAY:
    case GM_HBONE_REASON_REFUSED:
    case GM_HBONE_REASON_CONN_CLOSED:
        return true;
    default:
        return false;
    }
}

static void on_retry_timer(uv_timer_t *t)
{
    struct zt_conn *c = t->data;

    if (!c->closing)
        zt_outbound_retry(c);
}

struct zt_conn *zt_conn_new(struct zt_worker *w, enum zt_direction dir)
{
    struct zt_conn *c = gm_xcalloc(1, sizeof(*c));

    c->w = w;
    c->dir = dir;
    c->response_flags = "-";
    c->start_ms = uv_now(zt_proxy_loop(w));
    c->last_activity_ms = c->start_ms;
    uv_timer_init(zt_proxy_loop(w), &c->timer);
    c->timer.data = c;
    c->timer_open = true;
    uv_timer_start(&c->timer, on_timer, zt_proxy_settings(w)->connect_timeout_ms, 0);
    zt_proxy_conn_added(w, c);
    return c;
}

/* ---- TCP sides ---- */

/* One read buffer per thread: what a read brings is forwarded (copied or written) before the
 * next read. */
static _Thread_local char *slab_mem;

static char *slab(void)
{
    if (slab_mem == NULL)
        slab_mem = gm_thread_alloc(CHUNK);
    return slab_mem;
}

/* A TCP side whose peer is a stream reads straight into the stream's send queue. */
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct zt_conn *c = h->data;
    struct zt_side *s = (uv_tcp_t *)h == &c->down.tcp ? &c->down : &c->up;
    struct zt_side *to = s == &c->down ? &c->up : &c->down;

    (void)hint;
    if (to->kind == ZT_SIDE_STREAM && to->stream && !c->closing) {
        size_t len = 0;
        uint8_t *p = gm_hbone_stream_reserve(to->stream, &len);
        if (p != NULL && len > 0) {
            *buf = uv_buf_init((char *)p, len > CHUNK ? CHUNK : (unsigned)len);
            return;
        }
    }
    *buf = uv_buf_init(slab(), CHUNK);
}
static void pause_side(struct zt_side *s)
{
    if (s->kind == ZT_SIDE_TCP && s->reading) {
        uv_read_stop((uv_stream_t *)&s->tcp);
        s->reading = false;
    }
    s->paused = true;
}

static void on_tcp_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf);

static void resume_side(struct zt_side *s)
{
    s->paused = false;
    if (s->kind == ZT_SIDE_TCP && s->open && !s->reading && !s->eof) {
        if (uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_tcp_read) == 0)
            s->reading = true;
    }
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct zt_conn *c = req->data;
    struct zt_side *s = req->handle == (uv_stream_t *)&c->down.tcp ? &c->down : &c->up;

    free(req);
    s->shut_done = true;
    if (status < 0 && status != UV_ECANCELED && !c->closing)
        zt_conn_close(c, "shutdown failed");
    else if (!c->closing)
        maybe_done(c);
}

/* End our direction toward side s (after queued writes). */
static void shut_side(struct zt_conn *c, struct zt_side *s)
{
    if (s->shut || !s->open)
        return;
    s->shut = true;
    if (s->kind == ZT_SIDE_TCP) {
        flush_side(c, s);
        if (c->closing)
            return;
        uv_shutdown_t *req = gm_xmalloc(sizeof(*req));
        req->data = c;
        if (uv_shutdown(req, (uv_stream_t *)&s->tcp, on_shutdown) < 0) {
            free(req);
            zt_conn_close(c, "shutdown failed");
        }
    } else if (s->stream) {
        gm_hbone_stream_shutdown(s->stream);
        s->shut_done = true;
        maybe_done(c);
    }
}

static void on_tcp_written(uv_write_t *req, int status)
{
    struct tcp_write *w = container_of(req, struct tcp_write, req);
    struct zt_conn *c = w->c;
    struct zt_side *from = w->from;
    size_t n = w->n;

    free(w);
    if (status < 0) {
        if (!c->closing)
            zt_conn_close(c, "write to peer failed");
        return;
    }
    if (c->closing)
        return;
    struct zt_side *to = other(c, from);
    if (from->kind == ZT_SIDE_STREAM && from->stream)
        gm_hbone_stream_consumed(from->stream, n);
    else if (from->paused && uv_stream_get_write_queue_size((uv_stream_t *)&to->tcp) < LOW_WATER)
        resume_side(from);
}

/* Writes what the kernel takes of p at once, when nothing is queued ahead of it. Returns the
 * count, or -1 when the write failed (the connection is closing). */
static ssize_t write_now(struct zt_conn *c, struct zt_side *to, const char *p, size_t n)
{
    if (uv_stream_get_write_queue_size((uv_stream_t *)&to->tcp) > 0)
        return 0;
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    int k = uv_try_write((uv_stream_t *)&to->tcp, &b, 1);
    if (k >= 0 || k == UV_EAGAIN)
        return k > 0 ? k : 0;
    zt_conn_close(c, "write to peer failed");
    return -1;
}

/* Queues the n bytes at p, which lie in w (freed once written); 0, or -1 (closing). */
static int write_later(struct zt_conn *c, struct zt_side *to, struct tcp_write *w, const char *p,
                       size_t n)
{
    w->n = n;
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    if (uv_write(&w->req, (uv_stream_t *)&to->tcp, &b, 1, on_tcp_written) < 0) {
        free(w);
        zt_conn_close(c, "write to peer failed");
        return -1;
    }
    return 0;
}

/* Hands what side `to` holds to the kernel: what it takes at once is not queued; the rest
 * goes to libuv in the same block. Stream bytes count as consumed once written. */
static void flush_side(struct zt_conn *c, struct zt_side *to)
{
    struct tcp_write *w = to->pend;

    if (w == NULL)
        return;
    to->pend = NULL;
    if (c->closing || !to->open) {
        free(w);
        return;
    }
    ssize_t k = write_now(c, to, w->data, w->n);
    if (k < 0) {
        free(w);
        return;
    }
    if (k > 0 && w->from->kind == ZT_SIDE_STREAM && w->from->stream)
        gm_hbone_stream_consumed(w->from->stream, (size_t)k);
    if ((size_t)k == w->n)
        free(w);
    else
        write_later(c, to, w, w->data + k, w->n - (size_t)k);
}

static void flush_unlink(struct zt_conn *c)
{
    if (!c->flush_queued)
        return;
    for (struct zt_conn **pp = &c->w->flush; *pp; pp = &(*pp)->flush_next) {
        if (*pp == c) {
            *pp = c->flush_next;
            break;
        }
    }
    c->flush_queued = false;
    c->flush_next = NULL;
}

static void on_flush_check(uv_check_t *h)
{
    zt_conn_flush_all(h->data);
}

static void on_flush_prepare(uv_prepare_t *h)
{
    zt_conn_flush_all(h->data);
}

void zt_conn_flush_all(struct zt_worker *w)
{
    while (w->flush) {
        struct zt_conn *c = w->flush;
        w->flush = c->flush_next;
        c->flush_next = NULL;
        c->flush_queued = false;
        flush_side(c, &c->down);
        flush_side(c, &c->up);
    }
    uv_check_stop(&w->flush_check);
    uv_prepare_stop(&w->flush_prepare);
}

/* Stream bytes for a TCP side: held in one block per side until the end of the loop iteration,
 * so the frames that one TLS read decrypted leave in one write(2). */
static void hold_for_tcp(struct zt_conn *c, struct zt_side *from, struct zt_side *to, const char *p,
                         size_t n)
{
    while (n > 0) {
        struct tcp_write *w = to->pend;
        if (w == NULL) {
            w = to->pend = gm_xmalloc(sizeof(*w) + CHUNK);
            w->c = c;
            w->from = from;
            w->n = 0;
        }
        size_t k = CHUNK - w->n < n ? CHUNK - w->n : n;
        memcpy(w->data + w->n, p, k);
        w->n += k;
        p += k;
        n -= k;
        if (w->n == CHUNK) {
            flush_side(c, to);
            if (c->closing)
                return;
        }
    }
    if (to->pend && !c->flush_queued) {
        struct zt_worker *w = c->w;
        c->flush_queued = true;
        c->flush_next = w->flush;
        w->flush = c;
        /* Held bytes leave in the same loop iteration, before the loop can block: from I/O
         * callbacks at the check phase, from timers and idle work at the prepare phase. */
        if (!uv_is_active((uv_handle_t *)&w->flush_check)) {
            uv_check_start(&w->flush_check, on_flush_check);
            uv_prepare_start(&w->flush_prepare, on_flush_prepare);
        }
    }
}

/* Deliver bytes that arrived on side `from` to the other side. */
static void forward(struct zt_conn *c, struct zt_side *from, const char *p, size_t n)
{
    struct zt_side *to = other(c, from);

    from->bytes_in += n;
    touch(c);
    if (to->kind == ZT_SIDE_TCP && from->kind == ZT_SIDE_STREAM) {
        hold_for_tcp(c, from, to, p, n);
        return;
    }
    if (to->kind == ZT_SIDE_TCP) {
        /* What the kernel takes at once is not copied; only the rest is queued. */
        ssize_t k = write_now(c, to, p, n);
        if (k < 0 || (size_t)k == n)
            return;
        struct tcp_write *w = gm_xmalloc(sizeof(*w) + n - (size_t)k);
        w->c = c;
        w->from = from;
        memcpy(w->data, p + k, n - (size_t)k);
        if (write_later(c, to, w, w->data, n - (size_t)k) == 0 &&
            uv_stream_get_write_queue_size((uv_stream_t *)&to->tcp) > HIGH_WATER)
            pause_side(from);
        return;
    }
    if (gm_hbone_stream_write(to->stream, p, n) < 0) {
        zt_conn_close(c, "tunnel write failed");
        return;
    }
    if (!gm_hbone_stream_writable(to->stream))
        pause_side(from);
}

static struct zt_side *side_of_tcp(struct zt_conn *c, uv_stream_t *st)
{
    return (uv_tcp_t *)st == &c->down.tcp ? &c->down : &c->up;
}

static void on_tcp_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct zt_conn *c = st->data;
    struct zt_side *s = side_of_tcp(c, st);
    struct zt_side *to = other(c, s);
    bool reserved = buf->base != NULL && buf->base != slab_mem && to->kind == ZT_SIDE_STREAM;

    if (reserved && to->stream) {
        /* The bytes are in the stream's send queue already: commit them (or give the room back). */
        int rc = gm_hbone_stream_commit(to->stream, n > 0 ? (size_t)n : 0);
        if (n > 0) {
            s->bytes_in += (size_t)n;
            touch(c);
            if (rc < 0) {
                zt_conn_close(c, "tunnel write failed");
                return;
            }
            if (!gm_hbone_stream_writable(to->stream))
                pause_side(s);
            return;
        }
    }
    if (n > 0) {
        forward(c, s, buf->base, (size_t)n);
        return;
    }
    if (n == 0)
        return;
    if (n == UV_EOF) {
        s->eof = true;
        uv_read_stop(st);
        s->reading = false;
        shut_side(c, other(c, s));
        return;
    }
    zt_conn_close(c, s == &c->down ? "downstream read error" : "upstream read error");
}

void zt_conn_accepted(struct zt_conn *c)
{
    c->down.kind = ZT_SIDE_TCP;
    c->down.open = true;
    c->down.connected = true;
    c->down.tcp.data = c;
}

static void on_tcp_connected(uv_connect_t *req, int status)
{
    struct zt_conn *c = req->data;
    zt_conn_connected_cb cb = c->connected_cb;

    if (c->closing)
        return;
    if (status < 0) {
        c->response_flags = "CONNECT";
        if (cb)
            cb(c, status);
        zt_conn_close(c, status == UV_ECONNREFUSED ? "upstream connection refused"
                                                   : "upstream connect failed");
        return;
    }
    c->up.connected = true;
    if (cb)
        cb(c, 0);
    if (!c->closing && c->down.connected)
        zt_conn_start_relay(c);
}

int zt_conn_connect_tcp(struct zt_conn *c, int fd, const struct sockaddr *addr,
                        zt_conn_connected_cb cb)
{
    int rc = uv_tcp_init(zt_proxy_loop(c->w), &c->up.tcp);

    if (rc < 0) {
        close(fd);
        return rc;
    }
    c->up.kind = ZT_SIDE_TCP;
    c->up.open = true;
    c->up.tcp.data = c;
    rc = uv_tcp_open(&c->up.tcp, fd);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    c->connect_req.data = c;
    c->connected_cb = cb;
    return uv_tcp_connect(&c->connect_req, &c->up.tcp, addr, on_tcp_connected);
}

/* ---- stream sides ---- */

static struct zt_side *side_of_stream(struct zt_conn *c, struct gm_hbone_stream *s)
{
    return c->down.stream == s ? &c->down : &c->up;
}

static void on_stream_data(struct gm_hbone_stream *st, const uint8_t *p, size_t n, void *ctx)
{
    struct zt_conn *c = ctx;

    if (!c->closing)
        forward(c, side_of_stream(c, st), (const char *)p, n);
}

static void on_stream_end(struct gm_hbone_stream *st, void *ctx)
{
    struct zt_conn *c = ctx;
    struct zt_side *s = side_of_stream(c, st);

    s->eof = true;
    if (!c->closing)
        shut_side(c, other(c, s));
}

static void on_stream_writable(struct gm_hbone_stream *st, void *ctx)
{
    struct zt_conn *c = ctx;
    struct zt_side *from = other(c, side_of_stream(c, st));

    if (!c->closing && from->paused)
        resume_side(from);
}

static void on_stream_close(struct gm_hbone_stream *st, enum gm_hbone_reason reason, void *ctx)
{
    struct zt_conn *c = ctx;
    struct zt_side *s = side_of_stream(c, st);

    s->open = false;
    s->stream = NULL;
    if (!c->closing) {
        if (reason == GM_HBONE_REASON_OK && s->eof && s->shut) {
            maybe_done(c); /* the other side may still be flushing: wait for its shutdown */
            return;
        }
        if (s == &c->up && c->held && !c->relaying && !s->connected &&
            c->attempts < ZT_STREAM_ATTEMPTS && retryable(reason)) {
            /* Nothing of the app's was sent: open it again, from the loop (not inside the
             * dying connection's teardown). */
            GM_LOG_DEBUG("conn", "tunnel lost before the response; opening the stream again",
                         "dst=%s reason=%s attempt=%u", c->dst_addr ? c->dst_addr : "-",
                         gm_hbone_reason_name(reason), (unsigned)c->attempts);
            uv_timer_start(&c->timer, on_retry_timer, 0, 0);
            return;
        }
        if (reason == GM_HBONE_REASON_TLS_FAILED || reason == GM_HBONE_REASON_REJECTED)
            c->response_flags = "TLS_FAILURE";
        else if (reason == GM_HBONE_REASON_CONNECT_FAILED ||
                 reason == GM_HBONE_REASON_HANDSHAKE_TIMEOUT)
            c->response_flags = "CONNECT";
        zt_conn_close(c, gm_hbone_reason_name(reason));
        return;
    }
    maybe_free(c);
}

static void on_stream_response(struct gm_hbone_stream *st, int status, void *ctx);

const struct gm_hbone_stream_cbs zt_conn_stream_cbs = {
    .on_response = on_stream_response,
    .on_data = on_stream_data,
    .on_end = on_stream_end,
    .on_writable = on_stream_writable,
    .on_close = on_stream_close,
};

static void on_stream_response(struct gm_hbone_stream *st, int status, void *ctx)
{
    struct zt_conn *c = ctx;
    struct zt_side *s = side_of_stream(c, st);

    if (status / 100 != 2) {
        c->response_flags = status == 401 ? "DENY" : "CONNECT";
        GM_LOG_DEBUG("conn", "tunnel refused", "status=%d", status);
        zt_conn_close(c, status == 401 ? "denied by destination policy"
                                       : "destination refused the tunnel");
        return;
    }
    s->connected = true;
    if (!c->closing && c->down.connected)
        zt_conn_start_relay(c);
}

void zt_conn_attach_stream(struct zt_conn *c, struct zt_side *side, struct gm_hbone_stream *s)
{
    side->kind = ZT_SIDE_STREAM;
    side->stream = s;
    side->open = true;
    c->mtls = true;
    if (side == &c->down)
        gm_hbone_stream_set_cbs(s, &zt_conn_stream_cbs, c);
}

static const struct gm_hbone_stream_cbs detached_cbs = {0};

void zt_conn_detach_stream(struct zt_conn *c, struct zt_side *side)
{
    if (side->kind != ZT_SIDE_STREAM || side->stream == NULL)
        return;
    gm_hbone_stream_set_cbs(side->stream, &detached_cbs, NULL);
    side->stream = NULL;
    side->open = false;
}

/* Reads what already waits on a TCP side, now rather than after the next poll: the request an
 * application sent right behind its connect travels with the CONNECT, in one TLS record. */
static void read_now(struct zt_conn *c, struct zt_side *s)
{
    uv_os_fd_t fd;

    if (c->closing || s->kind != ZT_SIDE_TCP || !s->reading ||
        uv_fileno((uv_handle_t *)&s->tcp, &fd) < 0)
        return;
    ssize_t n = recv(fd, slab(), CHUNK, MSG_DONTWAIT);
    uv_buf_t buf = uv_buf_init(slab_mem, n > 0 ? (unsigned)n : 0);
    if (n > 0)
        on_tcp_read((uv_stream_t *)&s->tcp, n, &buf);
    else if (n == 0)
        on_tcp_read((uv_stream_t *)&s->tcp, UV_EOF, &buf);
}

void zt_conn_start_relay(struct zt_conn *c)
{
    uint64_t idle = zt_proxy_settings(c->w)->idle_timeout_ms;

    touch(c);
    if (idle)
        uv_timer_start(&c->timer, on_timer, idle, 0);
    else
        uv_timer_stop(&c->timer);
    resume_side(&c->down);
    resume_side(&c->up);
    /* Once is enough: later data is the poll's to report (an outbound relay starts before
     * the 200 and again on it, when a read now would find nothing and delay the reply). */
    if (!c->relaying)
        read_now(c, &c->down);
    c->relaying = true;
}
