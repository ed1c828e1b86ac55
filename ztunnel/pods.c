/* The capture manager: for each enrolled pod of this node, listeners inside the pod's netns (one
 * set per worker, SO_REUSEPORT) and then the pod's redirection rules; removal in reverse order.
 * Rules go in only after the listeners exist, so a pod never has a window where its traffic is
 * redirected to nothing. Runs on the control loop. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gammamesh/log.h"
#include "gammamesh/metrics.h"
#include "netns.h"
#include "ztunnel.h"

const int zt_listener_ports[ZT_LISTEN__MAX] = {15001, 15006, 15008};

enum zt_pod_state {
    ZT_POD_LISTENING = 0, /* listeners handed to workers, rules being installed */
    ZT_POD_CAPTURED,      /* rules installed: traffic flows through us */
    ZT_POD_FAILED,        /* listeners or rules failed; retried on a timer */
    ZT_POD_REMOVING,      /* rules being removed; listeners closed after */
    ZT_POD__MAX
};

static void on_retry(uv_timer_t *t);
static void on_check(uv_timer_t *t);
static void cni_forget(struct zt_pods *p, const char *uid);
static void stop_pod(struct zt_pods *p, struct zt_pod *pod);

/* Kubelet re-creates a pod's sandbox when it dies: a new netns, under the same uid and often
 * the same IP, with no change to the pod object that would tell us. Every captured pod's netns
 * is checked this often, and a capture whose netns was replaced moves to the new one. */
#define ZT_NETNS_CHECK_MS 1000

_Static_assert(ZT_POD__MAX == ZT_POD_STATES, "ztunnel.h sizes the per-state metrics");

static const char *const state_names[ZT_POD__MAX] = {"listening", "captured", "failed", "removing"};

struct zt_pod {
    struct zt_pods *owner;
    char *uid, *name, *namespace, *netns;
    int nsfd;          /* discovered: the pod's netns, held open (netns is /proc/self's fd path) */
    bool discovered;   /* no gammamesh.io/netns annotation: found under proc-root */
    long pid;          /* discovered: the process of the pod it was found through */
    bool no_sandbox;   /* discovery failed: no process of the pod under proc-root yet */
    uint64_t retry_at; /* loop time of the next capture attempt while failed */
    dev_t ns_dev;      /* the netns the listeners were opened in (0: none yet) */
    ino_t ns_ino;
    enum zt_pod_state state;
    bool seen;          /* still wanted by the latest snapshot */
    bool adopted;       /* workers hold listeners */
    bool busy;          /* an nft run is in flight */
    bool reply_routing; /* the reply rule and route are in: sources can be preserved */
    bool cni;           /* netns named by the CNI gate */
    int attempts;
    char error[160];
};

/* Pods by capture state (set with each netns check) and captures moved, for /metrics. */
static void register_metrics(struct zt_pods *p)
{
    static const char *const labels[] = {"state", NULL};
    struct gm_metrics *reg = gm_daemon_metrics(p->zt->daemon);
    struct gm_metric_family *fam = NULL;

    if (gm_metrics_register(
            reg,
            &(struct gm_metric_desc){.name = "gammamesh_ztunnel_pods",
                                     .help = "Enrolled pods of this node, by capture state.",
                                     .type = GM_METRIC_GAUGE,
                                     .labels = labels},
            &fam) == 0)
        for (int i = 0; i < ZT_POD__MAX; i++)
            p->m_state[i] = gm_metrics_get(fam, (const char *[]){state_names[i]});
    if (gm_metrics_register(reg,
                            &(struct gm_metric_desc){
                                .name = "gammamesh_ztunnel_capture_moves_total",
                                .help = "Captures moved to a pod's re-created network namespace.",
                                .type = GM_METRIC_COUNTER},
                            &fam) == 0)
        p->m_moves = gm_metrics_get(fam, NULL);
}

static void update_metrics(struct zt_pods *p)
{
    int64_t n[ZT_POD__MAX] = {0};

    for (size_t i = 0; i < p->n; i++)
        n[p->v[i]->state]++;
    for (int i = 0; i < ZT_POD__MAX; i++)
        if (p->m_state[i])
            gm_metrics_set(p->m_state[i], n[i]);
}

