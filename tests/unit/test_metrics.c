/* Unit tests of common/metrics.c: golden exposition text, escaping, eviction, histograms. */
#include "gammamesh/metrics.h"

#include <errno.h>
#include <pthread.h>

#include "test.h"

static const char *const tcp_labels[] = {"reporter", "source_workload", "destination_workload",
                                         NULL};
static const char *const req_labels[] = {"reporter", "response_code", NULL};
static const double ms_buckets[] = {0.5, 1, 5, 10, 2500};

static struct gm_metric_family *reg_family(struct gm_metrics *reg, const char *name,
                                           enum gm_metric_type type, const char *const *labels)
{
    struct gm_metric_family *fam = NULL;
    struct gm_metric_desc d = {.name = name, .help = "help of x", .type = type, .labels = labels};

    if (type == GM_METRIC_HISTOGRAM) {
        d.buckets = ms_buckets;
        d.n_buckets = sizeof(ms_buckets) / sizeof(ms_buckets[0]);
    }
    CHECK_EQ_INT(gm_metrics_register(reg, &d, &fam), 0);
    return fam;
}

static char *render(struct gm_metrics *reg, struct gm_buf *buf)
{
    gm_buf_done(buf);
    gm_buf_init(buf, 0);
    CHECK_EQ_INT(gm_metrics_render(reg, buf), 0);
    return buf->data ? buf->data : "";
}

static void add(struct gm_metric_family *fam, const char *const *values, int64_t n)
{
    struct gm_metric *m = gm_metrics_get(fam, values);

    gm_metrics_add(m, n);
    gm_metrics_unref(m);
}

