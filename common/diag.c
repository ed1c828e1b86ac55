/* Diagnostics: a growable list of located problems and their one-line rendering. */
#include "gammamesh/diag.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "gammamesh/util.h"

void gm_diags_init(struct gm_diags *d)
{
    d->v = NULL;
    d->n = 0;
    d->cap = 0;
}

static void diag_free(struct gm_diag *g)
{
    free(g->file);
    free(g->object);
    free(g->field);
    free(g->reason);
}

void gm_diags_done(struct gm_diags *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->n; i++)
        diag_free(&d->v[i]);
    free(d->v);
    gm_diags_init(d);
}

static char *dup_or_null(const char *s)
{
    return s ? gm_xstrdup(s) : NULL;
}

static struct gm_diag *diags_push(struct gm_diags *d)
{
    GM_VEC_PUSH(d->v, d->n, d->cap);
    struct gm_diag *g = &d->v[d->n - 1];
    memset(g, 0, sizeof(*g));
    return g;
}

void gm_diags_add(struct gm_diags *d, enum gm_diag_severity sev, const struct gm_loc *loc,
                  const char *object, const char *field, const char *fmt, ...)
{
    struct gm_diag *g = diags_push(d);
    va_list ap;
    char *reason = NULL;

    va_start(ap, fmt);
    if (vasprintf(&reason, fmt, ap) < 0)
        gm_panic(__FILE__, __LINE__, "out of memory");
    va_end(ap);
    g->severity = sev;
    if (loc) {
        g->file = dup_or_null(loc->file);
        g->line = loc->line;
        g->col = loc->col;
    }
    g->object = dup_or_null(object);
    g->field = dup_or_null(field);
    g->reason = reason;
}

void gm_diags_extend(struct gm_diags *dst, const struct gm_diags *src)
{
    for (size_t i = 0; i < src->n; i++) {
        const struct gm_diag *s = &src->v[i];
        struct gm_diag *g = diags_push(dst);

        g->severity = s->severity;
        g->file = dup_or_null(s->file);
        g->line = s->line;
        g->col = s->col;
        g->object = dup_or_null(s->object);
        g->field = dup_or_null(s->field);
        g->reason = dup_or_null(s->reason);
    }
}

size_t gm_diags_errors(const struct gm_diags *d)
{
    size_t n = 0;

    for (size_t i = 0; i < d->n; i++)
        if (d->v[i].severity == GM_DIAG_ERROR)
            n++;
    return n;
}

/* Append to buf at *off without overrunning it; the result stays NUL-terminated. */
static void put(char *buf, size_t len, size_t *off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void put(char *buf, size_t len, size_t *off, const char *fmt, ...)
{
    va_list ap;

    if (*off >= len)
        return;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *off, len - *off, fmt, ap);
    va_end(ap);
    if (n > 0)
        *off += (size_t)n;
}

static void put_location(const struct gm_diag *g, char *buf, size_t len, size_t *off)
{
    if (g->file == NULL && g->line <= 0)
        return;
    put(buf, len, off, "%s", g->file ? g->file : "<input>");
    if (g->line > 0) {
        put(buf, len, off, ":%d", g->line);
        if (g->col > 0)
            put(buf, len, off, ":%d", g->col);
    }
    put(buf, len, off, ": ");
}

const char *gm_diag_format(const struct gm_diag *g, char *buf, size_t len)
{
    size_t off = 0;

    if (len == 0)
        return buf;
    buf[0] = '\0';
    put_location(g, buf, len, &off);
    if (g->object)
        put(buf, len, &off, "%s: ", g->object);
    if (g->field)
        put(buf, len, &off, "%s: ", g->field);
    if (g->severity == GM_DIAG_WARNING)
        put(buf, len, &off, "warning: ");
    put(buf, len, &off, "%s", g->reason ? g->reason : "(no reason)");
    return buf;
}