void zt_pods_init(struct zt_pods *p, struct zt *zt)
{
    memset(p, 0, sizeof(*p));
    p->zt = zt;
    register_metrics(p);
    uv_timer_init(gm_daemon_loop(zt->daemon), &p->retry);
    uv_timer_init(gm_daemon_loop(zt->daemon), &p->check);
    uv_timer_init(gm_daemon_loop(zt->daemon), &p->again);
    uv_timer_start(&p->check, on_check, ZT_NETNS_CHECK_MS, ZT_NETNS_CHECK_MS);
    /* without IPv6 in the kernel there is no ip6 table to manage, nor IPv6 to refuse */
    if (access("/proc/sys/net/ipv6", F_OK) == 0)
        p->rule_flags =
            ZT_CAPTURE_IPV6 | (zt->set.ipv6 == ZT_IPV6_REFUSE ? ZT_CAPTURE_REFUSE_IPV6 : 0);
}

const char *zt_pods_ipv6_mode(const struct zt_pods *p)
{
    if (!(p->rule_flags & ZT_CAPTURE_IPV6))
        return "absent";
    return p->rule_flags & ZT_CAPTURE_REFUSE_IPV6 ? "refused" : "passthrough";
}

static void pod_free(struct zt_pod *pod)
{
    free(pod->uid);
    free(pod->name);
    free(pod->namespace);
    free(pod->netns);
    if (pod->nsfd >= 0)
        close(pod->nsfd);
    free(pod);
}

static void on_again(uv_timer_t *t)
{
    struct zt_pods *p = container_of(t, struct zt_pods, again);

    if (p->snap && !p->stopping)
        zt_pods_reconcile(p, p->snap);
}

/* A pod still in the snapshot whose capture was dropped to move it (a new netns) is captured
 * again by a reconcile pass after its entry is gone, without waiting for another snapshot. */
static void remove_entry(struct zt_pods *p, struct zt_pod *pod)
{
    for (size_t i = 0; i < p->n; i++) {
        if (p->v[i] == pod) {
            p->v[i] = p->v[--p->n];
            break;
        }
    }
    pod_free(pod);
    if (p->snap && !p->stopping)
        uv_timer_start(&p->again, on_again, 0, 0);
}

/* A failed capture is retried each second; a pod whose sandbox has no process yet (it was just
 * scheduled) is looked for every 200 ms for its first two seconds, so that a starting pod's
 * traffic goes uncaptured for as short a time as possible. Pods waiting together share one scan
 * of proc-root per 100 ms at most (a few ms on a node with a thousand processes). */
#define ZT_RETRY_MS         1000
#define ZT_RETRY_FAST_MS    200
#define ZT_RETRY_FAST_TRIES 10

static uint64_t retry_delay(const struct zt_pod *pod)
{
    return pod->no_sandbox && pod->attempts < ZT_RETRY_FAST_TRIES ? ZT_RETRY_FAST_MS : ZT_RETRY_MS;
}

static void schedule_retry(struct zt_pods *p, uint64_t delay)
{
    if (!uv_is_active((uv_handle_t *)&p->retry) || uv_timer_get_due_in(&p->retry) > delay)
        uv_timer_start(&p->retry, on_retry, delay, 0);
}

static void set_failed(struct zt_pod *pod, const char *what, int err)
{
    pod->state = ZT_POD_FAILED;
    snprintf(pod->error, sizeof(pod->error), "%s: %s", what, strerror(err < 0 ? -err : err));
    if (!pod->no_sandbox)
        GM_LOG_WARN_LIMITED("capture", "pod capture failed", "pod=%s/%s error=%s attempt=%d",
                            pod->namespace, pod->name, pod->error, pod->attempts);
    else if (pod->attempts == ZT_RETRY_FAST_TRIES)
        GM_LOG_WARN_LIMITED("capture", "pod capture waits: no process of the pod yet",
                            "pod=%s/%s error=%s attempt=%d", pod->namespace, pod->name, pod->error,
                            pod->attempts);
    pod->retry_at = uv_now(gm_daemon_loop(pod->owner->zt->daemon)) + retry_delay(pod);
    schedule_retry(pod->owner, retry_delay(pod));
}

static void release_workers(struct zt_pods *p, struct zt_pod *pod)
{
    if (!pod->adopted)
        return;
    for (unsigned i = 0; i < p->zt->workers.n; i++)
        gm_workers_post(&p->zt->workers.v[i], zt_proxy_release, gm_xstrdup(pod->uid));
    pod->adopted = false;
}

