/* Network namespaces: sockets made inside a pod's netns (listeners and outbound connections,
 * all carrying SO_MARK 0x539 so the pod's capture rules skip them) and the pod's capture rules. */
#ifndef ZT_NETNS_H
#define ZT_NETNS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#define ZT_MARK 0x539u
/* Source preservation (DESIGN §5): the app's replies to a connection the daemon made from a
 * client's address carry this mark (restored from conntrack) and the pod's rule sends marked
 * packets to a table whose only route delivers everything locally, back to the daemon. */
#define ZT_REPLY_MARK          0x111u
#define ZT_REPLY_MASK          0xfffu
#define ZT_REPLY_TABLE         1337u
#define ZT_REPLY_RULE_PRIORITY 1337u

/* Open a netns by name (/run/netns/NAME) or absolute path; returns an fd or -errno. */
int zt_netns_open(const char *name_or_path);
/* The calling thread's current netns (open at thread start to come back to); fd or -errno. */
int zt_netns_self(void);

/* A TCP socket created inside netns nsfd (-1: the current one), non-blocking, close-on-exec,
 * SO_MARK mark when mark != 0. For listeners, SO_REUSEADDR+SO_REUSEPORT, bound to addr and
 * listening (backlog 511). Returns the fd or -errno; the thread is back in self_fd's netns. */
int zt_netns_socket(int nsfd, int self_fd, int family, uint32_t mark);
int zt_netns_listener(int nsfd, int self_fd, const struct sockaddr *addr, socklen_t len,
                      uint32_t mark);

/* Install the pod's reply routing through rtnetlink inside netns nsfd:
 * `ip route replace local 0.0.0.0/0 dev lo table 1337` and
 * `ip rule add fwmark 0x111/0xfff lookup 1337 pref 1337`. Idempotent; 0 or -errno. It is never
 * removed: without the mark (set only for the daemon's own connections) it routes nothing, and
 * connections still open when capture stops keep working. */
int zt_netns_reply_routing(int nsfd, int self_fd);

/* Make a socket that will connect to a local application keep the client's address: on an
 * IPv4 socket, IP_TRANSPARENT and a bind to src (port chosen at connect, unique per 4-tuple).
 * A nonzero avoid_port is never chosen: the captured connection from src:avoid_port to the
 * same application port has that 4-tuple in the pod's conntrack. 0 or -errno; the socket is
 * unchanged on failure. */
int zt_netns_bind_source(int fd, const struct sockaddr_in *src, uint16_t avoid_port);

/* zt_capture_rules flags. */
enum {
    ZT_CAPTURE_IPV6 = 1 << 0,        /* the kernel has IPv6: the ip6 table is managed */
    ZT_CAPTURE_REFUSE_IPV6 = 1 << 1, /* install: reset the pod's IPv6 TCP (not captured) */
};

/* The nft ruleset that captures a pod's traffic: outbound TCP → 15001 except marked traffic,
 * inbound TCP → 15006 except port 15008; the conntrack marking that routes the replies of
 * the daemon's connections to the app back to it; and, by flags, the table that refuses the
 * pod's IPv6 TCP. Written into buf; returns its length (0: it did not fit). */
size_t zt_capture_rules(bool install, unsigned flags, char *buf, size_t len);

typedef void (*zt_rules_cb)(void *ctx, int status);

/* Apply (install) or remove the capture rules inside the netns, asynchronously: runs
 * `nsenter --net=PATH nft -f -` on the loop and calls cb with 0 or a negative error. The
 * callback never runs before this returns. */
int zt_capture_apply(uv_loop_t *loop, const char *netns_path, bool install, unsigned flags,
                     zt_rules_cb cb, void *ctx);

/* Pods found among the processes under proc_root (the host's /proc): the pod uid that each
 * process's cgroup path names ("pod" then the uid, with '-' or '_' between its groups, as
 * kubelet's cgroupfs and systemd drivers write it) and the lowest pid for it (the sandbox's
 * pause process is usually the first). */
struct zt_pod_pid {
    char uid[37];
    long pid;
};
/* Fills a new array (the caller frees it); returns how many, or -errno when proc_root cannot
 * be read. */
long zt_netns_scan_pods(const char *proc_root, struct zt_pod_pid **out);

/* "/run/netns/NAME" for a bare name, the path itself when absolute. */
void zt_netns_path(const char *name_or_path, char *buf, size_t len);

#endif
