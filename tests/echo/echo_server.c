/* echo-server: a C stand-in for the Gateway API conformance echo image (Istio echo "app").
 *
 *   echo-server [--port=P]... [--grpc=P]... [--tcp=P]... [--tls=P]... [--crt=F] [--key=F]
 *               [--version=V] [--cluster=C] [--istio-version=V] [--bind=ADDR]...
 *
 * Like the image, --port defaults to 8080 and --grpc to 7070 when not given. Every HTTP port
 * also takes h2c by prior knowledge; --grpc ports serve the same handler. --tls ports use TLS
 * when --crt and --key load, plain HTTP otherwise. --bind (not in the image; for tests)
 * replaces the default 0.0.0.0 and :: listen addresses. Unknown arguments are warned about. */
#include "echo.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#define MAX_PORTS 64
#define MAX_BINDS 8

struct port_spec {
    int port;
    enum echo_port_kind kind;
};

struct args {
    struct port_spec ports[MAX_PORTS];
    size_t nports;
    bool seen_port, seen_grpc;
    const char *binds[MAX_BINDS];
    size_t nbinds;
    const char *crt, *key, *version, *cluster, *istio_version;
};

static const char *const kind_names[ECHO_PORT__MAX] = {"http", "grpc", "tls", "tcp"};

static void add_port(struct args *a, int port, enum echo_port_kind kind)
{
    for (size_t i = 0; i < a->nports; i++) {
        struct port_spec *p = &a->ports[i];
        if (p->port != port)
            continue;
        if (kind == ECHO_PORT_TLS || p->kind == ECHO_PORT_TLS) {
            p->kind = ECHO_PORT_TLS; /* --port=P --tls=P: HTTP on P, over TLS */
        } else if (p->kind != kind) {
            fprintf(stderr, "echo-server: warning: port %d given as %s and %s; using %s\n", port,
                    kind_names[p->kind], kind_names[kind], kind_names[kind]);
            p->kind = kind;
        }
        return;
    }
    if (a->nports == MAX_PORTS) {
        fprintf(stderr, "echo-server: warning: more than %d ports; ignoring %d\n", MAX_PORTS, port);
        return;
    }
    a->ports[a->nports++] = (struct port_spec){port, kind};
}

/* "8080" or "8080,8081" as cobra's IntSlice takes them. */
static void add_ports(struct args *a, const char *flag, const char *list, enum echo_port_kind kind)
{
    char *dup = gm_xstrdup(list), *save = NULL;

    for (char *tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *end = NULL;
        errno = 0;
        long port = strtol(tok, &end, 10);
        if (errno || end == tok || *end || port < 1 || port > 65535) {
            fprintf(stderr, "echo-server: warning: %s: bad port '%s' ignored\n", flag, tok);
            continue;
        }
        add_port(a, (int)port, kind);
    }
    free(dup);
}

static const char *const value_flags[] = {
    "--port", "--grpc",    "--tcp",     "--tls",           "--crt",
    "--key",  "--version", "--cluster", "--istio-version", "--bind",
};

static void apply_flag(struct args *a, const char *flag, const char *value)
{
    if (strcmp(flag, "--port") == 0) {
        a->seen_port = true;
        add_ports(a, flag, value, ECHO_PORT_HTTP);
    } else if (strcmp(flag, "--grpc") == 0) {
        a->seen_grpc = true;
        add_ports(a, flag, value, ECHO_PORT_GRPC);
    } else if (strcmp(flag, "--tcp") == 0) {
        add_ports(a, flag, value, ECHO_PORT_TCP);
    } else if (strcmp(flag, "--tls") == 0) {
        add_ports(a, flag, value, ECHO_PORT_TLS);
    } else if (strcmp(flag, "--crt") == 0) {
        a->crt = value;
    } else if (strcmp(flag, "--key") == 0) {
        a->key = value;
    } else if (strcmp(flag, "--version") == 0) {
        a->version = value;
    } else if (strcmp(flag, "--cluster") == 0) {
        a->cluster = value;
    } else if (strcmp(flag, "--istio-version") == 0) {
        a->istio_version = value;
    } else if (a->nbinds < MAX_BINDS) {
        a->binds[a->nbinds++] = value;
    } else {
        fprintf(stderr, "echo-server: warning: more than %d --bind; ignoring %s\n", MAX_BINDS,
                value);
    }
}

