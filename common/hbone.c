/* HBONE connections: the nghttp2 session, its transport (TLS or memory), timers, teardown, and
 * the data path of streams (send queues, data provider, flow control). */
#include <errno.h>

#include "gammamesh/log.h"
#include "hbone_int.h"

static void conn_teardown(struct gm_hbone_conn *c);
static void conn_send(struct gm_hbone_conn *c);

static const char *const reason_names[GM_HBONE_REASON__MAX] = {
    [GM_HBONE_REASON_OK] = "ok",
    [GM_HBONE_REASON_GOAWAY] = "goaway",
    [GM_HBONE_REASON_IDLE] = "idle",
    [GM_HBONE_REASON_PEER_CLOSED] = "peer_closed",
    [GM_HBONE_REASON_CONNECT_FAILED] = "connect_failed",
    [GM_HBONE_REASON_TLS_FAILED] = "tls_failed",
    [GM_HBONE_REASON_HANDSHAKE_TIMEOUT] = "handshake_timeout",
    [GM_HBONE_REASON_REJECTED] = "rejected",
    [GM_HBONE_REASON_PROTOCOL] = "protocol_error",
    [GM_HBONE_REASON_PING_TIMEOUT] = "ping_timeout",
    [GM_HBONE_REASON_IO] = "io",
    [GM_HBONE_REASON_OVERFLOW] = "overflow",
    [GM_HBONE_REASON_BAD_REQUEST] = "bad_request",
    [GM_HBONE_REASON_REFUSED] = "refused",
    [GM_HBONE_REASON_PEER_RESET] = "peer_reset",
    [GM_HBONE_REASON_LOCAL_RESET] = "local_reset",
    [GM_HBONE_REASON_CONN_CLOSED] = "conn_closed",
};

const char *gm_hbone_reason_name(enum gm_hbone_reason reason)
{
    if ((unsigned)reason >= GM_HBONE_REASON__MAX)
        return "?";
    return reason_names[reason];
}

void gm_hbone_settings_init(struct gm_hbone_settings *s, bool server)
{
    s->stream_window = 4u << 20;
    s->conn_window = 16u << 20;
    s->max_streams = server ? 200 : 100;
    s->max_header_bytes = 16384;
    s->max_frame_size = 16384;
    s->handshake_timeout_ms = 10000;
    s->ping_interval_ms = 10000;
    s->ping_timeout_ms = 20000;
    s->idle_timeout_ms = 600000;
    s->stream_queue_high = 256u << 10;
    s->stream_queue_low = 64u << 10;
    s->stream_queue_max = 1u << 20;
    s->conn_queue_high = 256u << 10;
    s->conn_queue_low = 64u << 10;
}

int gm_hbone_settings_check(const struct gm_hbone_settings *s)
{
    const uint32_t win_max = (1u << 31) - 1;

    if (s->stream_window < 65535 || s->stream_window > win_max || s->conn_window < 65535 ||
        s->conn_window > win_max)
        return -EINVAL;
    if (s->max_streams == 0 || s->max_header_bytes < 1024 || s->max_frame_size < 16384 ||
        s->max_frame_size > 16777215)
        return -EINVAL;
    if (s->stream_queue_low > s->stream_queue_high || s->stream_queue_high > s->stream_queue_max ||
        s->stream_queue_max == 0)
        return -EINVAL;
    if (s->conn_queue_low > s->conn_queue_high || s->conn_queue_high == 0)
        return -EINVAL;
    if (s->ping_interval_ms > 0 && s->ping_timeout_ms == 0)
        return -EINVAL;
    return 0;
}

/* ---- state, references, deferred work ----------------------------------------------------- */

/* Legal predecessors of each state, as a bit mask over enum gm_hbone_conn_state. */
static const unsigned conn_state_from[GM_HBONE_CONN__MAX] = {
    [GM_HBONE_CONN_NEW] = 0,
    [GM_HBONE_CONN_HANDSHAKE] = 1u << GM_HBONE_CONN_NEW,
    [GM_HBONE_CONN_OPEN] = 1u << GM_HBONE_CONN_NEW | 1u << GM_HBONE_CONN_HANDSHAKE,
    [GM_HBONE_CONN_DRAINING] = 1u << GM_HBONE_CONN_HANDSHAKE | 1u << GM_HBONE_CONN_OPEN,
    [GM_HBONE_CONN_CLOSING] = 1u << GM_HBONE_CONN_NEW | 1u << GM_HBONE_CONN_HANDSHAKE |
                              1u << GM_HBONE_CONN_OPEN | 1u << GM_HBONE_CONN_DRAINING,
};

static void set_state(struct gm_hbone_conn *c, enum gm_hbone_conn_state next)
{
    GM_ASSERT(conn_state_from[next] & (1u << c->state));
    GM_LOG_TRACE("hbone", "conn state", "from=%d to=%d", (int)c->state, (int)next);
    c->state = next;
}

void hbone_conn_enter(struct gm_hbone_conn *c)
{
    c->busy++;
}

void hbone_conn_leave(struct gm_hbone_conn *c)
{
    GM_ASSERT(c->busy > 0);
    c->busy--;
}

/* True while the connection may still take owner requests. */
bool hbone_conn_usable(const struct gm_hbone_conn *c)
{
    return c->state != GM_HBONE_CONN_CLOSING && c->h2 != NULL;
}

static void on_kick(uv_idle_t *h)
{
    struct gm_hbone_conn *c = container_of(h, struct gm_hbone_conn, kick);

    uv_idle_stop(&c->kick);
    if (c->state == GM_HBONE_CONN_CLOSING) {
        if (!c->torn_down)
            conn_teardown(c);
        return;
    }
    hbone_conn_enter(c);
    if (c->server) {
        for (struct gm_hbone_stream *s = c->streams; s && hbone_conn_usable(c); s = s->next)
            hbone_server_deliver_held(s);
    }
    conn_send(c);
    hbone_conn_leave(c);
}

/* Runs the deferred work (sending, held data) from the loop, after the current callback. */
void hbone_conn_schedule(struct gm_hbone_conn *c)
{
    if (c->state != GM_HBONE_CONN_CLOSING)
        uv_idle_start(&c->kick, on_kick);
}

/* ---- output: frames coalesced into TLS records ---------------------------------------------- */

static int transport_write(struct gm_hbone_conn *c, const uint8_t *p, size_t n)
{
    c->stats.bytes_out += n;
    if (c->mem) {
        if (c->sink)
            c->sink(c->sink_ctx, p, n);
        return 0;
    }
    if (c->ts == NULL)
        return -ENOTCONN;
    return gm_tls_stream_write_more(c->ts, p, n);
}

static int out_flush(struct gm_hbone_conn *c)
{
    int rc = 0;

    if (c->out_len > 0)
        rc = transport_write(c, c->out, c->out_len);
    c->out_len = 0;
    return rc;
}

