/*
 * Fuzz target: arbitrary bytes as the HTTP/2 byte stream of an HBONE client, after the
 * connection preface, into a server-side HBONE connection over the memory transport (the same
 * nghttp2 session, callbacks and request validation as over TLS). The owner answers requests
 * in several ways chosen by the authority port, echoes data and half-closes, so the stream
 * data path runs too. It must never crash, leak or trip a sanitizer.
 *
 * The input is fed in two slices (the split point comes from the first byte) to exercise
 * frames cut across reads.
 */
#include <stdbool.h>
#include <stdint.h>

#include "gammamesh/hbone.h"
#include "gammamesh/log.h"

#define FUZZ_MAX_INPUT (256 * 1024)

static uv_loop_t loop;
static bool loop_ready;

struct fuzz_conn {
    bool closed;
    size_t out; /* bytes the server sent */
};

static void sink(void *ctx, const uint8_t *p, size_t n)
{
    struct fuzz_conn *f = ctx;

    f->out += n;
}

static void on_data(struct gm_hbone_stream *s, const uint8_t *p, size_t n, void *ctx)
{
    (void)gm_hbone_stream_write(s, p, n < 64 ? n : 64);
    gm_hbone_stream_consumed(s, n);
}

static void on_end(struct gm_hbone_stream *s, void *ctx)
{
    (void)gm_hbone_stream_shutdown(s);
}

static void on_writable(struct gm_hbone_stream *s, void *ctx)
{
    (void)gm_hbone_stream_write(s, "w", 1);
}

static void on_stream_close(struct gm_hbone_stream *s, enum gm_hbone_reason reason, void *ctx)
{
    struct gm_hbone_stream_stats st;

    gm_hbone_stream_stats(s, &st);
    (void)gm_hbone_reason_name(reason);
}

static const struct gm_hbone_stream_cbs stream_cbs = {
    .on_data = on_data,
    .on_end = on_end,
    .on_writable = on_writable,
    .on_close = on_stream_close,
};

static void on_request(struct gm_hbone_conn *c, struct gm_hbone_stream *s,
                       const struct gm_hbone_request *req, void *ctx)
{
    static const struct gm_hbone_header baggage = {"baggage", 0, "k8s.cluster.name=fuzz", 0};

    gm_hbone_stream_set_cbs(s, &stream_cbs, NULL);
    (void)gm_hbone_request_header(req, "traceparent");
    switch (req->port % 6) {
    case 0:
        gm_hbone_stream_respond(s, 200, &baggage, 1);
        gm_hbone_stream_write(s, "hello", 5);
        break;
    case 1:
        gm_hbone_stream_respond(s, 503, NULL, 0);
        break;
    case 2:
        gm_hbone_stream_respond(s, 200, NULL, 0);
        gm_hbone_stream_shutdown(s);
        break;
    case 3:
        gm_hbone_stream_reset(s, 8);
        break;
    case 4:
        gm_hbone_stream_write(s, "early", 5); /* before the answer: queued */
        gm_hbone_stream_respond(s, 200, NULL, 0);
        break;
    default:
        break; /* never answered: closed with the connection */
    }
    if (req->port == 7)
        gm_hbone_conn_goaway(c);
}

static void on_close(struct gm_hbone_conn *c, enum gm_hbone_reason reason, void *ctx)
{
    struct fuzz_conn *f = ctx;

    f->closed = true;
}

static const struct gm_hbone_conn_cbs conn_cbs = {
    .on_request = on_request,
    .on_close = on_close,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    struct gm_hbone_settings st;
    struct gm_hbone_conn *c;
    struct fuzz_conn f = {0};

    if (size > FUZZ_MAX_INPUT)
        return 0;
    if (!loop_ready) {
        uv_loop_init(&loop);
        gm_log_set_level("off");
        loop_ready = true;
    }
    gm_hbone_settings_init(&st, true);
    st.stream_queue_high = 4096; /* small caps: reach the watermark paths */
    st.stream_queue_low = 1024;
    st.stream_queue_max = 8192;
    if (gm_hbone_conn_new_mem(&loop, true, &st, &conn_cbs, &f, sink, &f, &c) < 0)
        return 0;
    size_t split = size > 0 ? data[0] % (size + 1) : 0;
    if (gm_hbone_conn_feed(c, preface, sizeof(preface) - 1) == 0 &&
        gm_hbone_conn_feed(c, data, split) == 0) {
        uv_run(&loop, UV_RUN_NOWAIT); /* deferred work: held data, sends */
        if (gm_hbone_conn_feed(c, data + split, size - split) == 0)
            uv_run(&loop, UV_RUN_NOWAIT);
    }
    if (!f.closed)
        gm_hbone_conn_close(c, GM_HBONE_REASON_OK);
    while (!f.closed)
        uv_run(&loop, UV_RUN_ONCE);
    return 0;
}
