/* Unit tests of common/settings.c: precedence, every type, errors with locations, help, JSON. */
#include "gammamesh/settings.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "test.h"

struct demo_settings {
    struct gm_common_settings common;
    char *name;
    int64_t port;
    bool verbose;
    uint64_t timeout_ms;
    int mode;
    char *upstream;
    char *token;
    char *even;
    struct gm_settings_args args;
};

static const char *const modes[] = {"fast", "safe", "off", NULL};

static int check_even(const char *value, char *err, size_t errlen)
{
    if (strlen(value) % 2 == 0)
        return 0;
    snprintf(err, errlen, "\"%s\" has odd length", value);
    return -EINVAL;
}

static const struct gm_setting demo_table[] = {
    GM_SETTINGS_COMMON(struct demo_settings, common),
    {.name = "name",
     .env = "DEMO_NAME",
     .type = GM_SETTING_STRING,
     .offset = offsetof(struct demo_settings, name),
     .def = "anon",
     .help = "a name"},
    {.name = "port",
     .env = "DEMO_PORT",
     .type = GM_SETTING_INT,
     .offset = offsetof(struct demo_settings, port),
     .def = "80",
     .min = 1,
     .max = 65535,
     .help = "a port"},
    {.name = "verbose",
     .env = "DEMO_VERBOSE",
     .type = GM_SETTING_BOOL,
     .offset = offsetof(struct demo_settings, verbose),
     .help = "chatty"},
    {.name = "timeout",
     .env = "DEMO_TIMEOUT",
     .type = GM_SETTING_DURATION,
     .offset = offsetof(struct demo_settings, timeout_ms),
     .def = "5s",
     .min = 100,
     .max = 120000,
     .help = "a timeout"},
    {.name = "mode",
     .env = "DEMO_MODE",
     .type = GM_SETTING_ENUM,
     .offset = offsetof(struct demo_settings, mode),
     .def = "safe",
     .choices = modes,
     .help = "a mode"},
    {.name = "upstream",
     .env = "DEMO_UPSTREAM",
     .type = GM_SETTING_ADDR,
     .offset = offsetof(struct demo_settings, upstream),
     .help = "an address"},
    {.name = "token",
     .env = "DEMO_TOKEN",
     .type = GM_SETTING_STRING,
     .offset = offsetof(struct demo_settings, token),
     .flags = GM_SETTING_SECRET,
     .help = "a secret"},
    {.name = "even",
     .type = GM_SETTING_STRING,
     .offset = offsetof(struct demo_settings, even),
     .check = check_even,
     .help = "even-length text"},
    {0},
};

static const struct gm_settings_schema demo = {
    .program = "demo",
    .summary = "a demo daemon",
    .table = demo_table,
};

static const struct gm_settings_schema demo_pos = {
    .program = "demo",
    .table = demo_table,
    .positional = "[FILE...]",
    .args_offset = offsetof(struct demo_settings, args),
};

static const char *const env_names[] = {
    "DEMO_NAME",  "DEMO_PORT",   "DEMO_VERBOSE", "DEMO_TIMEOUT", "DEMO_MODE", "DEMO_UPSTREAM",
    "DEMO_TOKEN", "GM_SETTINGS", "GM_WORKERS",   "GM_LOG_LEVEL", NULL,
};

static char tmpdir[] = "/tmp/gm-settings-XXXXXX";
static char err[GM_SETTINGS_ERR_MAX];

static void clear_env(void)
{
    for (int i = 0; env_names[i]; i++)
        unsetenv(env_names[i]);
}

/* Writes text to a fresh file under tmpdir; returns its path (static buffer). */
static const char *write_file(const char *name, const char *text)
{
    static char path[256];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    fp = fopen(path, "w");
    CHECK(fp != NULL);
    if (fp) {
        fputs(text, fp);
        fclose(fp);
    }
    return path;
}

/* Parses argv (NULL-terminated, without argv[0]) into *st. */
static int parse(const struct gm_settings_schema *schema, struct demo_settings *st,
                 const char *const *args)
{
    char *argv[32] = {"demo"};
    int argc = 1;

    while (args && args[argc - 1])
        argv[argc] = (char *)args[argc - 1], argc++;
    memset(st, 0x5a, sizeof(*st)); /* garbage: parse must not read or free it */
    return gm_settings_parse(schema, st, argc, argv, err, sizeof(err));
}