static void usage(void)
{
    fputs("usage: echo-server [--port=P]... [--grpc=P]... [--tcp=P]... [--tls=P]... [--crt=F]\n"
          "                   [--key=F] [--version=V] [--cluster=C] [--istio-version=V]\n"
          "                   [--bind=ADDR]...\n",
          stderr);
}

/* Parse argv; only --help stops the program (returns 1). */
static int parse_args(struct args *a, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage();
            return 1;
        }
        const char *eq = strchr(arg, '=');
        size_t flen = eq ? (size_t)(eq - arg) : strlen(arg);
        size_t k;
        for (k = 0; k < GM_ARRAY_LEN(value_flags); k++) {
            if (strlen(value_flags[k]) == flen && strncmp(arg, value_flags[k], flen) == 0)
                break;
        }
        if (k == GM_ARRAY_LEN(value_flags)) {
            fprintf(stderr, "echo-server: warning: unknown argument '%s' ignored\n", arg);
            continue;
        }
        if (!eq && i + 1 >= argc) {
            fprintf(stderr, "echo-server: warning: %s needs a value\n", arg);
            continue;
        }
        apply_flag(a, value_flags[k], eq ? eq + 1 : argv[++i]);
    }
    if (!a->seen_port)
        add_port(a, 8080, ECHO_PORT_HTTP);
    if (!a->seen_grpc)
        add_port(a, 7070, ECHO_PORT_GRPC);
    return 0;
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    static const char *const prefs[] = {"h2", "http/1.1", "http/1.0"};

    for (size_t k = 0; k < GM_ARRAY_LEN(prefs); k++) {
        size_t want = strlen(prefs[k]);
        for (unsigned int i = 0; i < inlen; i += 1u + in[i]) {
            if (in[i] == want && i + 1 + want <= inlen && memcmp(in + i + 1, prefs[k], want) == 0) {
                *out = in + i + 1;
                *outlen = in[i];
                return SSL_TLSEXT_ERR_OK;
            }
        }
    }
    return SSL_TLSEXT_ERR_NOACK;
}

/* A server TLS context from crt/key, or NULL (with a warning) when they do not load. */
static SSL_CTX *tls_context(const char *crt, const char *key)
{
    SSL_CTX *ctx = NULL;

    if (!crt || !key || access(crt, R_OK) != 0 || access(key, R_OK) != 0) {
        fprintf(stderr,
                "echo-server: warning: certificate '%s' or key '%s' unreadable; "
                "--tls ports serve plain HTTP\n",
                crt ? crt : "", key ? key : "");
        return NULL;
    }
    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        goto fail;
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_use_certificate_chain_file(ctx, crt) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1)
        goto fail;
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    return ctx;
fail:
    fprintf(stderr,
            "echo-server: warning: cannot load certificate '%s' / key '%s'; "
            "--tls ports serve plain HTTP\n",
            crt, key);
    SSL_CTX_free(ctx);
    return NULL;
}

static void on_connection(uv_stream_t *s, int status)
{
    struct echo_listener *l = s->data;

    if (status < 0) {
        fprintf(stderr, "echo-server: port %d: accept: %s\n", l->port, uv_strerror(status));
        return;
    }
    echo_conn_accept(l);
}

static void on_listener_closed(uv_handle_t *h)
{
    free(h->data);
}

/* Listen on addr:port. 0, or a negative errno (logged unless quiet). */
static int listen_on(struct echo_server *srv, const char *addr, const struct port_spec *ps,
                     bool quiet)
{
    struct sockaddr_storage ss;
    bool v6 = strchr(addr, ':') != NULL;
    int rc = v6 ? uv_ip6_addr(addr, ps->port, (struct sockaddr_in6 *)&ss)
                : uv_ip4_addr(addr, ps->port, (struct sockaddr_in *)&ss);
    if (rc < 0) {
        fprintf(stderr, "echo-server: bad bind address '%s'\n", addr);
        return rc;
    }
    struct echo_listener *l = gm_xcalloc(1, sizeof(*l));
    rc = uv_tcp_init(srv->loop, &l->tcp);
    if (rc < 0) {
        free(l);
        return rc;
    }
    l->tcp.data = l;
    l->srv = srv;
    l->port = ps->port;
    l->kind = ps->kind;
    l->tls = ps->kind == ECHO_PORT_TLS && srv->ssl_ctx != NULL;
    /* libuv sets SO_REUSEADDR on TCP binds */
    rc = uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss, v6 ? UV_TCP_IPV6ONLY : 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&l->tcp, 511, on_connection);
    if (rc < 0) {
        if (!quiet)
            fprintf(stderr, "echo-server: listen %s port %d: %s\n", addr, ps->port,
                    uv_strerror(rc));
        uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
        return rc;
    }
    l->next = srv->listeners;
    srv->listeners = l;
    fprintf(stderr, "echo-server: listening on %s%s%s:%d (%s%s)\n", v6 ? "[" : "", addr,
            v6 ? "]" : "", ps->port, kind_names[ps->kind],
            ps->kind == ECHO_PORT_TLS && !l->tls ? ", plain" : "");
    return 0;
}

