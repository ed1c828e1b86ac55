/* TLS over a libuv TCP handle. OpenSSL reads ciphertext straight from the read buffer and
 * writes records straight into a write block that goes to the socket as it is: two BIOs of our
 * own instead of memory BIOs, which copy every byte once more and clear their buffer on reset. */
#include "gammamesh/tls_stream.h"

#include <errno.h>
#include <pthread.h>

#include <openssl/err.h>

#include "gammamesh/log.h"
#include "gammamesh/util.h"

struct gm_tls_stream {
    uv_tcp_t tcp;               /* the socket; embedded */
    uv_timer_t timer;           /* handshake deadline, then the linger deadline of a close */
    uv_idle_t kick;             /* delivers buffered plaintext after read_start() */
    uv_connect_t connect_req;   /* gm_tls_stream_connect() */
    uv_shutdown_t shutdown_req; /* FIN after close_notify */
    uv_loop_t *loop;            /* borrowed */
    SSL *ssl;                   /* owned */
    BIO *net_in;                /* ciphertext from the socket, read by SSL; owned by ssl */
    BIO *net_out;               /* ciphertext written by SSL, for the socket; owned by ssl */
    const uint8_t *in_ptr;      /* ciphertext SSL has not read yet: in rbuf or in keep */
    size_t in_len;
    uint8_t *keep; /* what SSL left unread when a read callback ended (reading paused) */
    size_t keep_cap;
    struct tls_write *wblk;              /* records written by SSL, not yet handed to the socket */
    const struct gm_tls_stream_cbs *cbs; /* borrowed */
    void *ctx;                           /* owner's */
    struct gm_tls_settings settings;
    enum gm_tls_state state;
    enum gm_tls_reason reason; /* first close reason */
    int refs;                  /* held across calls into OpenSSL and the owner */
    int pending_closes;        /* handles whose close callback is outstanding */
    bool server;
    bool reading;    /* owner wants on_read */
    bool above_high; /* writable() is false; on_writable owed */
    bool closed;     /* on_close delivered */
    size_t queued;   /* ciphertext handed to uv_write, not yet written */
    struct gm_tls_stats stats;
    uint8_t pbuf[GM_TLS_CHUNK]; /* plaintext chunk handed to on_read */
};

/* A block of records: filled by SSL, then written; what the kernel does not take at once is
 * queued in the same block, freed in on_written. */
struct tls_write {
    uv_write_t req;
    struct gm_tls_stream *ts;
    size_t len; /* filled; once queued, the bytes still to write */
    size_t cap;
    uint8_t data[];
};

#define WBLK_CAP  (16 * (GM_TLS_CHUNK + 64)) /* records of 256 KiB of plaintext per write(2) */
#define KEEP_FREE (256 * 1024)               /* a kept read remainder this big is not reused */

/* Ciphertext read chunk, one per thread: many records per read(2), and SSL reads them where they
 * lie. What SSL leaves unread when the read callback ends is copied to the stream's keep. */
#define RBUF_SIZE (256 * 1024)
static _Thread_local uint8_t *rbuf;

static void tls_close_handles(struct gm_tls_stream *ts);
static void tls_pump(struct gm_tls_stream *ts);

static const char *const reason_names[GM_TLS_REASON__MAX] = {
    [GM_TLS_REASON_OK] = "ok",
    [GM_TLS_REASON_ABORT] = "abort",
    [GM_TLS_REASON_PEER_CLOSED] = "peer_closed",
    [GM_TLS_REASON_EOF] = "eof",
    [GM_TLS_REASON_CONNECT_FAILED] = "connect_failed",
    [GM_TLS_REASON_HANDSHAKE_FAILED] = "tls_handshake_failed",
    [GM_TLS_REASON_HANDSHAKE_TIMEOUT] = "tls_handshake_timeout",
    [GM_TLS_REASON_PROTOCOL] = "tls_protocol",
    [GM_TLS_REASON_IO] = "io",
    [GM_TLS_REASON_OVERFLOW] = "write_overflow",
};