static void test_defaults(void)
{
    struct demo_settings st;

    clear_env();
    CHECK_EQ_INT(parse(&demo, &st, NULL), 0);
    CHECK_EQ_STR(err, "");
    CHECK_EQ_STR(st.common.config_dir, "/etc/gammamesh/config");
    CHECK_EQ_STR(st.common.node_name, NULL);
    CHECK_EQ_STR(st.common.trust_domain, "cluster.local");
    CHECK_EQ_STR(st.common.admin_addr, "127.0.0.1:15000");
    CHECK_EQ_STR(st.common.metrics_addr, "0.0.0.0:15020");
    CHECK_EQ_STR(st.common.ready_addr, "0.0.0.0:15021");
    CHECK_EQ_STR(st.common.log_level, "info");
    CHECK_EQ_INT(st.common.log_format, 0);
    CHECK_EQ_INT(st.common.workers, 0);
    CHECK_EQ_INT(st.common.drain_deadline_ms, 30000);
    CHECK(!st.common.istio_compat);
    CHECK_EQ_STR(st.name, "anon");
    CHECK_EQ_INT(st.port, 80);
    CHECK(!st.verbose);
    CHECK_EQ_INT(st.timeout_ms, 5000);
    CHECK_EQ_INT(st.mode, 1);
    CHECK_EQ_STR(st.upstream, NULL);
    gm_settings_done(&demo, &st);
    CHECK_EQ_STR(st.name, NULL);
}

/* Each key is set by a different set of sources; the highest one must win. */
static void test_precedence(void)
{
    struct demo_settings st;
    const char *path = write_file("prec.yaml", "# comment\n"
                                               "name: from-file\n"
                                               "port: 1001\n"
                                               "mode: fast\n"
                                               "timeout: 1m\n"
                                               "workers: 2\n");
    char settings_arg[300];
    const char *args[] = {"--settings", path, "--port=1003", "--workers", "4", NULL};

    clear_env();
    setenv("DEMO_PORT", "1002", 1);
    setenv("DEMO_MODE", "off", 1);
    setenv("GM_WORKERS", "3", 1);
    setenv("DEMO_VERBOSE", "", 1); /* empty: unset */
    CHECK_EQ_INT(parse(&demo, &st, args), 0);
    CHECK_EQ_STR(err, "");
    CHECK_EQ_STR(st.name, "from-file"); /* default < file */
    CHECK_EQ_INT(st.timeout_ms, 60000); /* default < file */
    CHECK_EQ_INT(st.mode, 2);           /* file < env */
    CHECK_EQ_INT(st.port, 1003);        /* file < env < argv */
    CHECK_EQ_INT(st.common.workers, 4); /* file < env < argv */
    CHECK_EQ_STR(st.common.trust_domain, "cluster.local");
    CHECK(!st.verbose);
    gm_settings_done(&demo, &st);

    /* the settings file named by the environment; argv wins over env for --settings too */
    setenv("GM_SETTINGS", path, 1);
    CHECK_EQ_INT(parse(&demo, &st, NULL), 0);
    CHECK_EQ_STR(st.name, "from-file");
    CHECK_EQ_INT(st.port, 1002);
    gm_settings_done(&demo, &st);
    snprintf(settings_arg, sizeof(settings_arg), "--settings=%s",
             write_file("other.yaml", "name: other\n"));
    args[0] = settings_arg;
    args[1] = NULL;
    CHECK_EQ_INT(parse(&demo, &st, args), 0);
    CHECK_EQ_STR(st.name, "other");
    gm_settings_done(&demo, &st);
    clear_env();
}

struct case_ {
    const char *args[6];
    int rc;
    const char *err; /* substring of the message; NULL: no error */
};

