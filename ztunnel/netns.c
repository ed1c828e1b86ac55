/* Sockets inside pod network namespaces, and the pod capture rules. */
#include "netns.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fib_rules.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gammamesh/log.h"
#include "gammamesh/util.h"

void zt_netns_path(const char *name_or_path, char *buf, size_t len)
{
    if (name_or_path[0] == '/')
        snprintf(buf, len, "%s", name_or_path);
    else
        snprintf(buf, len, "/run/netns/%s", name_or_path);
}

int zt_netns_open(const char *name_or_path)
{
    char path[512];

    if (strchr(name_or_path, '/') && name_or_path[0] != '/')
        return -EINVAL; /* a relative path is never a netns name */
    zt_netns_path(name_or_path, path, sizeof(path));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int zt_netns_self(void)
{
    int fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

static int enter(int nsfd)
{
    if (nsfd < 0)
        return 0;
    return setns(nsfd, CLONE_NEWNET) < 0 ? -errno : 0;
}

static void leave(int nsfd, int self_fd)
{
    /* Failing to return would leave this thread in a pod's netns: never continue. */
    if (nsfd >= 0 && setns(self_fd, CLONE_NEWNET) < 0)
        GM_ASSERT(!"setns back to the daemon's own netns failed");
}

static int make_socket(int family, uint32_t mark)
{
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;

    if (fd < 0)
        return -errno;
    if (mark && setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    setsockopt(fd, IPPROTO_TCP, 1 /* TCP_NODELAY */, &one, sizeof(one));
    return fd;
}

int zt_netns_socket(int nsfd, int self_fd, int family, uint32_t mark)
{
    int rc = enter(nsfd);

    if (rc < 0)
        return rc;
    int fd = make_socket(family, mark);
    leave(nsfd, self_fd);
    return fd;
}

int zt_netns_listener(int nsfd, int self_fd, const struct sockaddr *addr, socklen_t len,
                      uint32_t mark)
{
    int one = 1, rc = enter(nsfd);

    if (rc < 0)
        return rc;
    int fd = make_socket(addr->sa_family, mark);
    if (fd < 0)
        goto out;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
        bind(fd, addr, len) < 0 || listen(fd, 511) < 0) {
        int err = -errno;
        close(fd);
        fd = err;
    }
out:
    leave(nsfd, self_fd);
    return fd;
}

/* ---- reply routing (rtnetlink) ---- */

struct nl_req {
    struct nlmsghdr nh;
    union {
        struct fib_rule_hdr rule;
        struct rtmsg route;
    } u;
    char attrs[64];
};

static void nl_attr(struct nl_req *r, unsigned short type, uint32_t value)
{
    struct rtattr *a = (struct rtattr *)((char *)r + NLMSG_ALIGN(r->nh.nlmsg_len));

    GM_ASSERT(NLMSG_ALIGN(r->nh.nlmsg_len) + RTA_SPACE(sizeof(value)) <= sizeof(*r));
    a->rta_type = type;
    a->rta_len = RTA_LENGTH(sizeof(value));
    memcpy(RTA_DATA(a), &value, sizeof(value));
    r->nh.nlmsg_len = NLMSG_ALIGN(r->nh.nlmsg_len) + RTA_SPACE(sizeof(value));
}

/* Send one request and wait for its acknowledgement: 0 or the kernel's -errno. */
static int nl_transact(int fd, struct nl_req *r, uint32_t seq)
{
    char buf[1024];

    r->nh.nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
    r->nh.nlmsg_seq = seq;
    if (send(fd, r, r->nh.nlmsg_len, 0) < 0)
        return -errno;
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        size_t left = (size_t)n;
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, left);
             h = NLMSG_NEXT(h, left)) {
            if (h->nlmsg_seq != seq || h->nlmsg_type != NLMSG_ERROR)
                continue;
            if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr)))
                return -EPROTO;
            return ((struct nlmsgerr *)NLMSG_DATA(h))->error;
        }
    }
}