const char *gm_tls_reason_name(enum gm_tls_reason reason)
{
    if ((unsigned)reason >= GM_TLS_REASON__MAX)
        return "?";
    return reason_names[reason];
}

/* ---- our BIOs ------------------------------------------------------------------------------- */

static int bio_out_write(BIO *b, const char *p, int n)
{
    struct gm_tls_stream *ts = BIO_get_data(b);
    struct tls_write *w = ts->wblk;

    if (n <= 0)
        return 0;
    if (w == NULL || w->len + (size_t)n > w->cap) {
        size_t cap = w ? w->cap : WBLK_CAP;
        size_t need = (w ? w->len : 0) + (size_t)n;
        while (cap < need)
            cap *= 2;
        w = gm_xrealloc(w, sizeof(*w) + cap);
        if (ts->wblk == NULL)
            w->len = 0;
        w->cap = cap;
        ts->wblk = w;
    }
    memcpy(w->data + w->len, p, (size_t)n);
    w->len += (size_t)n;
    return n;
}

static int bio_in_read(BIO *b, char *p, int n)
{
    struct gm_tls_stream *ts = BIO_get_data(b);

    BIO_clear_retry_flags(b);
    if (ts->in_len == 0) {
        BIO_set_retry_read(b); /* "want more", not EOF */
        return -1;
    }
    size_t k = ts->in_len < (size_t)n ? ts->in_len : (size_t)n;
    memcpy(p, ts->in_ptr, k);
    ts->in_ptr += k;
    ts->in_len -= k;
    return (int)k;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    struct gm_tls_stream *ts = BIO_get_data(b);

    (void)num;
    (void)ptr;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_PENDING:
        return ts && b == ts->net_in ? (long)ts->in_len : 0;
    default:
        return 0;
    }
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static BIO_METHOD *bio_in_method, *bio_out_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static void bio_methods_init(void)
{
    bio_in_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "gammamesh-tls-in");
    bio_out_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "gammamesh-tls-out");
    if (bio_in_method == NULL || bio_out_method == NULL)
        gm_panic(__FILE__, __LINE__, "BIO_meth_new");
    BIO_meth_set_read(bio_in_method, bio_in_read);
    BIO_meth_set_ctrl(bio_in_method, bio_ctrl);
    BIO_meth_set_create(bio_in_method, bio_create);
    BIO_meth_set_write(bio_out_method, bio_out_write);
    BIO_meth_set_ctrl(bio_out_method, bio_ctrl);
    BIO_meth_set_create(bio_out_method, bio_create);
}

void gm_tls_settings_init(struct gm_tls_settings *s)
{
    s->handshake_timeout_ms = 10000;
    s->linger_ms = 2000;
    s->write_high = 256 * 1024;
    s->write_low = 64 * 1024;
    s->write_max = 4 * 1024 * 1024;
}

/* Legal predecessors of each state, as a bit mask over enum gm_tls_state. */
static const unsigned state_from[GM_TLS_STATE__MAX] = {
    [GM_TLS_STATE_NEW] = 0,
    [GM_TLS_STATE_CONNECTING] = 1u << GM_TLS_STATE_NEW,
    [GM_TLS_STATE_HANDSHAKE] = 1u << GM_TLS_STATE_NEW | 1u << GM_TLS_STATE_CONNECTING,
    [GM_TLS_STATE_OPEN] = 1u << GM_TLS_STATE_HANDSHAKE,
    [GM_TLS_STATE_SHUTDOWN] = 1u << GM_TLS_STATE_OPEN,
    [GM_TLS_STATE_CLOSING] = 1u << GM_TLS_STATE_NEW | 1u << GM_TLS_STATE_CONNECTING |
                             1u << GM_TLS_STATE_HANDSHAKE | 1u << GM_TLS_STATE_OPEN |
                             1u << GM_TLS_STATE_SHUTDOWN,
};

