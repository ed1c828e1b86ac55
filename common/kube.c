/* The Kubernetes API source: list+watch over HTTPS with blocking-style I/O on one thread per
 * kind (kube.h). Sockets are non-blocking and every wait is a poll() in slices of 200 ms, so a
 * stop or a relist request is seen within that time whatever the server does. */
#include "gammamesh/kube.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <llhttp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gammamesh/log.h"
#include "gammamesh/util.h"

#define PAGE_LIMIT        500
#define CONNECT_TIMEOUT   5000         /* ms */
#define READ_TIMEOUT      30000        /* ms without a byte, lists and heads */
#define WATCH_MIN_SECONDS 300          /* timeoutSeconds of a watch: 300..599 */
#define MAX_BODY          (256u << 20) /* one list page */
#define MAX_EVENT         (32u << 20)  /* one watch event line */
#define BACKOFF_MIN       500          /* ms */
#define BACKOFF_MAX       30000        /* ms */
#define NOT_SERVED_RETRY  30000        /* ms */
#define SLICE             200          /* ms per poll, to see stop and relist */

struct resource {
    const char *name; /* plural, also the key prefix */
    const char *path;
    const char *kind;
    const char *api_version;
    bool cluster_scoped;
};

static const struct resource resources[] = {
    {"namespaces", "/api/v1/namespaces", "Namespace", "v1", true},
    {"pods", "/api/v1/pods", "Pod", "v1", false},
    {"services", "/api/v1/services", "Service", "v1", false},
    {"gateways", "/apis/gateway.networking.k8s.io/v1/gateways", "Gateway",
     "gateway.networking.k8s.io/v1", false},
    {"httproutes", "/apis/gateway.networking.k8s.io/v1/httproutes", "HTTPRoute",
     "gateway.networking.k8s.io/v1", false},
    {"authorizationpolicies", "/apis/security.istio.io/v1/authorizationpolicies",
     "AuthorizationPolicy", "security.istio.io/v1", false},
};
#define N_RESOURCES (sizeof(resources) / sizeof(resources[0]))
_Static_assert(N_RESOURCES == GM_KUBE_RESOURCES, "kube.h names the number of kinds");

/* What one request ended with, besides 0 (done) and -errno (I/O). */
enum {
    R_GONE = 1000, /* 410: list again */
    R_NOT_SERVED,  /* 404 on a list: the kind is not installed */
    R_HTTP,        /* another status, in w->error */
    R_PROTOCOL,    /* a body that is not what the API sends, in w->error */
    R_CONFLICT,    /* 409 on a status update: read again and retry */
};

struct watcher {
    struct gm_kube *k;
    const struct resource *res;
    uv_thread_t thread;
    bool thread_started;
    atomic_bool relist;
    /* thread only */
    json_t *known; /* key -> digest of what the control loop was given */
    char rv[128];  /* last resourceVersion seen; "" until listed */
    bool listed;
    unsigned seed;
    /* under k->mu */
    bool synced, served;
    uint64_t lists, watches, events, errors;
    char error[512]; /* the last error, "" once a request succeeds */
};

/* A route status to write (gm_kube_route_status), newest per route. */
struct status_job {
    struct status_job *next;
    char *ns, *name;
    json_t *entries;
    int attempts;
};

static const struct resource status_resource = {"httproutes/status", NULL, "HTTPRoute",
                                                "gateway.networking.k8s.io/v1", false};

struct gm_kube {
    uv_loop_t *loop;
    uv_async_t async;
    gm_kube_cb cb;
    void *ctx;
    char *host;      /* without brackets */
    char *authority; /* for Host: and messages, brackets kept */
    char *port;
    char *token_file, *ca_file, *user_agent;
    bool host_is_ip;
    atomic_bool stop;
    uv_mutex_t mu;
    uv_cond_t cond;
    struct gm_kube_event *head, **tail;
    bool sent_synced;
    struct watcher w[N_RESOURCES];
    /* the route status writer */
    struct watcher status_w;
    uv_cond_t status_cond;
    struct status_job *jobs;
    uint64_t status_writes, status_unchanged;
};

/* ---- small helpers ---- */

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool stopping(const struct watcher *w)
{
    return atomic_load(&w->k->stop);
}

/* Sleep up to ms, or less when stopping or asked to relist. */
static void nap(struct watcher *w, unsigned ms)
{
    struct gm_kube *k = w->k;

    uv_mutex_lock(&k->mu);
    if (!atomic_load(&k->stop) && !atomic_load(&w->relist))
        uv_cond_timedwait(&k->cond, &k->mu, (uint64_t)ms * 1000000);
    uv_mutex_unlock(&k->mu);
}

static void set_error(struct watcher *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_error(struct watcher *w, const char *fmt, ...)
{
    char msg[sizeof(w->error)];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    uv_mutex_lock(&w->k->mu);
    snprintf(w->error, sizeof(w->error), "%s", msg);
    w->errors++;
    uv_mutex_unlock(&w->k->mu);
}

static void queue(struct gm_kube *k, struct gm_kube_event *e)
{
    uv_mutex_lock(&k->mu);
    *k->tail = e;
    k->tail = &e->next;
    uv_mutex_unlock(&k->mu);
    uv_async_send(&k->async);
}

static void emit(struct watcher *w, enum gm_kube_op op, const char *key, json_t *obj)
{
    struct gm_kube_event *e = gm_xcalloc(1, sizeof(*e));

    e->op = op;
    e->key = key ? gm_xstrdup(key) : NULL;
    e->obj = obj;
    queue(w->k, e);
}

/* Append s to b percent-encoded for a query value. */
static void put_query_value(struct gm_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";

    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            gm_buf_append(b, s, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            gm_buf_append(b, e, 3);
        }
    }
}