static int listen_all(struct echo_server *srv, const struct args *a)
{
    for (size_t i = 0; i < a->nports; i++) {
        if (a->nbinds == 0) {
            int rc = listen_on(srv, "0.0.0.0", &a->ports[i], false);
            if (rc < 0)
                return rc;
            /* IPv6 is optional: hosts and namespaces without it still run */
            listen_on(srv, "::", &a->ports[i], true);
            continue;
        }
        for (size_t b = 0; b < a->nbinds; b++) {
            int rc = listen_on(srv, a->binds[b], &a->ports[i], false);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

static void stop(struct echo_server *srv)
{
    if (srv->stopping)
        return;
    srv->stopping = true;
    for (struct echo_listener *l = srv->listeners; l; l = l->next)
        uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
    srv->listeners = NULL;
    for (struct echo_conn *c = srv->conns; c; c = c->next)
        echo_conn_close(c, NULL);
    uv_close((uv_handle_t *)&srv->sigterm, NULL);
    uv_close((uv_handle_t *)&srv->sigint, NULL);
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct echo_server *srv = s->data;

    fprintf(stderr, "echo-server: signal %d, exiting\n", signum);
    stop(srv);
}

static int signals_start(struct echo_server *srv)
{
    int rc = uv_signal_init(srv->loop, &srv->sigterm);

    if (rc == 0)
        rc = uv_signal_init(srv->loop, &srv->sigint);
    if (rc < 0)
        return rc;
    srv->sigterm.data = srv;
    srv->sigint.data = srv;
    rc = uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
    if (rc == 0)
        rc = uv_signal_start(&srv->sigint, on_signal, SIGINT);
    return rc;
}

static void info_init(struct echo_server *srv, const struct args *a, char *host, size_t hostlen)
{
    const char *env_host = getenv("HOSTNAME");
    const char *env_version = getenv("SERVICE_VERSION");

    if (env_host && *env_host) {
        snprintf(host, hostlen, "%s", env_host);
    } else if (gethostname(host, hostlen) != 0) {
        snprintf(host, hostlen, "unknown");
    }
    host[hostlen - 1] = '\0';
    srv->info.hostname = host;
    srv->info.version = a->version ? a->version : env_version ? env_version : "";
    srv->info.cluster = a->cluster ? a->cluster : "";
    srv->info.istio_version = a->istio_version ? a->istio_version : "";
}

int main(int argc, char **argv)
{
    static struct args a;
    struct echo_server srv = {0};
    uv_loop_t loop;
    char host[256];
    int rc, status = 1;

    if (parse_args(&a, argc, argv))
        return 0;
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stderr, NULL, _IOLBF, 0);
    info_init(&srv, &a, host, sizeof(host));
    rc = uv_loop_init(&loop);
    if (rc < 0) {
        fprintf(stderr, "echo-server: uv_loop_init: %s\n", uv_strerror(rc));
        return 1;
    }
    srv.loop = &loop;
    for (size_t i = 0; i < a.nports; i++) {
        if (a.ports[i].kind == ECHO_PORT_TLS && srv.ssl_ctx == NULL) {
            srv.ssl_ctx = tls_context(a.crt, a.key);
            break;
        }
    }
    rc = signals_start(&srv);
    if (rc < 0) {
        fprintf(stderr, "echo-server: signals: %s\n", uv_strerror(rc));
        return 1;
    }
    if (listen_all(&srv, &a) < 0)
        stop(&srv);
    else
        status = 0;
    uv_run(&loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(&loop);
    if (rc < 0)
        fprintf(stderr, "echo-server: uv_loop_close: %s\n", uv_strerror(rc));
    SSL_CTX_free(srv.ssl_ctx);
    echo_counters_done(&srv.codes);
    echo_counters_done(&srv.fails);
    return status;
}