static void test_types(void)
{
    static const struct case_ cases[] = {
        {{"--port", "443"}, 0, NULL},
        {{"--port", "0"}, -EINVAL, "--port: 0 is out of range [1, 65535]"},
        {{"--port=65536"}, -EINVAL, "65536 is out of range"},
        {{"--port", "12ab"}, -EINVAL, "--port: \"12ab\" is not an integer"},
        {{"--port", ""}, -EINVAL, "\"\" is not an integer"},
        {{"--port", " 8"}, -EINVAL, "is not an integer"},
        {{"--port", "99999999999999999999"}, -EINVAL, "is not an integer"},
        {{"--workers", "-1"}, -EINVAL, "--workers: -1 is out of range [0, 1024]"},
        {{"--verbose"}, 0, NULL},
        {{"--verbose=no"}, 0, NULL},
        {{"--verbose=maybe"}, -EINVAL, "--verbose: \"maybe\" is not a boolean"},
        {{"--no-verbose"}, 0, NULL},
        {{"--no-verbose=1"}, -EINVAL, "--no-verbose takes no value"},
        {{"--no-port"}, -EINVAL, "unknown option --no-port"},
        {{"--timeout", "1m30s500ms"}, 0, NULL},
        {{"--timeout", "50ms"}, -EINVAL, "--timeout: 50ms is out of range [100ms, 2m]"},
        {{"--timeout", "2m1ms"}, -EINVAL, "out of range"},
        {{"--timeout", "30"}, -EINVAL, "\"30\" is not a duration"},
        {{"--timeout", "1.5s"}, -EINVAL, "is not a duration"},
        {{"--timeout", "5d"}, -EINVAL, "is not a duration"},
        {{"--drain-deadline", "0"}, 0, NULL},
        {{"--mode", "SAFE"}, 0, NULL},
        {{"--mode", "slow"}, -EINVAL, "--mode: \"slow\" is not one of: fast, safe, off"},
        {{"--log-format", "xml"}, -EINVAL, "is not one of: text, json"},
        {{"--upstream", "10.0.0.1:80"}, 0, NULL},
        {{"--upstream", "[fd00::1]:15008"}, 0, NULL},
        {{"--upstream", "ca.mesh.svc:15012"}, 0, NULL},
        {{"--upstream", "fd00::1:80"}, -EINVAL, "is not host:port"},
        {{"--upstream", "10.0.0.1"}, -EINVAL, "is not host:port"},
        {{"--upstream", "10.0.0.1:99999"}, -EINVAL, "is not host:port"},
        {{"--upstream", "[zz]:80"}, -EINVAL, "is not host:port"},
        {{"--upstream", ":80"}, -EINVAL, "is not host:port"},
        {{"--admin-addr", ""}, 0, NULL},
        {{"--log-level", "info,hbone=trace"}, 0, NULL},
        {{"--log-level", "loud"}, -EINVAL, "--log-level: \"loud\" is not a log level spec"},
        {{"--even", "abc"}, -EINVAL, "--even: \"abc\" has odd length"},
        {{"--even", "ab"}, 0, NULL},
        {{"--bogus", "1"}, -EINVAL, "unknown option --bogus"},
        {{"-x"}, -EINVAL, "unknown option -x"},
        {{"--port"}, -EINVAL, "--port needs a value"},
        {{"stray"}, -EINVAL, "unexpected argument \"stray\""},
        {{"--verbose", "false"}, -EINVAL, "unexpected argument \"false\""},
        {{"--settings"}, -EINVAL, "--settings needs a value"},
        {{"--settings", "/nonexistent/x.yaml"}, -ENOENT, "/nonexistent/x.yaml"},
        {{"--help"}, GM_SETTINGS_HELP, NULL},
        {{"--port", "1", "-h"}, GM_SETTINGS_HELP, NULL},
        {{"--version"}, GM_SETTINGS_VERSION, NULL},
        {{"--", "--help"}, -EINVAL, "unexpected argument \"--help\""},
    };
    struct demo_settings st;

    clear_env();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = parse(&demo, &st, cases[i].args);

        CHECK_EQ_INT(rc, cases[i].rc);
        if (cases[i].err && strstr(err, cases[i].err) == NULL)
            CHECK_EQ_STR(err, cases[i].err);
        if (rc != 0)
            CHECK(st.name == NULL && st.common.config_dir == NULL);
        gm_settings_done(&demo, &st);
    }

    /* the values themselves */
    {
        const char *args[] = {
            "--timeout", "1m30s500ms", "--mode=OFF", "--verbose", "--upstream=[fd00::1]:15008",
            NULL};
        CHECK_EQ_INT(parse(&demo, &st, args), 0);
        CHECK_EQ_INT(st.timeout_ms, 90500);
        CHECK_EQ_INT(st.mode, 2);
        CHECK(st.verbose);
        CHECK_EQ_STR(st.upstream, "[fd00::1]:15008");
        gm_settings_done(&demo, &st);
    }
    setenv("DEMO_VERBOSE", "yes", 1);
    {
        const char *args[] = {"--no-verbose", NULL};
        CHECK_EQ_INT(parse(&demo, &st, args), 0);
        CHECK(!st.verbose);
        gm_settings_done(&demo, &st);
    }
    setenv("DEMO_PORT", "http", 1);
    CHECK_EQ_INT(parse(&demo, &st, NULL), -EINVAL);
    CHECK_EQ_STR(err, "environment DEMO_PORT (port): \"http\" is not an integer");
    clear_env();
}