/* The bearer token: the file's content without surrounding whitespace. */
static int read_token(const char *path, char *out, size_t len)
{
    out[0] = '\0';
    if (path == NULL || path[0] == '\0')
        return 0;
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -errno;
    size_t n = fread(out, 1, len - 1, f);
    bool more = fgetc(f) != EOF;
    fclose(f);
    if (more)
        return -EFBIG;
    out[n] = '\0';
    while (n > 0 &&
           (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' ' || out[n - 1] == '\t'))
        out[--n] = '\0';
    size_t skip = strspn(out, " \t\r\n");
    memmove(out, out + skip, n - skip + 1);
    for (char *p = out; *p; p++)
        if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
            return -EINVAL;
    return 0;
}

/* ---- one HTTPS connection ---- */

struct conn {
    struct watcher *w;
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
};

static void conn_close(struct conn *c)
{
    if (c->ssl)
        SSL_free(c->ssl);
    if (c->ctx)
        SSL_CTX_free(c->ctx);
    if (c->fd >= 0)
        close(c->fd);
    c->ssl = NULL;
    c->ctx = NULL;
    c->fd = -1;
}

/* Wait for events on the socket until deadline: 0, -ETIMEDOUT, or -ECANCELED (stop/relist). */
static int wait_fd(struct conn *c, short events, int64_t deadline)
{
    for (;;) {
        if (stopping(c->w) || atomic_load(&c->w->relist))
            return -ECANCELED;
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = {.fd = c->fd, .events = events};
        int r = poll(&p, 1, (int)(left < SLICE ? left : SLICE));
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return -errno;
    }
}

static const char *ssl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();

    if (e == 0)
        snprintf(buf, len, "TLS failure");
    else
        ERR_error_string_n(e, buf, len);
    ERR_clear_error();
    return buf;
}

/* Drive one SSL call to completion: its result (> 0), 0 on a clean EOF, or -errno. */
static int ssl_step(struct conn *c, int r, int64_t deadline)
{
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        return wait_fd(c, POLLIN, deadline) ?: -EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        return wait_fd(c, POLLOUT, deadline) ?: -EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        return errno ? -errno : 0;
    default:
        return -EPROTO;
    }
}

static int conn_open(struct conn *c, char *why, size_t whylen)
{
    struct gm_kube *k = c->w->k;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG};
    struct addrinfo *ai = NULL;
    int64_t deadline = now_ms() + CONNECT_TIMEOUT;
    int rc = getaddrinfo(k->host, k->port, &hints, &ai);

    if (rc != 0) {
        snprintf(why, whylen, "cannot resolve %s: %s", k->host, gai_strerror(rc));
        return -EHOSTUNREACH;
    }
    rc = -ECONNREFUSED;
    for (struct addrinfo *a = ai; a && rc < 0; a = a->ai_next) {
        c->fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0) {
            rc = -errno;
            continue;
        }
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(c->fd, a->ai_addr, a->ai_addrlen) == 0) {
            rc = 0;
            break;
        }
        if (errno == EINPROGRESS && (rc = wait_fd(c, POLLOUT, deadline)) == 0) {
            int err = 0;
            socklen_t el = sizeof(err);
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
            rc = -err;
        } else if (errno != EINPROGRESS) {
            rc = -errno;
        }
        if (rc < 0) {
            close(c->fd);
            c->fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (rc < 0) {
        snprintf(why, whylen, "cannot connect to %s: %s", k->authority, strerror(-rc));
        return rc;
    }

    char reason[256];
    c->ctx = SSL_CTX_new(TLS_client_method());
    if (c->ctx == NULL) {
        snprintf(why, whylen, "TLS context: %s", ssl_reason(reason, sizeof(reason)));
        return -ENOMEM;
    }
    SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(c->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    if (SSL_CTX_load_verify_locations(c->ctx, k->ca_file, NULL) != 1) {
        snprintf(why, whylen, "cannot load the CA file %s: %s", k->ca_file,
                 ssl_reason(reason, sizeof(reason)));
        return -EINVAL;
    }
    c->ssl = SSL_new(c->ctx);
    SSL_set_fd(c->ssl, c->fd);
    if (k->host_is_ip) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), k->host);
    } else {
        SSL_set_tlsext_host_name(c->ssl, k->host);
        SSL_set1_host(c->ssl, k->host);
    }
    for (;;) {
        int r = SSL_connect(c->ssl);
        if (r == 1)
            return 0;
        rc = ssl_step(c, r, deadline);
        if (rc == -EAGAIN)
            continue;
        long v = SSL_get_verify_result(c->ssl);
        if (v != X509_V_OK)
            snprintf(why, whylen, "TLS handshake with %s: server certificate: %s", k->authority,
                     X509_verify_cert_error_string(v));
        else if (rc == -EPROTO)
            snprintf(why, whylen, "TLS handshake with %s: %s", k->authority,
                     ssl_reason(reason, sizeof(reason)));
        else
            snprintf(why, whylen, "TLS handshake with %s: %s", k->authority,
                     rc ? strerror(-rc) : "connection closed");
        return rc ? rc : -ECONNRESET;
    }
}

static int conn_write(struct conn *c, const char *p, size_t n)
{
    int64_t deadline = now_ms() + READ_TIMEOUT;

    while (n > 0) {
        int r = SSL_write(c->ssl, p, (int)n);
        if (r > 0) {
            p += r;
            n -= (size_t)r;
            continue;
        }
        int rc = ssl_step(c, r, deadline);
        if (rc != -EAGAIN)
            return rc ? rc : -EPIPE;
    }
    return 0;
}

/* Bytes read (> 0), 0 at the end of the stream, or -errno (-ETIMEDOUT after idle_ms). */
static int conn_read(struct conn *c, char *buf, size_t len, int idle_ms)
{
    int64_t deadline = now_ms() + idle_ms;

    for (;;) {
        int r = SSL_read(c->ssl, buf, (int)len);
        if (r > 0)
            return r;
        int rc = ssl_step(c, r, deadline);
        if (rc != -EAGAIN)
            return rc;
    }
}

/* ---- one request ---- */