static void set_state(struct gm_tls_stream *ts, enum gm_tls_state next)
{
    GM_ASSERT(state_from[next] & (1u << ts->state));
    ts->state = next;
}

static void tls_ref(struct gm_tls_stream *ts)
{
    ts->refs++;
}

static void tls_unref(struct gm_tls_stream *ts)
{
    GM_ASSERT(ts->refs > 0);
    if (--ts->refs > 0)
        return;
    GM_ASSERT(ts->closed);
    SSL_free(ts->ssl);
    free(ts->wblk);
    free(ts->keep);
    free(ts);
}

static bool settings_ok(const struct gm_tls_settings *s)
{
    return s->write_low <= s->write_high && s->write_high <= s->write_max && s->write_max > 0;
}

int gm_tls_stream_new(uv_loop_t *loop, SSL *ssl, bool server,
                      const struct gm_tls_settings *settings, const struct gm_tls_stream_cbs *cbs,
                      void *ctx, struct gm_tls_stream **ret)
{
    struct gm_tls_settings def;
    struct gm_tls_stream *ts;

    if (settings == NULL) {
        gm_tls_settings_init(&def);
        settings = &def;
    }
    if (ssl == NULL || cbs == NULL || !settings_ok(settings)) {
        SSL_free(ssl);
        return -EINVAL;
    }
    ts = gm_xcalloc(1, sizeof(*ts));
    ts->loop = loop;
    ts->ssl = ssl;
    ts->cbs = cbs;
    ts->ctx = ctx;
    ts->settings = *settings;
    ts->server = server;
    ts->reading = true;
    ts->refs = 1; /* dropped after on_close */
    pthread_once(&bio_once, bio_methods_init);
    ts->net_in = BIO_new(bio_in_method);
    ts->net_out = BIO_new(bio_out_method);
    if (ts->net_in == NULL || ts->net_out == NULL)
        gm_panic(__FILE__, __LINE__, "BIO_new");
    BIO_set_data(ts->net_in, ts);
    BIO_set_data(ts->net_out, ts);
    SSL_set_bio(ssl, ts->net_in, ts->net_out);
    if (server)
        SSL_set_accept_state(ssl);
    else
        SSL_set_connect_state(ssl);
    uv_tcp_init(loop, &ts->tcp);
    uv_timer_init(loop, &ts->timer);
    uv_idle_init(loop, &ts->kick);
    *ret = ts;
    return 0;
}

uv_tcp_t *gm_tls_stream_tcp(struct gm_tls_stream *ts)
{
    return &ts->tcp;
}

SSL *gm_tls_stream_ssl(struct gm_tls_stream *ts)
{
    return ts->ssl;
}

enum gm_tls_state gm_tls_stream_state(const struct gm_tls_stream *ts)
{
    return ts->state;
}

void gm_tls_stream_stats(const struct gm_tls_stream *ts, struct gm_tls_stats *out)
{
    *out = ts->stats;
}

size_t gm_tls_stream_queued(const struct gm_tls_stream *ts)
{
    return ts->queued;
}

bool gm_tls_stream_writable(const struct gm_tls_stream *ts)
{
    return ts->state == GM_TLS_STATE_OPEN && !ts->above_high;
}

/* ---- writing ciphertext ---------------------------------------------------------------- */

static void on_written(uv_write_t *req, int status)
{
    struct tls_write *w = container_of(req, struct tls_write, req);
    struct gm_tls_stream *ts = w->ts;

    ts->queued -= w->len;
    free(w);
    if (status < 0) {
        gm_tls_stream_close(ts, GM_TLS_REASON_IO);
    } else if (ts->above_high && ts->queued < ts->settings.write_low) {
        ts->above_high = false;
        if (ts->state == GM_TLS_STATE_OPEN && ts->cbs->on_writable)
            ts->cbs->on_writable(ts, ts->ctx);
    }
    tls_unref(ts);
}

