/* The CNI gate's wire format (ztunnel/cni_proto.h): strict parsing, since the socket is the
 * one way into the capture manager from outside the daemon. */
#include "cni_proto.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static const char *const command_names[ZT_CNI_COMMAND__MAX] = {"ADD", "DEL", "CHECK"};
static const char *const result_names[ZT_CNI_RESULT__MAX] = {"captured", "not_enrolled", "ok",
                                                             "error"};

const char *zt_cni_command_name(enum zt_cni_command c)
{
    return (unsigned)c < ZT_CNI_COMMAND__MAX ? command_names[c] : "?";
}

const char *zt_cni_result_name(enum zt_cni_result r)
{
    return (unsigned)r < ZT_CNI_RESULT__MAX ? result_names[r] : "?";
}

/* Printable ASCII without spaces, quotes or backslashes, at most max bytes. */
static bool token_ok(const char *s, size_t max)
{
    size_t n = strlen(s);

    if (n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] > '~' || s[i] == '"' || s[i] == '\\')
            return false;
    return true;
}

/* An absolute path without "." or ".." components, at most 255 bytes. */
static bool netns_path_ok(const char *s)
{
    size_t n = strlen(s);

    if (n < 2 || n > 255 || s[0] != '/' || !token_ok(s, 255))
        return false;
    for (const char *p = s; *p; p++) {
        if (*p != '/')
            continue;
        const char *q = p + 1;
        if (q[0] == '/' || (q[0] == '.' && (q[1] == '/' || q[1] == '\0')) ||
            (q[0] == '.' && q[1] == '.' && (q[2] == '/' || q[2] == '\0')))
            return false;
    }
    return s[n - 1] != '/';
}

