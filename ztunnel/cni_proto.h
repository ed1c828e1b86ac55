/* The CNI gate's wire format, shared by ztunnel (ztunnel/cni.c) and the plugin
 * (ztunnel/cni_plugin.c). One request per connection on a Unix stream socket: a JSON object and
 * "\n" each way, then close. The client keeps its side open until the reply: ztunnel takes an
 * end of stream before it as the plugin having given up (the sandbox fails), and drops the netns
 * the request named.
 *
 *   request  {"command":"ADD"|"DEL"|"CHECK", "container_id":"…", "netns":"/path",
 *             "namespace":"ns", "pod":"name", "uid":"…", "ips":["10.244.1.5"],
 *             "timeout_ms":30000}
 *   reply    {"result":"captured"|"not_enrolled"|"ok"|"error", "message":"…"}
 */
#ifndef ZT_CNI_PROTO_H
#define ZT_CNI_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gammamesh/util.h"

#define ZT_CNI_MSG_MAX      (64 * 1024) /* a request or reply line, "\n" included */
#define ZT_CNI_TIMEOUT_MS   30000       /* a request without timeout_ms */
#define ZT_CNI_TIMEOUT_MAX  600000
#define ZT_CNI_DEFAULT_SOCK "/var/run/gammamesh/cni.sock"

enum zt_cni_command { ZT_CNI_ADD = 0, ZT_CNI_DEL, ZT_CNI_CHECK, ZT_CNI_COMMAND__MAX };

enum zt_cni_result {
    ZT_CNI_CAPTURED = 0, /* listeners and rules are in place in the request's netns */
    ZT_CNI_NOT_ENROLLED, /* not ours to capture: the sandbox may start */
    ZT_CNI_OK,           /* DEL done */
    ZT_CNI_ERROR,        /* fail closed: the runtime retries the sandbox */
    ZT_CNI_RESULT__MAX
};

struct zt_cni_request {
    enum zt_cni_command command;
    char *container_id; /* may be "" */
    char *netns;        /* absolute path; "" only for DEL */
    char *namespace;    /* ADD and CHECK: the pod */
    char *pod;
    char *uid;       /* "" when the runtime did not say */
    struct gm_ip ip; /* the sandbox's IPv4 from the network plugin; family 0: none */
    uint64_t timeout_ms;
};

const char *zt_cni_command_name(enum zt_cni_command c);
const char *zt_cni_result_name(enum zt_cni_result r);

/* Parses one request (without its "\n"). 0, or -EINVAL with the reason in err; on success the
 * caller owns the strings (zt_cni_request_free). */
int zt_cni_request_parse(const char *p, size_t n, struct zt_cni_request *out, char *err,
                         size_t errlen);
void zt_cni_request_free(struct zt_cni_request *r);
/* The request as one JSON line with "\n"; the caller frees it. */
char *zt_cni_request_format(const struct zt_cni_request *r);

/* The reply line with "\n" (the caller frees it), and its parser: 0 with *result and the
 * message copied into msg, or -EINVAL. */
char *zt_cni_reply_format(enum zt_cni_result result, const char *message);
int zt_cni_reply_parse(const char *p, size_t n, enum zt_cni_result *result, char *msg,
                       size_t msglen);

/* One KEY's value from CNI_ARGS ("K1=V1;K2=V2"); false when absent or longer than len-1. */
bool zt_cni_args_get(const char *args, const char *key, char *out, size_t len);

#endif