static void close_fds(int (*fds)[ZT_LISTEN__MAX], unsigned n)
{
    for (unsigned w = 0; w < n; w++)
        for (int k = 0; k < ZT_LISTEN__MAX; k++)
            if (fds[w][k] >= 0)
                close(fds[w][k]);
}

/* Open every worker's listeners in the pod netns and hand them over. */
static int open_listeners(struct zt_pods *p, struct zt_pod *pod)
{
    unsigned nw = p->zt->workers.n;
    int self = zt_netns_self(), nsfd = zt_netns_open(pod->netns), rc = 0;
    int(*fds)[ZT_LISTEN__MAX] = gm_xcalloc(nw, sizeof(*fds));

    memset(fds, 0xff, nw * sizeof(*fds));
    if (self < 0 || nsfd < 0) {
        rc = self < 0 ? self : nsfd;
        goto out;
    }
    struct stat st;
    if (fstat(nsfd, &st) == 0) {
        pod->ns_dev = st.st_dev;
        pod->ns_ino = st.st_ino;
    }
    for (unsigned w = 0; w < nw && rc == 0; w++) {
        for (int k = 0; k < ZT_LISTEN__MAX && rc == 0; k++) {
            struct sockaddr_in sa = {.sin_family = AF_INET,
                                     .sin_port = htons((uint16_t)zt_listener_ports[k])};
            fds[w][k] = zt_netns_listener(nsfd, self, (struct sockaddr *)&sa, sizeof(sa), ZT_MARK);
            if (fds[w][k] < 0)
                rc = fds[w][k];
        }
    }
    if (rc < 0) {
        close_fds(fds, nw);
        goto out;
    }
    if (p->zt->set.capture && p->zt->set.preserve_source && !pod->reply_routing) {
        int err = zt_netns_reply_routing(nsfd, self);
        if (err < 0)
            GM_LOG_WARN("capture",
                        "no reply routing: the pod's app will see this pod's own address "
                        "as the source of inbound connections",
                        "pod=%s/%s error=%s", pod->namespace, pod->name, strerror(-err));
        pod->reply_routing = err == 0;
    }
    for (unsigned w = 0; w < nw; w++) {
        struct zt_adopt *a = gm_xcalloc(1, sizeof(*a));
        a->uid = gm_xstrdup(pod->uid);
        a->nsfd = dup(nsfd);
        memcpy(a->fds, fds[w], sizeof(a->fds));
        gm_workers_post(&p->zt->workers.v[w], zt_proxy_adopt, a);
    }
    pod->adopted = true;
out:
    free(fds);
    if (nsfd >= 0)
        close(nsfd);
    if (self >= 0)
        close(self);
    return rc;
}

static void on_rules_installed(void *ctx, int status)
{
    struct zt_pod *pod = ctx;

    pod->busy = false;
    if (pod->state == ZT_POD_REMOVING || !pod->seen) {
        stop_pod(pod->owner, pod); /* went away while its rules were going in */
        return;
    }
    if (status < 0) {
        set_failed(pod, "installing capture rules", status);
        return;
    }
    pod->state = ZT_POD_CAPTURED;
    if (pod->reply_routing)
        for (unsigned i = 0; i < pod->owner->zt->workers.n; i++)
            gm_workers_post(&pod->owner->zt->workers.v[i], zt_proxy_source_ready,
                            gm_xstrdup(pod->uid));
    GM_LOG_INFO("capture", "pod captured", "pod=%s/%s netns=%s source=%s", pod->namespace,
                pod->name, pod->netns, pod->reply_routing ? "client" : "pod");
}

/* The netns of a pod without the annotation: a process of the pod under proc-root, whose
 * namespace is held open from then on, so that a pid reused later cannot point elsewhere. */
/* A scan serves the pods that start within a second; a pod it lacks scans again after 100 ms. */
#define ZT_SCAN_MAX_AGE_MS 1000

static long scanned_pid(const struct zt_pods *p, const char *uid)
{
    for (long i = 0; i < p->n_scan; i++)
        if (strcasecmp(p->scan[i].uid, uid) == 0)
            return p->scan[i].pid;
    return 0;
}

/* The lowest pid of the pod's processes under proc-root, from a scan at most max_age_ms old
 * (a scan younger than 100 ms is trusted to lack the pod); 0 when there is none, -errno when
 * proc-root cannot be read. */
