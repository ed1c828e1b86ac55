/* One proxied connection: two sides (a TCP socket or an HBONE stream each) and the relay
 * between them, with back-pressure, half-close, an idle timer, and one access-log record and
 * metrics update at close. Lives on one worker loop. */
#ifndef ZT_CONN_H
#define ZT_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "gammamesh/hbone.h"
#include "gammamesh/snapshot.h"

struct zt_worker;
struct zt_conn;
struct tcp_write;
typedef void (*zt_conn_connected_cb)(struct zt_conn *c, int status);

enum zt_side_kind {
    ZT_SIDE_NONE = 0, /* not set up yet */
    ZT_SIDE_TCP,      /* a socket */
    ZT_SIDE_STREAM,   /* an HBONE stream */
    ZT_SIDE__MAX
};

struct zt_side {
    enum zt_side_kind kind;
    uv_tcp_t tcp;
    struct gm_hbone_stream *stream;
    bool open;         /* TCP: handle initialised and not closed; STREAM: not yet on_close */
    bool reading;      /* TCP: uv_read_start active */
    bool paused;       /* reading stopped by back-pressure */
    bool eof;          /* this side's peer ended its direction (FIN / END_STREAM) */
    bool shut;         /* we ended our direction toward this side */
    bool shut_done;    /* ...and it completed (TCP: the shutdown callback; stream: queued) */
    bool connected;    /* TCP connect done, or stream answered 2xx */
    uint64_t bytes_in; /* bytes received from this side */
    /* TCP: bytes from the stream side, written once at the end of the loop iteration (the
     * frames of one TLS read become one write(2), not one per 16 KiB frame). */
    struct tcp_write *pend;
};

enum zt_direction {
    ZT_DIR_OUTBOUND = 0,  /* from a local pod (15001) */
    ZT_DIR_INBOUND,       /* to a local pod over HBONE (15008) */
    ZT_DIR_INBOUND_PLAIN, /* to a local pod in plaintext (15006) */
    ZT_DIR__MAX
};

struct zt_conn {
    struct zt_worker *w;
    enum zt_direction dir;
    struct zt_side down; /* the side that opened: the app (outbound) or the tunnel (inbound) */
    struct zt_side up;   /* the side we opened */
    uv_connect_t connect_req;
    zt_conn_connected_cb connected_cb; /* runs when the up side's TCP connect completes */
    uv_timer_t timer;                  /* connect deadline, then idle timer */
    bool timer_open;
    bool relaying; /* zt_conn_start_relay ran (again when an early relay gets its 200) */
    /* Outbound HBONE on a tunnel that had been quiet: nothing is read from the app until the
     * 200, so a stream lost before it can be opened again elsewhere with nothing lost. */
    bool held;
    uint8_t attempts;    /* outbound HBONE streams opened for this connection */
    char *src_uid;       /* outbound: the source pod, to plan a retry */
    struct gm_ip dst_ip; /* outbound: the original destination (with dst_port) */
    int pending_closes;
    bool closing;
    const char *error; /* first close reason; NULL = clean */
    uint64_t start_ms;
    uint64_t last_activity_ms;
    struct zt_conn *prev, *next; /* the worker's list of open connections */
    /* Facts for the access log and metrics (copied strings, owned). */
    char *src_addr, *dst_addr, *hbone_addr;
    char *src_workload, *src_namespace, *src_identity;
    char *dst_workload, *dst_namespace, *dst_identity, *dst_service;
    const char *response_flags; /* "-", "DENY", "CONNECT", ... */
    bool mtls;
    /* Inbound: the destination workload's uid, to re-check policies when they change. */
    char *dst_uid;
    struct gm_ip src_ip;
    /* Inbound plaintext: the client's port, which a connection to the app made from the
     * client's address must not reuse (its 4-tuple would be the captured connection's). */
    uint16_t src_port;
    int dst_port;
    /* Pool bookkeeping for outbound HBONE streams. */
    struct zt_pool_conn *pool_conn;
    struct zt_conn *flush_next; /* the worker's list of connections with pending writes */
    bool flush_queued;
};

/* A new connection on worker w, registered in its list (freed by its last close). */
struct zt_conn *zt_conn_new(struct zt_worker *w, enum zt_direction dir);

/* Writes what connections of worker w hold back (end of a loop iteration: its check handle). */
void zt_conn_flush_all(struct zt_worker *w);

/* Set up the down side from an accepted socket (already uv_accept()ed into c->down.tcp). */
void zt_conn_accepted(struct zt_conn *c);

/* Connect the up side over TCP to addr from a socket already made (fd, e.g. in a pod netns);
 * on success the relay starts (and on_connected runs first, when set). */
int zt_conn_connect_tcp(struct zt_conn *c, int fd, const struct sockaddr *addr,
                        zt_conn_connected_cb cb);

/* Attach an HBONE stream as a side; the stream's callbacks are set to the relay's. */
void zt_conn_attach_stream(struct zt_conn *c, struct zt_side *side, struct gm_hbone_stream *s);

/* Let the stream finish on its own (after a non-2xx answer): it no longer reports to c. */
void zt_conn_detach_stream(struct zt_conn *c, struct zt_side *side);

/* Outbound HBONE: read nothing from the app until the stream's 200 (the connect deadline runs
 * meanwhile); a stream lost before it is opened again (zt_outbound_retry()). */
void zt_conn_hold_until_response(struct zt_conn *c);

/* Both sides are connected: start relaying (and reading the down side). */
void zt_conn_start_relay(struct zt_conn *c);

/* Idempotent: records the first reason (NULL = clean), closes both sides; the access log line
 * and metrics are written when the last handle is closed. */
void zt_conn_close(struct zt_conn *c, const char *reason);

/* Stream callbacks used for relay sides (exposed for the inbound/outbound setup). */
extern const struct gm_hbone_stream_cbs zt_conn_stream_cbs;

void zt_conn_set_str(char **field, const char *value);

#endif