static const char *str_field(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

void zt_cni_request_free(struct zt_cni_request *r)
{
    free(r->container_id);
    free(r->netns);
    free(r->namespace);
    free(r->pod);
    free(r->uid);
    memset(r, 0, sizeof(*r));
}

/* The first IPv4 of ips[]: "a.b.c.d" or "a.b.c.d/len". */
static int parse_ips(json_t *ips, struct gm_ip *out, char *err, size_t errlen)
{
    size_t i;
    json_t *v;

    if (ips == NULL)
        return 0;
    if (!json_is_array(ips) || json_array_size(ips) > 16) {
        snprintf(err, errlen, "ips: not an array of at most 16 addresses");
        return -EINVAL;
    }
    json_array_foreach(ips, i, v)
    {
        char buf[64];
        struct gm_ip ip;
        if (!json_is_string(v) || json_string_length(v) >= sizeof(buf)) {
            snprintf(err, errlen, "ips[%zu]: not an address", i);
            return -EINVAL;
        }
        snprintf(buf, sizeof(buf), "%s", json_string_value(v));
        char *slash = strchr(buf, '/');
        if (slash)
            *slash = '\0';
        if (gm_ip_parse(buf, &ip) < 0) {
            snprintf(err, errlen, "ips[%zu]: not an address", i);
            return -EINVAL;
        }
        if (ip.family == AF_INET && out->family == 0)
            *out = ip;
    }
    return 0;
}

int zt_cni_request_parse(const char *p, size_t n, struct zt_cni_request *out, char *err,
                         size_t errlen)
{
    json_error_t jerr;
    json_t *o = json_loadb(p, n, JSON_REJECT_DUPLICATES, &jerr);
    int rc = -EINVAL;

    memset(out, 0, sizeof(*out));
    if (o == NULL || !json_is_object(o)) {
        snprintf(err, errlen, "not a JSON object%s%s", o ? "" : ": ", o ? "" : jerr.text);
        json_decref(o);
        return -EINVAL;
    }
    const char *cmd = str_field(o, "command");
    const char *cid = str_field(o, "container_id");
    const char *netns = str_field(o, "netns");
    const char *ns = str_field(o, "namespace");
    const char *pod = str_field(o, "pod");
    const char *uid = str_field(o, "uid");
    json_t *to = json_object_get(o, "timeout_ms");
    int c = -1;

    for (int i = 0; cmd && i < ZT_CNI_COMMAND__MAX; i++)
        if (strcmp(cmd, command_names[i]) == 0)
            c = i;
    if (c < 0) {
        snprintf(err, errlen, "command: not ADD, DEL or CHECK");
        goto out;
    }
    out->command = (enum zt_cni_command)c;
    if (cid && !token_ok(cid, 256)) {
        snprintf(err, errlen, "container_id: not a token of at most 256 bytes");
        goto out;
    }
    if (uid && !token_ok(uid, 128)) {
        snprintf(err, errlen, "uid: not a token of at most 128 bytes");
        goto out;
    }
    if (c == ZT_CNI_DEL && netns && netns[0] == '\0')
        netns = NULL; /* a DEL may come after the netns is gone */
    if (netns ? !netns_path_ok(netns) : c != ZT_CNI_DEL) {
        snprintf(err, errlen, "netns: not an absolute path");
        goto out;
    }
    const char *why = NULL;
    if (c != ZT_CNI_DEL && ((why = ns ? gm_check_dns_label(ns) : "missing") != NULL ||
                            (why = pod ? gm_check_dns_subdomain(pod) : "missing") != NULL)) {
        snprintf(err, errlen, "namespace and pod: not Kubernetes names (%s)", why);
        goto out;
    }
    if (c == ZT_CNI_DEL && (cid == NULL || cid[0] == '\0')) {
        snprintf(err, errlen, "DEL without a container_id");
        goto out;
    }
    out->timeout_ms = ZT_CNI_TIMEOUT_MS;
    if (to) {
        if (!json_is_integer(to) || json_integer_value(to) < 1 ||
            json_integer_value(to) > ZT_CNI_TIMEOUT_MAX) {
            snprintf(err, errlen, "timeout_ms: not 1..%d", ZT_CNI_TIMEOUT_MAX);
            goto out;
        }
        out->timeout_ms = (uint64_t)json_integer_value(to);
    }
    if (parse_ips(json_object_get(o, "ips"), &out->ip, err, errlen) < 0)
        goto out;
    out->container_id = gm_xstrdup(cid ? cid : "");
    out->netns = gm_xstrdup(netns ? netns : "");
    out->namespace = gm_xstrdup(ns && !gm_check_dns_label(ns) ? ns : "");
    out->pod = gm_xstrdup(pod && !gm_check_dns_subdomain(pod) ? pod : "");
    out->uid = gm_xstrdup(uid ? uid : "");
    rc = 0;
out:
    json_decref(o);
    return rc;
}

static char *dump_line(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (s == NULL)
        gm_panic(__FILE__, __LINE__, "json_dumps");
    char *line = gm_xasprintf("%s\n", s);
    free(s);
    return line;
}

char *zt_cni_request_format(const struct zt_cni_request *r)
{
    json_t *o = json_object();
    json_t *ips = json_array();
    char buf[64];

    json_object_set_new(o, "command", json_string(zt_cni_command_name(r->command)));
    json_object_set_new(o, "container_id", json_string(r->container_id ? r->container_id : ""));
    json_object_set_new(o, "netns", json_string(r->netns ? r->netns : ""));
    json_object_set_new(o, "namespace", json_string(r->namespace ? r->namespace : ""));
    json_object_set_new(o, "pod", json_string(r->pod ? r->pod : ""));
    json_object_set_new(o, "uid", json_string(r->uid ? r->uid : ""));
    if (r->ip.family)
        json_array_append_new(ips, json_string(gm_ip_format(&r->ip, buf, sizeof(buf))));
    json_object_set_new(o, "ips", ips);
    json_object_set_new(o, "timeout_ms", json_integer((json_int_t)r->timeout_ms));
    return dump_line(o);
}

char *zt_cni_reply_format(enum zt_cni_result result, const char *message)
{
    json_t *o = json_object();

    json_object_set_new(o, "result", json_string(zt_cni_result_name(result)));
    if (message && message[0])
        json_object_set_new(o, "message", json_string(message));
    return dump_line(o);
}

int zt_cni_reply_parse(const char *p, size_t n, enum zt_cni_result *result, char *msg,
                       size_t msglen)
{
    json_t *o = json_loadb(p, n, 0, NULL);
    const char *r = o && json_is_object(o) ? str_field(o, "result") : NULL;
    const char *m = r ? str_field(o, "message") : NULL;
    int rc = -EINVAL;

    for (int i = 0; r && i < ZT_CNI_RESULT__MAX; i++) {
        if (strcmp(r, result_names[i]) == 0) {
            *result = (enum zt_cni_result)i;
            snprintf(msg, msglen, "%s", m ? m : "");
            rc = 0;
        }
    }
    json_decref(o);
    return rc;
}

bool zt_cni_args_get(const char *args, const char *key, char *out, size_t len)
{
    size_t kl = strlen(key);

    for (const char *p = args; p && *p;) {
        const char *end = strchr(p, ';');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > kl && strncmp(p, key, kl) == 0 && p[kl] == '=') {
            size_t vl = n - kl - 1;
            if (vl >= len)
                return false;
            memcpy(out, p + kl + 1, vl);
            out[vl] = '\0';
            return true;
        }
        p = end ? end + 1 : NULL;
    }
    return false;
}