static long pod_pid(struct zt_pods *p, const char *uid, uint64_t max_age_ms)
{
    uint64_t now = uv_now(gm_daemon_loop(p->zt->daemon));
    long pid = p->scan && now - p->scan_at_ms < max_age_ms ? scanned_pid(p, uid) : 0;

    if (pid == 0 && (p->scan == NULL || now - p->scan_at_ms >= 100)) {
        free(p->scan);
        p->n_scan = zt_netns_scan_pods(p->zt->set.proc_root, &p->scan);
        p->scan_at_ms = now;
        if (p->n_scan < 0) {
            long err = p->n_scan;
            p->n_scan = 0;
            return err;
        }
        pid = scanned_pid(p, uid);
    }
    return pid;
}

static int discover(struct zt_pods *p, struct zt_pod *pod)
{
    long pid = pod_pid(p, pod->uid, ZT_SCAN_MAX_AGE_MS);
    char path[512];

    if (pid <= 0)
        return pid < 0 ? (int)pid : -ENOENT;
    snprintf(path, sizeof(path), "%s/%ld/ns/net", p->zt->set.proc_root, pid);
    pod->nsfd = open(path, O_RDONLY | O_CLOEXEC);
    if (pod->nsfd < 0)
        return -errno;
    pod->pid = pid;
    pod->netns = gm_xasprintf("/proc/%ld/fd/%d", (long)getpid(), pod->nsfd);
    GM_LOG_INFO("capture", "pod network namespace found", "pod=%s/%s pid=%ld path=%s",
                pod->namespace, pod->name, pid, path);
    return 0;
}

/* Is the netns at path the one the pod was captured in? */
static bool is_captured_netns(const struct zt_pod *pod, const char *path, char *why, size_t len)
{
    struct stat st;

    if (stat(path, &st) < 0) {
        snprintf(why, len, "%s: %s", path, strerror(errno));
        return false;
    }
    if (st.st_dev != pod->ns_dev || st.st_ino != pod->ns_ino) {
        snprintf(why, len, "%s is another network namespace", path);
        return false;
    }
    return true;
}

/* Does the pod still live in the netns it was captured in? An annotated pod's netns is looked
 * up by its path; a discovered pod's through its process, or, when that process is gone or its
 * pid was reused, through the pod's processes found again under proc-root. */
static bool netns_current(struct zt_pods *p, struct zt_pod *pod, char *why, size_t len)
{
    char path[512];

    if (!pod->discovered) {
        zt_netns_path(pod->netns, path, sizeof(path));
        return is_captured_netns(pod, path, why, len);
    }
    snprintf(path, sizeof(path), "%s/%ld/ns/net", p->zt->set.proc_root, pod->pid);
    if (is_captured_netns(pod, path, why, len))
        return true;
    long pid = pod_pid(p, pod->uid, 100);
    if (pid <= 0) {
        snprintf(why, len, "no process of the pod under %s", p->zt->set.proc_root);
        return false;
    }
    snprintf(path, sizeof(path), "%s/%ld/ns/net", p->zt->set.proc_root, pid);
    if (!is_captured_netns(pod, path, why, len))
        return false;
    pod->pid = pid; /* another process of the same sandbox */
    return true;
}

static void on_check(uv_timer_t *t)
{
    struct zt_pods *p = container_of(t, struct zt_pods, check);
    char why[600];

    update_metrics(p);
    for (size_t i = p->n; i-- > 0;) {
        struct zt_pod *pod = p->v[i];
        if (pod->state != ZT_POD_CAPTURED || pod->busy || pod->ns_ino == 0 ||
            netns_current(p, pod, why, sizeof(why)))
            continue;
        GM_LOG_INFO("capture",
                    "pod network namespace replaced (sandbox re-created or gone): "
                    "capture moves to the new one",
                    "pod=%s/%s reason=%s", pod->namespace, pod->name, why);
        p->moved++;
        if (p->m_moves)
            gm_metrics_inc(p->m_moves);
        if (pod->cni && access(pod->netns, F_OK) < 0)
            cni_forget(p, pod->uid); /* the sandbox the gate named is gone without a DEL */
        stop_pod(p, pod); /* then remove_entry: captured again by the next reconcile pass */
    }
}