static void account_queued(struct gm_tls_stream *ts, size_t n)
{
    ts->queued += n;
    if (ts->queued > ts->stats.queued_max)
        ts->stats.queued_max = ts->queued;
    if (ts->queued > ts->settings.write_high)
        ts->above_high = true;
}

/* Moves the records SSL wrote to the socket: try_write what the kernel takes now; the rest is
 * queued in the block itself (no copy). Returns 0 or a negative errno. */
static int flush_net_out(struct gm_tls_stream *ts)
{
    struct tls_write *w = ts->wblk;
    size_t done = 0;

    if (w == NULL || w->len == 0)
        return 0;
    size_t len = w->len;
    if (ts->queued == 0) {
        uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)len);
        int n = uv_try_write((uv_stream_t *)&ts->tcp, &b, 1);
        if (n > 0)
            done = (size_t)n;
        else if (n < 0 && n != UV_EAGAIN) {
            w->len = 0;
            return n;
        }
    }
    ts->stats.bytes_out += len;
    if (done == len) {
        free(w); /* an idle stream holds no block */
        ts->wblk = NULL;
        return 0;
    }
    size_t rest = len - done;
    ts->wblk = NULL;
    w->ts = ts;
    w->len = rest;
    uv_buf_t b = uv_buf_init((char *)w->data + done, (unsigned)rest);
    int rc = uv_write(&w->req, (uv_stream_t *)&ts->tcp, &b, 1, on_written);
    if (rc < 0) {
        free(w);
        return rc;
    }
    tls_ref(ts);
    account_queued(ts, rest);
    return 0;
}

static int tls_write(struct gm_tls_stream *ts, const void *p, size_t n, bool more)
{
    size_t written;
    int rc = 0;

    if (ts->state != GM_TLS_STATE_OPEN)
        return -ENOTCONN;
    if (n == 0)
        return 0;
    /* A record adds 22 bytes in TLS 1.3; count 64 per 16 KiB to stay on the safe side. */
    size_t held = ts->wblk ? ts->wblk->len : 0;
    if (ts->queued + held + n + (n / GM_TLS_CHUNK + 1) * 64 > ts->settings.write_max)
        return -ENOBUFS;
    tls_ref(ts);
    if (SSL_write_ex(ts->ssl, p, n, &written) != 1 || written != n) {
        ERR_clear_error();
        rc = -EPROTO;
    } else if (!more || (ts->wblk && ts->wblk->len >= WBLK_CAP - GM_TLS_CHUNK)) {
        rc = flush_net_out(ts);
    }
    tls_unref(ts);
    return rc;
}

int gm_tls_stream_write(struct gm_tls_stream *ts, const void *p, size_t n)
{
    return tls_write(ts, p, n, false);
}

int gm_tls_stream_write_more(struct gm_tls_stream *ts, const void *p, size_t n)
{
    return tls_write(ts, p, n, true);
}

int gm_tls_stream_flush(struct gm_tls_stream *ts)
{
    if (ts->state != GM_TLS_STATE_OPEN)
        return ts->wblk && ts->wblk->len ? -ENOTCONN : 0;
    return flush_net_out(ts);
}

/* ---- reading and the handshake ----------------------------------------------------------- */

static enum gm_tls_reason ssl_failure(struct gm_tls_stream *ts, int r)
{
    int err = SSL_get_error(ts->ssl, r);
    enum gm_tls_reason why = GM_TLS_REASON_PROTOCOL;

