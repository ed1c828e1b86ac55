/* gammamesh-cni: the CNI gate's plugin, chained after the node's network plugin. On ADD it asks
 * the node's ztunnel (ztunnel/cni.c, over --cni-socket) whether the new sandbox may start, and
 * the answer waits until an enrolled pod is captured, so no container of it runs uncaptured.
 * ztunnel not running (no socket, connection refused): the pod starts, as without the gate, and
 * is captured when ztunnel comes back. ztunnel answering an error, or not in time: the sandbox
 * fails and the runtime retries it.
 *
 * `gammamesh-cni install|uninstall` put the plugin into a node's CNI directories (the
 * DaemonSet's init container, or by hand on a host). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <dirent.h>

#include "cni_proto.h"

#define PLUGIN_TYPE "gammamesh-cni"
#define STDIN_MAX   (1024 * 1024)
#define SELF_MAX    (64 * 1024 * 1024) /* this executable, copied by install */
#define DEL_TIMEOUT 5000
#define ERR_ENV     4   /* CNI: invalid necessary environment variables */
#define ERR_DECODE  6   /* CNI: failed to decode content */
#define ERR_CONFIG  7   /* CNI: invalid network config */
#define ERR_GAMMA   999 /* plugin-specific */

static const char *cni_version = "1.0.0";

static void print_error(int code, const char *msg, const char *details)
{
    json_t *o = json_pack("{s:s, s:i, s:s, s:s}", "cniVersion", cni_version, "code", code, "msg",
                          msg, "details", details ? details : "");
    char *s = json_dumps(o, JSON_COMPACT);

    printf("%s\n", s ? s : "{}");
    free(s);
    json_decref(o);
}

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

enum ask_status { ASK_ANSWERED = 0, ASK_UNREACHABLE, ASK_FAILED };

/* One request, one reply. ASK_UNREACHABLE: nothing listens at path (ztunnel not running). */
static enum ask_status ask(const char *path, const struct zt_cni_request *req, uint64_t timeout_ms,
                           enum zt_cni_result *result, char *msg, size_t msglen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char buf[ZT_CNI_MSG_MAX];
    size_t n = 0;
    uint64_t deadline = now_ms() + timeout_ms;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(msg, msglen, "socket path too long: %s", path);
        return ASK_FAILED;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(msg, msglen, "socket: %s", strerror(errno));
        return ASK_FAILED;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        close(fd);
        snprintf(msg, msglen, "%s: %s", path, strerror(e));
        return e == ENOENT || e == ECONNREFUSED ? ASK_UNREACHABLE : ASK_FAILED;
    }
    char *line = zt_cni_request_format(req);
    size_t len = strlen(line), off = 0;
    while (off < len) {
        ssize_t k = send(fd, line + off, len - off, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            snprintf(msg, msglen, "sending to %s: %s", path, strerror(errno));
            free(line);
            close(fd);
            return ASK_FAILED;
        }
        off += (size_t)k;
    }
    free(line);
    for (;;) {
        uint64_t now = now_ms();
        if (now >= deadline) {
            snprintf(msg, msglen, "no answer from ztunnel at %s within %llu ms", path,
                     (unsigned long long)timeout_ms);
            break;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, (int)(deadline - now));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            continue;
        ssize_t k = read(fd, buf + n, sizeof(buf) - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            snprintf(msg, msglen, "ztunnel at %s closed the connection without an answer", path);
            break;
        }
        n += (size_t)k;
        char *nl = memchr(buf, '\n', n);
        if (nl == NULL && n < sizeof(buf))
            continue;
        close(fd);
        if (nl == NULL || zt_cni_reply_parse(buf, (size_t)(nl - buf), result, msg, msglen) < 0) {
            snprintf(msg, msglen, "ztunnel at %s sent a malformed answer", path);
            return ASK_FAILED;
        }
        return ASK_ANSWERED;
    }
    close(fd);
    return ASK_FAILED;
}

