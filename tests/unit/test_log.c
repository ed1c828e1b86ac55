/* Unit tests of common/log.c: level specs, the level check, text and JSON rendering. */
#include "gammamesh/log.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "test.h"

static const struct timespec ts0 = {.tv_sec = 1767323045, .tv_nsec = 678901234};
static int evaluated;
static const char *volatile null_str; /* NULL the compiler cannot see */

static int count_eval(int v)
{
    evaluated++;
    return v;
}

static void test_spec_errors(void)
{
    static const char *const bad[] = {
        "",           "verbose",     "config=", "=debug",    "info,", ",info", "con fig=debug",
        "1conf=info", "config=loud", "a=b=c",   "info;warn", NULL,
    };
    static const char *const good[] = {
        "info",
        "TRACE",
        "warning",
        "off",
        " debug ",
        "config=debug",
        "config=debug,hbone=trace",
        "error,conn=trace",
        "hbone.tls=debug , info",
        NULL,
    };

    for (int i = 0; bad[i]; i++) {
        CHECK_EQ_INT(gm_log_check_level(bad[i]), -EINVAL);
        CHECK_EQ_INT(gm_log_set_level(bad[i]), -EINVAL);
    }
    for (int i = 0; good[i]; i++)
        CHECK_EQ_INT(gm_log_check_level(good[i]), 0);
    CHECK_EQ_INT(gm_log_check_level(NULL), -EINVAL);
}

static void test_levels(void)
{
    char buf[256];

    gm_log_reset();
    CHECK_EQ_INT(gm_log_get_level(buf, sizeof(buf)), 4);
    CHECK_EQ_STR(buf, "info");
    CHECK_EQ_INT(gm_log_set_level("config=debug,HBONE=trace"), 0);
    CHECK_EQ_INT(gm_log_level_of("config"), GM_LOG_LEVEL_DEBUG);
    CHECK_EQ_INT(gm_log_level_of("hbone"), GM_LOG_LEVEL_TRACE);
    CHECK_EQ_INT(gm_log_level_of("route"), GM_LOG_LEVEL_INFO);
    CHECK_EQ_INT(gm_log_level_of(NULL), GM_LOG_LEVEL_INFO);
    gm_log_get_level(buf, sizeof(buf));
    CHECK_EQ_STR(buf, "info,config=debug,hbone=trace");

    /* merging: the default changes, named subsystems keep their level */
    CHECK_EQ_INT(gm_log_set_level("warn,conn=error"), 0);
    CHECK_EQ_INT(gm_log_level_of("route"), GM_LOG_LEVEL_WARN);
    CHECK_EQ_INT(gm_log_level_of("config"), GM_LOG_LEVEL_DEBUG);
    gm_log_get_level(buf, sizeof(buf));
    CHECK_EQ_STR(buf, "warn,config=debug,hbone=trace,conn=error");
    CHECK_EQ_INT(gm_log_get_level(buf, 8), -ENOSPC);

    /* a bad spec changes nothing, even when its first items are good */
    CHECK_EQ_INT(gm_log_set_level("error,config=bogus"), -EINVAL);
    CHECK_EQ_INT(gm_log_level_of(NULL), GM_LOG_LEVEL_WARN);
    CHECK_EQ_INT(gm_log_level_of("config"), GM_LOG_LEVEL_DEBUG);

    CHECK(gm_log_enabled(GM_LOG_LEVEL_TRACE, "hbone"));
    CHECK(!gm_log_enabled(GM_LOG_LEVEL_TRACE, "config"));
    CHECK(gm_log_enabled(GM_LOG_LEVEL_DEBUG, "config"));
    CHECK(!gm_log_enabled(GM_LOG_LEVEL_WARN, "conn"));
    CHECK(gm_log_enabled(GM_LOG_LEVEL_ERROR, "conn"));
    CHECK(!gm_log_enabled(GM_LOG_LEVEL_INFO, "route"));
    CHECK(!gm_log_enabled(GM_LOG_LEVEL_INFO, NULL));

    gm_log_reset();
    gm_log_get_level(buf, sizeof(buf));
    CHECK_EQ_STR(buf, "info");
    CHECK(!gm_log_enabled(GM_LOG_LEVEL_TRACE, "hbone"));
    CHECK_EQ_INT(gm_log_set_level("off"), 0);
    CHECK(!gm_log_enabled(GM_LOG_LEVEL_ERROR, "x"));
    gm_log_reset();
}

static void test_subsys_cap(void)
{
    char spec[64];
    int rc = 0, i;

    gm_log_reset();
    for (i = 0; i < GM_LOG_SUBSYS_MAX + 2 && rc == 0; i++) {
        snprintf(spec, sizeof(spec), "s%d=debug", i);
        rc = gm_log_set_level(spec);
    }
    CHECK_EQ_INT(rc, -ENOSPC);
    CHECK(i > 4);
    /* names already in the table can still be changed */
    CHECK_EQ_INT(gm_log_set_level("s1=trace"), 0);
    CHECK_EQ_INT(gm_log_level_of("s1"), GM_LOG_LEVEL_TRACE);
    gm_log_reset();
}