    if (err == SSL_ERROR_ZERO_RETURN)
        why = GM_TLS_REASON_PEER_CLOSED;
    else if (ts->state == GM_TLS_STATE_HANDSHAKE)
        why = GM_TLS_REASON_HANDSHAKE_FAILED;
    if (why != GM_TLS_REASON_PEER_CLOSED && gm_log_enabled(GM_LOG_LEVEL_DEBUG, "tls")) {
        unsigned long e = ERR_peek_error();
        char buf[256];
        ERR_error_string_n(e, buf, sizeof(buf));
        GM_LOG_DEBUG("tls", "tls error", "reason=%s ssl_error=%d detail=%s",
                     gm_tls_reason_name(why), err, e ? buf : "-");
    }
    ERR_clear_error();
    return why;
}

/* Drives the handshake; true when it finished now. */
static bool do_handshake(struct gm_tls_stream *ts)
{
    int r = SSL_do_handshake(ts->ssl);

    if (r == 1) {
        set_state(ts, GM_TLS_STATE_OPEN);
        uv_timer_stop(&ts->timer);
        return true;
    }
    int err = SSL_get_error(ts->ssl, r);
    if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
        enum gm_tls_reason why = ssl_failure(ts, r);
        (void)flush_net_out(ts); /* let the alert out */
        gm_tls_stream_close(ts, why);
    }
    return false;
}

/* Decrypts what net_in holds and hands it to the owner while it reads. */
static void decrypt_all(struct gm_tls_stream *ts)
{
    while (ts->reading && ts->state == GM_TLS_STATE_OPEN) {
        size_t n = 0;
        int r = SSL_read_ex(ts->ssl, ts->pbuf, sizeof(ts->pbuf), &n);
        if (r == 1) {
            if (ts->cbs->on_read)
                ts->cbs->on_read(ts, ts->pbuf, n, ts->ctx);
            /* Nothing left to decrypt: spare OpenSSL a call that can only say "want read". */
            if (ts->in_len == 0 && SSL_pending(ts->ssl) == 0)
                break;
            continue;
        }
        int err = SSL_get_error(ts->ssl, r);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
            break;
        gm_tls_stream_close(ts, ssl_failure(ts, r));
        break;
    }
}

/* Runs the TLS machine over what net_in holds: handshake, then application data. Any bytes
 * SSL produced on the way (alerts, tickets, key updates) go out. */
static void tls_pump(struct gm_tls_stream *ts)
{
    tls_ref(ts);
    if (ts->state == GM_TLS_STATE_HANDSHAKE && do_handshake(ts)) {
        if (flush_net_out(ts) < 0)
            gm_tls_stream_close(ts, GM_TLS_REASON_IO);
        else if (ts->cbs->on_handshake)
            ts->cbs->on_handshake(ts, ts->ctx);
    }
    if (ts->state == GM_TLS_STATE_OPEN)
        decrypt_all(ts);
    if (ts->state == GM_TLS_STATE_HANDSHAKE || ts->state == GM_TLS_STATE_OPEN) {
        if (flush_net_out(ts) < 0)
            gm_tls_stream_close(ts, GM_TLS_REASON_IO);
    }
    tls_unref(ts);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct gm_tls_stream *ts = container_of((uv_tcp_t *)h, struct gm_tls_stream, tcp);

    (void)ts;
    if (rbuf == NULL)
        rbuf = gm_thread_alloc(RBUF_SIZE);
    *buf = uv_buf_init((char *)rbuf, RBUF_SIZE);
}

/* Appends p to the unread remainder, which moves to the start of keep. */
static void keep_append(struct gm_tls_stream *ts, const uint8_t *p, size_t n)
{
    size_t need = ts->in_len + n;

    if (ts->in_ptr != ts->keep || need > ts->keep_cap) {
        uint8_t *k = gm_xmalloc(need);
        if (ts->in_len > 0)
            memcpy(k, ts->in_ptr, ts->in_len);
        free(ts->keep);
        ts->keep = k;
        ts->keep_cap = need;
    }
    memcpy(ts->keep + ts->in_len, p, n);
    ts->in_ptr = ts->keep;
    ts->in_len = need;
}