struct response {
    struct watcher *w;
    llhttp_t parser;
    llhttp_settings_t settings;
    int status;
    bool stream;   /* a watch: body lines are events */
    bool complete; /* the whole message was read */
    int result;    /* set by a callback that stopped the parser */
    struct gm_buf body;
};

static int handle_event(struct watcher *w, const char *line, size_t len);

static struct response *of(llhttp_t *p)
{
    return p->data;
}

static int on_headers_complete(llhttp_t *p)
{
    struct response *r = of(p);

    r->status = p->status_code;
    if (r->status != 200)
        r->stream = false; /* keep the body: it explains the status */
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    struct response *r = of(p);

    if (!r->stream) {
        if (r->body.len + n > MAX_BODY) {
            r->result = R_PROTOCOL;
            set_error(r->w, "%s: response larger than %u MiB", r->w->res->name, MAX_BODY >> 20);
            return -1;
        }
        gm_buf_append(&r->body, at, n);
        return 0;
    }
    while (n > 0) {
        const char *nl = memchr(at, '\n', n);
        size_t take = nl ? (size_t)(nl - at) : n;
        if (r->body.len + take > MAX_EVENT) {
            r->result = R_PROTOCOL;
            set_error(r->w, "%s: watch event larger than %u MiB", r->w->res->name, MAX_EVENT >> 20);
            return -1;
        }
        gm_buf_append(&r->body, at, take);
        at += take;
        n -= take;
        if (nl == NULL)
            break;
        at++;
        n--;
        if (r->body.len > 0) {
            int rc = handle_event(r->w, r->body.data, r->body.len);
            r->body.len = 0;
            if (rc != 0) {
                r->result = rc;
                return -1;
            }
        }
    }
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    of(p)->complete = true;
    return HPE_PAUSED;
}

/* METHOD path (with a JSON body when body is not NULL); the answer's body is in r->body (or was
 * handled event by event when stream). 0 when the response was read, whatever its status;
 * -errno or R_* otherwise, with w->error set. */
static int http_request(struct watcher *w, const char *method, const char *path, const char *body,
                        bool stream, int idle_ms, struct response *r)
{
    struct gm_kube *k = w->k;
    struct conn c = {.w = w, .fd = -1};
    char why[400], token[8192];
    int rc = read_token(k->token_file, token, sizeof(token));

    memset(r, 0, sizeof(*r));
    r->w = w;
    r->stream = stream;
    gm_buf_init(&r->body, 0);
    if (rc < 0) {
        set_error(w, "cannot read the token file %s: %s", k->token_file,
                  rc == -EFBIG ? "larger than 8 KiB" : strerror(-rc));
        return rc;
    }
    rc = conn_open(&c, why, sizeof(why));
    if (rc < 0) {
        if (rc != -ECANCELED)
            set_error(w, "%s", why);
        conn_close(&c);
        return rc;
    }
    struct gm_buf req;
    gm_buf_init(&req, 0);
    gm_buf_printf(&req,
                  "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\nAccept: application/json\r\n"
                  "Connection: close\r\n",
                  method, path, k->authority, k->user_agent);
    if (token[0])
        gm_buf_printf(&req, "Authorization: Bearer %s\r\n", token);
    if (body)
        gm_buf_printf(&req, "Content-Type: application/json\r\nContent-Length: %zu\r\n",
                      strlen(body));
    gm_buf_append(&req, "\r\n", 2);
    if (body)
        gm_buf_append(&req, body, strlen(body));
    rc = conn_write(&c, req.data, req.len);
    gm_buf_done(&req);
    if (rc < 0) {
        if (rc != -ECANCELED)
            set_error(w, "%s: sending the request to %s: %s", w->res->name, k->authority,
                      strerror(-rc));
        conn_close(&c);
        return rc;
    }

    llhttp_settings_init(&r->settings);
    r->settings.on_headers_complete = on_headers_complete;
    r->settings.on_body = on_body;
    r->settings.on_message_complete = on_message_complete;
    llhttp_init(&r->parser, HTTP_RESPONSE, &r->settings);
    r->parser.data = r;
    char *buf = gm_xmalloc(64 * 1024);
    for (;;) {
        int n = conn_read(&c, buf, 64 * 1024, idle_ms);
        llhttp_errno_t err;
        if (n == 0) {
            /* the end of a watch stream, even cut between chunks, is normal: watch again */
            if (!r->complete && !(stream && r->status == 200) &&
                (llhttp_finish(&r->parser) != HPE_OK || !r->complete)) {
                rc = -ECONNRESET;
                set_error(w, "%s: %s closed the connection mid-response", w->res->name,
                          k->authority);
                break;
            }
            rc = 0;
            break;
        }
        if (n > 0) {
            err = llhttp_execute(&r->parser, buf, (size_t)n);
        } else {
            rc = n;
            if (rc != -ECANCELED)
                set_error(w, "%s: reading from %s: %s", w->res->name, k->authority,
                          rc == -ETIMEDOUT ? "no data for too long" : strerror(-rc));
            break;
        }
        if (r->complete) {
            rc = 0;
            break;
        }
        if (r->result != 0) { /* a callback stopped the parser */
            rc = r->result;
            break;
        }
        if (err != HPE_OK) {
            rc = R_PROTOCOL;
            set_error(w, "%s: bad HTTP response from %s: %s", w->res->name, k->authority,
                      llhttp_errno_name(err));
            break;
        }
    }
    free(buf);
    conn_close(&c);
    return rc;
}

/* A non-200 answer: R_GONE, R_NOT_SERVED (404 when allowed), or R_HTTP with the Status message. */
static int http_status(struct watcher *w, const struct response *r, bool allow_404)
{
    if (r->status == 410)
        return R_GONE;
    if (r->status == 404 && allow_404)
        return R_NOT_SERVED;
    json_t *st = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, NULL);
    const char *msg = json_string_value(json_object_get(st, "message"));
    set_error(w, "%s: HTTP %d from %s%s%.300s", w->res->name, r->status, w->k->authority,
              msg ? ": " : "", msg ? msg : "");
    json_decref(st);
    return R_HTTP;
}

