/*
 * Unit tests of common/admin.c and common/daemon.c: real HTTP requests over loopback.
 *
 * The server's loop runs on the main thread; a client thread sends raw requests with blocking
 * sockets, records what it saw with the CHECK macros (the main thread makes no check while the
 * client runs), then asks the loop to close the server through a uv_async_t.
 */
#include "gammamesh/admin.h"
#include "gammamesh/daemon.h"
#include "gammamesh/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "test.h"

#define RESP_MAX 65536

struct response {
    int status;          /* -1: no HTTP response */
    char raw[RESP_MAX];  /* everything received, NUL-terminated */
    const char *body;    /* after the blank line */
    long content_length; /* -1 when absent */
};

static int client_connect(int port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct timeval tv = {.tv_sec = 10};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads until EOF (or the 10 s receive timeout) and parses the status line. */
static void read_response(int fd, struct response *r)
{
    size_t len = 0;
    ssize_t n;
    const char *cl;

    while (len < sizeof(r->raw) - 1 && (n = read(fd, r->raw + len, sizeof(r->raw) - 1 - len)) > 0)
        len += (size_t)n;
    r->raw[len] = '\0';
    r->status = -1;
    r->body = "";
    r->content_length = -1;
    if (sscanf(r->raw, "HTTP/1.1 %d ", &r->status) != 1)
        r->status = -1;
    if (strstr(r->raw, "\r\n\r\n"))
        r->body = strstr(r->raw, "\r\n\r\n") + 4;
    cl = strstr(r->raw, "Content-Length: ");
    if (cl)
        r->content_length = strtol(cl + 16, NULL, 10);
}

/* Sends raw bytes as one request and reads the whole response. */
static int http_raw(int port, const char *req, size_t len, struct response *r)
{
    int fd = client_connect(port);

    if (fd < 0) {
        r->status = -2;
        return -1;
    }
    while (len > 0) {
        ssize_t n = write(fd, req, len);
        if (n <= 0)
            break;
        req += n;
        len -= (size_t)n;
    }
    read_response(fd, r);
    close(fd);
    return r->status;
}

static int http(int port, const char *method, const char *target, struct response *r)
{
    char req[1024];
    int n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: test\r\n\r\n", method, target);

    return http_raw(port, req, (size_t)n, r);
}

/* ---- plain admin server ---- */

static uv_async_t stop_async;
static struct gm_admin *server;
static int server_port;
static int closed_calls;

static void on_hello(const struct gm_admin_request *req, struct gm_admin_response *res, void *ctx)
{
    char name[64];
    int rc = gm_admin_query(req, "name", name, sizeof(name));

    gm_admin_printf(res, "hello %s %s rc=%d ctx=%s\n", req->method, rc >= 0 ? name : "(none)", rc,
                    (const char *)ctx);
}

static void on_big(const struct gm_admin_request *req, struct gm_admin_response *res, void *ctx)
{
    for (int i = 0; i < 100; i++)
        gm_admin_printf(res, "line %d of a body larger than its cap\n", i);
}

static void on_created(const struct gm_admin_request *req, struct gm_admin_response *res, void *ctx)
{
    res->status = 201;
    res->content_type = "application/json";
    gm_admin_write(res, "{}", 2);
}

static void on_closed(void *arg)
{
    closed_calls++;
    CHECK(arg == &closed_calls);
}

static void on_stop_async(uv_async_t *h)
{
    gm_admin_close(server, on_closed, &closed_calls);
    CHECK_EQ_INT(closed_calls, 0); /* never before gm_admin_close returns */
    uv_close((uv_handle_t *)h, NULL);
}

static void check_limits(int port)
{
    static char big[GM_ADMIN_HEAD_MAX + 2048];
    struct response r;
    size_t len;

    /* a head of exactly GM_ADMIN_HEAD_MAX bytes is fine, one more byte is not */
    len = (size_t)snprintf(big, sizeof(big), "GET /hello HTTP/1.1\r\nX-Pad: ");
    memset(big + len, 'p', GM_ADMIN_HEAD_MAX - len - 4);
    memcpy(big + GM_ADMIN_HEAD_MAX - 4, "\r\n\r\n", 4);
    CHECK_EQ_INT(http_raw(port, big, GM_ADMIN_HEAD_MAX, &r), 200);
    memset(big + len, 'p', GM_ADMIN_HEAD_MAX - len - 3);
    memcpy(big + GM_ADMIN_HEAD_MAX - 3, "\r\n\r\n", 4);
    CHECK_EQ_INT(http_raw(port, big, GM_ADMIN_HEAD_MAX + 1, &r), 431);
    CHECK_EQ_STR(r.body, "request head too large\n");

    /* a much larger head, sent in full: refused without a reset losing the answer */
    len = (size_t)snprintf(big, sizeof(big), "GET /hello HTTP/1.1\r\nX-Pad: ");
    memset(big + len, 'p', sizeof(big) - len - 4);
    memcpy(big + sizeof(big) - 4, "\r\n\r\n", 4);
    CHECK_EQ_INT(http_raw(port, big, sizeof(big), &r), 431);
    CHECK(strstr(r.raw, "Connection: close\r\n") != NULL);
}

static void check_errors(int port)
{
    struct response r;
    const char *req;

    CHECK_EQ_INT(http(port, "GET", "/nope", &r), 404);
    CHECK_EQ_STR(r.body, "not found\n");
    CHECK_EQ_INT(http(port, "GET", "/hello/", &r), 404);
    CHECK_EQ_INT(http(port, "DELETE", "/hello", &r), 405);
    CHECK(strstr(r.raw, "\r\nAllow: GET, POST\r\n") != NULL);
    CHECK_EQ_INT(http(port, "GET", "/big", &r), 500);
    CHECK_EQ_STR(r.body, "response too large\n");

    req = "POST /hello HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
    CHECK_EQ_INT(http_raw(port, req, strlen(req), &r), 413);
    req = "POST /hello HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    CHECK_EQ_INT(http_raw(port, req, strlen(req), &r), 413);
    req = "GARBAGE\r\n\r\n";
    CHECK_EQ_INT(http_raw(port, req, strlen(req), &r), 400);
    req = "GET /hello HTTP/1.1\r\nBad Header: x\r\n\r\n";
    CHECK_EQ_INT(http_raw(port, req, strlen(req), &r), 400);
    req = "GET http://x/hello HTTP/1.1\r\n\r\n";
    CHECK_EQ_INT(http_raw(port, req, strlen(req), &r), 400);
    CHECK_EQ_INT(http(port, "GET", "/hello?name=%zz", &r), 200);
    CHECK(strstr(r.body, "rc=-22") != NULL);
}

static void check_timeout(int port)
{
    struct response r;
    struct timeval t0, t1;
    int fd = client_connect(port);
    long ms;

    /* send half a request and stall: the server gives up after its timeout (300 ms here) */
    CHECK(fd >= 0);
    gettimeofday(&t0, NULL);
    CHECK_EQ_INT(write(fd, "GET /hel", 8), 8);
    read_response(fd, &r);
    gettimeofday(&t1, NULL);
    close(fd);
    ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_usec - t0.tv_usec) / 1000;
    CHECK_EQ_INT(r.status, -1);
    CHECK(ms >= 250 && ms < 5000);
}