/* What SSL left unread in rbuf (the owner paused reading) is kept before rbuf is reused. */
static void keep_rest(struct gm_tls_stream *ts)
{
    if (ts->in_len == 0) {
        ts->in_ptr = NULL;
        if (ts->keep_cap > KEEP_FREE) {
            free(ts->keep);
            ts->keep = NULL;
            ts->keep_cap = 0;
        }
        return;
    }
    if (rbuf && ts->in_ptr >= rbuf && ts->in_ptr < rbuf + RBUF_SIZE) {
        const uint8_t *p = ts->in_ptr;
        size_t n = ts->in_len;
        ts->in_len = 0;
        ts->in_ptr = NULL;
        keep_append(ts, p, n);
    }
}

static void on_tcp_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct gm_tls_stream *ts = container_of((uv_tcp_t *)s, struct gm_tls_stream, tcp);

    if (nread == 0)
        return;
    if (nread < 0) {
        gm_tls_stream_close(ts, nread == UV_EOF ? GM_TLS_REASON_EOF : GM_TLS_REASON_IO);
        return;
    }
    ts->stats.bytes_in += (uint64_t)nread;
    if (ts->state == GM_TLS_STATE_SHUTDOWN)
        return; /* closing: what the peer still sends is dropped */
    if (ts->in_len == 0) {
        ts->in_ptr = (const uint8_t *)buf->base; /* SSL reads it where it lies */
        ts->in_len = (size_t)nread;
    } else {
        keep_append(ts, (const uint8_t *)buf->base, (size_t)nread);
    }
    tls_pump(ts);
    keep_rest(ts);
}

static void on_kick(uv_idle_t *h)
{
    struct gm_tls_stream *ts = container_of(h, struct gm_tls_stream, kick);

    uv_idle_stop(&ts->kick);
    tls_pump(ts);
}

void gm_tls_stream_read_stop(struct gm_tls_stream *ts)
{
    ts->reading = false;
    uv_idle_stop(&ts->kick);
    /* Back-pressure reaches the socket: no more ciphertext is read either. */
    if (ts->state == GM_TLS_STATE_HANDSHAKE || ts->state == GM_TLS_STATE_OPEN)
        uv_read_stop((uv_stream_t *)&ts->tcp);
}

void gm_tls_stream_read_start(struct gm_tls_stream *ts)
{
    if (ts->reading || ts->state >= GM_TLS_STATE_SHUTDOWN)
        return;
    ts->reading = true;
    if (ts->state == GM_TLS_STATE_OPEN || ts->state == GM_TLS_STATE_HANDSHAKE) {
        uv_read_start((uv_stream_t *)&ts->tcp, on_alloc, on_tcp_read);
        /* Records already received may sit in net_in or inside SSL. */
        if (ts->in_len > 0 || SSL_pending(ts->ssl) > 0)
            uv_idle_start(&ts->kick, on_kick);
    }
}

static void on_deadline(uv_timer_t *t)
{
    struct gm_tls_stream *ts = container_of(t, struct gm_tls_stream, timer);

    if (ts->state == GM_TLS_STATE_SHUTDOWN)
        tls_close_handles(ts); /* linger expired */
    else
        gm_tls_stream_close(ts, GM_TLS_REASON_HANDSHAKE_TIMEOUT);
}

static int begin_handshake(struct gm_tls_stream *ts)
{
    int rc;

    uv_tcp_nodelay(&ts->tcp, 1);
    set_state(ts, GM_TLS_STATE_HANDSHAKE);
    if (ts->reading) {
        rc = uv_read_start((uv_stream_t *)&ts->tcp, on_alloc, on_tcp_read);
        if (rc < 0)
            return rc;
    }
    /* A client's first flight (ClientHello) goes out now; a server just waits. */
    tls_pump(ts);
    return 0;
}

static void start_deadline(struct gm_tls_stream *ts)
{
    if (ts->settings.handshake_timeout_ms > 0)
        uv_timer_start(&ts->timer, on_deadline, ts->settings.handshake_timeout_ms, 0);
}