static int reply_rule(int fd)
{
    struct nl_req r = {0};

    r.nh.nlmsg_len = NLMSG_LENGTH(sizeof(r.u.rule));
    r.nh.nlmsg_type = RTM_NEWRULE;
    r.nh.nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
    r.u.rule.family = AF_INET;
    r.u.rule.action = FR_ACT_TO_TBL;
    nl_attr(&r, FRA_PRIORITY, ZT_REPLY_RULE_PRIORITY);
    nl_attr(&r, FRA_FWMARK, ZT_REPLY_MARK);
    nl_attr(&r, FRA_FWMASK, ZT_REPLY_MASK);
    nl_attr(&r, FRA_TABLE, ZT_REPLY_TABLE);
    int rc = nl_transact(fd, &r, 1);
    return rc == -EEXIST ? 0 : rc;
}

static int reply_route(int fd)
{
    struct nl_req r = {0};

    r.nh.nlmsg_len = NLMSG_LENGTH(sizeof(r.u.route));
    r.nh.nlmsg_type = RTM_NEWROUTE;
    r.nh.nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;
    r.u.route.rtm_family = AF_INET;
    r.u.route.rtm_table = RT_TABLE_UNSPEC; /* the table is in RTA_TABLE: it is above 255 */
    r.u.route.rtm_protocol = RTPROT_STATIC;
    r.u.route.rtm_scope = RT_SCOPE_HOST;
    r.u.route.rtm_type = RTN_LOCAL;
    nl_attr(&r, RTA_TABLE, ZT_REPLY_TABLE);
    nl_attr(&r, RTA_OIF, 1); /* lo is interface 1 in every netns */
    return nl_transact(fd, &r, 2);
}

/* The app's accepted sockets take the mark of the daemon's SYN, so their route (through the
 * reply table) is looked up once and cached, not redone for every reply packet. Best effort:
 * where /proc/sys is read-only, every reply is re-routed by its mark instead. Call inside the
 * pod's netns: /proc/sys/net shows the netns of the calling thread. 0 or -errno. */
static int fwmark_accept_on(void)
{
    int fd = open("/proc/sys/net/ipv4/tcp_fwmark_accept", O_WRONLY | O_CLOEXEC);
    int rc = fd >= 0 && write(fd, "1", 1) == 1 ? 0 : -errno;

    if (fd >= 0)
        close(fd);
    return rc;
}

int zt_netns_reply_routing(int nsfd, int self_fd)
{
    int rc = enter(nsfd);

    if (rc < 0)
        return rc;
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    rc = fd < 0 ? -errno : 0;
    int fw = fwmark_accept_on();
    leave(nsfd, self_fd);
    if (rc < 0)
        return rc;
    if (fw < 0)
        GM_LOG_DEBUG("capture", "tcp_fwmark_accept not set: replies are re-routed per packet",
                     "error=%s", strerror(-fw));
    struct timeval tv = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    /* Route before rule: a marked packet never meets a rule pointing at an empty table. */
    rc = reply_route(fd);
    if (rc == 0)
        rc = reply_rule(fd);
    close(fd);
    return rc;
}

#ifndef IP_LOCAL_PORT_RANGE
#define IP_LOCAL_PORT_RANGE 51 /* Linux 6.3 */
#endif

int zt_netns_bind_source(int fd, const struct sockaddr_in *src, uint16_t avoid_port)
{
    int one = 1;
    struct sockaddr_in a = *src;

    a.sin_port = 0;
    if (avoid_port) {
        /* Below or above avoid_port, whichever side of the default range (32768-60999) is
         * larger. The kernel applies each bound only where it lies inside the netns's own
         * range, so a port outside that range (which connect never picks) changes nothing. */
        uint32_t range = avoid_port > 46884 ? ((uint32_t)(avoid_port - 1) << 16) | 1u
                                            : (65535u << 16) | (uint32_t)(avoid_port + 1);
        if (setsockopt(fd, SOL_IP, IP_LOCAL_PORT_RANGE, &range, sizeof(range)) < 0)
            return -errno;
    }
    if (setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof(one)) < 0)
        return -errno;
    /* The port is picked at connect time, unique per 4-tuple rather than per address. */
    setsockopt(fd, SOL_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        int err = -errno, zero = 0;
        setsockopt(fd, SOL_IP, IP_TRANSPARENT, &zero, sizeof(zero));
        return err;
    }
    return 0;
}

/* ---- capture rules (nft) ---- */

