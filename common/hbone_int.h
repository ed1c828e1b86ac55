/* Internals shared by hbone.c (connections, the stream data path), hbone_server.c and
 * hbone_client.c. Not part of the API. */
#ifndef GAMMAMESH_HBONE_INT_H
#define GAMMAMESH_HBONE_INT_H

#include <nghttp2/nghttp2.h>

#include "gammamesh/hbone.h"
#include "gammamesh/tls_stream.h"

/* A chunk's bytes start after room for a DATA frame header, so its first frame is sent in place
 * (header and payload as one TLS record, no copy); each later frame's header overwrites the last
 * 9 bytes of the frame before it, which TLS has already taken. */
#define HBONE_HEADROOM    9
#define HBONE_RESERVE_MIN 4096 /* gm_hbone_stream_reserve(): a tail with less room is not used */
/* DATA payload per frame: 16384-byte TLS records minus the 9-byte frame header. */
#define HBONE_DATA_MAX (16384 - 9)
/* Largest queue chunk, what one socket read brings (reserve): 16 whole frames and the headroom
 * (about 256 KiB). A full chunk leaves as 16 full records; a chunk of 256 KiB would end in a
 * 135-byte frame, its own tiny record and often its own write(2) and packet. */
#define HBONE_CHUNK       (HBONE_HEADROOM + 16 * HBONE_DATA_MAX)
#define HBONE_CHUNK_SMALL 16384 /* a chunk for a small copied write */
#define HBONE_OUT_CHUNK   65536 /* output coalescing: four whole TLS records per write */
/* Server: how long a 2xx may wait to travel with the first upstream bytes (see
 * hbone_server_respond_flush()). */
#define HBONE_RESPOND_DEFER_MS 1

/* A piece of a byte queue: data[off, len) is still to be read. */
struct hbone_chunk {
    struct hbone_chunk *next;
    size_t off, len, cap;
    uint8_t data[];
};

/* A FIFO of bytes in chunks. */
struct hbone_queue {
    struct hbone_chunk *head, *tail;
    size_t bytes;
};

/* Where a received header sits in the stream's header buffer until the block is complete. */
struct hbone_hdr_ref {
    size_t name_off, name_len, value_off, value_len;
};

struct gm_hbone_stream {
    struct gm_hbone_conn *conn;            /* borrowed: outlives the stream */
    struct gm_hbone_stream *prev, *next;   /* conn->streams */
    int32_t id;                            /* HTTP/2 stream id */
    enum gm_hbone_stream_state state;      /* see hbone.h */
    const struct gm_hbone_stream_cbs *cbs; /* borrowed; NULL until set (server) */
    void *ctx;                             /* owner's */
    enum gm_hbone_reason reason;           /* preset close reason, OK when none */
    bool owned;                            /* the owner knows the stream: on_close() is due */
    bool prd_attached;                     /* our data provider is attached to the stream */
    bool deferred;                         /* the data provider returned NGHTTP2_ERR_DEFERRED */
    bool shut_wr;                          /* the owner asked for END_STREAM */
    bool end_recv;                         /* the peer's END_STREAM arrived */
    bool end_told;                         /* on_end() delivered */
    bool rst_sent;                         /* RST_STREAM went out */
    bool rst_recv;                         /* RST_STREAM came in */
    bool reset_asked;                      /* gm_hbone_stream_reset() called */
    bool over_high;                        /* writable() is false; on_writable() owed */
    bool notify_writable;                  /* on_writable() to deliver after the send loop */
    bool bad;           /* server: header block failed a check while it was decoded */
    bool early_data;    /* server: DATA arrived before the 2xx (the client is not waiting) */
    bool resp_deferred; /* server: the 2xx is decided but not yet handed to nghttp2 */
    struct gm_hbone_header *resp_hdrs; /* server: headers of the deferred 2xx (owned copies) */
    size_t n_resp_hdrs;
    struct hbone_queue sendq; /* gm_hbone_stream_write() bytes not yet framed */
    struct hbone_queue held;  /* server: DATA received before the 2xx went out */
    size_t unconsumed;        /* received, not yet reported by gm_hbone_stream_consumed() */
    /* Server: the request headers. */
    struct gm_buf hbuf;          /* "name\0value\0" ..., capped */
    struct hbone_hdr_ref *hrefs; /* positions in hbuf */
    size_t n_hrefs, cap_hrefs;
    size_t hdr_bytes;             /* RFC 9113 size: name + value + 32 per field */
    struct gm_hbone_header *hdrs; /* built from hrefs when the block is complete */
    struct gm_hbone_request req;
    struct gm_hbone_stream_stats stats;
};