static void *admin_client(void *arg)
{
    int port = server_port;
    struct response r;
    const char *req;

    CHECK_EQ_INT(http(port, "GET", "/hello?x=1&name=a%20b+c", &r), 200);
    CHECK_EQ_STR(r.body, "hello GET a b c rc=5 ctx=one\n");
    CHECK_EQ_INT(r.content_length, (long)strlen(r.body));
    CHECK(strstr(r.raw, "Content-Type: text/plain; charset=utf-8\r\n") != NULL);
    CHECK(strstr(r.raw, "Connection: close\r\n") != NULL);
    CHECK_EQ_INT(http(port, "POST", "/hello?name", &r), 200);
    CHECK_EQ_STR(r.body, "hello POST  rc=0 ctx=two\n");
    CHECK_EQ_INT(http(port, "GET", "/created", &r), 201);
    CHECK_EQ_STR(r.body, "{}");
    CHECK(strstr(r.raw, "Content-Type: application/json\r\n") != NULL);

    /* HEAD runs the GET handler and sends no body */
    CHECK_EQ_INT(http(port, "HEAD", "/hello", &r), 200);
    CHECK_EQ_STR(r.body, "");
    CHECK_EQ_INT(r.content_length, strlen("hello HEAD (none) rc=-2 ctx=one\n"));

    /* HTTP/1.0, and a second pipelined request that is ignored */
    req = "GET /hello HTTP/1.0\r\n\r\n";
    CHECK_EQ_INT(http_raw(port, req, strlen(req), &r), 200);
    req = "GET /hello?name=1 HTTP/1.1\r\n\r\nGET /hello?name=2 HTTP/1.1\r\n\r\n";
    CHECK_EQ_INT(http_raw(port, req, strlen(req), &r), 200);
    CHECK_EQ_STR(r.body, "hello GET 1 rc=1 ctx=one\n");

    check_errors(port);
    check_limits(port);
    check_timeout(port);
    uv_async_send(&stop_async);
    return NULL;
}

