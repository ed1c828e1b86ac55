/*
 * settings.h: daemon settings driven by one schema table.
 *
 * Each daemon declares a settings struct and a table of struct gm_setting entries (name, env
 * var, type, bounds, default, help, offsetof into the struct). The same table drives parsing,
 * --help and the "settings" part of /config_dump. Sources, lowest precedence first:
 *
 *   1. the entry's default;
 *   2. a YAML settings file: --settings FILE (or the GM_SETTINGS environment variable), a flat
 *      mapping of name: value; unknown, duplicate or non-scalar keys are errors at file:line:col;
 *   3. environment variables (an empty variable counts as unset);
 *   4. the command line: --name value, --name=value, and for booleans --name, --no-name,
 *      --name=false. "--" ends the options.
 *
 * Example:
 *
 *     struct zt_settings {
 *         struct gm_common_settings common;
 *         int64_t max_conns;
 *     };
 *     static const struct gm_setting zt_settings_table[] = {
 *         GM_SETTINGS_COMMON(struct zt_settings, common),
 *         {.name = "max-conns", .env = "GM_MAX_CONNS", .type = GM_SETTING_INT,
 *          .offset = offsetof(struct zt_settings, max_conns), .def = "10000", .min = 1,
 *          .max = 1000000, .help = "connections per worker"},
 *         {0},
 *     };
 */
#ifndef GAMMAMESH_SETTINGS_H
#define GAMMAMESH_SETTINGS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* How a setting is stored in the daemon's struct and parsed from text. */
enum gm_setting_type {
    GM_SETTING_STRING = 1, /* char *, heap, owned by the struct; NULL when unset */
    GM_SETTING_INT,        /* int64_t, decimal, within [min, max] */
    GM_SETTING_BOOL,       /* bool: true/false, yes/no, on/off, 1/0 (any case) */
    GM_SETTING_DURATION,   /* uint64_t milliseconds: "500ms", "30s", "1m30s", "2h", "0" */
    GM_SETTING_ENUM,       /* int: index into choices */
    GM_SETTING_ADDR,       /* char *: "host:port" or "[v6]:port", validated; NULL when unset */
    GM_SETTING__MAX
};

/* Flags of an entry. */
#define GM_SETTING_SECRET 0x1u /* the value is shown as "<redacted>" by to_json */

/* Extra validation of a value's text: 0, or -EINVAL with a reason written to err. */
typedef int (*gm_setting_check_fn)(const char *value, char *err, size_t errlen);

/* One row of a schema table; a row with name == NULL ends the table. */
struct gm_setting {
    const char *name;           /* "config-dir": the YAML key, and --config-dir */
    const char *env;            /* "GM_CONFIG_DIR", or NULL */
    enum gm_setting_type type;  /* storage and syntax */
    size_t offset;              /* offsetof(struct daemon_settings, field) */
    const char *def;            /* default as text, parsed like any value; NULL = unset/0 */
    const char *help;           /* one line */
    int64_t min, max;           /* INT: bounds; DURATION: bounds in ms; both 0: unbounded */
    const char *const *choices; /* ENUM: NULL-terminated list of values */
    gm_setting_check_fn check;  /* optional, runs after the type's own parsing */
    unsigned flags;             /* GM_SETTING_* flags */
};

/* Positional arguments, when a schema allows them: borrowed pointers into argv. */
struct gm_settings_args {
    int argc;
    char **argv; /* heap array owned by the settings struct; the strings belong to argv */
};

/* A daemon's settings: its table plus what --help prints. */
struct gm_settings_schema {
    const char *program;            /* "gammamesh-ztunnel" */
    const char *summary;            /* one line under the usage line */
    const struct gm_setting *table; /* ends with a {0} row */
    const char *positional;         /* usage of positional args ("[FILE...]"); NULL: none */
    size_t args_offset;             /* with positional: offsetof the struct gm_settings_args */
};

/* Values of gm_settings_parse() that are not errors. */
#define GM_SETTINGS_HELP    1 /* --help or -h was given: print gm_settings_help(), exit 0 */
#define GM_SETTINGS_VERSION 2 /* --version was given: print the version, exit 0 */

#define GM_SETTINGS_ERR_MAX 512 /* a good size for the err buffer */