/* ADD's output: the previous plugin's result, passed on unchanged. */
static void print_prev(json_t *conf)
{
    json_t *prev = json_object_get(conf, "prevResult");
    json_t *o =
        json_is_object(prev) ? json_incref(prev) : json_pack("{s:s}", "cniVersion", cni_version);
    char *s = json_dumps(o, JSON_COMPACT);

    printf("%s\n", s ? s : "{}");
    free(s);
    json_decref(o);
}

/* The sandbox's first IPv4 from prevResult.ips[].address ("a.b.c.d/len"). */
static void prev_ip(json_t *conf, struct gm_ip *ip)
{
    json_t *ips = json_object_get(json_object_get(conf, "prevResult"), "ips");
    size_t i;
    json_t *v;

    json_array_foreach(ips, i, v)
    {
        const char *a = json_string_value(json_object_get(v, "address"));
        char buf[64];
        struct gm_ip x;
        if (a == NULL || strlen(a) >= sizeof(buf))
            continue;
        snprintf(buf, sizeof(buf), "%s", a);
        char *slash = strchr(buf, '/');
        if (slash)
            *slash = '\0';
        if (gm_ip_parse(buf, &x) == 0 && x.family == AF_INET) {
            *ip = x;
            return;
        }
    }
}

static int run_cni(const char *cmd)
{
    if (strcmp(cmd, "VERSION") == 0) {
        printf("{\"cniVersion\":\"1.1.0\",\"supportedVersions\":"
               "[\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"]}\n");
        return 0;
    }
    bool add = strcmp(cmd, "ADD") == 0, del = strcmp(cmd, "DEL") == 0,
         check = strcmp(cmd, "CHECK") == 0;
    if (strcmp(cmd, "STATUS") == 0 || strcmp(cmd, "GC") == 0)
        return 0;
    if (!add && !del && !check) {
        print_error(ERR_ENV, "unknown CNI_COMMAND", cmd);
        return 1;
    }
    size_t len = 0;
    char *in = NULL;
    if (gm_read_fd(0, STDIN_MAX, &in, &len) < 0)
        in = NULL;
    json_error_t jerr;
    json_t *conf = in ? json_loadb(in, len, 0, &jerr) : NULL;
    free(in);
    if (!json_is_object(conf)) {
        json_decref(conf);
        if (del)
            return 0; /* DEL must not fail: the runtime could never remove the sandbox */
        print_error(ERR_DECODE, "gammamesh-cni: the network configuration is not a JSON object",
                    conf ? "" : jerr.text);
        return 1;
    }
    const char *v = json_string_value(json_object_get(conf, "cniVersion"));
    if (v && strlen(v) < 16)
        cni_version = v;
    const char *sock = json_string_value(json_object_get(conf, "socket"));
    json_t *to = json_object_get(conf, "timeout_seconds");
    json_int_t timeout_s = to == NULL ? 30 : json_is_integer(to) ? json_integer_value(to) : -1;
    if (sock == NULL || sock[0] == '\0')
        sock = ZT_CNI_DEFAULT_SOCK;
    if (timeout_s < 1 || timeout_s > ZT_CNI_TIMEOUT_MAX / 1000) {
        if (del) {
            json_decref(conf);
            return 0;
        }
        print_error(ERR_CONFIG, "gammamesh-cni: timeout_seconds must be an integer 1..600", "");
        json_decref(conf);
        return 1;
    }

    const char *args = getenv("CNI_ARGS");
    char ns[256], pod[256], uid[160] = "";
    bool is_pod = args && zt_cni_args_get(args, "K8S_POD_NAMESPACE", ns, sizeof(ns)) &&
                  zt_cni_args_get(args, "K8S_POD_NAME", pod, sizeof(pod));
    if (args)
        zt_cni_args_get(args, "K8S_POD_UID", uid, sizeof(uid));
    const char *netns = getenv("CNI_NETNS");
    const char *cid = getenv("CNI_CONTAINERID");
    struct zt_cni_request req = {
        .command = add   ? ZT_CNI_ADD
                   : del ? ZT_CNI_DEL
                         : ZT_CNI_CHECK,
        .container_id = (char *)(cid ? cid : ""),
        .netns = (char *)(netns ? netns : ""),
        .namespace = is_pod ? ns : "",
        .pod = is_pod ? pod : "",
        .uid = uid,
        .timeout_ms = (uint64_t)timeout_s * 1000,
    };
    enum zt_cni_result result = ZT_CNI_ERROR;
    char msg[800];
    int rc = 0;

    if (del) {
        if (cid && cid[0]) {
            req.timeout_ms = DEL_TIMEOUT;
            (void)ask(sock, &req, DEL_TIMEOUT, &result, msg, sizeof(msg));
        }
        json_decref(conf);
        return 0;
    }
    if (!is_pod) { /* not a Kubernetes pod: nothing of ours */
        if (add)
            print_prev(conf);
        json_decref(conf);
        return 0;
    }
    if (netns == NULL || netns[0] != '/') {
        print_error(ERR_ENV, "gammamesh-cni: CNI_NETNS is not an absolute path",
                    netns ? netns : "unset");
        json_decref(conf);
        return 1;
    }
    prev_ip(conf, &req.ip);
    enum ask_status st = ask(sock, &req, req.timeout_ms, &result, msg, sizeof(msg));
    bool ok = st == ASK_UNREACHABLE ||
              (st == ASK_ANSWERED && (result == ZT_CNI_CAPTURED || result == ZT_CNI_NOT_ENROLLED));
    if (st == ASK_UNREACHABLE)
        fprintf(stderr,
                "gammamesh-cni: warning: ztunnel is not running on this node (%s); pod %s/%s "
                "starts without the gate and is captured when ztunnel comes back\n",
                msg, ns, pod);
    if (!ok) {
        char m[1600];
        snprintf(m, sizeof(m), "gammamesh: pod %s/%s is not captured: %s", ns, pod,
                 msg[0] ? msg : "ztunnel gave no reason");
        print_error(ERR_GAMMA, m, msg);
        rc = 1;
    } else if (add) {
        print_prev(conf);
    }
    json_decref(conf);
    return rc;
}

