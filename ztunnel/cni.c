/* The CNI gate (ztunnel side): a Unix socket on which the chained plugin (ztunnel/cni_plugin.c)
 * asks, while the runtime creates a pod's sandbox, whether the pod may start. For an enrolled pod
 * of this node the answer waits until the listeners and the redirection rules are in place in
 * the sandbox's netns, so no container of the pod ever runs uncaptured. Runs on the control
 * loop, beside the capture manager; the wire format is in ztunnel/cni_proto.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cni_proto.h"
#include "gammamesh/log.h"
#include "gammamesh/metrics.h"
#include "ztunnel.h"

/* Pending ADDs are looked at this often. One that cannot succeed is answered CNI_REPLY_EARLY ms
 * before the plugin's own deadline, so that the reason reaches it. */
#define CNI_POLL_MS        20
#define CNI_REPLY_EARLY    250
#define CNI_REQUEST_MS     10000 /* a connection that has not sent its request by then is closed */
#define CNI_UNKNOWN_POD_MS 2000  /* how long a pod of a plain namespace is waited for */

struct cni_client {
    struct zt_cni *owner;
    struct cni_client *next;
    uv_pipe_t pipe;
    uv_write_t wr;
    char *out;
    struct zt_cni_request req;
    bool have_req, replied, closing, registered;
    uint64_t started_ms, deadline_ms;
    size_t len;
    char scratch[256]; /* reads after the request: only EOF matters */
    char buf[ZT_CNI_MSG_MAX];
};

struct zt_cni {
    struct zt *zt;
    uv_pipe_t server;
    uv_timer_t poll;
    struct cni_client *clients;
    char *path;
    int refs; /* the server, the timer and each client: freed when all are closed */
    dev_t dev;
    ino_t ino;
    uint64_t answered[ZT_CNI_COMMAND__MAX][ZT_CNI_RESULT__MAX];
    struct gm_metric *m[ZT_CNI_COMMAND__MAX][ZT_CNI_RESULT__MAX];
};

static void register_metrics(struct zt_cni *g)
{
    static const char *const labels[] = {"command", "result", NULL};
    struct gm_metric_family *fam = NULL;

    if (gm_metrics_register(
            gm_daemon_metrics(g->zt->daemon),
            &(struct gm_metric_desc){.name = "gammamesh_ztunnel_cni_requests_total",
                                     .help = "Requests of the CNI plugin answered, by command and "
                                             "result.",
                                     .type = GM_METRIC_COUNTER,
                                     .labels = labels},
            &fam) < 0)
        return;
    for (int c = 0; c < ZT_CNI_COMMAND__MAX; c++)
        for (int r = 0; r < ZT_CNI_RESULT__MAX; r++)
            g->m[c][r] = gm_metrics_get(
                fam, (const char *[]){zt_cni_command_name(c), zt_cni_result_name(r)});
}

static void unref(struct zt_cni *g)
{
    if (--g->refs > 0)
        return;
    free(g->path);
    free(g);
}

static void on_handle_closed(uv_handle_t *h)
{
    unref(h->data);
}