/* Disabled lines evaluate nothing; enabled lines evaluate each argument once. */
static void test_lazy(void)
{
    int fds[2];
    char buf[512];
    ssize_t n;

    CHECK_EQ_INT(pipe2(fds, O_NONBLOCK), 0);
    gm_log_set_fd(fds[1]);
    gm_log_reset();
    evaluated = 0;
    GM_LOG_TRACE("conn", "bytes", "n=%d", count_eval(1));
    GM_LOG_DEBUG("conn", "bytes", "n=%d m=%d", count_eval(1), count_eval(2));
    CHECK_EQ_INT(evaluated, 0);
    CHECK_EQ_INT(read(fds[0], buf, sizeof(buf)), -1);

    GM_LOG_INFO("conn", "opened", "n=%d", count_eval(7));
    CHECK_EQ_INT(evaluated, 1);
    gm_log_set_level("conn=trace");
    GM_LOG_TRACE("conn", "bytes", "n=%d", count_eval(8));
    GM_LOG_TRACE("config", "bytes", "n=%d", count_eval(9));
    GM_LOG_WARN("conn", "no fields");
    CHECK_EQ_INT(evaluated, 2);
    n = read(fds[0], buf, sizeof(buf) - 1);
    CHECK(n > 0);
    buf[n > 0 ? n : 0] = '\0';
    CHECK(strstr(buf, "level=info sub=conn msg=\"opened\" n=7\n") != NULL);
    CHECK(strstr(buf, "level=trace sub=conn msg=\"bytes\" n=8\n") != NULL);
    CHECK(strstr(buf, "n=9") == NULL);
    CHECK(strstr(buf, "level=warn sub=conn msg=\"no fields\"\n") != NULL);
    CHECK(strncmp(buf, "ts=20", 5) == 0);
    gm_log_set_fd(2);
    gm_log_reset();
    close(fds[0]);
    close(fds[1]);
}

static void test_text(void)
{
    char buf[1024];
    size_t n;

    n = gm_log_render(buf, sizeof(buf), GM_LOG_FORMAT_TEXT, &ts0, GM_LOG_LEVEL_INFO, "config",
                      "snapshot built", "services=%d routes=%u", 3, 7u);
    CHECK_EQ_STR(buf, "ts=2026-01-02T03:04:05.678Z level=info sub=config msg=\"snapshot built\" "
                      "services=3 routes=7\n");
    CHECK_EQ_INT(n, strlen(buf));

    gm_log_render(buf, sizeof(buf), GM_LOG_FORMAT_TEXT, &ts0, GM_LOG_LEVEL_WARN, "admin",
                  "say \"hi\"", "path=%s q=%s eq=%s empty=%s nl=%s pct=100%% plain=%s", "/a b",
                  "x\"y", "a=b", "", "l1\nl2\t\x01", "ok-value");
    CHECK_EQ_STR(buf, "ts=2026-01-02T03:04:05.678Z level=warn sub=admin msg=\"say \\\"hi\\\"\" "
                      "path=\"/a b\" q=\"x\\\"y\" eq=\"a=b\" empty=\"\" nl=\"l1\\nl2\\t\\u0001\" "
                      "pct=100% plain=ok-value\n");

    /* widths, precisions, lengths, NULL strings, bare words, invalid UTF-8 */
    gm_log_render(buf, sizeof(buf), GM_LOG_FORMAT_TEXT, &ts0, GM_LOG_LEVEL_ERROR, NULL, "m",
                  "a=%5d b=%-3d| c=%.*s d=%lld e=%zu f=%s g=%x draining h=%s i=%.2f", 42, 7, 3,
                  "abcdef", -5LL, (size_t)9, null_str, 255u, "\xff\xe2\x80\xa6", 1.5);
    CHECK_EQ_STR(buf, "ts=2026-01-02T03:04:05.678Z level=error sub=- msg=\"m\" a=\"   42\" "
                      "b=\"7  |\" c=abc d=-5 e=9 f=(null) g=ff draining "
                      "h=\xef\xbf\xbd\xe2\x80\xa6 i=1.50\n");
}

