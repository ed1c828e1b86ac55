/* echo-client: the conformance echo client (Istio echo "client"), HTTP/1.1 keep-alive or h2c
 * with prior knowledge over one connection. Blocking sockets with poll() deadlines; one request
 * at a time. echo_client.c parses arguments and prints, echo_client_net.c dials and moves bytes,
 * echo_client_h1.c and echo_client_h2.c speak the protocols. */
#ifndef GAMMAMESH_ECHO_CLIENT_H
#define GAMMAMESH_ECHO_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gammamesh/util.h"

#define EC_MAX_HEADERS      128                /* -H arguments, and response headers kept */
#define EC_MAX_HEADER_BYTES (64 * 1024)        /* response header bytes */
#define EC_MAX_BODY         (16 * 1024 * 1024) /* response body bytes */
#define EC_ERR_LEN          160

/* What to send, from the command line. */
struct ec_opts {
    char *host;      /* owned; URL host without brackets, for getaddrinfo */
    char *port;      /* owned; URL port, "80" by default */
    char *authority; /* owned; Host / :authority to send (URL's, or -H Host:) */
    char *path;      /* owned; path and query, "/" by default */
    const char *method;
    const char *hdr_name[EC_MAX_HEADERS]; /* borrowed from argv; Host excluded */
    const char *hdr_value[EC_MAX_HEADERS];
    size_t nhdrs;
    const char *body; /* NULL: no body */
    long count;
    uint64_t timeout_ms;
    bool h2;
};

struct ec_header {
    char *name;  /* owned; canonical */
    char *value; /* owned */
    size_t seq;  /* arrival order */
};

struct ec_resp {
    int status;
    struct ec_header hdrs[EC_MAX_HEADERS];
    size_t nhdrs;
    size_t hdr_bytes;
    struct gm_buf body; /* capped at EC_MAX_BODY */
};

void ec_resp_init(struct ec_resp *r);
void ec_resp_done(struct ec_resp *r);
/* Keep a response header (copied); -ENOBUFS past the caps. */
int ec_resp_header(struct ec_resp *r, const char *name, size_t nlen, const char *value,
                   size_t vlen);

/* Monotonic milliseconds. */
uint64_t ec_now_ms(void);
/* Dial host:port (any address getaddrinfo returns) before deadline. The fd, or a negative
 * errno with a reason in err. */
int ec_net_dial(const char *host, const char *port, uint64_t deadline, char *err);
/* Send all n bytes before deadline; 0 or a negative errno (-ETIMEDOUT). */
int ec_net_send(int fd, const void *p, size_t n, uint64_t deadline);
/* Receive up to n bytes before deadline: the count, 0 at EOF, or a negative errno. */
ssize_t ec_net_recv(int fd, void *p, size_t n, uint64_t deadline);
/* A reason string for a negative errno from the functions above. */
const char *ec_net_strerror(int err);

/* One protocol connection; reused across requests and redialled when the server closed it. */
struct ec_h1;
struct ec_h2;

struct ec_h1 *ec_h1_new(void);
void ec_h1_free(struct ec_h1 *h);
/* Send one request and read its response into resp. 0, or a negative errno with a reason in
 * err (the connection is then dropped). */
int ec_h1_request(struct ec_h1 *h, const struct ec_opts *o, struct ec_resp *resp, char *err);

struct ec_h2 *ec_h2_new(void);
void ec_h2_free(struct ec_h2 *h);
int ec_h2_request(struct ec_h2 *h, const struct ec_opts *o, struct ec_resp *resp, char *err);

#endif