static void on_client_closed(uv_handle_t *h)
{
    struct cni_client *c = h->data;
    struct zt_cni *g = c->owner;

    for (struct cni_client **pp = &g->clients; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    zt_cni_request_free(&c->req);
    free(c->out);
    free(c);
    unref(g);
}

static void client_close(struct cni_client *c)
{
    if (c->closing)
        return;
    c->closing = true;
    uv_close((uv_handle_t *)&c->pipe, on_client_closed);
}

static void on_written(uv_write_t *wr, int status)
{
    (void)status;
    client_close(wr->data);
}

static void reply(struct cni_client *c, enum zt_cni_result result, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void reply(struct cni_client *c, enum zt_cni_result result, const char *fmt, ...)
{
    struct zt_cni *g = c->owner;
    char msg[700] = "";
    va_list ap;

    if (c->replied || c->closing)
        return;
    c->replied = true;
    if (fmt) {
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
    }
    if (c->have_req) {
        enum zt_cni_command cmd = c->req.command;
        g->answered[cmd][result]++;
        if (g->m[cmd][result])
            gm_metrics_inc(g->m[cmd][result]);
        uint64_t ms = uv_now(g->server.loop) - c->started_ms;
        char who[520] = "-";
        if (c->req.namespace[0])
            snprintf(who, sizeof(who), "%s/%s", c->req.namespace, c->req.pod);
        if (result == ZT_CNI_ERROR)
            GM_LOG_WARN("cni", "sandbox refused",
                        "command=%s pod=%s container=%s netns=%s result=%s elapsed_ms=%llu "
                        "reason=%s",
                        zt_cni_command_name(cmd), who, c->req.container_id, c->req.netns,
                        zt_cni_result_name(result), (unsigned long long)ms, msg);
        else
            GM_LOG_INFO("cni", "sandbox answered",
                        "command=%s pod=%s container=%s netns=%s result=%s elapsed_ms=%llu",
                        zt_cni_command_name(cmd), who, c->req.container_id, c->req.netns,
                        zt_cni_result_name(result), (unsigned long long)ms);
    } else {
        GM_LOG_WARN("cni", "bad request from the CNI plugin", "reason=%s", msg);
    }
    c->out = zt_cni_reply_format(result, msg);
    uv_buf_t b = uv_buf_init(c->out, (unsigned)strlen(c->out));
    c->wr.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->pipe, &b, 1, on_written) < 0)
        client_close(c);
}

/* The pod the request names, as the last reconciled snapshot has it (NULL: not yet). */
static const struct gm_workload *request_pod(struct zt_cni *g, const struct zt_cni_request *r)
{
    const struct gm_snapshot *s = g->zt->pods.snap;
    const struct gm_workload *w = s ? gm_snapshot_workload(s, r->namespace, r->pod) : NULL;

    /* an older pod of the same name: wait for the new one (an object without a uid, from a
     * configuration directory, has "ns/name" as its uid and is taken by name) */
    if (w && r->uid[0] && !strchr(w->uid, '/') && strcmp(w->uid, r->uid) != 0)
        return NULL;
    return w;
}

static bool ours(const struct zt *zt, const struct gm_workload *w)
{
    return w->enrolled && w->node && zt->node && strcmp(w->node, zt->node) == 0;
}

static const char *why_not_ours(const struct zt *zt, const struct gm_workload *w)
{
    return !w->enrolled ? "namespace not enrolled" : "pod of another node";
}

/* An ADD: answered once the capture is in the request's netns, refused at the deadline. */
static void poll_add(struct cni_client *c, uint64_t now)
{
    struct zt_cni *g = c->owner;
    struct zt_cni_request *r = &c->req;
    const struct gm_workload *w = request_pod(g, r);
    char why[600];

    if (w == NULL) {
        /* A pod of a namespace known not to be enrolled starts after a short wait for its
         * object (a pod label may opt it in) even when the API is out of reach: the gate then
         * fails closed only where the mesh is. */
        const struct gm_snapshot *s = g->zt->pods.snap;
        const struct gm_namespace_info *nsi = s ? gm_snapshot_namespace(s, r->namespace) : NULL;
        if (nsi && !nsi->enrolled && now - c->started_ms >= CNI_UNKNOWN_POD_MS)
            reply(c, ZT_CNI_NOT_ENROLLED, "pod not known; namespace not enrolled");
        else if (now >= c->deadline_ms)
            reply(c, ZT_CNI_ERROR,
                  "pod %s/%s%s%s is not in ztunnel's configuration (is the "
                  "API source up?)",
                  r->namespace, r->pod, r->uid[0] ? " uid " : "", r->uid);
        return;
    }
    if (!ours(g->zt, w)) {
        reply(c, ZT_CNI_NOT_ENROLLED, "%s", why_not_ours(g->zt, w));
        return;
    }
    if (!c->registered) {
        c->registered = true;
        zt_pods_cni_add(&g->zt->pods, w->uid, r->container_id, r->netns);
        if (c->replied || c->closing)
            return;
    }
    if (zt_pods_cni_captured(&g->zt->pods, w->uid, r->netns, why, sizeof(why)) == 1)
        reply(c, ZT_CNI_CAPTURED, NULL);
    else if (now >= c->deadline_ms) {
        reply(c, ZT_CNI_ERROR, "capture of %s/%s not in place in %s: %s", r->namespace, r->pod,
              r->netns, why);
        /* the sandbox will not start: a capture that works elsewhere is not held hostage */
        zt_pods_cni_del(&g->zt->pods, r->container_id);
    }
}