/* ---- objects ---- */

/* Keep only the members of obj named in keep (NULL-terminated). */
static void keep_only(json_t *obj, const char *const *keep)
{
    const char *key;
    json_t *v;
    void *tmp;

    json_object_foreach_safe(obj, tmp, key, v)
    {
        bool wanted = false;
        for (const char *const *k = keep; *k && !wanted; k++)
            wanted = strcmp(*k, key) == 0;
        if (!wanted)
            json_object_del(obj, key);
    }
}

/* Drop what the decoder never reads: pods are most of a cluster's objects, and each one as the
 * API sends it (managed fields, volumes, container statuses, tolerations…) is several KiB. */
static void trim(json_t *obj, bool pod)
{
    static const char *const pod_spec[] = {"nodeName",    "serviceAccountName", "serviceAccount",
                                           "hostNetwork", "containers",         NULL};
    static const char *const container[] = {"name", "ports", NULL};
    static const char *const pod_status[] = {"podIP", "podIPs", "conditions", NULL};
    json_t *md = json_object_get(obj, "metadata");
    json_t *ann = json_object_get(md, "annotations");
    const char *key;
    json_t *v, *item;
    void *tmp;
    size_t i;

    json_object_del(md, "managedFields");
    json_object_del(md, "ownerReferences");
    json_object_foreach_safe(ann, tmp, key, v)
    {
        if (strncmp(key, "gammamesh.io/", 13) != 0 && strncmp(key, "istio.io/", 9) != 0)
            json_object_del(ann, key);
    }
    if (!pod) {
        json_object_del(obj, "status");
        return;
    }
    json_t *spec = json_object_get(obj, "spec"), *status = json_object_get(obj, "status");
    keep_only(spec, pod_spec);
    json_array_foreach(json_object_get(spec, "containers"), i, item) keep_only(item, container);
    keep_only(status, pod_status);
    json_t *conds = json_object_get(status, "conditions");
    for (i = json_array_size(conds); i-- > 0;) {
        const char *type = json_string_value(json_object_get(json_array_get(conds, i), "type"));
        if (type == NULL || strcmp(type, "Ready") != 0)
            json_array_remove(conds, i);
    }
}

/* The store key of an object, or false when it has no name (or no namespace when it needs one). */
static bool object_key(const struct watcher *w, const json_t *obj, char *key, size_t len)
{
    const json_t *md = json_object_get(obj, "metadata");
    const char *name = json_string_value(json_object_get(md, "name"));
    const char *ns = json_string_value(json_object_get(md, "namespace"));

    if (name == NULL || name[0] == '\0' || (!w->res->cluster_scoped && (ns == NULL || !ns[0])))
        return false;
    if (w->res->cluster_scoped)
        snprintf(key, len, "kube:%s/%s", w->res->name, name);
    else
        snprintf(key, len, "kube:%s/%s/%s", w->res->name, ns, name);
    return true;
}

static const char *object_rv(const json_t *obj)
{
    const char *rv =
        json_string_value(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
    return rv ? rv : "";
}

/* Hand an object to the control loop unless it already has this version; records it in into. */
static void put_object(struct watcher *w, json_t *obj, json_t *into)
{
    char key[600], digest[17];
    uint8_t h[8];

    if (!json_is_object(obj) || !object_key(w, obj, key, sizeof(key)))
        return;
    json_t *copy = json_deep_copy(obj);
    json_object_set_new(copy, "kind", json_string(w->res->kind));
    json_object_set_new(copy, "apiVersion", json_string(w->res->api_version));
    trim(copy, strcmp(w->res->kind, "Pod") == 0);
    /* What the daemons read, as a digest: a change they would not see (a new resourceVersion,
     * a status written by a controller, a container restart) is not passed on, so it costs no
     * snapshot; nor is an unchanged object again after a re-list. */
    json_object_del(json_object_get(copy, "metadata"), "resourceVersion");
    char *text = json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS);
    uint64_t v = gm_hash_str(text ? text : "");
    free(text);
    for (int i = 0; i < 8; i++)
        h[i] = (uint8_t)(v >> (8 * i));
    *gm_fmt_hex(digest, h, sizeof(h)) = '\0';
    const char *had = json_string_value(json_object_get(w->known, key));
    bool same = had && strcmp(had, digest) == 0;
    json_object_set_new(into, key, json_string(digest)); /* frees had when into is w->known */
    if (same) {
        json_decref(copy);
        return;
    }
    emit(w, GM_KUBE_PUT, key, copy);
}

static void count(struct watcher *w, uint64_t *field)
{
    uv_mutex_lock(&w->k->mu);
    (*field)++;
    uv_mutex_unlock(&w->k->mu);
}

/* One line of a watch stream. */
static int handle_event(struct watcher *w, const char *line, size_t len)
{
    json_error_t jerr;
    json_t *ev = json_loadb(line, len, 0, &jerr);
    const char *type = json_string_value(json_object_get(ev, "type"));
    json_t *obj = json_object_get(ev, "object");
    int rc = 0;

    if (type == NULL || !json_is_object(obj)) {
        set_error(w, "%s: watch event that is not one: %s", w->res->name,
                  ev ? "no type or object" : jerr.text);
        json_decref(ev);
        return R_PROTOCOL;
    }
    count(w, &w->events);
    if (strcmp(type, "ERROR") == 0) {
        json_int_t code = json_integer_value(json_object_get(obj, "code"));
        const char *msg = json_string_value(json_object_get(obj, "message"));
        if (code == 410) {
            rc = R_GONE;
        } else {
            set_error(w, "%s: watch error %lld: %.300s", w->res->name, (long long)code,
                      msg ? msg : "");
            rc = R_HTTP;
        }
        json_decref(ev);
        return rc;
    }
    const char *rv = object_rv(obj);
    if (rv[0])
        snprintf(w->rv, sizeof(w->rv), "%s", rv);
    if (strcmp(type, "ADDED") == 0 || strcmp(type, "MODIFIED") == 0) {
        put_object(w, obj, w->known);
    } else if (strcmp(type, "DELETED") == 0) {
        char key[600];
        if (object_key(w, obj, key, sizeof(key)) && json_object_get(w->known, key)) {
            json_object_del(w->known, key);
            emit(w, GM_KUBE_DELETE, key, NULL);
        }
    } else if (strcmp(type, "BOOKMARK") != 0) {
        GM_LOG_DEBUG("kube", "watch event of an unknown type skipped", "resource=%s type=%s",
                     w->res->name, type);
    }
    json_decref(ev);
    return 0;
}

