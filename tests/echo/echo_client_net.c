/* Blocking sockets with deadlines for echo-client: dial, send, receive. */
#include "echo_client.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

uint64_t ec_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Wait for events on fd until deadline: 0, -ETIMEDOUT or a negative errno. */
static int wait_fd(int fd, short events, uint64_t deadline)
{
    for (;;) {
        uint64_t now = ec_now_ms();
        if (now >= deadline)
            return -ETIMEDOUT;
        uint64_t left = deadline - now;
        struct pollfd pfd = {.fd = fd, .events = events};
        int n = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
}

const char *ec_net_strerror(int err)
{
    if (err == -ETIMEDOUT)
        return "timeout";
    return strerror(-err);
}

static int dial_one(const struct addrinfo *ai, uint64_t deadline)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    int rc, one = 1;

    if (fd < 0)
        return -errno;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (errno != EINPROGRESS) {
            rc = -errno;
            goto fail;
        }
        rc = wait_fd(fd, POLLOUT, deadline);
        if (rc < 0)
            goto fail;
        int soerr = 0;
        socklen_t len = sizeof(soerr);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0) {
            rc = -errno;
            goto fail;
        }
        if (soerr) {
            rc = -soerr;
            goto fail;
        }
    }
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
        rc = -errno;
        goto fail;
    }
    return fd;
fail:
    close(fd);
    return rc;
}

int ec_net_dial(const char *host, const char *port, uint64_t deadline, char *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rc = -EHOSTUNREACH;

    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0) {
        snprintf(err, EC_ERR_LEN, "dial %s: lookup: %s", host, gai_strerror(gai));
        return -ENOENT;
    }
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        rc = dial_one(ai, deadline);
        if (rc >= 0 || rc == -ETIMEDOUT)
            break;
    }
    freeaddrinfo(res);
    if (rc < 0)
        snprintf(err, EC_ERR_LEN, "dial %s:%s: %s", host, port, ec_net_strerror(rc));
    return rc;
}

int ec_net_send(int fd, const void *p, size_t n, uint64_t deadline)
{
    const char *b = p;

    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w > 0) {
            b += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno != EAGAIN)
            return -errno;
        int rc = wait_fd(fd, POLLOUT, deadline);
        if (rc < 0)
            return rc;
    }
    return 0;
}

ssize_t ec_net_recv(int fd, void *p, size_t n, uint64_t deadline)
{
    for (;;) {
        ssize_t r = recv(fd, p, n, 0);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -errno;
        int rc = wait_fd(fd, POLLIN, deadline);
        if (rc < 0)
            return rc;
    }
}