static void test_golden(void)
{
    struct gm_metrics *reg = gm_metrics_new();
    struct gm_buf buf = {0};
    struct gm_metric_family *opened, *sockets, *build, *dur, *plain_hist;
    struct gm_metric *m;
    const char *helped = "Bytes \\ sent\nby workloads";
    struct gm_metric_desc d = {.name = "istio_tcp_sent_bytes_total",
                               .help = helped,
                               .type = GM_METRIC_COUNTER,
                               .labels = tcp_labels};
    struct gm_metric_family *sent = NULL;

    /* registered out of order: output is sorted by name */
    sockets = reg_family(reg, "istio_tcp_sockets_open", GM_METRIC_GAUGE, req_labels);
    opened = reg_family(reg, "istio_tcp_connections_opened_total", GM_METRIC_COUNTER, tcp_labels);
    build = reg_family(reg, "istio_build", GM_METRIC_GAUGE, NULL);
    dur = reg_family(reg, "istio_request_duration_milliseconds", GM_METRIC_HISTOGRAM, req_labels);
    plain_hist = reg_family(reg, "a_plain_hist", GM_METRIC_HISTOGRAM, NULL);
    CHECK_EQ_INT(gm_metrics_register(reg, &d, &sent), 0);
    reg_family(reg, "zz_empty_total", GM_METRIC_COUNTER, NULL); /* no series: not rendered */

    add(opened, (const char *[]){"source", "web-2", "db-1"}, 3);
    add(opened, (const char *[]){"destination", "web-1", "db-1"}, 1);
    add(opened, (const char *[]){"source", "web-1", "db-1"}, 2);
    add(opened, (const char *[]){"source", "web-1", "db-1"}, 5);
    add(sent, (const char *[]){"source", "we\"ird\\na\nme", NULL}, 1024);
    add(sockets, (const char *[]){"source", "-"}, 2);
    add(sockets, (const char *[]){"source", "-"}, -5);
    m = gm_metrics_get(build, NULL);
    gm_metrics_set(m, 1);
    gm_metrics_unref(m);

    m = gm_metrics_get(dur, (const char *[]){"waypoint", "200"});
    gm_metrics_observe(m, 0.25);
    gm_metrics_observe(m, 0.5);
    gm_metrics_observe(m, 3);
    gm_metrics_observe(m, 7.125);
    gm_metrics_observe(m, 99999);
    gm_metrics_unref(m);
    m = gm_metrics_get(plain_hist, NULL);
    gm_metrics_observe(m, 1);
    gm_metrics_unref(m);

    CHECK_EQ_STR(render(reg, &buf),
                 "# HELP a_plain_hist help of x\n"
                 "# TYPE a_plain_hist histogram\n"
                 "a_plain_hist_bucket{le=\"0.5\"} 0\n"
                 "a_plain_hist_bucket{le=\"1\"} 1\n"
                 "a_plain_hist_bucket{le=\"5\"} 1\n"
                 "a_plain_hist_bucket{le=\"10\"} 1\n"
                 "a_plain_hist_bucket{le=\"2500\"} 1\n"
                 "a_plain_hist_bucket{le=\"+Inf\"} 1\n"
                 "a_plain_hist_sum 1\n"
                 "a_plain_hist_count 1\n"
                 "# HELP istio_build help of x\n"
                 "# TYPE istio_build gauge\n"
                 "istio_build 1\n"
                 "# HELP istio_request_duration_milliseconds help of x\n"
                 "# TYPE istio_request_duration_milliseconds histogram\n"
                 "istio_request_duration_milliseconds_bucket{reporter=\"waypoint\","
                 "response_code=\"200\",le=\"0.5\"} 2\n"
                 "istio_request_duration_milliseconds_bucket{reporter=\"waypoint\","
                 "response_code=\"200\",le=\"1\"} 2\n"
                 "istio_request_duration_milliseconds_bucket{reporter=\"waypoint\","
                 "response_code=\"200\",le=\"5\"} 3\n"
                 "istio_request_duration_milliseconds_bucket{reporter=\"waypoint\","
                 "response_code=\"200\",le=\"10\"} 4\n"
                 "istio_request_duration_milliseconds_bucket{reporter=\"waypoint\","
                 "response_code=\"200\",le=\"2500\"} 4\n"
                 "istio_request_duration_milliseconds_bucket{reporter=\"waypoint\","
                 "response_code=\"200\",le=\"+Inf\"} 5\n"
                 "istio_request_duration_milliseconds_sum{reporter=\"waypoint\","
                 "response_code=\"200\"} 100009.875\n"
                 "istio_request_duration_milliseconds_count{reporter=\"waypoint\","
                 "response_code=\"200\"} 5\n"
                 "# HELP istio_tcp_connections_opened_total help of x\n"
                 "# TYPE istio_tcp_connections_opened_total counter\n"
                 "istio_tcp_connections_opened_total{reporter=\"destination\","
                 "source_workload=\"web-1\",destination_workload=\"db-1\"} 1\n"
                 "istio_tcp_connections_opened_total{reporter=\"source\","
                 "source_workload=\"web-1\",destination_workload=\"db-1\"} 7\n"
                 "istio_tcp_connections_opened_total{reporter=\"source\","
                 "source_workload=\"web-2\",destination_workload=\"db-1\"} 3\n"
                 "# HELP istio_tcp_sent_bytes_total Bytes \\\\ sent\\nby workloads\n"
                 "# TYPE istio_tcp_sent_bytes_total counter\n"
                 "istio_tcp_sent_bytes_total{reporter=\"source\","
                 "source_workload=\"we\\\"ird\\\\na\\nme\",destination_workload=\"\"} 1024\n"
                 "# HELP istio_tcp_sockets_open help of x\n"
                 "# TYPE istio_tcp_sockets_open gauge\n"
                 "istio_tcp_sockets_open{reporter=\"source\",response_code=\"-\"} -3\n");

    /* the output is capped by the buffer */
    gm_buf_done(&buf);
    gm_buf_init(&buf, 100);
    CHECK_EQ_INT(gm_metrics_render(reg, &buf), -ENOBUFS);
    gm_buf_done(&buf);
    gm_metrics_free(reg);
}