static void test_positional(void)
{
    struct demo_settings st;
    const char *args[] = {"a.yaml", "--port", "9", "-", "--", "--port", NULL};

    clear_env();
    CHECK_EQ_INT(parse(&demo_pos, &st, args), 0);
    CHECK_EQ_INT(st.port, 9);
    CHECK_EQ_INT(st.args.argc, 3);
    if (st.args.argc == 3) {
        CHECK_EQ_STR(st.args.argv[0], "a.yaml");
        CHECK_EQ_STR(st.args.argv[1], "-");
        CHECK_EQ_STR(st.args.argv[2], "--port");
        CHECK(st.args.argv[3] == NULL);
    }
    gm_settings_done(&demo_pos, &st);
    CHECK(st.args.argv == NULL);
}

struct file_case {
    const char *text;
    const char *err; /* exact message after "<path>:"; NULL: success */
};

static void test_file_errors(void)
{
    static const struct file_case cases[] = {
        {"", NULL},
        {"# only a comment\n", NULL},
        {"---\n", NULL},
        {"name: a\nport: 8080\nverbose: true\n", NULL},
        {"name: a\n\nbogus: 1\n", "3:1: unknown setting \"bogus\""},
        {"port: 80\nport: 81\n", "2:1: port: duplicate key (first on line 1)"},
        {"port: many\n", "1:7: port: \"many\" is not an integer"},
        {"name: a\n  timeout: 5s\n", "2:10: mapping values are not allowed in this context"},
        {"name: [a, b]\n", "1:7: name: expected a single value"},
        {"- name\n", "1:1: expected a mapping of setting: value"},
        {"just text\n", "1:1: expected a mapping of setting: value"},
        {"name: a\n---\nname: b\n", "2:1: a settings file holds one document"},
        {"{a: 1}: b\n", "1:1: expected a setting name"},
        {"mode: \"quick\"\n", "1:7: mode: \"quick\" is not one of: fast, safe, off"},
    };
    struct demo_settings st;
    char settings_arg[300], want[600];
    const char *args[] = {settings_arg, NULL};

    clear_env();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *path = write_file("case.yaml", cases[i].text);
        int rc;

        snprintf(settings_arg, sizeof(settings_arg), "--settings=%s", path);
        rc = parse(&demo, &st, args);
        CHECK_EQ_INT(rc, cases[i].err ? -EINVAL : 0);
        if (cases[i].err) {
            snprintf(want, sizeof(want), "%s:%s", path, cases[i].err);
            CHECK_EQ_STR(err, want);
        }
        gm_settings_done(&demo, &st);
    }
}

static void test_help(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);

    gm_settings_help(&demo_pos, out);
    fclose(out);
    CHECK(strstr(text, "Usage: demo [OPTIONS] [FILE...]\n") != NULL);
    for (const struct gm_setting *s = demo_table; s->name; s++) {
        char flag[80];

        snprintf(flag, sizeof(flag), "  --%s", s->name);
        if (strstr(text, flag) == NULL)
            CHECK_EQ_STR(flag, "(missing from --help)");
        CHECK(strstr(text, s->help) != NULL);
        if (s->env)
            CHECK(strstr(text, s->env) != NULL);
    }
    CHECK(strstr(text, "--mode fast|safe|off") != NULL);
    CHECK(strstr(text, "env DEMO_PORT, default 80, range 1..65535") != NULL);
    CHECK(strstr(text, "env GM_DRAIN_DEADLINE, default 30s, range 0s..1h") != NULL);
    CHECK(strstr(text, "--settings FILE") != NULL);
    free(text);
}