/* ---- install / uninstall ------------------------------------------------------------------- */

static int write_atomic(const char *dir, const char *name, const void *data, size_t len,
                        mode_t mode)
{
    char tmp[600], dst[600];

    snprintf(tmp, sizeof(tmp), "%s/.%s.gammamesh-tmp", dir, name);
    snprintf(dst, sizeof(dst), "%s/%s", dir, name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    const char *p = data;
    size_t off = 0;
    while (off < len) {
        ssize_t k = write(fd, p + off, len - off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return -e;
        }
        off += (size_t)k;
    }
    if (fchmod(fd, mode) < 0 || fsync(fd) < 0 || close(fd) < 0 || rename(tmp, dst) < 0) {
        int e = errno;
        unlink(tmp);
        return -e;
    }
    return 0;
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && strcmp(s + n - k, suffix) == 0;
}

/* The network configuration files of dir (*.conf, *.conflist, *.json, as libcni reads them) in
 * lexical order: the runtime uses the first. NULL-terminated. */
static char **config_files(const char *dir, int *n)
{
    struct dirent **ents = NULL;
    int k = scandir(dir, &ents, NULL, alphasort);
    char **out = calloc((size_t)(k > 0 ? k : 0) + 1, sizeof(*out));

    *n = 0;
    for (int i = 0; i < k; i++) {
        const char *d = ents[i]->d_name;
        if (out && d[0] != '.' &&
            (has_suffix(d, ".conflist") || has_suffix(d, ".conf") || has_suffix(d, ".json")))
            out[(*n)++] = strdup(d);
        free(ents[i]);
    }
    free(ents);
    return k < 0 ? (free(out), NULL) : out;
}

static void free_list(char **v)
{
    for (char **p = v; p && *p; p++)
        free(*p);
    free(v);
}

/* Removes our entries from a conflist's plugins; returns how many. */
static size_t strip_ours(json_t *plugins)
{
    size_t removed = 0;

    for (size_t i = json_array_size(plugins); i-- > 0;) {
        const char *t = json_string_value(json_object_get(json_array_get(plugins, i), "type"));
        if (t && strcmp(t, PLUGIN_TYPE) == 0) {
            json_array_remove(plugins, i);
            removed++;
        }
    }
    return removed;
}

static int save_conf(const char *dir, const char *name, json_t *conf)
{
    char *s = json_dumps(conf, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s == NULL)
        return -ENOMEM;
    size_t len = strlen(s);
    char *line = realloc(s, len + 2);
    if (line == NULL) {
        free(s);
        return -ENOMEM;
    }
    line[len] = '\n';
    line[len + 1] = '\0';
    int rc = write_atomic(dir, name, line, len + 1, 0644);
    free(line);
    return rc;
}

static int copy_self(const char *bin_dir)
{
    char *buf;
    size_t n;
    int rc = gm_read_file("/proc/self/exe", SELF_MAX, &buf, &n);

    if (rc < 0)
        return rc;
    rc = write_atomic(bin_dir, PLUGIN_TYPE, buf, n, 0755);
    free(buf);
    return rc;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: gammamesh-cni install --bin-dir DIR --conf-dir DIR [--socket PATH] "
               "[--timeout SECONDS] [--watch SECONDS]\n"
               "       gammamesh-cni uninstall --conf-dir DIR [--bin-dir DIR]\n"
               "       (as a CNI plugin: CNI_COMMAND and the network configuration on stdin)\n");
}

