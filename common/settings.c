/*
 * settings.c: schema-driven daemon settings (see gammamesh/settings.h).
 *
 * Parsing walks argv twice. The first walk only looks for --help, --version and --settings
 * (and rejects unknown options early); then defaults, the settings file and the environment are
 * applied; the second walk applies the options themselves, so the command line wins.
 */
#include "gammamesh/settings.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "gammamesh/log.h"
#include "gammamesh/util.h"

#define WHY_MAX   256 /* bytes of a reason, before the location is prepended */
#define NAME_MAX_ 64  /* bytes of an option name on the command line */

const char *const gm_settings_log_formats[] = {"text", "json", NULL};
const char *const gm_settings_config_sources[] = {"directory", "kubernetes", NULL};

static void *field(void *settings, const struct gm_setting *s)
{
    return (char *)settings + s->offset;
}

static bool is_string_type(const struct gm_setting *s)
{
    return s->type == GM_SETTING_STRING || s->type == GM_SETTING_ADDR;
}

static bool bounded(const struct gm_setting *s)
{
    return s->min != 0 || s->max != 0;
}

static void set_error(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_error(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static const struct gm_setting *find_entry(const struct gm_settings_schema *schema,
                                           const char *name)
{
    for (const struct gm_setting *s = schema->table; s->name; s++) {
        if (strcmp(s->name, name) == 0)
            return s;
    }
    return NULL;
}

/* ---- value syntax ---- */

int gm_settings_parse_duration(const char *text, uint64_t *ms)
{
    const char *p = text;
    uint64_t total = 0, v, mul;

    if (text == NULL || *text == '\0')
        return -EINVAL;
    if (strcmp(text, "0") == 0) {
        *ms = 0;
        return 0;
    }
    while (*p) {
        if (!isdigit((unsigned char)*p))
            return -EINVAL;
        for (v = 0; isdigit((unsigned char)*p); p++) {
            if (v > (UINT64_MAX - 9) / 10)
                return -EINVAL;
            v = v * 10 + (uint64_t)(*p - '0');
        }
        if (p[0] == 'm' && p[1] == 's')
            mul = 1;
        else if (*p == 'h')
            mul = 3600000;
        else if (*p == 'm')
            mul = 60000;
        else if (*p == 's')
            mul = 1000;
        else
            return -EINVAL;
        p += mul == 1 ? 2 : 1;
        if (v > (UINT64_MAX - total) / mul)
            return -EINVAL;
        total += v * mul;
    }
    *ms = total;
    return 0;
}

const char *gm_settings_format_duration(uint64_t ms, char *buf, size_t len)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {{"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};
    size_t used = 0;

    if (len == 0)
        return buf;
    buf[0] = '\0';
    if (ms == 0) {
        snprintf(buf, len, "0s");
        return buf;
    }
    for (size_t i = 0; i < GM_ARRAY_LEN(units) && used < len; i++) {
        uint64_t n = ms / units[i].ms;
        if (n == 0)
            continue;
        ms -= n * units[i].ms;
        used += (size_t)snprintf(buf + used, len - used, "%llu%s", (unsigned long long)n,
                                 units[i].unit);
    }
    return buf;
}

static bool hostname_valid(const char *h)
{
    size_t len = strlen(h);

    if (len == 0 || len > 253 || h[0] == '-' || h[0] == '.' || h[len - 1] == '-')
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)h[i];
        if (!isalnum(c) && c != '-' && c != '.' && c != '_')
            return false;
    }
    return true;
}

int gm_settings_split_addr(const char *text, char *host, size_t hostlen, uint16_t *port)
{
    const char *h = text, *colon, *end;
    unsigned char tmp[16];
    size_t hl;
    unsigned long p = 0;
    bool v6 = text != NULL && text[0] == '[';

    if (text == NULL)
        return -EINVAL;
    if (v6) {
        end = strchr(text, ']');
        if (end == NULL || end[1] != ':')
            return -EINVAL;
        h = text + 1;
        hl = (size_t)(end - h);
        colon = end + 1;
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL || memchr(text, ':', (size_t)(colon - text)) != NULL)
            return -EINVAL;
        hl = (size_t)(colon - text);
    }
    if (hl == 0 || hl >= hostlen)
        return -EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    if (v6 ? inet_pton(AF_INET6, host, tmp) != 1
           : inet_pton(AF_INET, host, tmp) != 1 && !hostname_valid(host))
        return -EINVAL;
    if (colon[1] == '\0' || strlen(colon + 1) > 5)
        return -EINVAL;
    for (const char *d = colon + 1; *d; d++) {
        if (!isdigit((unsigned char)*d))
            return -EINVAL;
        p = p * 10 + (unsigned long)(*d - '0');
    }
    if (p > 65535)
        return -EINVAL;
    *port = (uint16_t)p;
    return 0;
}