static int out_append(struct gm_hbone_conn *c, const uint8_t *p, size_t n)
{
    while (n > 0) {
        size_t room = sizeof(c->out) - c->out_len;
        size_t k = n < room ? n : room;
        memcpy(c->out + c->out_len, p, k);
        c->out_len += k;
        p += k;
        n -= k;
        if (c->out_len == sizeof(c->out)) {
            int rc = out_flush(c);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

static bool transport_ready(const struct gm_hbone_conn *c)
{
    return c->mem || (c->ts != NULL && c->tls_done);
}

static bool transport_writable(const struct gm_hbone_conn *c)
{
    return c->mem || gm_tls_stream_writable(c->ts);
}

/* nghttp2's output other than DATA payloads: coalesced in out. */
static ssize_t on_send(nghttp2_session *h2, const uint8_t *p, size_t n, int flags, void *user)
{
    struct gm_hbone_conn *c = user;

    (void)h2;
    (void)flags;
    if (!c->force_send && !transport_writable(c))
        return NGHTTP2_ERR_WOULDBLOCK;
    if (out_append(c, p, n) < 0) {
        c->send_failed = true;
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return (ssize_t)n;
}

/* Drops n bytes from the head of q (already sent). */
static void queue_drop(struct hbone_queue *q, size_t n)
{
    q->bytes -= n;
    while (n > 0 && q->head) {
        struct hbone_chunk *h = q->head;
        size_t k = h->len < n ? h->len : n;
        h->off += k;
        h->len -= k;
        n -= k;
        if (h->len == 0) {
            q->head = h->next;
            if (q->head == NULL)
                q->tail = NULL;
            free(h);
        }
    }
}

/* A DATA frame whose payload is still in the stream's send queue (NGHTTP2_DATA_FLAG_NO_COPY).
 * When the payload lies in one chunk, the header goes into the chunk's headroom and header and
 * payload go to TLS from there: one record, no copy. Otherwise they are copied into out. */
static int on_send_data(nghttp2_session *h2, nghttp2_frame *frame, const uint8_t *framehd,
                        size_t length, nghttp2_data_source *src, void *user)
{
    struct gm_hbone_conn *c = user;
    struct gm_hbone_stream *s = src->ptr;
    struct hbone_queue *q = &s->sendq;
    struct hbone_chunk *h = q->head;
    size_t pad = frame->data.padlen;
    int rc = 0;

    /* Never NGHTTP2_ERR_WOULDBLOCK here: nghttp2 would keep the frame and call again later, even
     * after the stream is gone. The watermark is checked by the data provider instead. */
    (void)h2;
    if (pad == 0 && length > 0 && h && h->len >= length && h->off >= HBONE_HEADROOM) {
        uint8_t *frame_start = h->data + h->off - HBONE_HEADROOM;
        memcpy(frame_start, framehd, HBONE_HEADROOM);
        rc = out_flush(c); /* what nghttp2 sent before this frame goes first */
        if (rc == 0)
            rc = transport_write(c, frame_start, HBONE_HEADROOM + length);
        queue_drop(q, length);
    } else {
        rc = out_append(c, framehd, 9);
        if (rc == 0 && pad > 0) {
            uint8_t padlen = (uint8_t)(pad - 1);
            rc = out_append(c, &padlen, 1);
        }
        for (size_t left = length; rc == 0 && left > 0 && q->head;) {
            struct hbone_chunk *hh = q->head;
            size_t k = hh->len < left ? hh->len : left;
            rc = out_append(c, hh->data + hh->off, k);
            queue_drop(q, k);
            left -= k;
        }
        static const uint8_t zeros[256];
        for (size_t left = pad > 1 ? pad - 1 : 0; rc == 0 && left > 0;) {
            size_t k = left < sizeof(zeros) ? left : sizeof(zeros);
            rc = out_append(c, zeros, k);
            left -= k;
        }
    }
    if (rc < 0) {
        c->send_failed = true;
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    const struct gm_hbone_settings *st = &c->settings;
    if (s->over_high && q->bytes < st->stream_queue_low) {
        s->over_high = false;
        s->notify_writable = true;
    }
    return 0;
}

/* Serialises what nghttp2 has to send; force ignores the output watermark (teardown). */
static int drain_session(struct gm_hbone_conn *c, bool force)
{
    c->force_send = force;
    c->send_failed = false;
    int rv = nghttp2_session_send(c->h2);
    c->force_send = false;
    if (rv != 0 && !c->send_failed) {
        GM_LOG_DEBUG("hbone", "session_send failed", "error=%s", nghttp2_strerror(rv));
        return -EPROTO;
    }
    if (out_flush(c) < 0 || c->send_failed)
        return -ENOBUFS;
    if (!c->mem && c->ts && gm_tls_stream_flush(c->ts) < 0)
        return -ENOBUFS;
    return 0;
}

static void notify_writable(struct gm_hbone_conn *c)
{
    for (struct gm_hbone_stream *s = c->streams; s && hbone_conn_usable(c); s = s->next) {
        if (!s->notify_writable)
            continue;
        s->notify_writable = false;
        if (s->cbs && s->cbs->on_writable)
            s->cbs->on_writable(s, s->ctx);
    }
}

/* The send pump: frames out until nghttp2 is done or the transport is above its watermark
 * (on_tls_writable resumes), then owed on_writable() calls, then the end-of-session check. */
static void conn_send(struct gm_hbone_conn *c)
{
    if (!hbone_conn_usable(c) || !transport_ready(c))
        return;
    hbone_conn_enter(c);
    if (c->blocked && transport_writable(c)) {
        c->blocked = false;
        for (struct gm_hbone_stream *s = c->streams; s; s = s->next) {
            if (s->deferred && s->prd_attached && hbone_stream_may_send(s) &&
                (s->sendq.bytes > 0 || s->shut_wr)) {
                s->deferred = false;
                nghttp2_session_resume_data(c->h2, s->id);
            }
        }
    }
    int rc = drain_session(c, false);
    if (rc < 0)
        gm_hbone_conn_close(c, rc == -EPROTO ? GM_HBONE_REASON_PROTOCOL : GM_HBONE_REASON_OVERFLOW);
    notify_writable(c);
    if (hbone_conn_usable(c) && !nghttp2_session_want_read(c->h2) &&
        !nghttp2_session_want_write(c->h2))
        gm_hbone_conn_close(c, c->goaway_sent || c->goaway_recv ? GM_HBONE_REASON_GOAWAY
                                                                : GM_HBONE_REASON_PROTOCOL);
    hbone_conn_leave(c);
}

/* Hands received HTTP/2 bytes to nghttp2; 0 or -EPROTO. */
static int conn_recv(struct gm_hbone_conn *c, const uint8_t *p, size_t n)
{
    c->stats.bytes_in += n;
    c->last_rx = uv_now(c->loop);
    ssize_t r = nghttp2_session_mem_recv(c->h2, p, n);
    if (r < 0) {
        GM_LOG_DEBUG("hbone", "mem_recv failed", "error=%s", nghttp2_strerror((int)r));
        return -EPROTO;
    }
    return 0;
}

/* ---- timers ------------------------------------------------------------------------------- */

static void on_idle_timeout(uv_timer_t *t)
{
    struct gm_hbone_conn *c = container_of(t, struct gm_hbone_conn, deadline);

    if (c->state == GM_HBONE_CONN_OPEN && c->streams == NULL)
        gm_hbone_conn_close(c, GM_HBONE_REASON_IDLE);
}

/* Arms the idle timer when the last stream is gone (and stops it when one exists). */
static void idle_update(struct gm_hbone_conn *c)
{
    if (c->state != GM_HBONE_CONN_OPEN || !c->settings_rx || !c->tls_done)
        return;
    if (c->streams != NULL || c->settings.idle_timeout_ms == 0)
        uv_timer_stop(&c->deadline);
    else
        uv_timer_start(&c->deadline, on_idle_timeout, c->settings.idle_timeout_ms, 0);
}

static void on_handshake_timeout(uv_timer_t *t)
{
    struct gm_hbone_conn *c = container_of(t, struct gm_hbone_conn, deadline);

    gm_hbone_conn_close(c, GM_HBONE_REASON_HANDSHAKE_TIMEOUT);
}

/* Next keepalive event: the next PING, or the moment silence becomes fatal. */
static void ping_arm(struct gm_hbone_conn *c);

/* A PING, sent from the loop right after this callback (the keepalive's, or
 * gm_hbone_conn_ping()'s probe, which may run inside another connection's callbacks). */
static void send_ping(struct gm_hbone_conn *c)
{
    c->last_ping = uv_now(c->loop);
    hbone_conn_enter(c);
    if (nghttp2_submit_ping(c->h2, NGHTTP2_FLAG_NONE, NULL) == 0)
        hbone_conn_schedule(c);
    hbone_conn_leave(c);
}

static void on_ping_timer(uv_timer_t *t)
{
    struct gm_hbone_conn *c = container_of(t, struct gm_hbone_conn, ping);
    uint64_t now = uv_now(c->loop);

    if (now - c->last_rx >= c->settings.ping_timeout_ms) {
        GM_LOG_DEBUG("hbone", "ping timeout", "silent_ms=%llu",
                     (unsigned long long)(now - c->last_rx));
        gm_hbone_conn_close(c, GM_HBONE_REASON_PING_TIMEOUT);
        return;
    }
    if (now - c->last_ping >= c->settings.ping_interval_ms)
        send_ping(c);
    if (hbone_conn_usable(c))
        ping_arm(c);
}

static void ping_arm(struct gm_hbone_conn *c)
{
    uint64_t now = uv_now(c->loop);
    uint64_t next_ping = c->last_ping + c->settings.ping_interval_ms;
    uint64_t dead = c->last_rx + c->settings.ping_timeout_ms;
    uint64_t at = next_ping < dead ? next_ping : dead;

    uv_timer_start(&c->ping, on_ping_timer, at > now ? at - now : 0, 0);
}

/* TLS and the peer's SETTINGS are in: the handshake deadline becomes the idle timer. */
static void handshake_check_done(struct gm_hbone_conn *c)
{
    if (!c->tls_done || !c->settings_rx || !hbone_conn_usable(c))
        return;
    uv_timer_stop(&c->deadline);
    idle_update(c);
}

/* ---- nghttp2 callbacks ------------------------------------------------------------------- */

static struct gm_hbone_stream *stream_of(nghttp2_session *h2, int32_t id)
{
    return nghttp2_session_get_stream_user_data(h2, id);
}

static int on_begin_headers(nghttp2_session *h2, const nghttp2_frame *frame, void *user)
{
    struct gm_hbone_conn *c = user;

    if (!c->server || frame->hd.type != NGHTTP2_HEADERS ||
        frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct gm_hbone_stream *s = hbone_stream_new(c, frame->hd.stream_id);
    gm_buf_init(&s->hbuf, (size_t)c->settings.max_header_bytes + 1024);
    if (nghttp2_session_set_stream_user_data(h2, s->id, s) != 0) {
        hbone_stream_free(s);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    hbone_stream_link(s);
    return 0;
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user)
{
    struct gm_hbone_conn *c = user;
    struct gm_hbone_stream *s = stream_of(h2, frame->hd.stream_id);

    if (s == NULL || frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    if (c->server && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
        hbone_server_on_header(s, name, namelen, value, valuelen);
    else if (!c->server)
        hbone_client_on_header(s, name, namelen, value, valuelen);
    return 0;
}

static void on_headers_frame(struct gm_hbone_conn *c, struct gm_hbone_stream *s,
                             const nghttp2_frame *frame)
{
    if (c->server && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
        hbone_server_on_request(s);
    } else if (c->server) {
        /* Trailers have no place in a tunnel. */
        nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_PROTOCOL_ERROR);
        return;
    } else {
        hbone_client_on_response(s);
    }
    if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
        hbone_stream_on_end(s);
}

static void on_goaway_frame(struct gm_hbone_conn *c, const nghttp2_frame *frame)
{
    c->goaway_recv = true;
    GM_LOG_DEBUG("hbone", "goaway received", "last_stream=%d error=%u",
                 (int)frame->goaway.last_stream_id, (unsigned)frame->goaway.error_code);
    if (c->state == GM_HBONE_CONN_OPEN || c->state == GM_HBONE_CONN_HANDSHAKE)
        set_state(c, GM_HBONE_CONN_DRAINING);
    if (c->cbs->on_goaway)
        c->cbs->on_goaway(c, c->ctx);
}

static int on_frame_recv(nghttp2_session *h2, const nghttp2_frame *frame, void *user)
{
    struct gm_hbone_conn *c = user;
    struct gm_hbone_stream *s = frame->hd.stream_id ? stream_of(h2, frame->hd.stream_id) : NULL;

    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        if (s != NULL)
            on_headers_frame(c, s, frame);
        break;
    case NGHTTP2_DATA:
        if (s != NULL && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
            hbone_stream_on_end(s);
        break;
    case NGHTTP2_RST_STREAM:
        if (s != NULL) {
            s->rst_recv = true;
            s->stats.h2_error = frame->rst_stream.error_code;
        }
        break;
    case NGHTTP2_GOAWAY:
        on_goaway_frame(c, frame);
        break;
    case NGHTTP2_SETTINGS:
        if (!(frame->hd.flags & NGHTTP2_FLAG_ACK)) {
            c->settings_rx = true;
            handshake_check_done(c);
        }
        break;
    default:
        break;
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t id, const uint8_t *p, size_t n,
                         void *user)
{
    struct gm_hbone_stream *s = stream_of(h2, id);

    if (s == NULL || s->state == GM_HBONE_STREAM_FAILED || s->reset_asked) {
        /* Nobody will consume these: give the window back at once. */
        nghttp2_session_consume(h2, id, n);
        return 0;
    }
    s->stats.bytes_in += n;
    s->unconsumed += n;
    if (s->state == GM_HBONE_STREAM_OPENING || s->held.bytes > 0) {
        s->early_data = s->early_data || s->state == GM_HBONE_STREAM_OPENING;
        hbone_queue_push(&s->held, p, n); /* server: before the 2xx; bounded by the window */
    } else if (s->cbs && s->cbs->on_data) {
        s->cbs->on_data(s, p, n, s->ctx);
    } else {
        s->unconsumed -= n;
        nghttp2_session_consume(h2, id, n);
    }
    return 0;
}

static enum gm_hbone_reason stream_close_reason(const struct gm_hbone_stream *s, uint32_t code)
{
    if (s->reason != GM_HBONE_REASON_OK)
        return s->reason;
    if (code == NGHTTP2_REFUSED_STREAM && !s->rst_sent)
        return GM_HBONE_REASON_REFUSED;
    if (s->rst_recv)
        return GM_HBONE_REASON_PEER_RESET;
    if (s->rst_sent || code != NGHTTP2_NO_ERROR)
        return GM_HBONE_REASON_LOCAL_RESET;
    return GM_HBONE_REASON_OK;
}

/* Final for a stream: unlink, give back unconsumed window, tell the owner, free. */
static void stream_finish(struct gm_hbone_stream *s, enum gm_hbone_reason reason)
{
    struct gm_hbone_conn *c = s->conn;

    if (s->unconsumed > 0 && c->h2 != NULL)
        nghttp2_session_consume_connection(c->h2, s->unconsumed);
    s->unconsumed = 0;
    if (s->prev)
        s->prev->next = s->next;
    else
        c->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    c->stats.streams_active--;
    hbone_stream_set_state(s, GM_HBONE_STREAM_CLOSED);
    GM_LOG_DEBUG("hbone", "stream closed", "id=%d reason=%s in=%llu out=%llu", (int)s->id,
                 gm_hbone_reason_name(reason), (unsigned long long)s->stats.bytes_in,
                 (unsigned long long)s->stats.bytes_out);
    if (s->owned && s->cbs && s->cbs->on_close)
        s->cbs->on_close(s, reason, s->ctx);
    hbone_stream_free(s);
    idle_update(c);
}

static int on_stream_close(nghttp2_session *h2, int32_t id, uint32_t code, void *user)
{
    struct gm_hbone_stream *s = stream_of(h2, id);

    if (s == NULL)
        return 0;
    if (s->stats.h2_error == 0)
        s->stats.h2_error = code;
    stream_finish(s, stream_close_reason(s, code));
    return 0;
}

static int on_frame_send(nghttp2_session *h2, const nghttp2_frame *frame, void *user)
{
    struct gm_hbone_conn *c = user;
    struct gm_hbone_stream *s = frame->hd.stream_id ? stream_of(h2, frame->hd.stream_id) : NULL;

    switch (frame->hd.type) {
    case NGHTTP2_DATA:
        if (s != NULL)
            s->stats.bytes_out += frame->hd.length - frame->data.padlen;
        break;
    case NGHTTP2_HEADERS:
        /* A refusal is complete: ask the client to stop sending (RFC 9113 §8.1). */
        if (s != NULL && c->server && s->state == GM_HBONE_STREAM_FAILED && !s->end_recv &&
            (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
            nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_NO_ERROR);
        break;
    case NGHTTP2_RST_STREAM:
        if (s != NULL) {
            s->rst_sent = true;
            if (s->stats.h2_error == 0)
                s->stats.h2_error = frame->rst_stream.error_code;
        }
        break;
    case NGHTTP2_GOAWAY:
        c->goaway_sent = true;
        break;
    default:
        break;
    }
    return 0;
}

static int on_error(nghttp2_session *h2, int code, const char *msg, size_t len, void *user)
{
    GM_LOG_DEBUG("hbone", "http2 error", "code=%d msg=%.*s", code, (int)len, msg);
    return 0;
}

static nghttp2_session_callbacks *session_callbacks(void)
{
    nghttp2_session_callbacks *cbs;

    if (nghttp2_session_callbacks_new(&cbs) != 0)
        gm_panic(__FILE__, __LINE__, "nghttp2_session_callbacks_new");
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_session_callbacks_set_error_callback2(cbs, on_error);
    nghttp2_session_callbacks_set_send_callback(cbs, on_send);
    nghttp2_session_callbacks_set_send_data_callback(cbs, on_send_data);
    return cbs;
}

/* The session with DESIGN §6 settings queued: our SETTINGS, then the 16 MiB connection window
 * (WINDOW_UPDATE on stream 0). The server validates requests itself, to answer 400. */
static int session_create(struct gm_hbone_conn *c)
{
    const struct gm_hbone_settings *st = &c->settings;
    nghttp2_session_callbacks *cbs = session_callbacks();
    nghttp2_option *opt;
    int rc;

    if (nghttp2_option_new(&opt) != 0)
        gm_panic(__FILE__, __LINE__, "nghttp2_option_new");
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_no_closed_streams(opt, 1);
    nghttp2_option_set_max_send_header_block_length(opt, 65536);
    if (c->server)
        nghttp2_option_set_no_http_messaging(opt, 1);
    if (c->server)
        rc = nghttp2_session_server_new2(&c->h2, cbs, c, opt);
    else
        rc = nghttp2_session_client_new2(&c->h2, cbs, c, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    if (rc != 0)
        gm_panic(__FILE__, __LINE__, "nghttp2_session_new");

    nghttp2_settings_entry iv[5] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, st->stream_window},
        {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, st->max_frame_size},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, st->max_header_bytes},
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, st->max_streams},
    };
    rc = nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, c->server ? 5 : 4);
    if (rc == 0)
        rc = nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0,
                                                   (int32_t)st->conn_window);
    return rc == 0 ? 0 : -EINVAL;
}

/* ---- TLS transport ------------------------------------------------------------------------ */

static enum gm_hbone_reason reason_from_tls(enum gm_tls_reason r)
{
    switch (r) {
    case GM_TLS_REASON_OK:
    case GM_TLS_REASON_ABORT:
        return GM_HBONE_REASON_OK;
    case GM_TLS_REASON_PEER_CLOSED:
    case GM_TLS_REASON_EOF:
        return GM_HBONE_REASON_PEER_CLOSED;
    case GM_TLS_REASON_CONNECT_FAILED:
        return GM_HBONE_REASON_CONNECT_FAILED;
    case GM_TLS_REASON_HANDSHAKE_FAILED:
        return GM_HBONE_REASON_TLS_FAILED;
    case GM_TLS_REASON_HANDSHAKE_TIMEOUT:
        return GM_HBONE_REASON_HANDSHAKE_TIMEOUT;
    case GM_TLS_REASON_PROTOCOL:
        return GM_HBONE_REASON_PROTOCOL;
    case GM_TLS_REASON_OVERFLOW:
        return GM_HBONE_REASON_OVERFLOW;
    default:
        return GM_HBONE_REASON_IO;
    }
}

static bool alpn_is_h2(SSL *ssl)
{
    const unsigned char *p;
    unsigned int len;

    SSL_get0_alpn_selected(ssl, &p, &len);
    return len == 2 && memcmp(p, "h2", 2) == 0;
}

static void on_tls_handshake(struct gm_tls_stream *ts, void *ctx)
{
    struct gm_hbone_conn *c = ctx;

    hbone_conn_enter(c);
    if (!alpn_is_h2(gm_tls_stream_ssl(ts))) {
        GM_LOG_DEBUG("hbone", "peer did not negotiate ALPN h2");
        gm_hbone_conn_close(c, GM_HBONE_REASON_TLS_FAILED);
    } else if (c->cbs->on_handshake && c->cbs->on_handshake(c, c->ctx) < 0) {
        gm_hbone_conn_close(c, GM_HBONE_REASON_REJECTED);
    } else if (hbone_conn_usable(c)) {
        c->tls_done = true;
        if (c->state == GM_HBONE_CONN_HANDSHAKE)
            set_state(c, GM_HBONE_CONN_OPEN);
        c->last_rx = c->last_ping = uv_now(c->loop);
        if (c->settings.ping_interval_ms > 0)
            ping_arm(c);
        conn_send(c); /* preface, SETTINGS, queued requests */
    }
    hbone_conn_leave(c);
}

static void on_tls_read(struct gm_tls_stream *ts, const uint8_t *p, size_t n, void *ctx)
{
    struct gm_hbone_conn *c = ctx;

    if (!hbone_conn_usable(c))
        return;
    hbone_conn_enter(c);
    if (conn_recv(c, p, n) < 0) {
        /* nghttp2 may have queued a GOAWAY explaining the error: let it out. */
        conn_send(c);
        gm_hbone_conn_close(c, GM_HBONE_REASON_PROTOCOL);
    } else {
        conn_send(c);
    }
    hbone_conn_leave(c);
}

static void on_tls_writable(struct gm_tls_stream *ts, void *ctx)
{
    struct gm_hbone_conn *c = ctx;

    hbone_conn_enter(c);
    conn_send(c);
    hbone_conn_leave(c);
}

static void conn_finish(struct gm_hbone_conn *c);

static void on_tls_close(struct gm_tls_stream *ts, enum gm_tls_reason reason, void *ctx)
{
    struct gm_hbone_conn *c = ctx;
    bool counted = c->torn_down; /* teardown closed it and counts it in pending_closes */

    c->ts = NULL;
    if (!counted) {
        gm_hbone_conn_close(c, reason_from_tls(reason));
        return;
    }
    if (--c->pending_closes == 0)
        conn_finish(c);
}

static const struct gm_tls_stream_cbs tls_cbs = {
    .on_handshake = on_tls_handshake,
    .on_read = on_tls_read,
    .on_writable = on_tls_writable,
    .on_close = on_tls_close,
};

/* ---- creation ----------------------------------------------------------------------------- */

static int conn_new(uv_loop_t *loop, bool server, const struct gm_hbone_settings *settings,
                    const struct gm_hbone_conn_cbs *cbs, void *ctx, struct gm_hbone_conn **ret)
{
    struct gm_hbone_settings def;
    struct gm_hbone_conn *c;

    if (settings == NULL) {
        gm_hbone_settings_init(&def, server);
        settings = &def;
    }
    if (cbs == NULL || gm_hbone_settings_check(settings) < 0)
        return -EINVAL;
    c = gm_xcalloc(1, sizeof(*c));
    c->loop = loop;
    c->server = server;
    c->cbs = cbs;
    c->ctx = ctx;
    c->settings = *settings;
    uv_timer_init(loop, &c->deadline);
    uv_timer_init(loop, &c->ping);
    uv_timer_init(loop, &c->respond);
    uv_idle_init(loop, &c->kick);
    if (session_create(c) < 0)
        gm_panic(__FILE__, __LINE__, "hbone session setup");
    *ret = c;
    return 0;
}

static int conn_new_tls(uv_loop_t *loop, SSL *ssl, bool server,
                        const struct gm_hbone_settings *settings,
                        const struct gm_hbone_conn_cbs *cbs, void *ctx, struct gm_hbone_conn **ret)
{
    struct gm_tls_settings ts_set;
    struct gm_hbone_conn *c;
    int rc;

    if (ssl == NULL || conn_new(loop, server, settings, cbs, ctx, &c) < 0) {
        SSL_free(ssl);
        return -EINVAL;
    }
    gm_tls_settings_init(&ts_set);
    ts_set.handshake_timeout_ms = c->settings.handshake_timeout_ms;
    ts_set.write_high = c->settings.conn_queue_high;
    ts_set.write_low = c->settings.conn_queue_low;
    ts_set.write_max = 4 * (size_t)c->settings.conn_queue_high + (1u << 20);
    rc = gm_tls_stream_new(loop, ssl, server, &ts_set, &tls_cbs, c, &c->ts);
    GM_ASSERT(rc == 0);
    *ret = c;
    return 0;
}

int gm_hbone_conn_new_client(uv_loop_t *loop, SSL *ssl, const struct gm_hbone_settings *settings,
                             const struct gm_hbone_conn_cbs *cbs, void *ctx,
                             struct gm_hbone_conn **ret)
{
    return conn_new_tls(loop, ssl, false, settings, cbs, ctx, ret);
}

int gm_hbone_conn_new_server(uv_loop_t *loop, SSL *ssl, const struct gm_hbone_settings *settings,
                             const struct gm_hbone_conn_cbs *cbs, void *ctx,
                             struct gm_hbone_conn **ret)
{
    return conn_new_tls(loop, ssl, true, settings, cbs, ctx, ret);
}

int gm_hbone_conn_new_mem(uv_loop_t *loop, bool server, const struct gm_hbone_settings *settings,
                          const struct gm_hbone_conn_cbs *cbs, void *ctx, gm_hbone_sink_cb sink,
                          void *sink_ctx, struct gm_hbone_conn **ret)
{
    struct gm_hbone_conn *c;

    if (conn_new(loop, server, settings, cbs, ctx, &c) < 0)
        return -EINVAL;
    c->mem = true;
    c->sink = sink;
    c->sink_ctx = sink_ctx;
    c->tls_done = true;
    c->last_rx = c->last_ping = uv_now(loop);
    set_state(c, GM_HBONE_CONN_OPEN);
    if (c->settings.ping_interval_ms > 0)
        ping_arm(c);
    hbone_conn_schedule(c);
    *ret = c;
    return 0;
}

int gm_hbone_conn_feed(struct gm_hbone_conn *c, const uint8_t *p, size_t n)
{
    int rc = 0;

    GM_ASSERT(c->mem);
    if (!hbone_conn_usable(c))
        return -ENOTCONN;
    hbone_conn_enter(c);
    if (conn_recv(c, p, n) < 0) {
        conn_send(c);
        gm_hbone_conn_close(c, GM_HBONE_REASON_PROTOCOL);
    } else {
        conn_send(c);
    }
    if (!hbone_conn_usable(c))
        rc = -ENOTCONN;
    hbone_conn_leave(c);
    return rc;
}

uv_tcp_t *gm_hbone_conn_tcp(struct gm_hbone_conn *c)
{
    return c->ts ? gm_tls_stream_tcp(c->ts) : NULL;
}

static void handshake_deadline_start(struct gm_hbone_conn *c)
{
    if (c->settings.handshake_timeout_ms > 0)
        uv_timer_start(&c->deadline, on_handshake_timeout, c->settings.handshake_timeout_ms, 0);
}

int gm_hbone_conn_start(struct gm_hbone_conn *c)
{
    if (c->mem || c->ts == NULL || c->state != GM_HBONE_CONN_NEW)
        return -EINVAL;
    int rc = gm_tls_stream_start(c->ts);
    if (rc < 0)
        return rc;
    set_state(c, GM_HBONE_CONN_HANDSHAKE);
    handshake_deadline_start(c);
    return 0;
}

int gm_hbone_conn_connect(struct gm_hbone_conn *c, const struct sockaddr *addr)
{
    if (c->mem || c->ts == NULL || c->state != GM_HBONE_CONN_NEW)
        return -EINVAL;
    int rc = gm_tls_stream_connect(c->ts, addr);
    if (rc < 0)
        return rc;
    set_state(c, GM_HBONE_CONN_HANDSHAKE);
    handshake_deadline_start(c);
    return 0;
}

/* ---- drain and close ----------------------------------------------------------------------- */

uint64_t gm_hbone_conn_quiet_ms(const struct gm_hbone_conn *c)
{
    if (c->state != GM_HBONE_CONN_OPEN)
        return 0;
    uint64_t now = uv_now(c->loop);
    return now > c->last_rx ? now - c->last_rx : 0;
}

void gm_hbone_conn_ping(struct gm_hbone_conn *c)
{
    if (c->state != GM_HBONE_CONN_OPEN && c->state != GM_HBONE_CONN_DRAINING)
        return;
    if (hbone_conn_usable(c))
        send_ping(c);
}

void gm_hbone_conn_goaway(struct gm_hbone_conn *c)
{
    if (c->state == GM_HBONE_CONN_NEW) {
        gm_hbone_conn_close(c, GM_HBONE_REASON_GOAWAY);
        return;
    }
    if (!hbone_conn_usable(c) || c->goaway_sent)
        return;
    hbone_conn_enter(c);
    if (c->state != GM_HBONE_CONN_DRAINING)
        set_state(c, GM_HBONE_CONN_DRAINING);
    int32_t last = nghttp2_session_get_last_proc_stream_id(c->h2);
    if (nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE, last, NGHTTP2_NO_ERROR, NULL, 0) != 0)
        gm_hbone_conn_close(c, GM_HBONE_REASON_GOAWAY);
    hbone_conn_schedule(c);
    hbone_conn_leave(c);
}

void gm_hbone_conn_close(struct gm_hbone_conn *c, enum gm_hbone_reason reason)
{
    if (c->state == GM_HBONE_CONN_CLOSING)
        return;
    c->reason = reason;
    set_state(c, GM_HBONE_CONN_CLOSING);
    GM_LOG_DEBUG("hbone", "conn closing", "reason=%s server=%d streams=%u",
                 gm_hbone_reason_name(reason), (int)c->server, (unsigned)c->stats.streams_active);
    /* Teardown runs from the loop: never inside nghttp2, a callback, or the owner's call. */
    uv_idle_start(&c->kick, on_kick);
}

static void conn_finish(struct gm_hbone_conn *c)
{
    GM_ASSERT(c->busy == 0);
    if (c->cbs->on_close)
        c->cbs->on_close(c, c->reason, c->ctx);
    free(c);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct gm_hbone_conn *c = h->data;

    if (--c->pending_closes == 0)
        conn_finish(c);
}

/* Reasons after which the peer is still worth a GOAWAY and a close_notify. */
static bool reason_is_graceful(enum gm_hbone_reason r)
{
    return r == GM_HBONE_REASON_OK || r == GM_HBONE_REASON_GOAWAY || r == GM_HBONE_REASON_IDLE ||
           r == GM_HBONE_REASON_PROTOCOL || r == GM_HBONE_REASON_REJECTED ||
           r == GM_HBONE_REASON_PEER_CLOSED;
}

/* Runs from the kick, with nothing on the stack: says goodbye on the wire, closes every stream
 * (their on_close), deletes the session and closes the handles; conn_finish() follows. */
static void conn_teardown(struct gm_hbone_conn *c)
{
    GM_ASSERT(c->busy == 0);
    bool graceful = reason_is_graceful(c->reason);
    enum gm_hbone_reason sr =
        c->reason == GM_HBONE_REASON_OK ? GM_HBONE_REASON_CONN_CLOSED : c->reason;

    c->torn_down = true;
    c->busy++; /* the stream callbacks below run with the connection held */
    if (graceful && transport_ready(c)) {
        if (!c->goaway_sent &&
            (c->reason == GM_HBONE_REASON_OK || c->reason == GM_HBONE_REASON_IDLE))
            nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE,
                                  nghttp2_session_get_last_proc_stream_id(c->h2), NGHTTP2_NO_ERROR,
                                  NULL, 0);
        (void)drain_session(c, true);
    }
    while (c->streams)
        stream_finish(c->streams, sr);
    nghttp2_session_del(c->h2);
    c->h2 = NULL;
    c->busy--;

    c->deadline.data = c->ping.data = c->respond.data = c->kick.data = c;
    c->pending_closes = 4;
    uv_close((uv_handle_t *)&c->deadline, on_handle_closed);
    uv_close((uv_handle_t *)&c->ping, on_handle_closed);
    uv_close((uv_handle_t *)&c->respond, on_handle_closed);
    uv_close((uv_handle_t *)&c->kick, on_handle_closed);
    if (c->ts) {
        c->pending_closes++;
        gm_tls_stream_close(c->ts, graceful ? GM_TLS_REASON_OK : GM_TLS_REASON_ABORT);
    }
}

/* ---- accessors ----------------------------------------------------------------------------- */

SSL *gm_hbone_conn_ssl(struct gm_hbone_conn *c)
{
    return c->ts ? gm_tls_stream_ssl(c->ts) : NULL;
}

void *gm_hbone_conn_ctx(const struct gm_hbone_conn *c)
{
    return c->ctx;
}

bool gm_hbone_conn_is_server(const struct gm_hbone_conn *c)
{
    return c->server;
}

enum gm_hbone_conn_state gm_hbone_conn_state(const struct gm_hbone_conn *c)
{
    return c->state;
}

void gm_hbone_conn_stats(const struct gm_hbone_conn *c, struct gm_hbone_conn_stats *out)
{
    struct gm_tls_stats ts = {0};

    *out = c->stats;
    if (c->ts)
        gm_tls_stream_stats(c->ts, &ts);
    out->out_queued = c->ts ? gm_tls_stream_queued(c->ts) : 0;
    out->out_queued_max = ts.queued_max;
}

/* ---- streams: lifetime and queues ------------------------------------------------------- */

/* Legal predecessors of each stream state, as a bit mask over enum gm_hbone_stream_state. */
static const unsigned stream_state_from[GM_HBONE_STREAM__MAX] = {
    [GM_HBONE_STREAM_OPENING] = 0,
    [GM_HBONE_STREAM_OPEN] = 1u << GM_HBONE_STREAM_OPENING,
    [GM_HBONE_STREAM_FAILED] = 1u << GM_HBONE_STREAM_OPENING,
    [GM_HBONE_STREAM_CLOSED] =
        1u << GM_HBONE_STREAM_OPENING | 1u << GM_HBONE_STREAM_OPEN | 1u << GM_HBONE_STREAM_FAILED,
};

void hbone_stream_set_state(struct gm_hbone_stream *s, enum gm_hbone_stream_state next)
{
    GM_ASSERT(stream_state_from[next] & (1u << s->state));
    GM_LOG_TRACE("hbone", "stream state", "id=%d from=%d to=%d", (int)s->id, (int)s->state,
                 (int)next);
    s->state = next;
}

struct gm_hbone_stream *hbone_stream_new(struct gm_hbone_conn *c, int32_t id)
{
    struct gm_hbone_stream *s = gm_xcalloc(1, sizeof(*s));

    s->conn = c;
    s->id = id;
    s->state = GM_HBONE_STREAM_OPENING;
    return s;
}

void hbone_stream_link(struct gm_hbone_stream *s)
{
    struct gm_hbone_conn *c = s->conn;

    s->next = c->streams;
    if (c->streams)
        c->streams->prev = s;
    c->streams = s;
    c->stats.streams_total++;
    c->stats.streams_active++;
    idle_update(c);
}

void hbone_stream_free(struct gm_hbone_stream *s)
{
    hbone_server_respond_free(s);
    hbone_queue_clear(&s->sendq);
    hbone_queue_clear(&s->held);
    gm_buf_done(&s->hbuf);
    free(s->hrefs);
    free(s->hdrs);
    free(s);
}

void hbone_queue_clear(struct hbone_queue *q)
{
    while (q->head) {
        struct hbone_chunk *next = q->head->next;
        free(q->head);
        q->head = next;
    }
    q->tail = NULL;
    q->bytes = 0;
}

/* A new tail chunk with room for at least want bytes (up to HBONE_CHUNK). */
static struct hbone_chunk *queue_grow(struct hbone_queue *q, size_t want)
{
    size_t cap = HBONE_HEADROOM + want;
    cap = cap < HBONE_CHUNK_SMALL ? HBONE_CHUNK_SMALL : cap > HBONE_CHUNK ? HBONE_CHUNK : cap;
    struct hbone_chunk *t = gm_xmalloc(sizeof(*t) + cap);

    t->cap = cap;
    t->next = NULL;
    t->off = HBONE_HEADROOM;
    t->len = 0;
    if (q->tail)
        q->tail->next = t;
    else
        q->head = t;
    q->tail = t;
    return t;
}

void hbone_queue_push(struct hbone_queue *q, const uint8_t *p, size_t n)
{
    while (n > 0) {
        struct hbone_chunk *t = q->tail;
        if (t == NULL || t->off + t->len == t->cap)
            t = queue_grow(q, n);
        size_t room = t->cap - t->off - t->len;
        size_t k = n < room ? n : room;
        memcpy(t->data + t->off + t->len, p, k);
        t->len += k;
        q->bytes += k;
        p += k;
        n -= k;
    }
}

/* Copies up to max bytes from the head of q into dst and drops them; returns the count. */
static size_t queue_pop(struct hbone_queue *q, uint8_t *dst, size_t max)
{
    size_t done = 0;

    while (done < max && q->head) {
        struct hbone_chunk *h = q->head;
        size_t k = h->len < max - done ? h->len : max - done;
        memcpy(dst + done, h->data + h->off, k);
        done += k;
        queue_drop(q, k);
    }
    return done;
}

/* ---- streams: sending ----------------------------------------------------------------------- */

/* nghttp2's data provider: frames from the send queue; defers when empty, EOF on shutdown. */
ssize_t hbone_data_source_read(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t length,
                               uint32_t *flags, nghttp2_data_source *src, void *user)
{
    struct gm_hbone_stream *s = src->ptr;
    struct gm_hbone_conn *c = s->conn;

    if (!hbone_stream_may_send(s) || (s->sendq.bytes == 0 && !s->shut_wr)) {
        s->deferred = true; /* server before its 2xx, or nothing to send yet */
        return NGHTTP2_ERR_DEFERRED;
    }
    if (!c->force_send && !transport_writable(c)) {
        s->deferred = true; /* the TLS queue is above its watermark: conn_send() resumes */
        c->blocked = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    /* A whole frame (9-byte header + payload) fills one 16 KiB TLS record exactly, so the peer
     * decrypts one frame per record and writes it to its socket in one piece. A frame takes no
     * more than the head chunk holds, so on_send_data() can send it in place. */
    if (length > HBONE_DATA_MAX)
        length = HBONE_DATA_MAX;
    size_t n = s->sendq.bytes < length ? s->sendq.bytes : length;
    if (s->sendq.head && s->sendq.head->len < n)
        n = s->sendq.head->len;
    *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (s->sendq.bytes == n && s->shut_wr)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

/* Wakes a deferred data provider after the queue, the shutdown flag or the state changed. */
/* A client sends tunnel data right behind its CONNECT, without waiting for the 2xx: the server
 * holds it until its upstream is connected (and drops it with a refusal). This saves a round
 * trip on every new connection whose client speaks first. */
bool hbone_stream_may_send(const struct gm_hbone_stream *s)
{
    return s->state == GM_HBONE_STREAM_OPEN ||
           (s->state == GM_HBONE_STREAM_OPENING && !s->conn->server);
}

void hbone_stream_resume(struct gm_hbone_stream *s)
{
    if (s->deferred && s->prd_attached && hbone_stream_may_send(s)) {
        s->deferred = false;
        nghttp2_session_resume_data(s->conn->h2, s->id);
    }
    hbone_conn_schedule(s->conn);
}

static int stream_can_take(const struct gm_hbone_stream *s, size_t n)
{
    if (s->state == GM_HBONE_STREAM_CLOSED || !hbone_conn_usable(s->conn) || s->reset_asked)
        return -ENOTCONN;
    if (s->shut_wr || s->state == GM_HBONE_STREAM_FAILED)
        return -EPIPE;
    if (s->sendq.bytes + n > s->conn->settings.stream_queue_max)
        return -ENOBUFS;
    return 0;
}

/* n more bytes sit at the end of the send queue. */
static void stream_queued(struct gm_hbone_stream *s)
{
    hbone_server_respond_flush(s);
    if (s->sendq.bytes > s->conn->settings.stream_queue_high)
        s->over_high = true;
    hbone_stream_resume(s);
}

int gm_hbone_stream_write(struct gm_hbone_stream *s, const void *p, size_t n)
{
    int rc = stream_can_take(s, n);

    if (rc < 0 || n == 0)
        return rc;
    hbone_queue_push(&s->sendq, p, n);
    stream_queued(s);
    return 0;
}

uint8_t *gm_hbone_stream_reserve(struct gm_hbone_stream *s, size_t *len)
{
    struct hbone_queue *q = &s->sendq;
    struct hbone_chunk *t = q->tail;

    if (stream_can_take(s, 1) < 0)
        return NULL;
    if (t == NULL || t->cap - t->off - t->len < HBONE_RESERVE_MIN)
        t = queue_grow(q, HBONE_CHUNK);
    size_t room = t->cap - t->off - t->len;
    size_t cap = s->conn->settings.stream_queue_max - q->bytes;
    *len = room < cap ? room : cap;
    return t->data + t->off + t->len;
}

int gm_hbone_stream_commit(struct gm_hbone_stream *s, size_t n)
{
    struct hbone_queue *q = &s->sendq;
    struct hbone_chunk *t = q->tail;

    if (n == 0) {
        /* An untouched chunk at the end goes back now: an idle stream holds no buffer. */
        if (t && t->len == 0) {
            struct hbone_chunk **pp = &q->head;
            while (*pp != t)
                pp = &(*pp)->next;
            *pp = NULL;
            q->tail = NULL;
            for (struct hbone_chunk *h = q->head; h; h = h->next)
                q->tail = h;
            free(t);
        }
        return 0;
    }
    int rc = stream_can_take(s, n);
    if (rc < 0)
        return rc;
    GM_ASSERT(t != NULL && t->off + t->len + n <= t->cap);
    t->len += n;
    q->bytes += n;
    stream_queued(s);
    return 0;
}

bool gm_hbone_stream_writable(const struct gm_hbone_stream *s)
{
    return !s->over_high && s->state != GM_HBONE_STREAM_CLOSED;
}

size_t gm_hbone_stream_queued(const struct gm_hbone_stream *s)
{
    return s->sendq.bytes;
}

int gm_hbone_stream_shutdown(struct gm_hbone_stream *s)
{
    if (s->state == GM_HBONE_STREAM_CLOSED || !hbone_conn_usable(s->conn))
        return -ENOTCONN;
    if (s->shut_wr)
        return 0;
    s->shut_wr = true;
    hbone_server_respond_flush(s);
    hbone_stream_resume(s);
    return 0;
}

void gm_hbone_stream_reset(struct gm_hbone_stream *s, uint32_t h2_error)
{
    if (s->state == GM_HBONE_STREAM_CLOSED || !hbone_conn_usable(s->conn) || s->reset_asked)
        return;
    s->reset_asked = true;
    if (s->reason == GM_HBONE_REASON_OK)
        s->reason = GM_HBONE_REASON_LOCAL_RESET;
    s->stats.h2_error = h2_error;
    hbone_server_respond_flush(s); /* the peer learns the upstream was reached, then the reset */
    nghttp2_submit_rst_stream(s->conn->h2, NGHTTP2_FLAG_NONE, s->id, h2_error);
    hbone_conn_schedule(s->conn);
}

/* ---- streams: receiving ---------------------------------------------------------------------- */

void gm_hbone_stream_consumed(struct gm_hbone_stream *s, size_t n)
{
    struct gm_hbone_conn *c = s->conn;

    if (s->state == GM_HBONE_STREAM_CLOSED || !hbone_conn_usable(c))
        return;
    if (n > s->unconsumed)
        n = s->unconsumed;
    if (n == 0)
        return;
    s->unconsumed -= n;
    nghttp2_session_consume(c->h2, s->id, n);
    hbone_conn_schedule(c);
}

/* The peer's END_STREAM: told now, or after held data (server before the 2xx). */
void hbone_stream_on_end(struct gm_hbone_stream *s)
{
    s->end_recv = true;
    if (s->state != GM_HBONE_STREAM_OPEN || s->held.bytes > 0 || s->end_told)
        return;
    s->end_told = true;
    if (s->cbs && s->cbs->on_end)
        s->cbs->on_end(s, s->ctx);
}

/* Delivers data held before the 2xx, then a held END_STREAM; runs from the kick. */
void hbone_server_deliver_held(struct gm_hbone_stream *s)
{
    uint8_t buf[16384];

    if (s->state != GM_HBONE_STREAM_OPEN)
        return;
    while (s->held.bytes > 0 && s->state == GM_HBONE_STREAM_OPEN && !s->reset_asked &&
           hbone_conn_usable(s->conn)) {
        size_t n = queue_pop(&s->held, buf, sizeof(buf));
        if (s->cbs && s->cbs->on_data) {
            s->cbs->on_data(s, buf, n, s->ctx);
        } else {
            s->unconsumed -= n;
            nghttp2_session_consume(s->conn->h2, s->id, n);
        }
    }
    if (s->held.bytes == 0 && s->end_recv && !s->end_told)
        hbone_stream_on_end(s);
}

/* ---- streams: accessors --------------------------------------------------------------------- */

struct gm_hbone_conn *gm_hbone_stream_conn(const struct gm_hbone_stream *s)
{
    return s->conn;
}

void *gm_hbone_stream_ctx(const struct gm_hbone_stream *s)
{
    return s->ctx;
}

int32_t gm_hbone_stream_id(const struct gm_hbone_stream *s)
{
    return s->id;
}

enum gm_hbone_stream_state gm_hbone_stream_state(const struct gm_hbone_stream *s)
{
    return s->state;
}

void gm_hbone_stream_stats(const struct gm_hbone_stream *s, struct gm_hbone_stream_stats *out)
{
    *out = s->stats;
}