/* Everything known that the new list did not have is gone. */
static void replace_known(struct watcher *w, json_t *seen)
{
    const char *key;
    json_t *v;

    json_object_foreach(w->known, key, v)
    {
        if (json_object_get(seen, key) == NULL)
            emit(w, GM_KUBE_DELETE, key, NULL);
    }
    json_decref(w->known);
    w->known = seen;
}

static void mark_synced(struct watcher *w, bool served)
{
    struct gm_kube *k = w->k;
    bool all = true, send = false;

    uv_mutex_lock(&k->mu);
    bool first = !w->synced;
    w->synced = true;
    w->served = served;
    w->error[0] = '\0';
    for (size_t i = 0; i < N_RESOURCES; i++)
        all = all && k->w[i].synced;
    if (all && !k->sent_synced)
        send = k->sent_synced = true;
    uv_mutex_unlock(&k->mu);
    if (first)
        GM_LOG_INFO("kube", served ? "listed" : "not served by the API server: empty until it is",
                    "resource=%s objects=%zu resource_version=%s", w->res->name,
                    json_object_size(w->known), w->rv);
    if (send)
        emit(w, GM_KUBE_SYNCED, NULL, NULL);
}

static int list(struct watcher *w)
{
    json_t *seen = json_object();
    char *cont = NULL;
    char rv[sizeof(w->rv)] = "";
    int rc;

    count(w, &w->lists);
    for (;;) {
        struct gm_buf path;
        struct response r;
        gm_buf_init(&path, 0);
        gm_buf_printf(&path, "%s?limit=%d", w->res->path, PAGE_LIMIT);
        if (cont) {
            gm_buf_append(&path, "&continue=", 10);
            put_query_value(&path, cont);
        }
        gm_buf_append(&path, "", 1);
        rc = http_request(w, "GET", path.data, NULL, false, READ_TIMEOUT, &r);
        gm_buf_done(&path);
        if (rc == 0 && r.status != 200)
            rc = http_status(w, &r, true);
        if (rc == R_GONE && cont) { /* the continue token expired: from the start */
            gm_buf_done(&r.body);
            free(cont);
            cont = NULL;
            json_object_clear(seen);
            continue;
        }
        if (rc != 0) {
            gm_buf_done(&r.body);
            break;
        }
        json_error_t jerr;
        json_t *page = json_loadb(r.body.data ? r.body.data : "", r.body.len, 0, &jerr);
        gm_buf_done(&r.body);
        json_t *items = json_object_get(page, "items");
        json_t *md = json_object_get(page, "metadata");
        if (!json_is_array(items)) {
            set_error(w, "%s: the list is not a list: %s", w->res->name,
                      page ? "no items" : jerr.text);
            json_decref(page);
            rc = R_PROTOCOL;
            break;
        }
        if (rv[0] == '\0')
            snprintf(rv, sizeof(rv), "%s",
                     json_string_value(json_object_get(md, "resourceVersion")) ?: "");
        size_t i;
        json_t *item;
        json_array_foreach(items, i, item) put_object(w, item, seen);
        free(cont);
        const char *next = json_string_value(json_object_get(md, "continue"));
        cont = next && next[0] ? gm_xstrdup(next) : NULL;
        json_decref(page);
        if (cont == NULL)
            break;
        if (stopping(w)) {
            rc = -ECANCELED;
            break;
        }
    }
    free(cont);
    if (rc == R_NOT_SERVED) {
        json_object_clear(seen);
        replace_known(w, seen);
        w->rv[0] = '\0';
        mark_synced(w, false);
        return R_NOT_SERVED;
    }
    if (rc != 0) {
        json_decref(seen);
        return rc;
    }
    replace_known(w, seen);
    snprintf(w->rv, sizeof(w->rv), "%s", rv);
    w->listed = true;
    mark_synced(w, true);
    return 0;
}

static int watch(struct watcher *w)
{
    struct gm_buf path;
    struct response r;
    unsigned timeout = WATCH_MIN_SECONDS + rand_r(&w->seed) % WATCH_MIN_SECONDS;

    count(w, &w->watches);
    gm_buf_init(&path, 0);
    gm_buf_printf(&path, "%s?watch=1&allowWatchBookmarks=true&timeoutSeconds=%u&resourceVersion=",
                  w->res->path, timeout);
    put_query_value(&path, w->rv);
    gm_buf_append(&path, "", 1);
    int rc = http_request(w, "GET", path.data, NULL, true, (int)(timeout + 30) * 1000, &r);
    gm_buf_done(&path);
    if (rc == 0 && r.status != 200)
        rc = http_status(w, &r, false);
    gm_buf_done(&r.body);
    if (rc == 0) {
        uv_mutex_lock(&w->k->mu);
        w->error[0] = '\0';
        uv_mutex_unlock(&w->k->mu);
    }
    return rc;
}