static void start_pod(struct zt_pods *p, struct zt_pod *pod)
{
    char path[512];

    pod->attempts++;
    pod->error[0] = '\0';
    if (pod->netns == NULL) {
        int rc = discover(p, pod);
        pod->no_sandbox = rc == -ENOENT;
        if (rc < 0) {
            set_failed(pod, "finding the pod's network namespace under proc-root", rc);
            return;
        }
    }
    if (!pod->adopted) {
        int rc = open_listeners(p, pod);
        if (rc < 0) {
            set_failed(pod, "opening listeners in the pod netns", rc);
            return;
        }
    }
    pod->state = ZT_POD_LISTENING;
    if (!p->zt->set.capture) {
        pod->state = ZT_POD_CAPTURED;
        return;
    }
    zt_netns_path(pod->netns, path, sizeof(path));
    pod->busy = true;
    zt_capture_apply(gm_daemon_loop(p->zt->daemon), path, true, p->rule_flags, on_rules_installed,
                     pod);
}

static void on_rules_removed(void *ctx, int status)
{
    struct zt_pod *pod = ctx;
    struct zt_pods *p = pod->owner;

    pod->busy = false;
    if (status < 0)
        GM_LOG_DEBUG("capture", "rule removal failed (netns gone?)", "pod=%s/%s", pod->namespace,
                     pod->name);
    release_workers(p, pod);
    GM_LOG_INFO("capture", "pod released", "pod=%s/%s", pod->namespace, pod->name);
    remove_entry(p, pod);
}

static void stop_pod(struct zt_pods *p, struct zt_pod *pod)
{
    char path[512];

    pod->state = ZT_POD_REMOVING;
    if (pod->busy)
        return; /* finishes in the pending callback */
    if (!p->zt->set.capture || !pod->adopted) {
        release_workers(p, pod);
        remove_entry(p, pod);
        return;
    }
    zt_netns_path(pod->netns, path, sizeof(path));
    pod->busy = true;
    zt_capture_apply(gm_daemon_loop(p->zt->daemon), path, false, p->rule_flags, on_rules_removed,
                     pod);
}

static struct zt_pod *find(struct zt_pods *p, const char *uid)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->v[i]->uid, uid) == 0)
            return p->v[i];
    return NULL;
}

static void cni_free(struct zt_cni_pod *e)
{
    free(e->uid);
    free(e->container_id);
    free(e->netns);
}

/* Drops entry i; the last one takes its place. */
static void cni_remove(struct zt_pods *p, size_t i)
{
    cni_free(&p->cni[i]);
    p->cni[i] = p->cni[--p->n_cni];
}

static void cni_forget(struct zt_pods *p, const char *uid)
{
    for (size_t i = p->n_cni; i-- > 0;)
        if (strcmp(p->cni[i].uid, uid) == 0)
            cni_remove(p, i);
}

static const struct zt_cni_pod *cni_find(const struct zt_pods *p, const char *uid)
{
    for (size_t i = 0; i < p->n_cni; i++)
        if (strcmp(p->cni[i].uid, uid) == 0)
            return &p->cni[i];
    return NULL;
}

/* Enrolled and on this node, with a netns to find: named by the CNI gate (the pod may not have
 * its IP in the API yet), annotated, or discoverable under proc-root. */
static bool wanted(const struct zt *zt, const struct gm_workload *w)
{
    if (!w->enrolled || !w->node || !zt->node || strcmp(w->node, zt->node) != 0)
        return false;
    if (cni_find(&zt->pods, w->uid))
        return true;
    return (w->netns || zt->set.proc_root[0]) && w->ip.family;
}

static bool same_path(const char *a, const char *b)
{
    char pa[512], pb[512];

    zt_netns_path(a, pa, sizeof(pa));
    zt_netns_path(b, pb, sizeof(pb));
    return strcmp(pa, pb) == 0;
}

/* Does the pod's capture still match where its netns is said to be? The CNI gate's word comes
 * first; a pod captured through it stays until its netns goes (the check timer sees that). */
static bool same_netns(const struct zt_pods *p, const struct zt_pod *pod,
                       const struct gm_workload *w)
{
    const struct zt_cni_pod *e = cni_find(p, pod->uid);

    if (e)
        return !pod->discovered && same_path(pod->netns, e->netns);
    if (pod->cni) /* kept while it works; a failed one goes back to the annotation or proc-root */
        return pod->state != ZT_POD_FAILED;
    if (pod->discovered)
        return w->netns == NULL;
    return w->netns && same_path(pod->netns, w->netns);
}