struct install_opts {
    const char *bin_dir, *conf_dir, *sock;
    long timeout; /* timeout_seconds of the entry */
    long watch;   /* install: check again this often, in seconds (0: once) */
};

/* A single-plugin configuration (the first file of the conf dir, a *.conf) becomes a list of
 * that plugin, under the same name with .conflist, so that ours can be chained to it; the
 * original goes once the list is written. Returns the list, or NULL with a message. */
static json_t *convert_single(const struct install_opts *o, const char *name, json_t *conf,
                              char *out_name, size_t len)
{
    const char *dot = strrchr(name, '.');
    snprintf(out_name, len, "%.*s.conflist", (int)(dot ? dot - name : (long)strlen(name)), name);
    char path[600];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", o->conf_dir, out_name);
    if (lstat(path, &st) == 0) {
        fprintf(stderr, "gammamesh-cni: %s/%s is a single plugin and %s exists: not converting\n",
                o->conf_dir, name, out_name);
        return NULL;
    }
    json_t *v = json_object_get(conf, "cniVersion"), *nm = json_object_get(conf, "name");
    if (!json_is_string(nm) || !json_is_string(json_object_get(conf, "type"))) {
        fprintf(stderr, "gammamesh-cni: %s/%s: not a network configuration\n", o->conf_dir, name);
        return NULL;
    }
    json_t *list = json_object();
    if (json_is_string(v))
        json_object_set(list, "cniVersion", v);
    json_object_set(list, "name", nm);
    json_t *plugin = json_deep_copy(conf);
    json_object_del(plugin, "cniVersion");
    json_object_del(plugin, "name");
    json_object_set_new(list, "plugins", json_pack("[o]", plugin));
    return list;
}

/* install: our entry in the first configuration file of the conf dir (a single-plugin one is
 * made a list first); uninstall: our entry out of every list. */
