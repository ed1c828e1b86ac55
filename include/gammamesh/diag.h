/* Diagnostics: located problems found while loading, decoding or compiling configuration.
 * Each renders as `file:line:col: Kind namespace/name: field: reason`. */
#ifndef GAMMAMESH_DIAG_H
#define GAMMAMESH_DIAG_H

#include <stddef.h>

/* A position in a source file; line and col are 1-based, 0 when unknown. */
struct gm_loc {
    const char *file; /* borrowed; lives as long as the object that holds the loc */
    int line;
    int col;
};

enum gm_diag_severity {
    GM_DIAG_ERROR = 0, /* the object (or the part named) was rejected */
    GM_DIAG_WARNING,   /* accepted, but probably not what was meant */
    GM_DIAG__MAX
};

struct gm_diag {
    enum gm_diag_severity severity;
    char *file; /* owned */
    int line, col;
    char *object; /* owned; "HTTPRoute ns/name" or NULL */
    char *field;  /* owned; "spec.rules[0].matches[1].path.value" or NULL */
    char *reason; /* owned */
};

struct gm_diags {
    struct gm_diag *v;
    size_t n, cap;
};

void gm_diags_init(struct gm_diags *d);
void gm_diags_done(struct gm_diags *d);
/* Append a diagnostic; every string is copied. */
void gm_diags_add(struct gm_diags *d, enum gm_diag_severity sev, const struct gm_loc *loc,
                  const char *object, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* Copy every entry of src to the end of dst. */
void gm_diags_extend(struct gm_diags *dst, const struct gm_diags *src);
size_t gm_diags_errors(const struct gm_diags *d);
/* Render one entry into buf; returns buf. */
const char *gm_diag_format(const struct gm_diag *g, char *buf, size_t len);

#endif