static void test_json(void)
{
    struct demo_settings st;
    const char *args[] = {"--token", "hunter2", "--timeout", "90s", "--verbose", NULL};
    json_t *j;
    char *dump;

    clear_env();
    CHECK_EQ_INT(parse(&demo, &st, args), 0);
    j = gm_settings_to_json(&demo, &st);
    dump = json_dumps(j, JSON_COMPACT);
    CHECK(strstr(dump, "hunter2") == NULL);
    CHECK_EQ_STR(json_string_value(json_object_get(j, "token")), "<redacted>");
    CHECK_EQ_STR(json_string_value(json_object_get(j, "timeout")), "1m30s");
    CHECK_EQ_STR(json_string_value(json_object_get(j, "mode")), "safe");
    CHECK_EQ_STR(json_string_value(json_object_get(j, "log-format")), "text");
    CHECK_EQ_STR(json_string_value(json_object_get(j, "drain-deadline")), "30s");
    CHECK_EQ_INT(json_integer_value(json_object_get(j, "port")), 80);
    CHECK(json_is_true(json_object_get(j, "verbose")));
    CHECK(json_is_null(json_object_get(j, "node-name")));
    CHECK(json_is_null(json_object_get(j, "upstream")));
    CHECK_EQ_STR(json_string_value(json_object_get(j, "config-source")), "directory");
    CHECK_EQ_INT(json_object_size(j), 25);
    free(dump);
    json_decref(j);
    gm_settings_done(&demo, &st);
}

static void test_helpers(void)
{
    static const struct {
        const char *text;
        int rc;
        uint64_t ms;
        const char *canon;
    } durs[] = {
        {"0", 0, 0, "0s"},
        {"0s", 0, 0, "0s"},
        {"500ms", 0, 500, "500ms"},
        {"30s", 0, 30000, "30s"},
        {"1m", 0, 60000, "1m"},
        {"2h", 0, 7200000, "2h"},
        {"90s", 0, 90000, "1m30s"},
        {"1h1ms", 0, 3600001, "1h1ms"},
        {"", -EINVAL, 0, NULL},
        {"s", -EINVAL, 0, NULL},
        {"10", -EINVAL, 0, NULL},
        {"-1s", -EINVAL, 0, NULL},
        {"1s ", -EINVAL, 0, NULL},
        {"99999999999999999999h", -EINVAL, 0, NULL},
        {"5124095576030431h", -EINVAL, 0, NULL},
    };
    char buf[64], host[64];
    uint16_t port = 0;
    uint64_t ms;

    for (size_t i = 0; i < sizeof(durs) / sizeof(durs[0]); i++) {
        ms = 12345;
        CHECK_EQ_INT(gm_settings_parse_duration(durs[i].text, &ms), durs[i].rc);
        if (durs[i].rc == 0) {
            CHECK_EQ_INT(ms, durs[i].ms);
            CHECK_EQ_STR(gm_settings_format_duration(ms, buf, sizeof(buf)), durs[i].canon);
        }
    }
    CHECK_EQ_INT(gm_settings_split_addr("[::1]:15000", host, sizeof(host), &port), 0);
    CHECK_EQ_STR(host, "::1");
    CHECK_EQ_INT(port, 15000);
    CHECK_EQ_INT(gm_settings_split_addr("0.0.0.0:0", host, sizeof(host), &port), 0);
    CHECK_EQ_STR(host, "0.0.0.0");
    CHECK_EQ_INT(port, 0);
    CHECK_EQ_INT(gm_settings_split_addr("localhost:", host, sizeof(host), &port), -EINVAL);
    CHECK_EQ_INT(gm_settings_split_addr("a b:1", host, sizeof(host), &port), -EINVAL);
    CHECK_EQ_INT(gm_settings_split_addr("[::1]15000", host, sizeof(host), &port), -EINVAL);
    CHECK_EQ_INT(gm_settings_split_addr("host:1:2", host, sizeof(host), &port), -EINVAL);
}

int main(void)
{
    char cmd[64];

    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_defaults();
    test_precedence();
    test_types();
    test_positional();
    test_file_errors();
    test_help();
    test_json();
    test_helpers();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    CHECK_EQ_INT(system(cmd), 0);
    return TEST_DONE();
}