static void test_json(void)
{
    char buf[1024];
    json_t *j;
    json_error_t err;

    gm_log_render(buf, sizeof(buf), GM_LOG_FORMAT_JSON, &ts0, GM_LOG_LEVEL_DEBUG, "hbone",
                  "tunnel \"up\"", "n=%d ratio=%.2f neg=%d hex=%x id=%s mixed=%dms flag peer=%s",
                  12, 0.5, -3, 255u, "spiffe://td/ns/a/sa/b", 30, "1.2.3.4:15008\n");
    CHECK_EQ_STR(buf, "{\"ts\":\"2026-01-02T03:04:05.678Z\",\"level\":\"debug\",\"sub\":\"hbone\","
                      "\"msg\":\"tunnel \\\"up\\\"\",\"n\":12,\"ratio\":0.50,\"neg\":-3,"
                      "\"hex\":\"ff\",\"id\":\"spiffe://td/ns/a/sa/b\",\"mixed\":\"30ms\","
                      "\"flag\":true,\"peer\":\"1.2.3.4:15008\\n\"}\n");
    j = json_loads(buf, 0, &err);
    CHECK(j != NULL);
    CHECK(json_is_integer(json_object_get(j, "n")));
    CHECK(json_is_real(json_object_get(j, "ratio")));
    CHECK_EQ_STR(json_string_value(json_object_get(j, "peer")), "1.2.3.4:15008\n");
    json_decref(j);

    /* an integer that is not a JSON number (leading zeros, + sign) stays a string */
    gm_log_render(buf, sizeof(buf), GM_LOG_FORMAT_JSON, &ts0, GM_LOG_LEVEL_INFO, "x", "m",
                  "a=%03d b=%+d bad=%s", 7, 5, "\xc0\xaf");
    CHECK(strstr(buf, "\"a\":\"007\",\"b\":\"+5\",\"bad\":\"\xef\xbf\xbd\xef\xbf\xbd\"}") != NULL);
    j = json_loads(buf, 0, &err);
    CHECK(j != NULL);
    json_decref(j);
}

static void test_truncation(void)
{
    static char big[3 * GM_LOG_LINE_MAX];
    char buf[GM_LOG_LINE_MAX];
    json_t *j;
    json_error_t err;
    size_t n;

    memset(big, 'x', sizeof(big) - 1);
    n = gm_log_render(buf, sizeof(buf), GM_LOG_FORMAT_TEXT, &ts0, GM_LOG_LEVEL_INFO, "c", "m",
                      "a=%s b=%d", big, 1);
    CHECK(n < sizeof(buf));
    CHECK_EQ_INT(strlen(buf), n);
    CHECK(n > sizeof(buf) - 64);
    CHECK(strcmp(buf + n - 4, "\xe2\x80\xa6\n") == 0);

    /* a value with spaces is quoted: the cut closes the quote */
    memset(big, ' ', 100);
    n = gm_log_render(buf, sizeof(buf), GM_LOG_FORMAT_TEXT, &ts0, GM_LOG_LEVEL_INFO, "c", "m",
                      "a=%s", big);
    CHECK(strcmp(buf + n - 5, "\xe2\x80\xa6\"\n") == 0);

    /* JSON stays valid and says it was cut */
    n = gm_log_render(buf, sizeof(buf), GM_LOG_FORMAT_JSON, &ts0, GM_LOG_LEVEL_INFO, "c", "m",
                      "a=%d b=%s c=%d", 1, big, 2);
    CHECK(n < sizeof(buf));
    j = json_loads(buf, 0, &err);
    CHECK(j != NULL);
    CHECK(json_is_true(json_object_get(j, "truncated")));
    CHECK(json_integer_value(json_object_get(j, "a")) == 1);
    CHECK(json_object_get(j, "c") == NULL);
    json_decref(j);

    /* a field whose key cannot fit is dropped whole */
    memset(big, 'k', sizeof(big) - 1);
    n = gm_log_render(buf, 200, GM_LOG_FORMAT_JSON, &ts0, GM_LOG_LEVEL_INFO, "c", "m",
                      "a=%d %.150s=1", 1, big);
    CHECK(n < 200);
    j = json_loads(buf, 0, &err);
    CHECK(j != NULL);
    CHECK_EQ_INT(json_object_size(j), 6);
    json_decref(j);
}

#define LOG_THREADS 4
#define LOG_LINES   300