static void add_pod(struct zt_pods *p, const struct gm_workload *w)
{
    if ((int64_t)p->n >= p->zt->set.max_pods) {
        GM_LOG_WARN("capture", "max-pods reached, pod not captured", "pod=%s/%s", w->namespace,
                    w->name);
        return;
    }
    struct zt_pod *pod = gm_xcalloc(1, sizeof(*pod));
    pod->owner = p;
    pod->uid = gm_xstrdup(w->uid);
    pod->name = gm_xstrdup(w->name);
    pod->namespace = gm_xstrdup(w->namespace);
    const struct zt_cni_pod *e = cni_find(p, w->uid);
    const char *netns = e ? e->netns : w->netns;
    pod->netns = netns ? gm_xstrdup(netns) : NULL;
    pod->discovered = netns == NULL;
    pod->cni = e != NULL;
    pod->nsfd = -1;
    pod->seen = true;
    GM_VEC_PUSH(p->v, p->n, p->cap);
    p->v[p->n - 1] = pod;
    start_pod(p, pod);
}

void zt_pods_reconcile(struct zt_pods *p, const struct gm_snapshot *s)
{
    if (!p->zt->workers_started || s == NULL)
        return;
    if (p->snap != s) {
        gm_snapshot_unref(p->snap);
        p->snap = gm_snapshot_ref((struct gm_snapshot *)s);
    }
    for (size_t i = p->n_cni; i-- > 0;) {
        if (gm_snapshot_workload_by_uid(s, p->cni[i].uid) == NULL) {
            cni_remove(p, i); /* the pod is gone: so is what the gate said about it */
        }
    }
    for (size_t i = 0; i < p->n; i++)
        p->v[i]->seen = false;
    for (size_t i = 0; i < s->n_workloads; i++) {
        const struct gm_workload *w = &s->workloads[i];
        if (!wanted(p->zt, w))
            continue;
        struct zt_pod *pod = find(p, w->uid);
        if (pod && !same_netns(p, pod, w)) {
            pod->seen = false; /* sandbox re-created: drop the old capture first */
            continue;
        }
        if (pod)
            pod->seen = pod->state != ZT_POD_REMOVING;
        else
            add_pod(p, w);
    }
    for (size_t i = p->n; i-- > 0;) {
        struct zt_pod *pod = p->v[i];
        if (!pod->seen && pod->state != ZT_POD_REMOVING)
            stop_pod(p, pod);
    }
}

static void on_retry(uv_timer_t *t)
{
    struct zt_pods *p = container_of(t, struct zt_pods, retry);
    uint64_t delay = 0;

    /* a pod due later (on the 1 s cadence) waits while others are retried fast */
    uint64_t now = uv_now(t->loop);
    for (size_t i = 0; i < p->n; i++) {
        struct zt_pod *pod = p->v[i];
        if (pod->state != ZT_POD_FAILED || pod->busy)
            continue;
        if (now < pod->retry_at) {
            uint64_t d = pod->retry_at - now;
            delay = delay == 0 || d < delay ? d : delay;
            continue;
        }
        start_pod(p, pod); /* set_failed() sets retry_at again if it fails */
        if (pod->state == ZT_POD_FAILED) {
            uint64_t d = pod->retry_at > now ? pod->retry_at - now : ZT_RETRY_FAST_MS;
            delay = delay == 0 || d < delay ? d : delay;
        }
    }
    if (delay)
        uv_timer_start(&p->retry, on_retry, delay, 0);
}

bool zt_pods_ready(const struct zt_pods *p, char *reason, size_t len)
{
    for (size_t i = 0; i < p->n; i++) {
        if (p->v[i]->state != ZT_POD_CAPTURED) {
            snprintf(reason, len, "pod %s/%s is %s", p->v[i]->namespace, p->v[i]->name,
                     state_names[p->v[i]->state]);
            return false;
        }
    }
    return true;
}

json_t *zt_pods_dump(const struct zt_pods *p)
{
    json_t *arr = json_array();

    for (size_t i = 0; i < p->n; i++) {
        const struct zt_pod *pod = p->v[i];
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s?, s:s, s:i, s:s}", "uid",
                                             pod->uid, "pod", pod->name, "namespace",
                                             pod->namespace, "netns", pod->netns, "state",
                                             state_names[pod->state], "attempts", pod->attempts,
                                             "source", pod->reply_routing ? "client" : "pod"));
        json_t *o = json_array_get(arr, json_array_size(arr) - 1);
        if (pod->ns_ino)
            json_object_set_new(o, "netns_inode", json_integer((json_int_t)pod->ns_ino));
        if (pod->error[0])
            json_object_set_new(o, "error", json_string(pod->error));
        if (pod->cni)
            json_object_set_new(o, "cni", json_true());
    }
    return arr;
}