static int apply(const struct install_opts *o, bool install)
{
    int n = 0;
    char **files = config_files(o->conf_dir, &n);
    if (files == NULL) {
        fprintf(stderr, "gammamesh-cni: %s: %s\n", o->conf_dir, strerror(errno));
        return 1;
    }
    int rc = 0;
    if (install) {
        if (n == 0) {
            fprintf(stderr,
                    "gammamesh-cni: no network configuration in %s: install the network plugin "
                    "first (or wait for it)\n",
                    o->conf_dir);
            free_list(files);
            return 1;
        }
        int e = copy_self(o->bin_dir);
        if (e < 0) {
            fprintf(stderr, "gammamesh-cni: copying the plugin to %s: %s\n", o->bin_dir,
                    strerror(-e));
            free_list(files);
            return 1;
        }
    }
    for (int i = 0; i < n && (install ? i < 1 : 1); i++) {
        char path[600], name[300];
        json_error_t jerr;
        snprintf(path, sizeof(path), "%s/%s", o->conf_dir, files[i]);
        snprintf(name, sizeof(name), "%s", files[i]);
        json_t *conf = json_load_file(path, JSON_PRESERVE_ORDER, &jerr);
        json_t *plugins = json_object_get(conf, "plugins");
        bool converted = false;
        if (conf && !plugins && install && !has_suffix(files[i], ".conflist")) {
            json_t *list = convert_single(o, files[i], conf, name, sizeof(name));
            json_decref(conf);
            conf = list;
            plugins = json_object_get(conf, "plugins");
            converted = conf != NULL;
            if (conf == NULL) {
                rc = 1;
                continue;
            }
        }
        if (!json_is_array(plugins)) {
            if (install || has_suffix(files[i], ".conflist")) {
                fprintf(stderr, "gammamesh-cni: %s: not a network configuration list (%s)\n", path,
                        conf ? "no plugins array" : jerr.text);
                rc = 1;
            }
            json_decref(conf);
            continue;
        }
        size_t removed = strip_ours(plugins);
        if (install)
            json_array_append_new(plugins,
                                  json_pack("{s:s, s:s, s:I}", "type", PLUGIN_TYPE, "socket",
                                            o->sock, "timeout_seconds", (json_int_t)o->timeout));
        if (install || removed) {
            int e = save_conf(o->conf_dir, name, conf);
            if (e < 0) {
                fprintf(stderr, "gammamesh-cni: writing %s/%s: %s\n", o->conf_dir, name,
                        strerror(-e));
                rc = 1;
            } else if (converted && unlink(path) < 0) {
                fprintf(stderr, "gammamesh-cni: %s: %s\n", path, strerror(errno));
                rc = 1;
            } else {
                fprintf(stderr, "gammamesh-cni: %s %s/%s%s%s\n",
                        install ? "chained into" : "removed from", o->conf_dir, name,
                        converted ? ", made from " : "", converted ? files[i] : "");
            }
        }
        json_decref(conf);
    }
    free_list(files);
    if (!install && o->bin_dir) {
        char bin[600];
        snprintf(bin, sizeof(bin), "%s/%s", o->bin_dir, PLUGIN_TYPE);
        if (unlink(bin) < 0 && errno != ENOENT) {
            fprintf(stderr, "gammamesh-cni: %s: %s\n", bin, strerror(errno));
            rc = 1;
        }
    }
    return rc;
}

/* Is the plugin in the bin dir and in the first configuration file (a list) once, as configured?
 * Its place in the list is not checked: another chained plugin that also appends itself must not
 * make the two rewrite the file in turn forever. */