static void *log_worker(void *arg)
{
    char pad[1001];
    int id = (int)(long)arg;

    memset(pad, 'a' + id, sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    for (int i = 0; i < LOG_LINES; i++) {
        GM_LOG_INFO("conn", "worker line", "worker=%d seq=%d pad=%s", id, i, pad);
        if (id == 0 && i % 50 == 0) /* levels change under the other threads' feet */
            gm_log_set_level(i % 100 ? "conn=info" : "hbone=debug");
    }
    return NULL;
}

struct sink {
    int fd;
    char buf[LOG_THREADS * LOG_LINES * 1200];
    size_t len;
};

static void *log_reader(void *arg)
{
    struct sink *k = arg;
    ssize_t n;

    while (k->len < sizeof(k->buf) - 1 &&
           (n = read(k->fd, k->buf + k->len, sizeof(k->buf) - 1 - k->len)) > 0)
        k->len += (size_t)n;
    k->buf[k->len] = '\0';
    return NULL;
}

/* Lines written by several threads at once arrive whole and in each thread's order. */
static void test_threads(void)
{
    static struct sink k;
    pthread_t t[LOG_THREADS], reader;
    int fds[2], lines = 0, bad = 0, seq[LOG_THREADS] = {0};

    CHECK_EQ_INT(pipe(fds), 0);
    k.fd = fds[0];
    gm_log_set_fd(fds[1]);
    gm_log_reset();
    pthread_create(&reader, NULL, log_reader, &k);
    for (long i = 0; i < LOG_THREADS; i++)
        pthread_create(&t[i], NULL, log_worker, (void *)i);
    for (int i = 0; i < LOG_THREADS; i++)
        pthread_join(t[i], NULL);
    gm_log_set_fd(2);
    close(fds[1]);
    pthread_join(reader, NULL);
    close(fds[0]);
    for (char *line = k.buf, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
        const char *w = strstr(line, " worker="), *pad = strstr(line, " pad=");
        int id = -1, s = -1;

        *nl = '\0';
        if (w == NULL || pad == NULL || sscanf(w, " worker=%d seq=%d", &id, &s) != 2 || id < 0 ||
            id >= LOG_THREADS || s != seq[id] || strlen(pad) != 1005) {
            bad++;
            continue;
        }
        seq[id]++;
        lines++;
    }
    CHECK_EQ_INT(lines, LOG_THREADS * LOG_LINES);
    CHECK_EQ_INT(bad, 0);
    gm_log_reset();
}

static void test_format_names(void)
{
    enum gm_log_format f = GM_LOG_FORMAT_TEXT;

    CHECK_EQ_INT(gm_log_parse_format("json", &f), 0);
    CHECK_EQ_INT(f, GM_LOG_FORMAT_JSON);
    CHECK_EQ_INT(gm_log_parse_format("xml", &f), -EINVAL);
    CHECK_EQ_STR(gm_log_level_name(GM_LOG_LEVEL_WARN), "warn");
    CHECK_EQ_STR(gm_log_level_name(GM_LOG_LEVEL__MAX), "?");
}

/* A call site's budget: 10 lines per 10 s window; the next line out reports what was dropped. */
static void test_limit(void)
{
    static struct gm_log_limit l;
    unsigned dropped = 99, taken = 0;
    int fds[2];
    char buf[8192];
    ssize_t n;

    for (int i = 0; i < 25; i++)
        taken += gm_log_limit_take_at(&l, 5000, &dropped);
    CHECK_EQ_INT(taken, GM_LOG_LIMIT_LINES);
    CHECK_EQ_INT(dropped, 0);
    CHECK(!gm_log_limit_take_at(&l, 9999, &dropped)); /* same window */
    CHECK(gm_log_limit_take_at(&l, 10000, &dropped)); /* the next one */
    CHECK_EQ_INT(dropped, 16);
    CHECK(gm_log_limit_take_at(&l, 10001, &dropped));
    CHECK_EQ_INT(dropped, 0);

    /* through the macro: 10 lines, then nothing (the window has not moved) */
    CHECK_EQ_INT(pipe2(fds, O_NONBLOCK), 0);
    gm_log_set_fd(fds[1]);
    gm_log_reset();
    evaluated = 0;
    for (int i = 0; i < 30; i++)
        GM_LOG_WARN_LIMITED("conn", "refused", "n=%d", count_eval(i));
    CHECK(evaluated <= GM_LOG_LIMIT_LINES + 1); /* a window edge may let one batch more */
    n = read(fds[0], buf, sizeof(buf) - 1);
    CHECK(n > 0);
    buf[n > 0 ? n : 0] = '\0';
    CHECK(strstr(buf, "msg=\"refused\" n=0\n") != NULL);
    CHECK(strstr(buf, "n=29") == NULL);
    CHECK(gm_log_lines_suppressed() >= 30 - GM_LOG_LIMIT_LINES - 1);

    /* a sink that refuses the line: counted, not retried, nothing blocks */
    unsigned long long before = gm_log_lines_unwritten();
    close(fds[0]);
    signal(SIGPIPE, SIG_IGN);
    GM_LOG_WARN("conn", "into a pipe with no reader");
    CHECK_EQ_INT((int)(gm_log_lines_unwritten() - before), 1);
    fds[0] = -1;
    gm_log_set_fd(2);
    gm_log_reset();
    close(fds[1]);
}

int main(void)
{
    test_spec_errors();
    test_levels();
    test_subsys_cap();
    test_lazy();
    test_text();
    test_json();
    test_truncation();
    test_threads();
    test_format_names();
    test_limit();
    return TEST_DONE();
}