static void watcher_main(void *arg)
{
    struct watcher *w = arg;
    unsigned backoff = 0;

    while (!stopping(w)) {
        int rc;
        if (atomic_exchange(&w->relist, false))
            w->listed = false;
        rc = w->listed ? watch(w) : list(w);
        if (stopping(w))
            break;
        if (rc == -ECANCELED || rc == 0) {
            backoff = 0;
            continue;
        }
        if (rc == R_GONE) {
            GM_LOG_INFO("kube", "resource version too old: listing again", "resource=%s",
                        w->res->name);
            w->listed = false;
            continue;
        }
        if (rc == R_NOT_SERVED) {
            nap(w, NOT_SERVED_RETRY);
            continue;
        }
        backoff = backoff ? backoff * 2 : BACKOFF_MIN;
        if (backoff > BACKOFF_MAX)
            backoff = BACKOFF_MAX;
        char err[sizeof(w->error)];
        uv_mutex_lock(&w->k->mu);
        snprintf(err, sizeof(err), "%s", w->error);
        uv_mutex_unlock(&w->k->mu);
        GM_LOG_WARN_LIMITED("kube", w->listed ? "watch failed" : "list failed",
                            "resource=%s error=%s retry_ms=%u", w->res->name, err, backoff);
        nap(w, backoff / 2 + rand_r(&w->seed) % (backoff / 2 + 1));
    }
}

/* ---- route status ---- */

#define STATUS_ATTEMPTS 5 /* conflicts in a row before the job waits its turn again */

static bool same_parent_ref(const json_t *a, const json_t *b)
{
    static const char *const keys[] = {"group", "kind", "namespace", "name", "sectionName", "port"};

    for (size_t i = 0; i < GM_ARRAY_LEN(keys); i++) {
        const json_t *x = json_object_get(a, keys[i]), *y = json_object_get(b, keys[i]);
        if ((x == NULL) != (y == NULL) || (x && !json_equal((json_t *)x, (json_t *)y)))
            return false;
    }
    return true;
}

/* Our entry for parentRef ref among parents, or NULL. */
static json_t *our_entry(const json_t *parents, const json_t *ref, const char *controller)
{
    size_t i;
    json_t *p;

    json_array_foreach(parents, i, p)
    {
        const char *c = json_string_value(json_object_get(p, "controllerName"));
        if (c && strcmp(c, controller) == 0 &&
            same_parent_ref(json_object_get(p, "parentRef"), ref))
            return p;
    }
    return NULL;
}

/* A condition that says what old says keeps old's lastTransitionTime. */
static void keep_transition_times(json_t *entry, const json_t *old)
{
    size_t i, k;
    json_t *c, *oc;

    json_array_foreach(json_object_get(entry, "conditions"), i, c)
    {
        json_array_foreach(json_object_get(old, "conditions"), k, oc)
        {
            bool same = json_equal(json_object_get(c, "type"), json_object_get(oc, "type")) &&
                        json_equal(json_object_get(c, "status"), json_object_get(oc, "status")) &&
                        json_equal(json_object_get(c, "reason"), json_object_get(oc, "reason"));
            json_t *ltt = json_object_get(oc, "lastTransitionTime");
            if (same && ltt)
                json_object_set(c, "lastTransitionTime", ltt);
        }
    }
}

/* One read-merge-write of a route's status.parents: our entries (by controllerName and
 * parentRef) replaced, everyone else's kept. 0 (written or already so), R_CONFLICT, or an error. */
static int write_status(struct watcher *w, const struct status_job *j)
{
    struct response r;
    char path[600];
    json_t *e;
    size_t i;

    snprintf(path, sizeof(path), "/apis/gateway.networking.k8s.io/v1/namespaces/%s/httproutes/%s",
             j->ns, j->name);
    int rc = http_request(w, "GET", path, NULL, false, READ_TIMEOUT, &r);
    if (rc == 0 && r.status == 404) {
        gm_buf_done(&r.body);
        return 0; /* the route is gone */
    }
    if (rc == 0 && r.status != 200)
        rc = http_status(w, &r, false);
    json_t *route =
        rc == 0 ? json_loadb(r.body.data ? r.body.data : "", r.body.len, 0, NULL) : NULL;
    gm_buf_done(&r.body);
    if (rc != 0)
        return rc;
    if (!json_is_object(route)) {
        set_error(w, "%s: the route %s/%s is not JSON", w->res->name, j->ns, j->name);
        json_decref(route);
        return R_PROTOCOL;
    }
    json_t *status = json_object_get(route, "status");
    if (!json_is_object(status)) {
        status = json_object();
        json_object_set_new(route, "status", status);
    }
    json_t *old = json_object_get(status, "parents"), *parents = json_array();
    const char *controller = GM_KUBE_CONTROLLER_NAME;
    bool changed = false;
    json_array_foreach(old, i, e)
    {
        const char *c = json_string_value(json_object_get(e, "controllerName"));
        bool replaced = false;
        size_t k;
        json_t *mine;
        json_array_foreach(j->entries, k, mine) replaced |=
            c && strcmp(c, controller) == 0 &&
            same_parent_ref(json_object_get(e, "parentRef"), json_object_get(mine, "parentRef"));
        if (!replaced)
            json_array_append(parents, e);
    }
    json_array_foreach(j->entries, i, e)
    {
        json_t *entry = json_deep_copy(e);
        json_t *had = our_entry(old, json_object_get(e, "parentRef"), controller);
        if (had)
            keep_transition_times(entry, had);
        changed |= had == NULL || !json_equal(had, entry);
        json_array_append_new(parents, entry);
    }
    if (!changed) {
        json_decref(parents);
        json_decref(route);
        uv_mutex_lock(&w->k->mu);
        w->k->status_unchanged++;
        uv_mutex_unlock(&w->k->mu);
        return 0;
    }
    json_object_set_new(status, "parents", parents);
    char *body = json_dumps(route, JSON_COMPACT);
    json_decref(route);
    strncat(path, "/status", sizeof(path) - strlen(path) - 1);
    rc = http_request(w, "PUT", path, body, false, READ_TIMEOUT, &r);
    free(body);
    if (rc == 0 && r.status == 409)
        rc = R_CONFLICT;
    else if (rc == 0 && r.status == 404)
        rc = 0;
    else if (rc == 0 && r.status != 200 && r.status != 201)
        rc = http_status(w, &r, false);
    else if (rc == 0) {
        uv_mutex_lock(&w->k->mu);
        w->k->status_writes++;
        w->error[0] = '\0';
        uv_mutex_unlock(&w->k->mu);
        GM_LOG_DEBUG("kube", "route status written", "route=%s/%s", j->ns, j->name);
    }
    gm_buf_done(&r.body);
    return rc;
}

