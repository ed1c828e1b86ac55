/*
 * tcp-relay: the least a TCP proxy can do, as a reference for the L4 benchmark. It accepts on
 * LISTEN, opens a new connection to TARGET for each accepted one, and copies bytes both ways
 * with half-close: no TLS, no framing, no policy, no logs, one thread, epoll.
 *
 *     tcp-relay LISTEN_IP:PORT TARGET_IP:PORT
 *
 * Two of them in a row (client node, server node) are the floor of any two-proxy data plane on
 * the same topology: the ztunnel pair's extra cost over that pair is what HBONE and the mesh add.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF (256 * 1024)

struct pipe_half {
    int from, to;
    char *buf;
    size_t off, len;
    bool eof;  /* from sent FIN */
    bool shut; /* FIN forwarded to `to` */
};

struct relay {
    int a, b; /* accepted, connected */
    bool connected;
    bool dead;          /* closed; freed after the current batch of events */
    struct relay *next; /* the dead list */
    struct pipe_half ab, ba;
};

/* epoll data: the relay and which side (0: a, 1: b), packed in the pointer's low bit. */
static void *tag(struct relay *r, int side)
{
    return (void *)((uintptr_t)r | (uintptr_t)side);
}

static int parse_addr(const char *s, struct sockaddr_in *sa)
{
    char host[64];
    const char *colon = strrchr(s, ':');

    if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = 0;
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)atoi(colon + 1));
    return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

static struct relay *dead_list;

/* Closes both sockets now; the memory goes after the batch (another event may name it). */
static void relay_free(int ep, struct relay *r)
{
    if (r->dead)
        return;
    r->dead = true;
    epoll_ctl(ep, EPOLL_CTL_DEL, r->a, NULL);
    epoll_ctl(ep, EPOLL_CTL_DEL, r->b, NULL);
    close(r->a);
    close(r->b);
    r->next = dead_list;
    dead_list = r;
}

static void reap(void)
{
    while (dead_list) {
        struct relay *r = dead_list;
        dead_list = r->next;
        free(r->ab.buf);
        free(r->ba.buf);
        free(r);
    }
}

/* Moves what it can from h->from to h->to; -1 on an error. */
static int pump(struct pipe_half *h)
{
    for (;;) {
        if (h->len > 0) {
            ssize_t w = send(h->to, h->buf + h->off, h->len, MSG_NOSIGNAL);
            if (w < 0)
                return errno == EAGAIN ? 0 : -1;
            h->off += (size_t)w;
            h->len -= (size_t)w;
            if (h->len > 0)
                return 0;
            h->off = 0;
        }
        if (h->eof) {
            if (!h->shut) {
                shutdown(h->to, SHUT_WR);
                h->shut = true;
            }
            return 0;
        }
        ssize_t n = recv(h->from, h->buf, BUF, 0);
        if (n == 0) {
            h->eof = true;
            continue;
        }
        if (n < 0)
            return errno == EAGAIN ? 0 : -1;
        h->len = (size_t)n;
    }
}

static void watch(int ep, int op, struct relay *r, int side)
{
    int fd = side ? r->b : r->a;
    struct pipe_half *in = side ? &r->ba : &r->ab;  /* what this fd reads */
    struct pipe_half *out = side ? &r->ab : &r->ba; /* what this fd writes */
    struct epoll_event ev = {.data.ptr = tag(r, side)};

    if (!in->eof && in->len == 0)
        ev.events |= EPOLLIN;
    if (out->len > 0 || (side == 1 && !r->connected))
        ev.events |= EPOLLOUT;
    epoll_ctl(ep, op, fd, &ev);
}

static int set_nb(int fd)
{
    int one = 1;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

int main(int argc, char **argv)
{
    struct sockaddr_in la, ta;
    struct epoll_event evs[64];
    int one = 1;

    if (argc != 3 || parse_addr(argv[1], &la) < 0 || parse_addr(argv[2], &ta) < 0) {
        fprintf(stderr, "usage: tcp-relay LISTEN_IP:PORT TARGET_IP:PORT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ls < 0 || bind(ls, (struct sockaddr *)&la, sizeof(la)) < 0 || listen(ls, 1024) < 0) {
        perror("tcp-relay: listen");
        return 1;
    }
    int ep = epoll_create1(0);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &lev);
    fprintf(stderr, "tcp-relay: %s -> %s\n", argv[1], argv[2]);
    for (;;) {
        int n = epoll_wait(ep, evs, 64, -1);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL) {
                int a;
                while ((a = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    struct relay *r = calloc(1, sizeof(*r));
                    r->a = a;
                    r->b = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
                    set_nb(a);
                    set_nb(r->b);
                    r->ab = (struct pipe_half){.from = a, .to = r->b, .buf = malloc(BUF)};
                    r->ba = (struct pipe_half){.from = r->b, .to = a, .buf = malloc(BUF)};
                    if (connect(r->b, (struct sockaddr *)&ta, sizeof(ta)) < 0 &&
                        errno != EINPROGRESS) {
                        relay_free(ep, r);
                        continue;
                    }
                    watch(ep, EPOLL_CTL_ADD, r, 0);
                    watch(ep, EPOLL_CTL_ADD, r, 1);
                }
                continue;
            }
            struct relay *r = (struct relay *)((uintptr_t)evs[i].data.ptr & ~(uintptr_t)1);
            int side = (int)((uintptr_t)evs[i].data.ptr & 1);
            if (r->dead)
                continue;
            if (side == 1 && !r->connected) {
                int err = 0;
                socklen_t el = sizeof(err);
                getsockopt(r->b, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err != 0) {
                    relay_free(ep, r);
                    continue;
                }
                r->connected = true;
            }
            if (!r->connected || pump(&r->ab) < 0 || pump(&r->ba) < 0) {
                if (!r->connected && !(evs[i].events & (EPOLLERR | EPOLLHUP)))
                    continue;
                relay_free(ep, r);
                continue;
            }
            if (r->ab.shut && r->ba.shut) {
                relay_free(ep, r);
                continue;
            }
            watch(ep, EPOLL_CTL_MOD, r, 0);
            watch(ep, EPOLL_CTL_MOD, r, 1);
        }
        reap();
    }
}