struct gm_hbone_conn {
    uv_loop_t *loop;                /* borrowed */
    enum gm_hbone_conn_state state; /* see hbone.h */
    enum gm_hbone_reason reason;    /* first close reason */
    bool server;
    bool mem;         /* memory transport (no TLS) */
    bool tls_done;    /* TLS handshake finished and accepted */
    bool settings_rx; /* the peer's SETTINGS arrived */
    bool goaway_sent, goaway_recv;
    bool torn_down;           /* streams closed, session deleted */
    bool force_send;          /* drain_session(force): ignore the output watermark */
    bool send_failed;         /* the transport refused output during nghttp2_session_send() */
    bool blocked;             /* a data provider deferred for the watermark: resume them */
    struct gm_tls_stream *ts; /* owned; NULL in memory mode or once closed */
    gm_hbone_sink_cb sink;    /* memory mode output */
    void *sink_ctx;
    nghttp2_session *h2;                 /* owned */
    const struct gm_hbone_conn_cbs *cbs; /* borrowed */
    void *ctx;                           /* owner's */
    struct gm_hbone_settings settings;
    uv_timer_t deadline;             /* handshake deadline, then the idle timer */
    uv_timer_t ping;                 /* keepalive */
    uv_timer_t respond;              /* server: sends 2xx responses deferred too long */
    uv_idle_t kick;                  /* deferred work: held data, sends */
    int busy;                        /* entry points on the stack: close is deferred */
    int pending_closes;              /* handles and TLS stream still closing */
    uint64_t last_rx;                /* uv_now() when bytes last arrived */
    uint64_t last_ping;              /* uv_now() when the last PING went out */
    struct gm_hbone_stream *streams; /* every stream not yet closed */
    struct gm_hbone_conn_stats stats;
    size_t out_len;               /* bytes staged in out */
    uint8_t out[HBONE_OUT_CHUNK]; /* frames coalesced into one TLS write */
};

/* hbone.c */
void hbone_conn_enter(struct gm_hbone_conn *c);
void hbone_conn_leave(struct gm_hbone_conn *c);
void hbone_conn_schedule(struct gm_hbone_conn *c);
bool hbone_conn_usable(const struct gm_hbone_conn *c);
struct gm_hbone_stream *hbone_stream_new(struct gm_hbone_conn *c, int32_t id);
void hbone_stream_link(struct gm_hbone_stream *s);
void hbone_stream_set_state(struct gm_hbone_stream *s, enum gm_hbone_stream_state next);
void hbone_stream_free(struct gm_hbone_stream *s);
void hbone_stream_on_end(struct gm_hbone_stream *s);
bool hbone_stream_may_send(const struct gm_hbone_stream *s);
void hbone_stream_resume(struct gm_hbone_stream *s);
ssize_t hbone_data_source_read(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t length,
                               uint32_t *flags, nghttp2_data_source *src, void *user);
void hbone_queue_clear(struct hbone_queue *q);
void hbone_queue_push(struct hbone_queue *q, const uint8_t *p, size_t n);
void hbone_server_deliver_held(struct gm_hbone_stream *s);

/* hbone_server.c */
bool hbone_header_ok(const struct gm_hbone_header *h, size_t *name_len, size_t *value_len);
void hbone_server_on_header(struct gm_hbone_stream *s, const uint8_t *name, size_t namelen,
                            const uint8_t *value, size_t valuelen);
void hbone_server_on_request(struct gm_hbone_stream *s);
void hbone_server_respond_flush(struct gm_hbone_stream *s);
void hbone_server_respond_free(struct gm_hbone_stream *s);
void hbone_server_respond_flush_all(struct gm_hbone_conn *c);

/* hbone_client.c */
void hbone_client_on_header(struct gm_hbone_stream *s, const uint8_t *name, size_t namelen,
                            const uint8_t *value, size_t valuelen);
void hbone_client_on_response(struct gm_hbone_stream *s);

#endif