static void on_poll(uv_timer_t *t)
{
    struct zt_cni *g = t->data;

    zt_cni_poll(g->zt);
}

void zt_cni_poll(struct zt *zt)
{
    struct zt_cni *g = zt->cni;
    bool pending = false;

    if (g == NULL)
        return;
    uint64_t now = uv_now(g->server.loop);
    for (struct cni_client *c = g->clients, *next; c; c = next) {
        next = c->next;
        if (c->replied || c->closing)
            continue;
        if (!c->have_req && now - c->started_ms >= CNI_REQUEST_MS) {
            client_close(c); /* no request line in time */
            continue;
        }
        if (c->have_req && c->req.command == ZT_CNI_ADD)
            poll_add(c, now);
        pending |= !c->replied;
    }
    if (pending && !uv_is_active((uv_handle_t *)&g->poll))
        uv_timer_start(&g->poll, on_poll, CNI_POLL_MS, CNI_POLL_MS);
    else if (!pending)
        uv_timer_stop(&g->poll);
}

static void handle(struct cni_client *c)
{
    struct zt_cni *g = c->owner;
    struct zt_cni_request *r = &c->req;
    const struct gm_workload *w;
    char why[600];

    switch (r->command) {
    case ZT_CNI_ADD: {
        uint64_t early = r->timeout_ms > 2 * CNI_REPLY_EARLY ? CNI_REPLY_EARLY : r->timeout_ms / 2;
        c->deadline_ms = c->started_ms + r->timeout_ms - early;
        zt_cni_poll(g->zt);
        break;
    }
    case ZT_CNI_DEL:
        zt_pods_cni_del(&g->zt->pods, r->container_id);
        reply(c, ZT_CNI_OK, NULL);
        break;
    case ZT_CNI_CHECK:
        w = request_pod(g, r);
        if (w == NULL)
            reply(c, ZT_CNI_ERROR, "pod %s/%s is not in ztunnel's configuration", r->namespace,
                  r->pod);
        else if (!ours(g->zt, w))
            reply(c, ZT_CNI_NOT_ENROLLED, "%s", why_not_ours(g->zt, w));
        else if (zt_pods_cni_captured(&g->zt->pods, w->uid, r->netns, why, sizeof(why)) == 1)
            reply(c, ZT_CNI_CAPTURED, NULL);
        else
            reply(c, ZT_CNI_ERROR, "pod %s/%s is not captured in %s: %s", r->namespace, r->pod,
                  r->netns, why);
        break;
    default:
        reply(c, ZT_CNI_ERROR, "unknown command");
    }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct cni_client *c = h->data;

    (void)hint;
    if (c->have_req)
        *buf = uv_buf_init(c->scratch, sizeof(c->scratch));
    else
        *buf = uv_buf_init(c->buf + c->len, (unsigned)(sizeof(c->buf) - c->len));
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct cni_client *c = st->data;
    char err[200];

    (void)buf;
    if (n < 0) {                          /* the plugin gave up or is done: nobody to answer */
        if (c->registered && !c->replied) /* the sandbox fails: forget the netns it named */
            zt_pods_cni_del(&c->owner->zt->pods, c->req.container_id);
        client_close(c);
        return;
    }
    if (c->have_req || n == 0)
        return;
    char *nl = memchr(c->buf + c->len, '\n', (size_t)n);
    c->len += (size_t)n;
    if (nl == NULL) {
        if (c->len == sizeof(c->buf))
            reply(c, ZT_CNI_ERROR, "request longer than %d bytes", ZT_CNI_MSG_MAX);
        return;
    }
    if (zt_cni_request_parse(c->buf, (size_t)(nl - c->buf), &c->req, err, sizeof(err)) < 0) {
        reply(c, ZT_CNI_ERROR, "bad request: %s", err);
        return;
    }
    c->have_req = true;
    handle(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct zt_cni *g = server->data;

    if (status < 0)
        return;
    struct cni_client *c = gm_xcalloc(1, sizeof(*c));
    c->owner = g;
    c->started_ms = uv_now(server->loop);
    uv_pipe_init(server->loop, &c->pipe, 0);
    c->pipe.data = c;
    c->next = g->clients;
    g->clients = c;
    g->refs++;
    if (uv_accept(server, (uv_stream_t *)&c->pipe) < 0 ||
        uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) < 0)
        client_close(c);
    else if (!uv_is_active((uv_handle_t *)&g->poll))
        uv_timer_start(&g->poll, on_poll, CNI_POLL_MS, CNI_POLL_MS);
}