/*
 * Fills *settings (a struct laid out as the schema says) from defaults, the settings file, the
 * environment and argv, in that order of precedence. argv is borrowed (argv[0] is the program).
 * Any previous content of the struct is overwritten without being freed.
 *
 * Returns 0; GM_SETTINGS_HELP or GM_SETTINGS_VERSION; or a negative errno for a usage or
 * validation error, with a message naming the source and key written to err, e.g.
 * "/etc/gm.yaml:3:10: workers: \"many\" is not an integer" or
 * "--log-format: \"xml\" is not one of: text, json". The caller prints it and exits 2.
 * On any non-zero return the struct holds no allocation (gm_settings_done() is still safe).
 */
int gm_settings_parse(const struct gm_settings_schema *schema, void *settings, int argc,
                      char **argv, char *err, size_t errlen);

/* Frees the strings and the positional array of *settings and NULLs them. */
void gm_settings_done(const struct gm_settings_schema *schema, void *settings);

/* Prints usage, the sources and one block per entry (flag, env var, default, help) to out. */
void gm_settings_help(const struct gm_settings_schema *schema, FILE *out);

/* The current values as a new JSON object {name: value} (caller owns the reference). */
json_t *gm_settings_to_json(const struct gm_settings_schema *schema, const void *settings);

/* "1m30s" style text to milliseconds: 0 or -EINVAL (also on overflow). */
int gm_settings_parse_duration(const char *text, uint64_t *ms);

/* Milliseconds to the shortest "1h2m3s4ms" text ("0s" for 0); returns buf. */
const char *gm_settings_format_duration(uint64_t ms, char *buf, size_t len);

/*
 * Splits "host:port" or "[v6addr]:port" (host: IPv4, IPv6 in brackets, or a DNS name) into
 * host (brackets removed) and port: 0 or -EINVAL.
 */
int gm_settings_split_addr(const char *text, char *host, size_t hostlen, uint16_t *port);

/* A gm_setting_check_fn that accepts a gm_log_set_level() spec. */
int gm_settings_check_log_level(const char *value, char *err, size_t errlen);

/* ---- settings shared by both daemons ---- */

/* Embed this struct in each daemon's settings struct and list GM_SETTINGS_COMMON in its table. */
/* Where the daemons read their objects (DESIGN.md §4). */
enum gm_config_source {
    GM_CONFIG_SOURCE_DIRECTORY = 0, /* config-dir, watched */
    GM_CONFIG_SOURCE_KUBERNETES,    /* list+watch of the Kubernetes API */
};

struct gm_common_settings {
    int config_source;          /* enum gm_config_source */
    char *config_dir;           /* directory of Kubernetes YAML */
    char *kube_api;             /* API server URL; "" = from KUBERNETES_SERVICE_HOST/PORT */
    char *kube_token_file;      /* bearer token, re-read for every request */
    char *kube_ca_file;         /* CA bundle that verifies the API server */
    char *node_name;            /* this node; NULL: the host name */
    char *trust_domain;         /* SPIFFE trust domain */
    char *ca_cert;              /* CA certificate file (PEM) */
    char *ca_key;               /* CA private key file (PEM) */
    char *admin_addr;           /* admin listener; "" disables */
    char *metrics_addr;         /* Prometheus listener; "" disables */
    char *ready_addr;           /* readiness listener; "" disables */
    char *log_level;            /* gm_log_set_level() spec */
    int log_format;             /* enum gm_log_format */
    int64_t workers;            /* worker loops; 0 = number of CPUs */
    uint64_t drain_deadline_ms; /* longest graceful drain */
    bool istio_compat;          /* also honour istio.io labels */
};

/* "text", "json", NULL: the choices of log-format, in enum gm_log_format order. */
extern const char *const gm_settings_log_formats[];
/* "directory", "kubernetes", NULL: the choices of config-source, in enum order. */
extern const char *const gm_settings_config_sources[];