int gm_settings_check_log_level(const char *value, char *err, size_t errlen)
{
    if (gm_log_check_level(value) == 0)
        return 0;
    set_error(err, errlen, "\"%s\" is not a log level spec (LEVEL or SUB=LEVEL,...)", value);
    return -EINVAL;
}

static int parse_bool(const char *text, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};

    for (size_t i = 0; i < GM_ARRAY_LEN(yes); i++) {
        if (strcasecmp(text, yes[i]) == 0 || strcasecmp(text, no[i]) == 0) {
            *out = strcasecmp(text, yes[i]) == 0;
            return 0;
        }
    }
    return -EINVAL;
}

static int parse_int(const struct gm_setting *s, const char *text, int64_t *out, char *why,
                     size_t len)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(text, &end, 10);
    if (*text == '\0' || isspace((unsigned char)*text) || *end || errno == ERANGE) {
        set_error(why, len, "\"%s\" is not an integer", text);
        return -EINVAL;
    }
    if (bounded(s) && (v < s->min || v > s->max)) {
        set_error(why, len, "%lld is out of range [%lld, %lld]", v, (long long)s->min,
                  (long long)s->max);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

static int parse_duration(const struct gm_setting *s, const char *text, uint64_t *out, char *why,
                          size_t len)
{
    char lo[32], hi[32];

    if (gm_settings_parse_duration(text, out) < 0) {
        set_error(why, len, "\"%s\" is not a duration (e.g. 500ms, 30s, 1m30s, 2h)", text);
        return -EINVAL;
    }
    if (bounded(s) && (*out < (uint64_t)s->min || *out > (uint64_t)s->max)) {
        set_error(why, len, "%s is out of range [%s, %s]", text,
                  gm_settings_format_duration((uint64_t)s->min, lo, sizeof(lo)),
                  gm_settings_format_duration((uint64_t)s->max, hi, sizeof(hi)));
        return -EINVAL;
    }
    return 0;
}

static int parse_enum(const struct gm_setting *s, const char *text, int *out, char *why, size_t len)
{
    size_t used;

    for (int i = 0; s->choices && s->choices[i]; i++) {
        if (strcasecmp(text, s->choices[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    used = (size_t)snprintf(why, len, "\"%s\" is not one of:", text);
    for (int i = 0; s->choices && s->choices[i] && used < len; i++)
        used += (size_t)snprintf(why + used, len - used, "%s %s", i ? "," : "", s->choices[i]);
    return -EINVAL;
}

static int parse_addr(const char *text, char *why, size_t len)
{
    char host[256];
    uint16_t port;

    if (*text == '\0' || gm_settings_split_addr(text, host, sizeof(host), &port) == 0)
        return 0;
    set_error(why, len, "\"%s\" is not host:port (e.g. 127.0.0.1:15000, [::1]:15000)", text);
    return -EINVAL;
}

/* Parses text as the entry's type and stores it; the reason of a failure goes to why. */
static int apply(const struct gm_setting *s, void *settings, const char *text, char *why,
                 size_t len)
{
    union {
        int64_t i;
        uint64_t u;
        bool b;
        int e;
    } v;
    int rc = 0;

    switch (s->type) {
    case GM_SETTING_STRING:
        break;
    case GM_SETTING_INT:
        rc = parse_int(s, text, &v.i, why, len);
        break;
    case GM_SETTING_BOOL:
        rc = parse_bool(text, &v.b);
        if (rc < 0)
            set_error(why, len, "\"%s\" is not a boolean (true or false)", text);
        break;
    case GM_SETTING_DURATION:
        rc = parse_duration(s, text, &v.u, why, len);
        break;
    case GM_SETTING_ENUM:
        rc = parse_enum(s, text, &v.e, why, len);
        break;
    case GM_SETTING_ADDR:
        rc = parse_addr(text, why, len);
        break;
    default:
        set_error(why, len, "bad schema type %d", (int)s->type);
        return -EINVAL;
    }
    if (rc == 0 && s->check)
        rc = s->check(text, why, len);
    if (rc < 0)
        return -EINVAL;
    switch (s->type) {
    case GM_SETTING_STRING:
    case GM_SETTING_ADDR:
        free(*(char **)field(settings, s));
        *(char **)field(settings, s) = gm_xstrdup(text);
        break;
    case GM_SETTING_INT:
        *(int64_t *)field(settings, s) = v.i;
        break;
    case GM_SETTING_BOOL:
        *(bool *)field(settings, s) = v.b;
        break;
    case GM_SETTING_DURATION:
        *(uint64_t *)field(settings, s) = v.u;
        break;
    default:
        *(int *)field(settings, s) = v.e;
        break;
    }
    return 0;
}

/* ---- sources ---- */

static void init_fields(const struct gm_settings_schema *schema, void *settings)
{
    for (const struct gm_setting *s = schema->table; s->name; s++) {
        switch (s->type) {
        case GM_SETTING_STRING:
        case GM_SETTING_ADDR:
            *(char **)field(settings, s) = NULL;
            break;
        case GM_SETTING_INT:
            *(int64_t *)field(settings, s) = 0;
            break;
        case GM_SETTING_BOOL:
            *(bool *)field(settings, s) = false;
            break;
        case GM_SETTING_DURATION:
            *(uint64_t *)field(settings, s) = 0;
            break;
        default:
            *(int *)field(settings, s) = 0;
            break;
        }
    }
    if (schema->positional) {
        struct gm_settings_args *args = (void *)((char *)settings + schema->args_offset);
        args->argc = 0;
        args->argv = NULL;
    }
}

static int apply_defaults(const struct gm_settings_schema *schema, void *settings, char *err,
                          size_t errlen)
{
    char why[WHY_MAX];

    for (const struct gm_setting *s = schema->table; s->name; s++) {
        if (s->def && apply(s, settings, s->def, why, sizeof(why)) < 0) {
            set_error(err, errlen, "default of %s: %s", s->name, why);
            return -EINVAL;
        }
    }
    return 0;
}

static int apply_env(const struct gm_settings_schema *schema, void *settings, char *err,
                     size_t errlen)
{
    char why[WHY_MAX];

    for (const struct gm_setting *s = schema->table; s->name; s++) {
        const char *v = s->env ? getenv(s->env) : NULL;

        if (v == NULL || *v == '\0')
            continue;
        if (apply(s, settings, v, why, sizeof(why)) < 0) {
            set_error(err, errlen, "environment %s (%s): %s", s->env, s->name, why);
            return -EINVAL;
        }
    }
    return 0;
}

/* ---- the YAML settings file ---- */

struct yfile {
    const struct gm_settings_schema *schema;
    void *settings;
    const char *path;
    yaml_parser_t parser;
    yaml_event_t ev;
    bool have_ev;
    size_t *seen_line; /* per entry: line of its first key, 0 = not seen */
    char *err;
    size_t errlen;
};

static int y_next(struct yfile *y)
{
    if (y->have_ev)
        yaml_event_delete(&y->ev);
    y->have_ev = false;
    if (!yaml_parser_parse(&y->parser, &y->ev)) {
        set_error(y->err, y->errlen, "%s:%zu:%zu: %s%s%s", y->path, y->parser.problem_mark.line + 1,
                  y->parser.problem_mark.column + 1,
                  y->parser.problem ? y->parser.problem : "YAML error",
                  y->parser.context ? " " : "", y->parser.context ? y->parser.context : "");
        return -EINVAL;
    }
    y->have_ev = true;
    return 0;
}

static int y_error(struct yfile *y, const char *what)
{
    set_error(y->err, y->errlen, "%s:%zu:%zu: %s", y->path, y->ev.start_mark.line + 1,
              y->ev.start_mark.column + 1, what);
    return -EINVAL;
}

/* One "name: value" pair; the key event is current. */
static int y_pair(struct yfile *y)
{
    const struct gm_setting *s;
    char name[NAME_MAX_ + 1], why[WHY_MAX], where[WHY_MAX];
    size_t idx, line = y->ev.start_mark.line + 1, col = y->ev.start_mark.column + 1;

    if (y->ev.type != YAML_SCALAR_EVENT)
        return y_error(y, "expected a setting name");
    snprintf(name, sizeof(name), "%s", (const char *)y->ev.data.scalar.value);
    s = find_entry(y->schema, name);
    if (s == NULL) {
        snprintf(why, sizeof(why), "unknown setting \"%s\"", name);
        return y_error(y, why);
    }
    idx = (size_t)(s - y->schema->table);
    if (y->seen_line[idx]) {
        snprintf(why, sizeof(why), "%s: duplicate key (first on line %zu)", name,
                 y->seen_line[idx]);
        return y_error(y, why);
    }
    y->seen_line[idx] = line;
    if (y_next(y) < 0)
        return -EINVAL;
    snprintf(where, sizeof(where), "%s: expected a single value", name);
    if (y->ev.type != YAML_SCALAR_EVENT)
        return y_error(y, where);
    line = y->ev.start_mark.line + 1;
    col = y->ev.start_mark.column + 1;
    if (apply(s, y->settings, (const char *)y->ev.data.scalar.value, why, sizeof(why)) < 0) {
        set_error(y->err, y->errlen, "%s:%zu:%zu: %s: %s", y->path, line, col, name, why);
        return -EINVAL;
    }
    return 0;
}

static bool y_is_empty_scalar(const yaml_event_t *ev)
{
    const char *v = (const char *)ev->data.scalar.value;

    return ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           (v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0);
}

/* The body of the single document: a mapping, or nothing at all. */
static int y_document(struct yfile *y)
{
    if (y_next(y) < 0)
        return -EINVAL;
    if (y->ev.type == YAML_SCALAR_EVENT && y_is_empty_scalar(&y->ev))
        return y_next(y);
    if (y->ev.type != YAML_MAPPING_START_EVENT)
        return y_error(y, "expected a mapping of setting: value");
    for (;;) {
        if (y_next(y) < 0)
            return -EINVAL;
        if (y->ev.type == YAML_MAPPING_END_EVENT)
            return y_next(y);
        if (y_pair(y) < 0)
            return -EINVAL;
    }
}

static int y_stream(struct yfile *y)
{
    if (y_next(y) < 0 || y_next(y) < 0) /* stream start, then document start or stream end */
        return -EINVAL;
    if (y->ev.type == YAML_STREAM_END_EVENT)
        return 0;
    if (y_document(y) < 0)
        return -EINVAL;
    if (y->ev.type != YAML_DOCUMENT_END_EVENT)
        return y_error(y, "expected the end of the document");
    if (y_next(y) < 0)
        return -EINVAL;
    if (y->ev.type != YAML_STREAM_END_EVENT)
        return y_error(y, "a settings file holds one document");
    return 0;
}

static int load_file(const struct gm_settings_schema *schema, void *settings, const char *path,
                     char *err, size_t errlen)
{
    struct yfile y = {
        .schema = schema, .settings = settings, .path = path, .err = err, .errlen = errlen};
    size_t n = 0;
    FILE *fp;
    int rc;

    fp = fopen(path, "r");
    if (fp == NULL) {
        rc = -errno;
        set_error(err, errlen, "settings file %s: %s", path, strerror(errno));
        return rc;
    }
    while (schema->table[n].name)
        n++;
    y.seen_line = gm_xcalloc(n + 1, sizeof(*y.seen_line));
    if (!yaml_parser_initialize(&y.parser)) {
        rc = -ENOMEM;
        goto out;
    }
    yaml_parser_set_input_file(&y.parser, fp);
    rc = y_stream(&y);
    if (y.have_ev)
        yaml_event_delete(&y.ev);
    yaml_parser_delete(&y.parser);
out:
    free(y.seen_line);
    fclose(fp);
    return rc;
}

/* ---- the command line ---- */

struct cmdline {
    const struct gm_settings_schema *schema;
    void *settings;
    bool apply;                /* second walk: store values and positional arguments */
    const char *settings_path; /* --settings, found by the first walk */
    char *err;
    size_t errlen;
};

static int positional(struct cmdline *c, int argc, const char *arg)
{
    struct gm_settings_args *args;

    if (c->schema->positional == NULL) {
        set_error(c->err, c->errlen, "unexpected argument \"%s\"", arg);
        return -EINVAL;
    }
    if (!c->apply)
        return 0;
    args = (void *)((char *)c->settings + c->schema->args_offset);
    if (args->argv == NULL)
        args->argv = gm_xcalloc((size_t)argc + 1, sizeof(char *));
    args->argv[args->argc++] = (char *)arg;
    return 0;
}

/* One --option at argv[*i]; may consume argv[*i + 1] as its value. */
static int option(struct cmdline *c, int argc, char **argv, int *i)
{
    const char *arg = argv[*i] + 2, *eq = strchr(arg, '='), *value = eq ? eq + 1 : NULL;
    const struct gm_setting *s;
    char name[NAME_MAX_ + 1], why[WHY_MAX];
    size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
    bool negated = false;

    if (len > NAME_MAX_)
        len = NAME_MAX_;
    memcpy(name, arg, len);
    name[len] = '\0';
    s = find_entry(c->schema, name);
    if (s == NULL && strncmp(name, "no-", 3) == 0) {
        s = find_entry(c->schema, name + 3);
        negated = s && s->type == GM_SETTING_BOOL;
        s = negated ? s : NULL;
    }
    if (s == NULL && strcmp(name, "settings") != 0) {
        set_error(c->err, c->errlen, "unknown option --%s (see --help)", name);
        return -EINVAL;
    }
    if (negated && value) {
        set_error(c->err, c->errlen, "--%s takes no value", name);
        return -EINVAL;
    }
    if (s && s->type == GM_SETTING_BOOL)
        value = negated ? "false" : value ? value : "true";
    if (value == NULL && *i + 1 >= argc) {
        set_error(c->err, c->errlen, "--%s needs a value", name);
        return -EINVAL;
    }
    if (value == NULL)
        value = argv[++*i];
    if (s == NULL) {
        c->settings_path = value;
        return 0;
    }
    if (c->apply && apply(s, c->settings, value, why, sizeof(why)) < 0) {
        set_error(c->err, c->errlen, "--%s: %s", name, why);
        return -EINVAL;
    }
    return 0;
}

static int unknown_short(struct cmdline *c, const char *arg)
{
    set_error(c->err, c->errlen, "unknown option %s (see --help)", arg);
    return -EINVAL;
}

static int walk_argv(struct cmdline *c, int argc, char **argv)
{
    bool options = true;
    int rc = 0;

    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i];

        if (!options || a[0] != '-' || a[1] == '\0')
            rc = positional(c, argc, a);
        else if (strcmp(a, "--") == 0)
            options = false;
        else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
            rc = GM_SETTINGS_HELP;
        else if (strcmp(a, "--version") == 0)
            rc = GM_SETTINGS_VERSION;
        else if (a[1] != '-')
            rc = unknown_short(c, a);
        else
            rc = option(c, argc, argv, &i);
    }
    return rc;
}

int gm_settings_parse(const struct gm_settings_schema *schema, void *settings, int argc,
                      char **argv, char *err, size_t errlen)
{
    struct cmdline c = {.schema = schema, .settings = settings, .err = err, .errlen = errlen};
    const char *path;
    int rc;

    set_error(err, errlen, "%s", "");
    init_fields(schema, settings);
    rc = walk_argv(&c, argc, argv);
    if (rc != 0)
        goto out;
    rc = apply_defaults(schema, settings, err, errlen);
    if (rc < 0)
        goto out;
    path = c.settings_path ? c.settings_path : getenv("GM_SETTINGS");
    if (path && *path) {
        rc = load_file(schema, settings, path, err, errlen);
        if (rc < 0)
            goto out;
    }
    rc = apply_env(schema, settings, err, errlen);
    if (rc < 0)
        goto out;
    c.apply = true;
    rc = walk_argv(&c, argc, argv);
out:
    if (rc != 0)
        gm_settings_done(schema, settings);
    return rc;
}

void gm_settings_done(const struct gm_settings_schema *schema, void *settings)
{
    for (const struct gm_setting *s = schema->table; s->name; s++) {
        if (is_string_type(s)) {
            free(*(char **)field(settings, s));
            *(char **)field(settings, s) = NULL;
        }
    }
    if (schema->positional) {
        struct gm_settings_args *args = (void *)((char *)settings + schema->args_offset);
        free(args->argv);
        args->argv = NULL;
        args->argc = 0;
    }
}

/* ---- help and JSON ---- */

static const char *metavar(const struct gm_setting *s, char *buf, size_t len)
{
    size_t used = 0;

    switch (s->type) {
    case GM_SETTING_INT:
        return "N";
    case GM_SETTING_BOOL:
        return "";
    case GM_SETTING_DURATION:
        return "DURATION";
    case GM_SETTING_ADDR:
        return "HOST:PORT";
    case GM_SETTING_ENUM:
        buf[0] = '\0';
        for (int i = 0; s->choices && s->choices[i] && used < len; i++)
            used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? "|" : "", s->choices[i]);
        return buf;
    default:
        return "VALUE";
    }
}

static void help_row(FILE *out, const char *flag, const char *text)
{
    int n = fprintf(out, "  %s", flag);

    if (n > 30)
        fprintf(out, "\n%32s%s\n", "", text);
    else
        fprintf(out, "%*s%s\n", 32 - n, "", text);
}

void gm_settings_help(const struct gm_settings_schema *schema, FILE *out)
{
    char flag[128], mv[128], range[128], lo[32], hi[32];

    fprintf(out, "Usage: %s [OPTIONS]%s%s\n", schema->program ? schema->program : "daemon",
            schema->positional ? " " : "", schema->positional ? schema->positional : "");
    if (schema->summary)
        fprintf(out, "%s\n", schema->summary);
    fprintf(out, "\nSettings come from, lowest precedence first: defaults, the YAML settings file\n"
                 "(name: value), environment variables, command-line options.\n\nOptions:\n");
    help_row(out, "-h, --help", "show this help and exit");
    help_row(out, "--version", "show the version and exit");
    help_row(out, "--settings FILE", "YAML settings file; env GM_SETTINGS");
    for (const struct gm_setting *s = schema->table; s->name; s++) {
        const char *m = metavar(s, mv, sizeof(mv));

        snprintf(flag, sizeof(flag), "--%s%s%s", s->name, *m ? " " : "", m);
        help_row(out, flag, s->help ? s->help : "");
        range[0] = '\0';
        if (bounded(s) && s->type == GM_SETTING_INT)
            snprintf(range, sizeof(range), ", range %lld..%lld", (long long)s->min,
                     (long long)s->max);
        else if (bounded(s) && s->type == GM_SETTING_DURATION)
            snprintf(range, sizeof(range), ", range %s..%s",
                     gm_settings_format_duration((uint64_t)s->min, lo, sizeof(lo)),
                     gm_settings_format_duration((uint64_t)s->max, hi, sizeof(hi)));
        fprintf(out, "%32s%s%s%sdefault %s%s\n", "", s->env ? "env " : "", s->env ? s->env : "",
                s->env ? ", " : "", s->def ? (*s->def ? s->def : "\"\"") : "unset", range);
    }
}

static json_t *string_json(const char *s)
{
    json_t *j = json_string(s);

    return j ? j : json_string("<invalid UTF-8>");
}

static json_t *value_json(const struct gm_setting *s, const void *settings)
{
    const void *f = (const char *)settings + s->offset;
    char buf[64];
    int e;

    switch (s->type) {
    case GM_SETTING_STRING:
    case GM_SETTING_ADDR:
        if (*(char *const *)f == NULL)
            return json_null();
        if (s->flags & GM_SETTING_SECRET)
            return json_string("<redacted>");
        return string_json(*(char *const *)f);
    case GM_SETTING_INT:
        return json_integer((json_int_t) * (const int64_t *)f);
    case GM_SETTING_BOOL:
        return json_boolean(*(const bool *)f);
    case GM_SETTING_DURATION:
        return json_string(gm_settings_format_duration(*(const uint64_t *)f, buf, sizeof(buf)));
    case GM_SETTING_ENUM:
        e = *(const int *)f;
        return s->choices && e >= 0 && s->choices[e] ? json_string(s->choices[e]) : json_null();
    default:
        return json_null();
    }
}

json_t *gm_settings_to_json(const struct gm_settings_schema *schema, const void *settings)
{
    json_t *obj = json_object();

    for (const struct gm_setting *s = schema->table; s->name; s++)
        json_object_set_new(obj, s->name, value_json(s, settings));
    return obj;
}