int gm_tls_stream_start(struct gm_tls_stream *ts)
{
    if (ts->state != GM_TLS_STATE_NEW)
        return -EINVAL;
    start_deadline(ts);
    return begin_handshake(ts);
}

static void on_connected(uv_connect_t *req, int status)
{
    struct gm_tls_stream *ts = container_of(req, struct gm_tls_stream, connect_req);

    if (ts->state != GM_TLS_STATE_CONNECTING) {
        tls_unref(ts); /* closed meanwhile: status is UV_ECANCELED */
        return;
    }
    if (status < 0) {
        GM_LOG_DEBUG("tls", "connect failed", "error=%s", uv_strerror(status));
        gm_tls_stream_close(ts, GM_TLS_REASON_CONNECT_FAILED);
    } else {
        int rc = begin_handshake(ts);
        if (rc < 0)
            gm_tls_stream_close(ts, GM_TLS_REASON_IO);
    }
    tls_unref(ts);
}

int gm_tls_stream_connect(struct gm_tls_stream *ts, const struct sockaddr *addr)
{
    int rc;

    if (ts->state != GM_TLS_STATE_NEW)
        return -EINVAL;
    rc = uv_tcp_connect(&ts->connect_req, &ts->tcp, addr, on_connected);
    if (rc < 0)
        return rc;
    tls_ref(ts); /* the request */
    set_state(ts, GM_TLS_STATE_CONNECTING);
    start_deadline(ts);
    return 0;
}

/* ---- closing ------------------------------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
    struct gm_tls_stream *ts = h->data;

    if (--ts->pending_closes > 0)
        return;
    ts->closed = true;
    if (ts->cbs->on_close)
        ts->cbs->on_close(ts, ts->reason, ts->ctx);
    tls_unref(ts); /* the creator's reference */
}

static void tls_close_handles(struct gm_tls_stream *ts)
{
    if (ts->state == GM_TLS_STATE_CLOSING)
        return;
    set_state(ts, GM_TLS_STATE_CLOSING);
    ts->tcp.data = ts;
    ts->timer.data = ts;
    ts->kick.data = ts;
    ts->pending_closes = 3;
    uv_close((uv_handle_t *)&ts->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&ts->timer, on_handle_closed);
    uv_close((uv_handle_t *)&ts->kick, on_handle_closed);
}

static void on_shutdown_done(uv_shutdown_t *req, int status)
{
    struct gm_tls_stream *ts = container_of(req, struct gm_tls_stream, shutdown_req);

    tls_close_handles(ts);
    tls_unref(ts);
}

/* close_notify, then FIN once queued writes are out, bounded by linger_ms. */
static bool close_gracefully(struct gm_tls_stream *ts)
{
    (void)SSL_shutdown(ts->ssl);
    ERR_clear_error();
    if (flush_net_out(ts) < 0)
        return false;
    if (uv_shutdown(&ts->shutdown_req, (uv_stream_t *)&ts->tcp, on_shutdown_done) < 0)
        return false;
    tls_ref(ts);
    set_state(ts, GM_TLS_STATE_SHUTDOWN);
    uv_idle_stop(&ts->kick);
    uv_timer_start(&ts->timer, on_deadline, ts->settings.linger_ms, 0);
    return true;
}

void gm_tls_stream_close(struct gm_tls_stream *ts, enum gm_tls_reason reason)
{
    if (ts->state >= GM_TLS_STATE_SHUTDOWN)
        return;
    ts->reason = reason;
    ts->reading = false;
    GM_LOG_DEBUG("tls", "closing", "reason=%s", gm_tls_reason_name(reason));
    if (ts->state == GM_TLS_STATE_OPEN &&
        (reason == GM_TLS_REASON_OK || reason == GM_TLS_REASON_PEER_CLOSED) && close_gracefully(ts))
        return;
    tls_close_handles(ts);
}