/* IPv6 is not captured: with ZT_CAPTURE_REFUSE_IPV6 the pod's IPv6 TCP, other than on lo and
 * the daemon's own, is reset in both directions. A reset, not a drop: dual-stack clients fall
 * back to IPv4 at once, and IPv4 is captured, so nothing crosses the mesh in plaintext. */
static const char ipv6_refuse[] =
    "table ip6 gammamesh {\n"
    "  chain output {\n"
    "    type filter hook output priority 0; policy accept;\n"
    "    meta mark 0x%x return\n"
    "    oifname \"lo\" return\n"
    "    tcp flags rst return\n" /* the resets the input chain sends */
    "    meta l4proto tcp reject with tcp reset\n"
    "  }\n"
    "  chain input {\n"
    "    type filter hook input priority 0; policy accept;\n"
    "    iifname \"lo\" return\n"
    "    meta l4proto tcp reject with tcp reset\n"
    "  }\n"
    "}\n";

size_t zt_capture_rules(bool install, unsigned flags, char *buf, size_t len)
{
    int n, m = 0;

    /* the IPv6 table goes first: on removal, and when IPv6 is let through, it is deleted */
    if (flags & ZT_CAPTURE_IPV6) {
        m = snprintf(buf, len, "table ip6 gammamesh\ndelete table ip6 gammamesh\n");
        if (m > 0 && (size_t)m < len && install && (flags & ZT_CAPTURE_REFUSE_IPV6))
            m += snprintf(buf + m, len - (size_t)m, ipv6_refuse, ZT_MARK);
        if (m < 0 || (size_t)m >= len)
            return 0;
        buf += m;
        len -= (size_t)m;
    }
    if (!install)
        n = snprintf(buf, len, "table ip gammamesh\ndelete table ip gammamesh\n");
    else
        n = snprintf(
            buf, len,
            "table ip gammamesh\n"
            "delete table ip gammamesh\n"
            "table ip gammamesh {\n"
            "  chain output {\n"
            "    type nat hook output priority -100; policy accept;\n"
            "    meta mark 0x%x return\n"
            "    oifname \"lo\" return\n"
            "    ip daddr 127.0.0.0/8 return\n"
            "    meta l4proto tcp redirect to :15001\n"
            "  }\n"
            "  chain prerouting {\n"
            "    type nat hook prerouting priority -100; policy accept;\n"
            "    meta mark 0x%x return\n"
            "    iifname \"lo\" return\n"
            "    tcp dport 15008 return\n"
            "    meta l4proto tcp redirect to :15006\n"
            "  }\n"
            "}\n"
            /* Its own table, replaced here but never deleted: connections still open
             * when capture stops keep their replies. The daemon's connections to the
             * app leave through lo: conntrack remembers them and their reply packets
             * take the mark that routes them back (zt_netns_reply_routing). The SYN
             * carries the mark as well, so that the app's accepted socket takes it
             * (tcp_fwmark_accept) and its packets need no re-routing. */
            "table ip gammamesh_reply\n"
            "delete table ip gammamesh_reply\n"
            "table ip gammamesh_reply {\n"
            "  chain output {\n"
            "    type route hook output priority -150; policy accept;\n"
            "    meta mark 0x%x oif \"lo\" ct state new ct mark set 0x%x meta mark set 0x%x "
            "return\n"
            "    ct direction reply ct mark 0x%x meta mark set 0x%x\n"
            "  }\n"
            "}\n",
            ZT_MARK, ZT_MARK, ZT_MARK, ZT_REPLY_MARK, ZT_REPLY_MARK, ZT_REPLY_MARK, ZT_REPLY_MARK);
    return n < 0 || (size_t)n >= len ? 0 : (size_t)(m + n);
}

struct apply_req {
    uv_process_t proc;
    uv_pipe_t in;
    uv_write_t write;
    char rules[4096];
    zt_rules_cb cb;
    void *ctx;
    int status;
    int closes;
};

static void on_apply_closed(uv_handle_t *h)
{
    struct apply_req *r = h->data;

    if (--r->closes == 0) {
        r->cb(r->ctx, r->status);
        free(r);
    }
}

