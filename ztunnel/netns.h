/* Network namespaces: sockets made inside a pod's netns (listeners and outbound connections,
 * all carrying SO_MARK 0x539 so the pod's capture rules skip them) and the pod's capture rules. */
#ifndef ZT_NETNS_H
#define ZT_NETNS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#define ZT_MARK 0x539u

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

/* The nft ruleset that captures a pod's traffic: outbound TCP → 15001 except marked traffic,
 * inbound TCP → 15006 except port 15008. Written into buf; returns its length. */
size_t zt_capture_rules(bool install, char *buf, size_t len);

typedef void (*zt_rules_cb)(void *ctx, int status);

/* Apply (install) or remove the capture rules inside the netns, asynchronously: runs
 * `nsenter --net=PATH nft -f -` on the loop and calls cb with 0 or a negative error. The
 * callback never runs before this returns. */
int zt_capture_apply(uv_loop_t *loop, const char *netns_path, bool install, zt_rules_cb cb,
                     void *ctx);

/* "/run/netns/NAME" for a bare name, the path itself when absolute. */
void zt_netns_path(const char *name_or_path, char *buf, size_t len);

#endif