/* A stale socket file from an earlier run goes; anything else at the path is an error. */
static int prepare_path(const char *path)
{
    struct stat st;
    char dir[512];

    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
            return -errno;
    }
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return -EEXIST;
        if (unlink(path) < 0)
            return -errno;
    }
    return 0;
}

int zt_cni_start(struct zt *zt)
{
    const char *path = zt->set.cni_socket;
    struct stat st;
    int rc;

    if (path == NULL || path[0] == '\0')
        return 0;
    struct zt_cni *g = gm_xcalloc(1, sizeof(*g));
    g->zt = zt;
    g->path = gm_xstrdup(path);
    uv_loop_t *loop = gm_daemon_loop(zt->daemon);
    uv_pipe_init(loop, &g->server, 0);
    g->server.data = g;
    uv_timer_init(loop, &g->poll);
    g->poll.data = g;
    g->refs = 2;
    zt->cni = g;
    if (strlen(path) >= 100 || path[0] != '/')
        rc = -ENAMETOOLONG;
    else if ((rc = prepare_path(path)) == 0 && (rc = uv_pipe_bind(&g->server, path)) == 0 &&
             (rc = chmod(path, 0600) < 0 ? -errno : 0) == 0)
        rc = uv_listen((uv_stream_t *)&g->server, 64, on_connection);
    if (rc < 0) {
        GM_LOG_ERROR("cni", "cannot listen on the CNI socket", "path=%s error=%s", path,
                     strerror(-rc));
        zt_cni_stop(zt);
        return rc;
    }
    if (stat(path, &st) == 0) {
        g->dev = st.st_dev;
        g->ino = st.st_ino;
    }
    register_metrics(g);
    GM_LOG_INFO("cni", "CNI gate listening", "path=%s", path);
    return 0;
}

json_t *zt_cni_dump(const struct zt *zt)
{
    const struct zt_cni *g = zt->cni;
    unsigned pending = 0;

    if (g == NULL)
        return json_pack("{s:b}", "enabled", 0);
    for (const struct cni_client *c = g->clients; c; c = c->next)
        pending += c->have_req && !c->replied;
    json_t *answered = json_object();
    for (int c = 0; c < ZT_CNI_COMMAND__MAX; c++) {
        json_t *o = json_object();
        for (int r = 0; r < ZT_CNI_RESULT__MAX; r++)
            if (g->answered[c][r])
                json_object_set_new(o, zt_cni_result_name(r),
                                    json_integer((json_int_t)g->answered[c][r]));
        json_object_set_new(answered, zt_cni_command_name(c), o);
    }
    return json_pack("{s:b, s:s, s:i, s:o}", "enabled", 1, "socket", g->path, "pending",
                     (int)pending, "answered", answered);
}

void zt_cni_stop(struct zt *zt)
{
    struct zt_cni *g = zt->cni;
    struct stat st;

    if (g == NULL)
        return;
    zt->cni = NULL;
    /* a second ztunnel (a rolling upgrade) may have taken the path over: leave its socket */
    if (g->ino && stat(g->path, &st) == 0 && st.st_dev == g->dev && st.st_ino == g->ino)
        unlink(g->path);
    for (struct cni_client *c = g->clients; c; c = c->next) {
        if (c->have_req)
            reply(c, ZT_CNI_ERROR, "ztunnel is stopping"); /* closes after the write */
        else
            client_close(c);
    }
    for (int c = 0; c < ZT_CNI_COMMAND__MAX; c++)
        for (int r = 0; r < ZT_CNI_RESULT__MAX; r++)
            gm_metrics_unref(g->m[c][r]);
    uv_close((uv_handle_t *)&g->poll, on_handle_closed);
    uv_close((uv_handle_t *)&g->server, on_handle_closed);
}