static bool chained(const struct install_opts *o)
{
    char path[600];
    struct stat st;
    int n = 0, ours = 0;
    bool same = false;

    snprintf(path, sizeof(path), "%s/%s", o->bin_dir, PLUGIN_TYPE);
    if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
        return false;
    char **files = config_files(o->conf_dir, &n);
    if (files && n > 0) {
        snprintf(path, sizeof(path), "%s/%s", o->conf_dir, files[0]);
        json_t *conf = json_load_file(path, 0, NULL);
        size_t i;
        json_t *p;
        json_array_foreach(json_object_get(conf, "plugins"), i, p)
        {
            const char *t = json_string_value(json_object_get(p, "type"));
            const char *sk = json_string_value(json_object_get(p, "socket"));
            json_t *to = json_object_get(p, "timeout_seconds");
            if (t && strcmp(t, PLUGIN_TYPE) == 0) {
                ours++;
                same = sk && strcmp(sk, o->sock) == 0 && json_is_integer(to) &&
                       json_integer_value(to) == o->timeout;
            }
        }
        json_decref(conf);
    }
    free_list(files);
    return ours == 1 && same;
}

static volatile sig_atomic_t watch_stop;

static void on_stop_signal(int sig)
{
    (void)sig;
    watch_stop = 1;
}

/* install --watch: install, then put the entry back whenever the network plugin rewrites its
 * configuration (kindnetd, Calico and Cilium do when they restart). SIGTERM ends it and leaves
 * the entry: a ztunnel that is not running lets pods through anyway. */
static int watch(const struct install_opts *o)
{
    struct sigaction sa = {.sa_handler = on_stop_signal};

    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    (void)apply(o, true);
    fprintf(stderr, "gammamesh-cni: checking %s and %s every %ld s\n", o->conf_dir, o->bin_dir,
            o->watch);
    while (!watch_stop) {
        struct timespec ts = {.tv_sec = o->watch};
        while (!watch_stop && nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
        if (!watch_stop && !chained(o)) {
            fprintf(stderr, "gammamesh-cni: the plugin is missing from the chain (was the "
                            "network configuration rewritten?): installing again\n");
            (void)apply(o, true);
        }
    }
    fprintf(stderr, "gammamesh-cni: stopped watching; the plugin stays chained\n");
    return 0;
}

static bool parse_seconds(const char *val, long max, long *out)
{
    char *end;
    long v = strtol(val, &end, 10);

    if (end == val || *end != '\0' || v < 1 || v > max)
        return false;
    *out = v;
    return true;
}

static int run_install(int argc, char **argv, bool install)
{
    struct install_opts o = {.sock = ZT_CNI_DEFAULT_SOCK, .timeout = 30};

    for (int i = 2; i < argc; i += 2) { /* every option takes a value */
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = val != NULL;
        if (ok && strcmp(argv[i], "--bin-dir") == 0)
            o.bin_dir = val;
        else if (ok && strcmp(argv[i], "--conf-dir") == 0)
            o.conf_dir = val;
        else if (ok && install && strcmp(argv[i], "--socket") == 0)
            o.sock = val;
        else if (ok && install && strcmp(argv[i], "--timeout") == 0)
            ok = parse_seconds(val, 600, &o.timeout);
        else if (ok && install && strcmp(argv[i], "--watch") == 0)
            ok = parse_seconds(val, 86400, &o.watch);
        else
            ok = false;
        if (!ok) {
            usage(stderr);
            return 2;
        }
    }
    if (o.conf_dir == NULL || (install && o.bin_dir == NULL) || o.sock[0] != '/') {
        usage(stderr);
        return 2;
    }
    return install && o.watch ? watch(&o) : apply(&o, install);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "install") == 0)
        return run_install(argc, argv, true);
    if (argc > 1 && strcmp(argv[1], "uninstall") == 0)
        return run_install(argc, argv, false);
    if (argc > 1 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0)) {
        printf("gammamesh-cni %s\n", GM_VERSION);
        return 0;
    }
    if (argc > 1) {
        usage(strcmp(argv[1], "--help") == 0 ? stdout : stderr);
        return strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    const char *cmd = getenv("CNI_COMMAND");
    if (cmd == NULL || cmd[0] == '\0') {
        print_error(ERR_ENV, "gammamesh-cni: CNI_COMMAND is not set", "");
        return 1;
    }
    return run_cni(cmd);
}