static void test_admin(void)
{
    uv_loop_t loop;
    struct gm_admin *other;
    pthread_t client;
    char addr[64];

    uv_loop_init(&loop);
    server = gm_admin_new(&loop);
    gm_admin_set_limits(server, 512, 300);
    CHECK_EQ_INT(gm_admin_port(server), -ENOTCONN);
    CHECK_EQ_INT(gm_admin_route(server, "GET", "/hello", on_hello, "one"), 0);
    CHECK_EQ_INT(gm_admin_route(server, "POST", "/hello", on_hello, "two"), 0);
    CHECK_EQ_INT(gm_admin_route(server, "GET", "/hello", on_hello, "dup"), -EEXIST);
    CHECK_EQ_INT(gm_admin_route(server, "GET", "/big", on_big, NULL), 0);
    CHECK_EQ_INT(gm_admin_route(server, "GET", "/created", on_created, NULL), 0);
    CHECK_EQ_INT(gm_admin_listen(server, "localhost:0"), -EINVAL);
    CHECK_EQ_INT(gm_admin_listen(server, "127.0.0.1"), -EINVAL);
    CHECK_EQ_INT(gm_admin_listen(server, "127.0.0.1:0"), 0);
    server_port = gm_admin_port(server);
    CHECK(server_port > 0);

    /* the same port again: the error comes back as -EADDRINUSE */
    other = gm_admin_new(&loop);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", server_port);
    CHECK_EQ_INT(gm_admin_listen(other, addr), -EADDRINUSE);
    gm_admin_close(other, NULL, NULL);

    uv_async_init(&loop, &stop_async, on_stop_async);
    pthread_create(&client, NULL, admin_client, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    pthread_join(client, NULL);
    CHECK_EQ_INT(closed_calls, 1);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
}

/* ---- the daemon skeleton ---- */

struct test_settings {
    struct gm_common_settings common;
};

static const struct gm_setting test_table[] = {
    GM_SETTINGS_COMMON(struct test_settings, common),
    {0},
};

static const struct gm_settings_schema test_schema = {.program = "test", .table = test_table};

struct dstate {
    struct gm_daemon *d;
    int ports[GM_DAEMON__MAX];
    atomic_int config_loaded;
    atomic_int reloads;
    atomic_int drains;
    atomic_int stops;
    bool finish_drain; /* the drain callback calls gm_daemon_drained() at once */
};

static bool d_ready(struct gm_daemon *d, void *ctx, char *reason, size_t len)
{
    struct dstate *s = ctx;

    if (atomic_load(&s->config_loaded))
        return true;
    snprintf(reason, len, "config not loaded");
    return false;
}

static json_t *d_dump(struct gm_daemon *d, void *ctx)
{
    return json_pack("{s:{s:i}}", "snapshot", "services", 3);
}

static void d_drain(struct gm_daemon *d, void *ctx)
{
    struct dstate *s = ctx;

    atomic_fetch_add(&s->drains, 1);
    if (s->finish_drain)
        gm_daemon_drained(d);
}

static void d_reload(struct gm_daemon *d, void *ctx)
{
    atomic_fetch_add(&((struct dstate *)ctx)->reloads, 1);
}

static void d_stop(struct gm_daemon *d, void *ctx)
{
    atomic_fetch_add(&((struct dstate *)ctx)->stops, 1);
}

static void check_daemon_logging(int port)
{
    struct response r;

    CHECK_EQ_INT(http(port, "GET", "/logging", &r), 200);
    CHECK_EQ_STR(r.body, "warn,hbone=debug\n");
    CHECK_EQ_INT(http(port, "GET", "/logging?level=loud", &r), 400);
    CHECK_EQ_INT(http(port, "POST", "/logging?level=config%3Dtrace,error", &r), 200);
    CHECK_EQ_STR(r.body, "error,hbone=debug,config=trace\n");
    CHECK(gm_log_enabled(GM_LOG_LEVEL_TRACE, "config"));
    CHECK_EQ_INT(http(port, "POST", "/logging?reset", &r), 200);
    CHECK_EQ_STR(r.body, "warn,hbone=debug\n");
    CHECK(!gm_log_enabled(GM_LOG_LEVEL_TRACE, "config"));
    CHECK_EQ_INT(http(port, "PUT", "/logging", &r), 405);
}

static void check_daemon_dump(int port)
{
    struct response r;
    json_error_t err;
    json_t *j;

    CHECK_EQ_INT(http(port, "GET", "/config_dump", &r), 200);
    CHECK(strstr(r.raw, "Content-Type: application/json\r\n") != NULL);
    j = json_loads(r.body, 0, &err);
    CHECK(j != NULL);
    CHECK_EQ_STR(json_string_value(json_object_get(j, "component")), "test");
    CHECK_EQ_STR(json_string_value(json_object_get(j, "version")), "1.2.3");
    CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(j, "settings"), "admin-addr")),
                 "127.0.0.1:0");
    CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(j, "logging"), "level")),
                 "warn,hbone=debug");
    CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(j, "snapshot"), "services")),
                 3);
    json_decref(j);
    CHECK_EQ_INT(http(port, "GET", "/", &r), 200);
    CHECK(strstr(r.body, "/quitquitquit") != NULL);
}