void zt_pods_stop_listening(struct zt_pods *p)
{
    p->stopping = true;
    uv_timer_stop(&p->check);
    uv_timer_stop(&p->again);
    for (size_t i = p->n; i-- > 0;)
        if (p->v[i]->state != ZT_POD_REMOVING) {
            p->v[i]->seen = false;
            stop_pod(p, p->v[i]);
        }
}

void zt_pods_done(struct zt_pods *p)
{
    uv_close((uv_handle_t *)&p->retry, NULL);
    uv_close((uv_handle_t *)&p->check, NULL);
    uv_close((uv_handle_t *)&p->again, NULL);
    for (int i = 0; i < ZT_POD__MAX; i++)
        gm_metrics_unref(p->m_state[i]);
    gm_metrics_unref(p->m_moves);
    gm_snapshot_unref(p->snap);
    p->snap = NULL;
    for (size_t i = 0; i < p->n; i++)
        pod_free(p->v[i]);
    free(p->v);
    p->v = NULL;
    p->n = 0;
    free(p->scan);
    p->scan = NULL;
    p->n_scan = 0;
    for (size_t i = 0; i < p->n_cni; i++)
        cni_free(&p->cni[i]);
    free(p->cni);
    p->cni = NULL;
    p->n_cni = 0;
}

void zt_pods_cni_add(struct zt_pods *p, const char *uid, const char *container_id,
                     const char *netns)
{
    struct zt_cni_pod *e = (struct zt_cni_pod *)cni_find(p, uid);
    char why[600];

    if (e == NULL) {
        GM_VEC_PUSH(p->cni, p->n_cni, p->cap_cni);
        e = &p->cni[p->n_cni - 1];
        e->uid = gm_xstrdup(uid);
    } else {
        free(e->container_id);
        free(e->netns);
    }
    e->container_id = gm_xstrdup(container_id);
    e->netns = gm_xstrdup(netns);
    struct zt_pod *pod = find(p, uid);
    if (pod && pod->state == ZT_POD_CAPTURED && !pod->busy && pod->ns_ino && !pod->discovered &&
        same_path(pod->netns, netns) && !is_captured_netns(pod, netns, why, sizeof(why))) {
        /* the same path names a new netns (a sandbox re-created under the same name): move now
         * rather than at the next check */
        GM_LOG_INFO("capture", "pod network namespace replaced (named by CNI): capture moves",
                    "pod=%s/%s reason=%s", pod->namespace, pod->name, why);
        p->moved++;
        if (p->m_moves)
            gm_metrics_inc(p->m_moves);
        stop_pod(p, pod);
    } else if (pod && pod->state == ZT_POD_FAILED && !pod->busy) {
        pod->retry_at = 0; /* the sandbox exists now: try at once */
        uv_timer_start(&p->retry, on_retry, 0, 0);
    }
    if (p->snap && !p->stopping)
        zt_pods_reconcile(p, p->snap);
}

void zt_pods_cni_del(struct zt_pods *p, const char *container_id)
{
    bool removed = false;

    for (size_t i = p->n_cni; i-- > 0;) {
        if (strcmp(p->cni[i].container_id, container_id) == 0) {
            cni_remove(p, i);
            removed = true;
        }
    }
    if (removed && p->snap && !p->stopping)
        zt_pods_reconcile(p, p->snap);
}

int zt_pods_cni_captured(const struct zt_pods *p, const char *uid, const char *path, char *why,
                         size_t len)
{
    const struct zt_pod *pod = find((struct zt_pods *)p, uid);

    if (pod == NULL) {
        snprintf(why, len, "not captured yet");
        return 0;
    }
    if (pod->state != ZT_POD_CAPTURED) {
        snprintf(why, len, "capture %s%s%s", state_names[pod->state], pod->error[0] ? ": " : "",
                 pod->error);
        return 0;
    }
    return is_captured_netns(pod, path, why, len) ? 1 : 0;
}
