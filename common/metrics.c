/*
 * metrics.c: the metrics registry and its Prometheus text rendering (see gammamesh/metrics.h).
 *
 * Locks: the registry mutex guards its sorted family array; each family's mutex guards its
 * sorted series array. Order: registry before family. Values are atomics and never locked.
 */
#include "gammamesh/metrics.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct gm_metric {
    atomic_int refs;
    enum gm_metric_type type;
    char **values;             /* one per label of the family */
    const double *bounds;      /* histogram: the family's bucket bounds */
    size_t n_bounds;           /* histogram: number of finite bounds */
    _Atomic int64_t value;     /* counter, gauge */
    _Atomic uint64_t sum;      /* histogram: bits of a double */
    _Atomic uint64_t counts[]; /* histogram: per bucket, +Inf last; not cumulative */
};

struct gm_metric_family {
    char *name;
    char *help;
    enum gm_metric_type type;
    char **labels;
    size_t n_labels;
    double *buckets;
    size_t n_buckets;
    pthread_mutex_t lock;
    struct gm_metric **series; /* sorted by label values */
    size_t n, cap;
};

struct gm_metrics {
    pthread_mutex_t lock;
    struct gm_metric_family **fams; /* sorted by name */
    size_t n, cap;
};

/* ---- names ---- */

static bool name_valid(const char *s, bool metric)
{
    if (s == NULL || *s == '\0')
        return false;
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (metric && c == ':') || (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return metric || strncmp(s, "__", 2) != 0;
}

static size_t count_labels(const char *const *labels)
{
    size_t n = 0;

    while (labels && labels[n])
        n++;
    return n;
}

static int desc_check(const struct gm_metric_desc *d)
{
    size_t n = count_labels(d->labels);

    if (!name_valid(d->name, true) || d->type < GM_METRIC_COUNTER || d->type >= GM_METRIC__MAX ||
        n > GM_METRICS_LABELS_MAX)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!name_valid(d->labels[i], false))
            return -EINVAL;
        if (d->type == GM_METRIC_HISTOGRAM && strcmp(d->labels[i], "le") == 0)
            return -EINVAL;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(d->labels[i], d->labels[j]) == 0)
                return -EINVAL;
        }
    }
    if (d->type != GM_METRIC_HISTOGRAM)
        return 0;
    if (d->buckets == NULL || d->n_buckets == 0 || d->n_buckets > GM_METRICS_BUCKETS_MAX)
        return -EINVAL;
    for (size_t i = 0; i < d->n_buckets; i++) {
        if (!isfinite(d->buckets[i]) || (i > 0 && d->buckets[i] <= d->buckets[i - 1]))
            return -EINVAL;
    }
    return 0;
}

/* ---- registry ---- */

struct gm_metrics *gm_metrics_new(void)
{
    struct gm_metrics *reg = gm_xcalloc(1, sizeof(*reg));

    pthread_mutex_init(&reg->lock, NULL);
    return reg;
}

static void series_free(struct gm_metric *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; m->values && m->values[i]; i++)
        free(m->values[i]);
    free(m->values);
    free(m);
}

static void family_free(struct gm_metric_family *fam)
{
    for (size_t i = 0; i < fam->n; i++)
        gm_metrics_unref(fam->series[i]);
    for (size_t i = 0; i < fam->n_labels; i++)
        free(fam->labels[i]);
    free(fam->labels);
    free(fam->series);
    free(fam->buckets);
    free(fam->name);
    free(fam->help);
    pthread_mutex_destroy(&fam->lock);
    free(fam);
}

void gm_metrics_free(struct gm_metrics *reg)
{
    if (reg == NULL)
        return;
    for (size_t i = 0; i < reg->n; i++)
        family_free(reg->fams[i]);
    free(reg->fams);
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}

static struct gm_metric_family *family_new(const struct gm_metric_desc *d)
{
    struct gm_metric_family *fam = gm_xcalloc(1, sizeof(*fam));