static void *daemon_client(void *arg)
{
    struct dstate *s = arg;
    struct response r;

    CHECK_EQ_INT(http(s->ports[GM_DAEMON_READY], "GET", "/healthz/ready", &r), 503);
    CHECK_EQ_STR(r.body, "not ready: config not loaded\n");
    atomic_store(&s->config_loaded, 1);
    CHECK_EQ_INT(http(s->ports[GM_DAEMON_READY], "GET", "/healthz/ready", &r), 200);
    CHECK_EQ_STR(r.body, "ready\n");
    CHECK_EQ_INT(http(s->ports[GM_DAEMON_ADMIN], "GET", "/healthz/ready", &r), 404);

    CHECK_EQ_INT(http(s->ports[GM_DAEMON_METRICS], "GET", "/metrics", &r), 200);
    CHECK(strstr(r.raw, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n") != NULL);
    CHECK(strstr(r.body, "# TYPE istio_build gauge\n"
                         "istio_build{component=\"test\",tag=\"1.2.3\"} 1\n") != NULL);
    CHECK(strstr(r.body, "test_things_total 42\n") != NULL);
    CHECK_EQ_INT(http(s->ports[GM_DAEMON_METRICS], "GET", "/stats/prometheus", &r), 200);

    check_daemon_logging(s->ports[GM_DAEMON_ADMIN]);
    check_daemon_dump(s->ports[GM_DAEMON_ADMIN]);

    kill(getpid(), SIGHUP);
    for (int i = 0; i < 200 && atomic_load(&s->reloads) == 0; i++)
        usleep(10000);
    CHECK_EQ_INT(atomic_load(&s->reloads), 1);

    CHECK_EQ_INT(http(s->ports[GM_DAEMON_ADMIN], "GET", "/quitquitquit", &r), 405);
    CHECK_EQ_INT(atomic_load(&s->drains), 0);
    CHECK_EQ_INT(http(s->ports[GM_DAEMON_ADMIN], "POST", "/quitquitquit", &r), 200);
    CHECK_EQ_STR(r.body, "OK\n");
    return NULL;
}

/* Sends SIGTERM while the drain never finishes: the drain deadline stops the daemon. */
static void *deadline_client(void *arg)
{
    struct dstate *s = arg;
    struct response r;

    atomic_store(&s->config_loaded, 1);
    CHECK_EQ_INT(http(s->ports[GM_DAEMON_READY], "GET", "/healthz/ready", &r), 200);
    kill(getpid(), SIGTERM);
    for (int i = 0; i < 200 && atomic_load(&s->drains) == 0; i++)
        usleep(5000);
    CHECK_EQ_INT(atomic_load(&s->drains), 1);
    /* draining: readiness turns 503 while the admin still answers */
    CHECK_EQ_INT(http(s->ports[GM_DAEMON_READY], "GET", "/healthz/ready", &r), 503);
    CHECK_EQ_STR(r.body, "not ready: draining\n");
    return NULL;
}

static void run_daemon(struct dstate *s, const char *deadline, void *(*client)(void *))
{
    char *argv[] = {"test",
                    "--admin-addr=127.0.0.1:0",
                    "--metrics-addr=127.0.0.1:0",
                    "--ready-addr=127.0.0.1:0",
                    "--log-level=warn,hbone=debug",
                    "--drain-deadline",
                    (char *)deadline,
                    NULL};
    struct test_settings st;
    char err[GM_SETTINGS_ERR_MAX];
    struct gm_metric_family *fam;
    struct gm_metric *m;
    pthread_t t;
    int rc;
    struct gm_daemon_config cfg = {.name = "test",
                                   .version = "1.2.3",
                                   .schema = &test_schema,
                                   .settings = &st,
                                   .common = &st.common,
                                   .drain = d_drain,
                                   .reload = d_reload,
                                   .stop = d_stop,
                                   .ready = d_ready,
                                   .config_dump = d_dump,
                                   .ctx = s};

    CHECK_EQ_INT(gm_settings_parse(&test_schema, &st, 7, argv, err, sizeof(err)), 0);
    CHECK_EQ_INT(gm_daemon_new(&cfg, &s->d), 0);
    CHECK_EQ_INT(gm_daemon_start(s->d), 0);
    CHECK_EQ_INT(gm_daemon_start(s->d), -EALREADY);
    for (int i = 0; i < GM_DAEMON__MAX; i++) {
        s->ports[i] = gm_admin_port(gm_daemon_admin(s->d, (enum gm_daemon_listener)i));
        CHECK(s->ports[i] > 0);
    }
    CHECK(gm_daemon_workers(s->d) >= 1);
    gm_metrics_register(gm_daemon_metrics(s->d),
                        &(struct gm_metric_desc){.name = "test_things_total",
                                                 .help = "things",
                                                 .type = GM_METRIC_COUNTER},
                        &fam);
    m = gm_metrics_get(fam, NULL);
    gm_metrics_add(m, 42);
    gm_metrics_unref(m);

    pthread_create(&t, NULL, client, s);
    rc = gm_daemon_run(s->d);
    pthread_join(t, NULL);
    CHECK_EQ_INT(rc, 0);
    CHECK(gm_daemon_draining(s->d));
    CHECK_EQ_INT(atomic_load(&s->stops), 1);
    gm_daemon_free(s->d);
    gm_settings_done(&test_schema, &st);
}

static void test_daemon(void)
{
    static struct dstate graceful = {.finish_drain = true}, deadline;
    struct test_settings st;
    char *argv[] = {"test", "--admin-addr=127.0.0.1:0", "--metrics-addr=", "--ready-addr=", NULL};
    char err[GM_SETTINGS_ERR_MAX], addr[64];
    struct gm_daemon *d;
    int fd, devnull = open("/dev/null", O_WRONLY);

    gm_log_set_fd(devnull); /* the daemons' info lines are not checked here */
    run_daemon(&graceful, "30s", daemon_client);
    CHECK_EQ_INT(atomic_load(&graceful.drains), 1);
    run_daemon(&deadline, "1s", deadline_client);
    CHECK_EQ_INT(atomic_load(&deadline.drains), 1);

    /* a taken port fails the start with -EADDRINUSE; free cleans up */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    {
        struct sockaddr_in sin = {.sin_family = AF_INET};
        socklen_t len = sizeof(sin);
        inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
        bind(fd, (struct sockaddr *)&sin, sizeof(sin));
        listen(fd, 1);
        getsockname(fd, (struct sockaddr *)&sin, &len);
        snprintf(addr, sizeof(addr), "--admin-addr=127.0.0.1:%d", ntohs(sin.sin_port));
    }
    argv[1] = addr;
    CHECK_EQ_INT(gm_settings_parse(&test_schema, &st, 4, argv, err, sizeof(err)), 0);
    CHECK_EQ_INT(gm_daemon_new(&(struct gm_daemon_config){.name = "t", .common = &st.common}, &d),
                 0);
    CHECK_EQ_INT(gm_daemon_start(d), -EADDRINUSE);
    CHECK(gm_daemon_admin(d, GM_DAEMON_READY) == NULL);
    gm_daemon_free(d);
    gm_settings_done(&test_schema, &st);
    close(fd);
    gm_log_set_fd(2);
    close(devnull);
}

int main(void)
{
    test_admin();
    test_daemon();
    return TEST_DONE();
}