static void test_register(void)
{
    static const char *const dup[] = {"a", "a", NULL};
    static const char *const le[] = {"le", NULL};
    static const char *const reserved[] = {"__name", NULL};
    static const char *const other[] = {"b", NULL};
    static const double unsorted[] = {1, 1};
    struct gm_metrics *reg = gm_metrics_new();
    struct gm_metric_family *f1 = NULL, *f2 = NULL;
    struct gm_metric_desc d = {.name = "x_total", .type = GM_METRIC_COUNTER, .labels = other};

    CHECK_EQ_INT(gm_metrics_register(reg, &d, &f1), 0);
    CHECK_EQ_INT(gm_metrics_register(reg, &d, &f2), 0);
    CHECK(f1 != NULL && f1 == f2);
    d.labels = NULL;
    CHECK_EQ_INT(gm_metrics_register(reg, &d, &f2), -EEXIST);
    d.labels = other;
    d.type = GM_METRIC_GAUGE;
    CHECK_EQ_INT(gm_metrics_register(reg, &d, &f2), -EEXIST);

    d = (struct gm_metric_desc){.name = "1abc", .type = GM_METRIC_COUNTER};
    CHECK_EQ_INT(gm_metrics_register(reg, &d, &f2), -EINVAL);
    d.name = "a-b";
    CHECK_EQ_INT(gm_metrics_register(reg, &d, &f2), -EINVAL);
    d.name = "ns:ok_total";
    CHECK_EQ_INT(gm_metrics_register(reg, &d, &f2), 0);
    d.name = "y";
    d.labels = dup;
    CHECK_EQ_INT(gm_metrics_register(reg, &d, &f2), -EINVAL);
    d.labels = reserved;
    CHECK_EQ_INT(gm_metrics_register(reg, &d, &f2), -EINVAL);
    d.labels = le;
    CHECK_EQ_INT(gm_metrics_register(reg, &d, &f2), 0); /* "le" is fine outside histograms */
    d.name = "h";
    d.type = GM_METRIC_HISTOGRAM;
    d.buckets = ms_buckets;
    d.n_buckets = 2;
    CHECK_EQ_INT(gm_metrics_register(reg, &d, &f2), -EINVAL);
    d.labels = NULL;
    d.n_buckets = 0;
    CHECK_EQ_INT(gm_metrics_register(reg, &d, &f2), -EINVAL);
    d.buckets = unsorted;
    d.n_buckets = 2;
    CHECK_EQ_INT(gm_metrics_register(reg, &d, &f2), -EINVAL);
    d.type = GM_METRIC__MAX;
    CHECK_EQ_INT(gm_metrics_register(reg, &d, &f2), -EINVAL);
    gm_metrics_free(reg);
}

static void test_evict(void)
{
    struct gm_metrics *reg = gm_metrics_new();
    struct gm_metric_family *opened, *req;
    struct gm_metric *held, *again;
    struct gm_buf buf = {0};
    const char *const gone[] = {"source_workload", "web-1", NULL};
    const char *const gone_dst[] = {"destination_workload", "db-1", "reporter", "source", NULL};

    opened = reg_family(reg, "opened_total", GM_METRIC_COUNTER, tcp_labels);
    req = reg_family(reg, "requests_total", GM_METRIC_COUNTER, req_labels);
    add(opened, (const char *[]){"source", "web-1", "db-1"}, 1);
    add(opened, (const char *[]){"source", "web-1", "db-2"}, 1);
    add(opened, (const char *[]){"source", "web-2", "db-1"}, 1);
    add(opened, (const char *[]){"destination", "web-3", "db-1"}, 1);
    add(req, (const char *[]){"source", "200"}, 1);
    held = gm_metrics_get(opened, (const char *[]){"source", "web-1", "db-1"});

    /* requests_total has no source_workload label: untouched */
    CHECK_EQ_INT(gm_metrics_evict(reg, gone), 2);
    CHECK_EQ_STR(render(reg, &buf),
                 "# HELP opened_total help of x\n# TYPE opened_total counter\n"
                 "opened_total{reporter=\"destination\",source_workload=\"web-3\","
                 "destination_workload=\"db-1\"} 1\n"
                 "opened_total{reporter=\"source\",source_workload=\"web-2\","
                 "destination_workload=\"db-1\"} 1\n"
                 "# HELP requests_total help of x\n# TYPE requests_total counter\n"
                 "requests_total{reporter=\"source\",response_code=\"200\"} 1\n");
    CHECK_EQ_INT(gm_metrics_evict(reg, gone), 0);

    /* a holder may keep counting into an evicted series; a new get starts from zero */
    gm_metrics_add(held, 10);
    CHECK_EQ_INT(gm_metrics_value(held), 11);
    again = gm_metrics_get(opened, (const char *[]){"source", "web-1", "db-1"});
    CHECK(again != held);
    CHECK_EQ_INT(gm_metrics_value(again), 0);
    gm_metrics_unref(held);
    gm_metrics_unref(again);

    /* several pairs must all match */
    CHECK_EQ_INT(gm_metrics_evict(reg, gone_dst), 2);
    CHECK_EQ_INT(gm_metrics_remove(opened, (const char *[]){"destination", "web-3", "db-1"}), 0);
    CHECK_EQ_INT(gm_metrics_remove(opened, (const char *[]){"destination", "web-3", "db-1"}),
                 -ENOENT);
    CHECK_EQ_INT(gm_metrics_remove(req, (const char *[]){"source", "200"}), 0);
    CHECK_EQ_STR(render(reg, &buf), "");
    gm_buf_done(&buf);
    gm_metrics_free(reg);
}