static void job_free(struct status_job *j)
{
    free(j->ns);
    free(j->name);
    json_decref(j->entries);
    free(j);
}

/* Queue a job unless a newer one for the same route is there; takes j. Under k->mu. */
static void job_queue_locked(struct gm_kube *k, struct status_job *j, bool replace)
{
    struct status_job **pp = &k->jobs;

    for (; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->ns, j->ns) == 0 && strcmp((*pp)->name, j->name) == 0) {
            if (!replace) {
                job_free(j);
                return;
            }
            struct status_job *old = *pp;
            j->next = old->next;
            *pp = j;
            job_free(old);
            uv_cond_signal(&k->status_cond);
            return;
        }
    }
    j->next = NULL;
    *pp = j;
    uv_cond_signal(&k->status_cond);
}

static void status_main(void *arg)
{
    struct gm_kube *k = arg;
    struct watcher *w = &k->status_w;

    for (;;) {
        uv_mutex_lock(&k->mu);
        while (!atomic_load(&k->stop) && k->jobs == NULL)
            uv_cond_wait(&k->status_cond, &k->mu);
        struct status_job *j = atomic_load(&k->stop) ? NULL : k->jobs;
        if (j)
            k->jobs = j->next;
        uv_mutex_unlock(&k->mu);
        if (j == NULL)
            return;
        int rc;
        for (int i = 0; i < STATUS_ATTEMPTS; i++)
            if ((rc = write_status(w, j)) != R_CONFLICT)
                break;
        if (rc == 0 || rc == -ECANCELED || ++j->attempts > 10) {
            if (rc != 0 && rc != -ECANCELED)
                GM_LOG_WARN_LIMITED("kube", "route status not written: giving up",
                                    "route=%s/%s error=%s", j->ns, j->name, w->error);
            job_free(j);
            continue;
        }
        GM_LOG_WARN_LIMITED("kube", "route status not written: will retry", "route=%s/%s error=%s",
                            j->ns, j->name, rc == R_CONFLICT ? "conflict" : w->error);
        nap(w, 1000u << (j->attempts < 5 ? j->attempts : 5));
        uv_mutex_lock(&k->mu);
        job_queue_locked(k, j, false); /* a newer job for the route wins */
        uv_mutex_unlock(&k->mu);
    }
}

void gm_kube_route_status(struct gm_kube *k, const char *ns, const char *name, json_t *entries)
{
    struct status_job *j = gm_xcalloc(1, sizeof(*j));

    j->ns = gm_xstrdup(ns);
    j->name = gm_xstrdup(name);
    j->entries = entries;
    uv_mutex_lock(&k->mu);
    job_queue_locked(k, j, true);
    uv_mutex_unlock(&k->mu);
}

/* ---- the control loop's side ---- */

static void on_async(uv_async_t *a)
{
    struct gm_kube *k = a->data;

    if (!atomic_load(&k->stop))
        k->cb(k->ctx);
}

/* host and port from "https://HOST[:PORT][/]" or the in-cluster environment. */
static int parse_api(struct gm_kube *k, const char *api, char *err, size_t errlen)
{
    char buf[512];

    if (api == NULL || api[0] == '\0') {
        const char *h = getenv("KUBERNETES_SERVICE_HOST"), *p = getenv("KUBERNETES_SERVICE_PORT");
        if (h == NULL || h[0] == '\0') {
            snprintf(
                err, errlen,
                "kube-api is empty and KUBERNETES_SERVICE_HOST is not set (not in a cluster?)");
            return -EINVAL;
        }
        snprintf(buf, sizeof(buf), strchr(h, ':') ? "https://[%s]:%s" : "https://%s:%s", h,
                 p && p[0] ? p : "443");
        api = buf;
    }
    if (strncmp(api, "https://", 8) != 0) {
        snprintf(err, errlen, "kube-api %s: only https:// is supported", api);
        return -EINVAL;
    }
    const char *s = api + 8, *end = s + strcspn(s, "/?#");
    const char *host = s, *host_end, *port = NULL;
    if (*s == '[') {
        host = s + 1;
        host_end = memchr(host, ']', (size_t)(end - host));
        if (host_end == NULL)
            goto bad;
        if (host_end + 1 < end) {
            if (host_end[1] != ':')
                goto bad;
            port = host_end + 2;
        }
    } else {
        host_end = memchr(s, ':', (size_t)(end - s));
        if (host_end)
            port = host_end + 1;
        else
            host_end = end;
    }
    if (host_end == host || (port && port == end) || (*end && strcmp(end, "/") != 0))
        goto bad;
    if (port && strspn(port, "0123456789") != (size_t)(end - port))
        goto bad;
    k->host = gm_xstrndup(host, (size_t)(host_end - host));
    k->port = port ? gm_xstrndup(port, (size_t)(end - port)) : gm_xstrdup("443");
    k->authority = gm_xstrndup(s, (size_t)(end - s));
    unsigned char tmp[16];
    k->host_is_ip = inet_pton(AF_INET, k->host, tmp) == 1 || inet_pton(AF_INET6, k->host, tmp) == 1;
    return 0;
bad:
    snprintf(err, errlen, "kube-api %s: expected https://HOST[:PORT]", api);
    return -EINVAL;
}

static void kube_free(struct gm_kube *k)
{
    gm_kube_events_free(k->head);
    for (size_t i = 0; i < N_RESOURCES; i++)
        json_decref(k->w[i].known);
    while (k->jobs) {
        struct status_job *j = k->jobs;
        k->jobs = j->next;
        job_free(j);
    }
    uv_cond_destroy(&k->status_cond);
    uv_mutex_destroy(&k->mu);
    uv_cond_destroy(&k->cond);
    free(k->host);
    free(k->authority);
    free(k->port);
    free(k->token_file);
    free(k->ca_file);
    free(k->user_agent);
    free(k);
}