    fam->name = gm_xstrdup(d->name);
    fam->help = gm_xstrdup(d->help ? d->help : "");
    fam->type = d->type;
    fam->n_labels = count_labels(d->labels);
    fam->labels = gm_xcalloc(fam->n_labels + 1, sizeof(char *));
    for (size_t i = 0; i < fam->n_labels; i++)
        fam->labels[i] = gm_xstrdup(d->labels[i]);
    if (d->type == GM_METRIC_HISTOGRAM) {
        fam->n_buckets = d->n_buckets;
        fam->buckets = gm_xmalloc(d->n_buckets * sizeof(double));
        memcpy(fam->buckets, d->buckets, d->n_buckets * sizeof(double));
    }
    pthread_mutex_init(&fam->lock, NULL);
    return fam;
}

static bool family_matches(const struct gm_metric_family *fam, const struct gm_metric_desc *d)
{
    if (fam->type != d->type || fam->n_labels != count_labels(d->labels))
        return false;
    for (size_t i = 0; i < fam->n_labels; i++) {
        if (strcmp(fam->labels[i], d->labels[i]) != 0)
            return false;
    }
    return fam->n_buckets == d->n_buckets &&
           (d->n_buckets == 0 ||
            memcmp(fam->buckets, d->buckets, d->n_buckets * sizeof(double)) == 0);
}

/* Index where name is or would be inserted; *found tells which. */
static size_t family_pos(const struct gm_metrics *reg, const char *name, bool *found)
{
    return gm_sorted_find((void *const *)reg->fams, reg->n, offsetof(struct gm_metric_family, name),
                          name, found);
}

int gm_metrics_register(struct gm_metrics *reg, const struct gm_metric_desc *desc,
                        struct gm_metric_family **out)
{
    bool found;
    size_t pos;
    int rc = desc_check(desc);

    if (rc < 0)
        return rc;
    pthread_mutex_lock(&reg->lock);
    pos = family_pos(reg, desc->name, &found);
    if (found) {
        rc = family_matches(reg->fams[pos], desc) ? 0 : -EEXIST;
        if (rc == 0)
            *out = reg->fams[pos];
        goto out;
    }
    GM_VEC_PUSH(reg->fams, reg->n, reg->cap);
    memmove(reg->fams + pos + 1, reg->fams + pos, (reg->n - 1 - pos) * sizeof(*reg->fams));
    reg->fams[pos] = family_new(desc);
    *out = reg->fams[pos];
out:
    pthread_mutex_unlock(&reg->lock);
    return rc;
}

/* ---- series ---- */

static int cmp_values(char *const *have, const char *const *want, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int c = strcmp(have[i], want[i] ? want[i] : "");
        if (c != 0)
            return c;
    }
    return 0;
}

static int cmp_series_at(const void *ctx, size_t i, const void *values)
{
    const struct gm_metric_family *fam = ctx;

    return cmp_values(fam->series[i]->values, values, fam->n_labels);
}

/* Index where values are or would be inserted; called with the family locked. */
static size_t series_pos(const struct gm_metric_family *fam, const char *const *values, bool *found)
{
    return gm_bsearch_pos(fam->n, cmp_series_at, fam, values, found);
}

static struct gm_metric *series_new(const struct gm_metric_family *fam, const char *const *values)
{
    size_t nc = fam->type == GM_METRIC_HISTOGRAM ? fam->n_buckets + 1 : 0;
    struct gm_metric *m = gm_xcalloc(1, sizeof(*m) + nc * sizeof(m->counts[0]));

    atomic_init(&m->refs, 1);
    m->type = fam->type;
    m->bounds = fam->buckets;
    m->n_bounds = fam->n_buckets;
    m->values = gm_xcalloc(fam->n_labels + 1, sizeof(char *));
    for (size_t i = 0; i < fam->n_labels; i++)
        m->values[i] = gm_xstrdup(values[i] ? values[i] : "");
    return m;
}