/* Rows of the common settings for daemon struct `stype` whose gm_common_settings is `member`. */
/* clang-format off */
#define GM_SETTINGS_COMMON(stype, member)                                                          \
    {.name = "config-source", .env = "GM_CONFIG_SOURCE", .type = GM_SETTING_ENUM,                  \
     .offset = offsetof(stype, member.config_source), .def = "directory",                          \
     .choices = gm_settings_config_sources,                                                        \
     .help = "where objects come from: config-dir, or list+watch of the Kubernetes API"},          \
    {.name = "config-dir", .env = "GM_CONFIG_DIR", .type = GM_SETTING_STRING,                      \
     .offset = offsetof(stype, member.config_dir), .def = "/etc/gammamesh/config",                 \
     .help = "directory of Kubernetes YAML files to load and watch"},                              \
    {.name = "kube-api", .env = "GM_KUBE_API", .type = GM_SETTING_STRING,                          \
     .offset = offsetof(stype, member.kube_api), .def = "",                                        \
     .help = "API server, https://HOST:PORT; empty: KUBERNETES_SERVICE_HOST and _PORT"},           \
    {.name = "kube-token-file", .env = "GM_KUBE_TOKEN_FILE", .type = GM_SETTING_STRING,            \
     .offset = offsetof(stype, member.kube_token_file),                                            \
     .def = "/var/run/secrets/kubernetes.io/serviceaccount/token",                                 \
     .help = "bearer token for the API server, re-read for every request"},                        \
    {.name = "kube-ca-file", .env = "GM_KUBE_CA_FILE", .type = GM_SETTING_STRING,                  \
     .offset = offsetof(stype, member.kube_ca_file),                                               \
     .def = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",                                \
     .help = "CA bundle (PEM) that verifies the API server"},                                      \
    {.name = "node-name", .env = "GM_NODE_NAME", .type = GM_SETTING_STRING,                        \
     .offset = offsetof(stype, member.node_name),                                                  \
     .help = "this node's name (spec.nodeName of its pods); default: the host name"},              \
    {.name = "trust-domain", .env = "GM_TRUST_DOMAIN", .type = GM_SETTING_STRING,                  \
     .offset = offsetof(stype, member.trust_domain), .def = "cluster.local",                       \
     .help = "SPIFFE trust domain of this mesh"},                                                  \
    {.name = "ca-cert", .env = "GM_CA_CERT", .type = GM_SETTING_STRING,                            \
     .offset = offsetof(stype, member.ca_cert), .help = "CA certificate file (PEM)"},              \
    {.name = "ca-key", .env = "GM_CA_KEY", .type = GM_SETTING_STRING,                              \
     .offset = offsetof(stype, member.ca_key),                                                     \
     .help = "CA private key file (PEM); the path is shown, never the key"},                       \
    {.name = "admin-addr", .env = "GM_ADMIN_ADDR", .type = GM_SETTING_ADDR,                        \
     .offset = offsetof(stype, member.admin_addr), .def = "127.0.0.1:15000",                       \
     .help = "admin listener (/config_dump, /logging, /quitquitquit); empty disables"},            \
    {.name = "metrics-addr", .env = "GM_METRICS_ADDR", .type = GM_SETTING_ADDR,                    \
     .offset = offsetof(stype, member.metrics_addr), .def = "0.0.0.0:15020",                       \
     .help = "Prometheus listener (/metrics); empty disables"},                                    \
    {.name = "ready-addr", .env = "GM_READY_ADDR", .type = GM_SETTING_ADDR,                        \
     .offset = offsetof(stype, member.ready_addr), .def = "0.0.0.0:15021",                         \
     .help = "readiness listener (/healthz/ready); empty disables"},                               \
    {.name = "log-level", .env = "GM_LOG_LEVEL", .type = GM_SETTING_STRING,                        \
     .offset = offsetof(stype, member.log_level), .def = "info",                                   \
     .check = gm_settings_check_log_level,                                                         \
     .help = "log levels: LEVEL or SUB=LEVEL,... (error warn info debug trace off)"},              \
    {.name = "log-format", .env = "GM_LOG_FORMAT", .type = GM_SETTING_ENUM,                        \
     .offset = offsetof(stype, member.log_format), .def = "text",                                  \
     .choices = gm_settings_log_formats, .help = "log line format"},                               \
    {.name = "workers", .env = "GM_WORKERS", .type = GM_SETTING_INT,                               \
     .offset = offsetof(stype, member.workers), .def = "0", .min = 0, .max = 1024,                 \
     .help = "worker event loops; 0 = number of CPUs"},                                            \
    {.name = "drain-deadline", .env = "GM_DRAIN_DEADLINE", .type = GM_SETTING_DURATION,            \
     .offset = offsetof(stype, member.drain_deadline_ms), .def = "30s", .min = 0,                  \
     .max = 3600 * 1000, .help = "longest graceful drain on SIGTERM before connections are cut"},  \
    {.name = "istio-compat", .env = "GM_ISTIO_COMPAT", .type = GM_SETTING_BOOL,                    \
     .offset = offsetof(stype, member.istio_compat), .def = "false",                               \
     .help = "also honour istio.io/dataplane-mode and istio.io/use-waypoint"}
/* clang-format on */

#endif