int gm_kube_start(struct gm_kube **out, uv_loop_t *loop, const struct gm_kube_config *cfg,
                  gm_kube_cb cb, void *ctx, char *err, size_t errlen)
{
    struct gm_kube *k = gm_xcalloc(1, sizeof(*k));

    *out = NULL;
    if (parse_api(k, cfg->api, err, errlen) < 0) {
        free(k);
        return -EINVAL;
    }
    k->loop = loop;
    k->cb = cb;
    k->ctx = ctx;
    k->token_file = gm_xstrdup(cfg->token_file ? cfg->token_file : "");
    k->ca_file = gm_xstrdup(cfg->ca_file ? cfg->ca_file : "");
    k->user_agent = gm_xstrdup(cfg->user_agent ? cfg->user_agent : "gammamesh");
    k->tail = &k->head;
    uv_mutex_init(&k->mu);
    uv_cond_init(&k->cond);
    uv_async_init(loop, &k->async, on_async);
    k->async.data = k;
    for (size_t i = 0; i < N_RESOURCES; i++) {
        struct watcher *w = &k->w[i];
        w->k = k;
        w->res = &resources[i];
        w->known = json_object();
        w->seed = (unsigned)(now_ms() ^ (int64_t)i * 7919);
    }
    k->status_w.k = k;
    k->status_w.res = &status_resource;
    uv_cond_init(&k->status_cond);
    for (size_t i = 0; i < N_RESOURCES; i++)
        k->w[i].thread_started = uv_thread_create(&k->w[i].thread, watcher_main, &k->w[i]) == 0;
    k->status_w.thread_started = uv_thread_create(&k->status_w.thread, status_main, k) == 0;
    GM_LOG_INFO("kube", "watching the Kubernetes API", "api=%s token_file=%s ca_file=%s",
                k->authority, k->token_file, k->ca_file);
    *out = k;
    return 0;
}

static void on_async_closed(uv_handle_t *h)
{
    kube_free(h->data);
}

void gm_kube_stop(struct gm_kube *k)
{
    if (k == NULL)
        return;
    atomic_store(&k->stop, true);
    uv_mutex_lock(&k->mu);
    uv_cond_broadcast(&k->cond);
    uv_cond_broadcast(&k->status_cond);
    uv_mutex_unlock(&k->mu);
    for (size_t i = 0; i < N_RESOURCES; i++)
        if (k->w[i].thread_started)
            uv_thread_join(&k->w[i].thread);
    if (k->status_w.thread_started)
        uv_thread_join(&k->status_w.thread);
    uv_close((uv_handle_t *)&k->async, on_async_closed);
}

struct gm_kube_event *gm_kube_take(struct gm_kube *k)
{
    uv_mutex_lock(&k->mu);
    struct gm_kube_event *e = k->head;
    k->head = NULL;
    k->tail = &k->head;
    uv_mutex_unlock(&k->mu);
    return e;
}

void gm_kube_events_free(struct gm_kube_event *e)
{
    while (e) {
        struct gm_kube_event *next = e->next;
        free(e->key);
        json_decref(e->obj);
        free(e);
        e = next;
    }
}

bool gm_kube_synced(struct gm_kube *k, char *why, size_t len)
{
    bool all = true;

    uv_mutex_lock(&k->mu);
    for (size_t i = 0; i < N_RESOURCES && all; i++) {
        const struct watcher *w = &k->w[i];
        if (w->synced)
            continue;
        all = false;
        snprintf(why, len, "waiting for the Kubernetes API: %s not listed yet%s%s", w->res->name,
                 w->error[0] ? ": " : "", w->error);
    }
    uv_mutex_unlock(&k->mu);
    return all;
}

void gm_kube_relist(struct gm_kube *k)
{
    for (size_t i = 0; i < N_RESOURCES; i++)
        atomic_store(&k->w[i].relist, true);
    uv_mutex_lock(&k->mu);
    uv_cond_broadcast(&k->cond);
    uv_mutex_unlock(&k->mu);
}

void gm_kube_stats(struct gm_kube *k, struct gm_kube_stats *out)
{
    uv_mutex_lock(&k->mu);
    for (size_t i = 0; i < N_RESOURCES; i++) {
        const struct watcher *w = &k->w[i];
        out[i] = (struct gm_kube_stats){.resource = w->res->name,
                                        .synced = w->synced,
                                        .served = w->served,
                                        .lists = w->lists,
                                        .watches = w->watches,
                                        .events = w->events,
                                        .errors = w->errors};
    }
    uv_mutex_unlock(&k->mu);
}

json_t *gm_kube_dump(struct gm_kube *k)
{
    struct gm_kube_stats st[N_RESOURCES];
    json_t *res = json_object();

    gm_kube_stats(k, st);
    for (size_t i = 0; i < N_RESOURCES; i++) {
        json_t *o = json_pack("{s:b, s:b, s:I, s:I, s:I, s:I}", "synced", st[i].synced, "served",
                              st[i].served, "lists", (json_int_t)st[i].lists, "watches",
                              (json_int_t)st[i].watches, "events", (json_int_t)st[i].events,
                              "errors", (json_int_t)st[i].errors);
        uv_mutex_lock(&k->mu);
        json_object_set_new(o, "last_error",
                            k->w[i].error[0] ? json_string(k->w[i].error) : json_null());
        uv_mutex_unlock(&k->mu);
        json_object_set_new(res, st[i].resource, o);
    }
    uv_mutex_lock(&k->mu);
    json_t *rst = json_pack("{s:I, s:I, s:s?}", "writes", (json_int_t)k->status_writes, "unchanged",
                            (json_int_t)k->status_unchanged, "last_error",
                            k->status_w.error[0] ? k->status_w.error : NULL);
    uv_mutex_unlock(&k->mu);
    return json_pack("{s:s, s:o, s:o}", "api", k->authority, "resources", res, "route_status", rst);
}