struct gm_metric *gm_metrics_get(struct gm_metric_family *fam, const char *const *values)
{
    static const char *const none[1] = {NULL};
    struct gm_metric *m;
    bool found;
    size_t pos;

    values = values ? values : none;
    pthread_mutex_lock(&fam->lock);
    pos = series_pos(fam, values, &found);
    if (found) {
        m = fam->series[pos];
    } else {
        m = series_new(fam, values);
        GM_VEC_PUSH(fam->series, fam->n, fam->cap);
        memmove(fam->series + pos + 1, fam->series + pos, (fam->n - 1 - pos) * sizeof(m));
        fam->series[pos] = m;
    }
    gm_metrics_ref(m);
    pthread_mutex_unlock(&fam->lock);
    return m;
}

struct gm_metric *gm_metrics_ref(struct gm_metric *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

void gm_metrics_unref(struct gm_metric *m)
{
    if (m && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
        series_free(m);
}

void gm_metrics_add(struct gm_metric *m, int64_t n)
{
    GM_ASSERT(n >= 0 || m->type == GM_METRIC_GAUGE);
    atomic_fetch_add_explicit(&m->value, n, memory_order_relaxed);
}

void gm_metrics_set(struct gm_metric *m, int64_t v)
{
    atomic_store_explicit(&m->value, v, memory_order_relaxed);
}

int64_t gm_metrics_value(const struct gm_metric *m)
{
    return atomic_load_explicit(&m->value, memory_order_relaxed);
}

static double bits_to_double(uint64_t bits)
{
    double d;

    memcpy(&d, &bits, sizeof(d));
    return d;
}

static uint64_t double_to_bits(double d)
{
    uint64_t bits;

    memcpy(&bits, &d, sizeof(bits));
    return bits;
}

void gm_metrics_observe(struct gm_metric *m, double v)
{
    size_t lo = 0, hi = m->n_bounds;
    uint64_t old, upd;

    GM_ASSERT(m->type == GM_METRIC_HISTOGRAM);
    while (lo < hi) { /* first bound >= v; NaN lands in +Inf */
        size_t mid = lo + (hi - lo) / 2;
        if (v <= m->bounds[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    atomic_fetch_add_explicit(&m->counts[lo], 1, memory_order_relaxed);
    old = atomic_load_explicit(&m->sum, memory_order_relaxed);
    do {
        upd = double_to_bits(bits_to_double(old) + v);
    } while (!atomic_compare_exchange_weak_explicit(&m->sum, &old, upd, memory_order_relaxed,
                                                    memory_order_relaxed));
}

int gm_metrics_remove(struct gm_metric_family *fam, const char *const *values)
{
    static const char *const none[1] = {NULL};
    struct gm_metric *m = NULL;
    bool found;
    size_t pos;

    pthread_mutex_lock(&fam->lock);
    pos = series_pos(fam, values ? values : none, &found);
    if (found) {
        m = fam->series[pos];
        memmove(fam->series + pos, fam->series + pos + 1, (fam->n - pos - 1) * sizeof(m));
        fam->n--;
    }
    pthread_mutex_unlock(&fam->lock);
    gm_metrics_unref(m);
    return found ? 0 : -ENOENT;
}

/* Does series m carry value match[2k + 1] in label idx[k], for every k < n? */
static bool series_matches(const struct gm_metric *m, const size_t *idx, const char *const *match,
                           size_t n)
{
    for (size_t k = 0; k < n; k++) {
        if (strcmp(m->values[idx[k]], match[2 * k + 1]) != 0)
            return false;
    }
    return true;
}

/* Removes the series of fam for which drop() is true; called with the registry locked. */
static size_t family_remove_if(struct gm_metric_family *fam,
                               bool (*drop)(const struct gm_metric_family *fam,
                                            const struct gm_metric *m, void *ctx),
                               void *ctx)
{
    size_t kept = 0, removed = 0;

    pthread_mutex_lock(&fam->lock);
    for (size_t s = 0; s < fam->n; s++) {
        struct gm_metric *m = fam->series[s];

        if (drop(fam, m, ctx)) {
            gm_metrics_unref(m);
            removed++;
        } else {
            fam->series[kept++] = m;
        }
    }
    fam->n = kept;
    pthread_mutex_unlock(&fam->lock);
    return removed;
}

struct match_ctx {
    const size_t *idx;
    const char *const *match;
    size_t n;
};

static bool drop_matching(const struct gm_metric_family *fam, const struct gm_metric *m, void *ctx)
{
    const struct match_ctx *mc = ctx;

    (void)fam;
    return series_matches(m, mc->idx, mc->match, mc->n);
}

/* Removes the series of fam that match; called with the registry locked. */
static size_t family_evict(struct gm_metric_family *fam, const char *const *match)
{
    size_t idx[GM_METRICS_LABELS_MAX], n = 0;

    for (; match[2 * n] && match[2 * n + 1]; n++) {
        size_t i = 0;
        while (i < fam->n_labels && strcmp(fam->labels[i], match[2 * n]) != 0)
            i++;
        if (i == fam->n_labels || n == GM_METRICS_LABELS_MAX)
            return 0;
        idx[n] = i;
    }
    if (n == 0)
        return 0;
    return family_remove_if(fam, drop_matching, &(struct match_ctx){idx, match, n});
}

size_t gm_metrics_evict(struct gm_metrics *reg, const char *const *match)
{
    size_t removed = 0;

    if (match == NULL || match[0] == NULL)
        return 0;
    pthread_mutex_lock(&reg->lock);
    for (size_t i = 0; i < reg->n; i++)
        removed += family_evict(reg->fams[i], match);
    pthread_mutex_unlock(&reg->lock);
    return removed;
}

struct user_drop {
    gm_metrics_drop_fn fn;
    void *ctx;
};

static bool drop_by_user(const struct gm_metric_family *fam, const struct gm_metric *m, void *ctx)
{
    const struct user_drop *u = ctx;

    return u->fn((const char *const *)fam->labels, (const char *const *)m->values, fam->n_labels,
                 u->ctx);
}

size_t gm_metrics_evict_if(struct gm_metrics *reg, gm_metrics_drop_fn drop, void *ctx)
{
    size_t removed = 0;

    pthread_mutex_lock(&reg->lock);
    for (size_t i = 0; i < reg->n; i++)
        removed += family_remove_if(reg->fams[i], drop_by_user, &(struct user_drop){drop, ctx});
    pthread_mutex_unlock(&reg->lock);
    return removed;
}

/* ---- rendering ---- */

/* Appends s with the escapes of a label value (quote too) or of HELP text (quote false). */
static int put_escaped(struct gm_buf *out, const char *s, bool quote)
{
    int rc = 0;

    while (*s && rc == 0) {
        size_t run = strcspn(s, quote ? "\\\"\n" : "\\\n");
        rc = gm_buf_append(out, s, run);
        s += run;
        if (*s && rc == 0) {
            rc = gm_buf_append(out, *s == '\n' ? "\\n" : *s == '"' ? "\\\"" : "\\\\", 2);
            s++;
        }
    }
    return rc;
}

/*
 * The shortest text that reads back as v, laid out like Go's strconv 'g' (what Prometheus
 * clients print): exponent form only below 1e-4 or from 1e+06 up, so le="10", le="2500".
 */
static void format_double(double v, char *buf, size_t len)
{
    const char *e;
    int prec, exp;

    if (isnan(v) || isinf(v)) {
        snprintf(buf, len, "%s", isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (prec = 1; prec < 17; prec++) {
        snprintf(buf, len, "%.*e", prec - 1, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    snprintf(buf, len, "%.*e", prec - 1, v);
    e = strchr(buf, 'e');
    exp = e ? atoi(e + 1) : 0;
    if (exp >= -4 && exp < 6)
        snprintf(buf, len, "%.*f", prec - 1 - exp > 0 ? prec - 1 - exp : 0, v);
}

/* name{labels[,le="bound"]} value\n */
static int put_sample(struct gm_buf *out, const struct gm_metric_family *fam,
                      const struct gm_metric *m, const char *suffix, const char *le,
                      const char *value)
{
    int rc = gm_buf_printf(out, "%s%s", fam->name, suffix);
    bool braces = fam->n_labels > 0 || le != NULL;

    if (braces && rc == 0)
        rc = gm_buf_append(out, "{", 1);
    for (size_t i = 0; i < fam->n_labels && rc == 0; i++) {
        rc = gm_buf_printf(out, "%s%s=\"", i ? "," : "", fam->labels[i]);
        if (rc == 0)
            rc = put_escaped(out, m->values[i], true);
        if (rc == 0)
            rc = gm_buf_append(out, "\"", 1);
    }
    if (le && rc == 0)
        rc = gm_buf_printf(out, "%sle=\"%s\"", fam->n_labels ? "," : "", le);
    if (braces && rc == 0)
        rc = gm_buf_append(out, "}", 1);
    if (rc == 0)
        rc = gm_buf_printf(out, " %s\n", value);
    return rc;
}

static int put_histogram(struct gm_buf *out, const struct gm_metric_family *fam,
                         const struct gm_metric *m)
{
    char le[32], value[32];
    uint64_t cum = 0;
    int rc = 0;

    for (size_t i = 0; i <= fam->n_buckets && rc == 0; i++) {
        cum += atomic_load_explicit(&m->counts[i], memory_order_relaxed);
        if (i < fam->n_buckets)
            format_double(fam->buckets[i], le, sizeof(le));
        else
            snprintf(le, sizeof(le), "+Inf");
        snprintf(value, sizeof(value), "%llu", (unsigned long long)cum);
        rc = put_sample(out, fam, m, "_bucket", le, value);
    }
    format_double(bits_to_double(atomic_load_explicit(&m->sum, memory_order_relaxed)), le,
                  sizeof(le));
    if (rc == 0)
        rc = put_sample(out, fam, m, "_sum", NULL, le);
    if (rc == 0)
        rc = put_sample(out, fam, m, "_count", NULL, value);
    return rc;
}

static int put_family(struct gm_buf *out, struct gm_metric_family *fam)
{
    static const char *const types[GM_METRIC__MAX] = {"", "counter", "gauge", "histogram"};
    char value[32];
    int rc;

    if (fam->n == 0)
        return 0;
    rc = gm_buf_printf(out, "# HELP %s ", fam->name);
    if (rc == 0)
        rc = put_escaped(out, fam->help, false);
    if (rc == 0)
        rc = gm_buf_printf(out, "\n# TYPE %s %s\n", fam->name, types[fam->type]);
    for (size_t i = 0; i < fam->n && rc == 0; i++) {
        const struct gm_metric *m = fam->series[i];

        if (fam->type == GM_METRIC_HISTOGRAM) {
            rc = put_histogram(out, fam, m);
            continue;
        }
        snprintf(value, sizeof(value), "%lld", (long long)gm_metrics_value(m));
        rc = put_sample(out, fam, m, "", NULL, value);
    }
    return rc;
}

int gm_metrics_render(struct gm_metrics *reg, struct gm_buf *out)
{
    int rc = 0;

    pthread_mutex_lock(&reg->lock);
    for (size_t i = 0; i < reg->n && rc == 0; i++) {
        struct gm_metric_family *fam = reg->fams[i];

        pthread_mutex_lock(&fam->lock);
        rc = put_family(out, fam);
        pthread_mutex_unlock(&fam->lock);
    }
    pthread_mutex_unlock(&reg->lock);
    return rc;
}