/* evict_if: the predicate sees each family's names and each series' values */
static bool drops_web2(const char *const *names, const char *const *values, size_t n, void *ctx)
{
    int *calls = ctx;

    (*calls)++;
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], "source_workload") == 0 && strcmp(values[i], "web-2") == 0)
            return true;
    return false;
}

static void test_evict_if(void)
{
    struct gm_metrics *reg = gm_metrics_new();
    struct gm_metric_family *opened, *req;
    struct gm_buf buf = {0};
    int calls = 0;

    opened = reg_family(reg, "opened_total", GM_METRIC_COUNTER, tcp_labels);
    req = reg_family(reg, "requests_total", GM_METRIC_COUNTER, req_labels);
    add(opened, (const char *[]){"source", "web-1", "db-1"}, 1);
    add(opened, (const char *[]){"source", "web-2", "db-1"}, 1);
    add(opened, (const char *[]){"destination", "web-2", "db-2"}, 1);
    add(req, (const char *[]){"source", "200"}, 1);
    CHECK_EQ_INT(gm_metrics_evict_if(reg, drops_web2, &calls), 2);
    CHECK_EQ_INT(calls, 4);
    CHECK_EQ_STR(render(reg, &buf),
                 "# HELP opened_total help of x\n# TYPE opened_total counter\n"
                 "opened_total{reporter=\"source\",source_workload=\"web-1\","
                 "destination_workload=\"db-1\"} 1\n"
                 "# HELP requests_total help of x\n# TYPE requests_total counter\n"
                 "requests_total{reporter=\"source\",response_code=\"200\"} 1\n");
    CHECK_EQ_INT(gm_metrics_evict_if(reg, drops_web2, &calls), 0);
    gm_buf_done(&buf);
    gm_metrics_free(reg);
}

#define THREADS 4
#define ROUNDS  100000

struct worker {
    struct gm_metric_family *fam;
    struct gm_metric_family *hist;
    int id;
};

static void *hammer(void *arg)
{
    struct worker *w = arg;
    struct gm_metric *shared = gm_metrics_get(w->fam, (const char *[]){"shared"});
    struct gm_metric *h = gm_metrics_get(w->hist, NULL);
    char own[16];

    for (int i = 0; i < ROUNDS; i++) {
        gm_metrics_inc(shared);
        gm_metrics_observe(h, 0.75);
    }
    for (int i = 0; i < 200; i++) { /* series creation races with the other threads */
        struct gm_metric *m;
        snprintf(own, sizeof(own), "t%d-%d", w->id, i % 50);
        m = gm_metrics_get(w->fam, (const char *[]){own});
        gm_metrics_inc(m);
        gm_metrics_unref(m);
    }
    gm_metrics_unref(shared);
    gm_metrics_unref(h);
    return NULL;
}

static void test_threads(void)
{
    static const char *const k[] = {"k", NULL};
    struct gm_metrics *reg = gm_metrics_new();
    struct worker w[THREADS];
    pthread_t t[THREADS];
    struct gm_metric *m;
    struct gm_buf buf = {0};
    char want[128];

    for (int i = 0; i < THREADS; i++) {
        w[i].fam = reg_family(reg, "c_total", GM_METRIC_COUNTER, k);
        w[i].hist = reg_family(reg, "h", GM_METRIC_HISTOGRAM, NULL);
        w[i].id = i;
        pthread_create(&t[i], NULL, hammer, &w[i]);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    m = gm_metrics_get(w[0].fam, (const char *[]){"shared"});
    CHECK_EQ_INT(gm_metrics_value(m), THREADS * ROUNDS);
    gm_metrics_unref(m);
    m = gm_metrics_get(w[0].fam, (const char *[]){"t3-49"});
    CHECK_EQ_INT(gm_metrics_value(m), 4);
    gm_metrics_unref(m);
    render(reg, &buf);
    snprintf(want, sizeof(want), "h_bucket{le=\"1\"} %d\nh_bucket", THREADS * ROUNDS);
    CHECK(strstr(buf.data, want) != NULL);
    snprintf(want, sizeof(want), "h_sum %d\nh_count %d\n", THREADS * ROUNDS * 3 / 4,
             THREADS * ROUNDS);
    CHECK(strstr(buf.data, want) != NULL);
    gm_buf_done(&buf);
    gm_metrics_free(reg);
}

int main(void)
{
    test_golden();
    test_register();
    test_evict();
    test_evict_if();
    test_threads();
    return TEST_DONE();
}