static void on_apply_exit(uv_process_t *p, int64_t status, int sig)
{
    struct apply_req *r = p->data;

    r->status = status == 0 && sig == 0 ? 0 : -EIO;
    uv_close((uv_handle_t *)&r->proc, on_apply_closed);
}

static void on_rules_written(uv_write_t *w, int status)
{
    struct apply_req *r = w->data;

    uv_close((uv_handle_t *)&r->in, on_apply_closed);
}

int zt_capture_apply(uv_loop_t *loop, const char *netns_path, bool install, unsigned flags,
                     zt_rules_cb cb, void *ctx)
{
    struct apply_req *r = gm_xcalloc(1, sizeof(*r));
    char nsarg[600];
    char *args[] = {"nsenter", nsarg, "nft", "-f", "-", NULL};
    uv_stdio_container_t stdio[3];
    uv_process_options_t opts = {0};

    snprintf(nsarg, sizeof(nsarg), "--net=%s", netns_path);
    size_t n = zt_capture_rules(install, flags, r->rules, sizeof(r->rules));
    GM_ASSERT(n > 0 && n < sizeof(r->rules)); /* the ruleset is fixed text: never truncated */
    r->cb = cb;
    r->ctx = ctx;
    uv_pipe_init(loop, &r->in, 0);
    r->in.data = r;
    r->proc.data = r;
    r->write.data = r;
    stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
    stdio[0].data.stream = (uv_stream_t *)&r->in;
    stdio[1].flags = UV_IGNORE;
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = 2;
    opts.file = "nsenter";
    opts.args = args;
    opts.stdio = stdio;
    opts.stdio_count = 3;
    opts.exit_cb = on_apply_exit;
    int rc = uv_spawn(loop, &r->proc, &opts);
    if (rc < 0) {
        r->closes = 1;
        r->status = rc;
        uv_close((uv_handle_t *)&r->in, on_apply_closed);
        return 0; /* reported through the callback, never before return */
    }
    r->proc.data = r;
    r->closes = 2;
    uv_buf_t b = uv_buf_init(r->rules, (unsigned)n);
    rc = uv_write(&r->write, (uv_stream_t *)&r->in, &b, 1, on_rules_written);
    if (rc < 0)
        uv_close((uv_handle_t *)&r->in, on_apply_closed);
    return 0;
}

/* The pod uid named in a cgroup file's text ("...pod<uid>..." with '-' or '_'), if any. */
static bool cgroup_pod_uid(const char *text, char uid[37])
{
    for (const char *p = strstr(text, "pod"); p; p = strstr(p + 3, "pod")) {
        const char *u = p + 3;
        size_t i;
        for (i = 0; i < 36; i++) {
            bool dash = i == 8 || i == 13 || i == 18 || i == 23;
            char c = u[i];
            if (dash ? (c != '-' && c != '_') : !isxdigit((unsigned char)c))
                break;
            uid[i] = dash ? '-' : (char)tolower((unsigned char)c);
        }
        if (i == 36 && !isalnum((unsigned char)u[36])) {
            uid[36] = '\0';
            return true;
        }
    }
    return false;
}

long zt_netns_scan_pods(const char *proc_root, struct zt_pod_pid **out)
{
    DIR *d = opendir(proc_root);
    struct zt_pod_pid *v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;

    *out = NULL;
    if (d == NULL)
        return -errno;
    while ((e = readdir(d)) != NULL) {
        char path[512], text[4096], uid[37];
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        snprintf(path, sizeof(path), "%s/%ld/cgroup", proc_root, pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue; /* gone meanwhile */
        ssize_t len = read(fd, text, sizeof(text) - 1);
        close(fd);
        if (len <= 0)
            continue;
        text[len] = '\0';
        if (!cgroup_pod_uid(text, uid))
            continue;
        size_t i;
        for (i = 0; i < n && strcmp(v[i].uid, uid) != 0; i++)
            ;
        if (i < n) {
            if (pid < v[i].pid)
                v[i].pid = pid;
            continue;
        }
        GM_VEC_PUSH(v, n, cap);
        memcpy(v[n - 1].uid, uid, sizeof(uid));
        v[n - 1].pid = pid;
    }
    closedir(d);
    *out = v;
    return (long)n;
}
