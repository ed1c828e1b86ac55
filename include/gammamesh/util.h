/* Small shared helpers of common/: allocation that aborts on OOM, container_of, growable
 * arrays, IP addresses. */
#ifndef GAMMAMESH_UTIL_H
#define GAMMAMESH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GM_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#ifndef container_of
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#endif

/* Invariant checks stay on in release builds. */
#define GM_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond))                                                                               \
            gm_panic(__FILE__, __LINE__, #cond);                                                   \
    } while (0)

_Noreturn void gm_panic(const char *file, int line, const char *what);

/* Out-of-memory aborts; these never return NULL. */
void *gm_xmalloc(size_t n);
void *gm_xcalloc(size_t nmemb, size_t size);
void *gm_xrealloc(void *p, size_t n);
char *gm_xstrdup(const char *s);
char *gm_xstrndup(const char *s, size_t n);

/* n bytes (not zeroed) that live until the calling thread exits: per-thread scratch buffers,
 * allocated on first use so that a thread which never needs one pays no memory for it. */
void *gm_thread_alloc(size_t n);
/* printf into a fresh heap string (caller frees). */
char *gm_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Whole files. gm_read_fd reads fd to its end: 0 with *buf (NUL-terminated, the caller frees
 * it) and *len, -EFBIG past max bytes, or -errno. gm_read_file does so for a regular file at
 * path (-EINVAL when it is something else). */
int gm_read_fd(int fd, size_t max, char **buf, size_t *len);
int gm_read_file(const char *path, size_t max, char **buf, size_t *len);

/* Kubernetes names: NULL when s is an RFC 1123 label (a namespace, a port name's shape) or
 * subdomain (most object names), else why not. */
const char *gm_check_dns_label(const char *s);
const char *gm_check_dns_subdomain(const char *s);

/* Grow a (pointer, count, capacity) triple so that one more element fits. */
#define GM_VEC_PUSH(ptr, n, cap)                                                                   \
    do {                                                                                           \
        if ((n) == (cap)) {                                                                        \
            (cap) = (cap) ? (cap)*2 : 8;                                                           \
            (ptr) = gm_xrealloc((ptr), (cap) * sizeof(*(ptr)));                                    \
        }                                                                                          \
        (n)++;                                                                                     \
    } while (0)

/* A growable byte string with a cap; append fails with -ENOBUFS past the cap. */
struct gm_buf {
    char *data;   /* NUL-terminated while len < cap */
    size_t len;   /* bytes used */
    size_t alloc; /* bytes allocated */
    size_t cap;   /* hard limit; 0 = unlimited */
};

void gm_buf_init(struct gm_buf *b, size_t cap);
void gm_buf_done(struct gm_buf *b);
int gm_buf_append(struct gm_buf *b, const void *p, size_t n);
int gm_buf_printf(struct gm_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* An IPv4 or IPv6 address; IPv4 is stored in the first 4 bytes. */
struct gm_ip {
    uint8_t family; /* AF_INET or AF_INET6; 0 = unset */
    uint8_t addr[16];
};

/* Parse a textual IP; 0 or -EINVAL. */
int gm_ip_parse(const char *s, struct gm_ip *out);
/* Format into buf (at least 46 bytes); returns buf. */
const char *gm_ip_format(const struct gm_ip *ip, char *buf, size_t len);
bool gm_ip_equal(const struct gm_ip *a, const struct gm_ip *b);
/* Parse "ip:port" or "[ipv6]:port"; 0 or -EINVAL. */
int gm_ipport_parse(const char *s, struct gm_ip *ip, int *port);
/* Format "ip:port" ("[ipv6]:port"), as gm_ipport_parse() reads it, into buf; returns buf. */
const char *gm_ipport_format(const struct gm_ip *ip, int port, char *buf, size_t len);
/* Does ip lie within the CIDR "a.b.c.d/len" (or a bare address)? -EINVAL when cidr is bad. */
int gm_ip_in_cidr(const struct gm_ip *ip, const char *cidr);

/* Formatting without printf, for per-connection and per-request paths. */
/* v in decimal at buf (room for 20 digits, no NUL); returns the number of digits. */
size_t gm_fmt_u64(char *buf, uint64_t v);
/* The n bytes at p as 2n lowercase hex digits at out (no NUL); returns the position after them. */
char *gm_fmt_hex(char *out, const uint8_t *p, size_t n);
/* Seconds since the epoch as RFC 3339 UTC ("2026-11-26T16:00:00Z") in buf (at least 21 bytes);
 * returns buf, or NULL when the time cannot be represented. */
const char *gm_fmt_rfc3339(char *buf, size_t len, int64_t t);
/* parts[0..n) concatenated into buf, NUL-terminated and cut short to fit len (> 0); returns the
 * length written. */
size_t gm_str_join(char *buf, size_t len, const char *const *parts, size_t n);

/* ASCII case-insensitive helpers. */
bool gm_str_ieq(const char *a, const char *b);
uint64_t gm_hash_str(const char *s);
/* Binary search over n sorted items that cmp_at compares (item i against key, like strcmp): the
 * index of key, or where it would be inserted; *found says which. */
size_t gm_bsearch_pos(size_t n, int (*cmp_at)(const void *ctx, size_t i, const void *key),
                      const void *ctx, const void *key, bool *found);
/* The same over v, n pointers to structs sorted (strcmp) by the string member at `offset`. */
size_t gm_sorted_find(void *const *v, size_t n, size_t offset, const char *key, bool *found);

/* The reason phrase of an HTTP status code ("Not Found"); "Unknown" for codes it lacks. */
const char *gm_http_reason(int status);

#endif
