/* Allocation, buffers, IP addresses: the small helpers every module uses. */
#include "gammamesh/util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

_Noreturn void gm_panic(const char *file, int line, const char *what)
{
    fprintf(stderr, "gammamesh: assertion failed at %s:%d: %s\n", file, line, what);
    abort();
}

static void *check_alloc(void *p)
{
    if (p == NULL) {
        fputs("gammamesh: out of memory\n", stderr);
        abort();
    }
    return p;
}

void *gm_xmalloc(size_t n)
{
    return check_alloc(malloc(n ? n : 1));
}

void *gm_xcalloc(size_t nmemb, size_t size)
{
    return check_alloc(calloc(nmemb ? nmemb : 1, size ? size : 1));
}

void *gm_xrealloc(void *p, size_t n)
{
    return check_alloc(realloc(p, n ? n : 1));
}

char *gm_xstrdup(const char *s)
{
    return check_alloc(strdup(s));
}

char *gm_xstrndup(const char *s, size_t n)
{
    return check_alloc(strndup(s, n));
}

/* ---- per-thread allocations ---- */

struct thread_alloc {
    struct thread_alloc *next;
    max_align_t data[];
};

static pthread_key_t thread_alloc_key;
static pthread_once_t thread_alloc_once = PTHREAD_ONCE_INIT;

static void thread_alloc_free(void *head)
{
    for (struct thread_alloc *a = head, *next; a; a = next) {
        next = a->next;
        free(a);
    }
}

static void thread_alloc_init(void)
{
    if (pthread_key_create(&thread_alloc_key, thread_alloc_free) != 0)
        abort();
}

void *gm_thread_alloc(size_t n)
{
    pthread_once(&thread_alloc_once, thread_alloc_init);
    struct thread_alloc *a = gm_xmalloc(sizeof(*a) + n);
    a->next = pthread_getspecific(thread_alloc_key);
    pthread_setspecific(thread_alloc_key, a);
    return a->data;
}

char *gm_xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;

    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return check_alloc(s);
}

int gm_read_fd(int fd, size_t max, char **buf, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *p = gm_xmalloc(cap + 1);

    for (;;) {
        if (n == cap) {
            if (cap > max) {
                free(p);
                return -EFBIG;
            }
            cap *= 2;
            p = gm_xrealloc(p, cap + 1);
        }
        ssize_t k = read(fd, p + n, cap - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            int e = errno;
            free(p);
            return -e;
        }
        if (k == 0)
            break;
        n += (size_t)k;
    }
    if (n > max) {
        free(p);
        return -EFBIG;
    }
    p[n] = '\0';
    *buf = p;
    *len = n;
    return 0;
}

int gm_read_file(const char *path, size_t max, char **buf, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;

    if (fd < 0)
        return -errno;
    int rc = fstat(fd, &st) < 0         ? -errno
             : !S_ISREG(st.st_mode)     ? -EINVAL
             : (size_t)st.st_size > max ? -EFBIG
                                        : gm_read_fd(fd, max, buf, len);
    close(fd);
    return rc;
}

/* RFC 1123 label. */
const char *gm_check_dns_label(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 63)
        return "must have 1 to 63 characters";
    for (size_t i = 0; i < n; i++) {
        bool alnum = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9');
        if (!alnum && (s[i] != '-' || i == 0 || i == n - 1))
            return "must be lower-case alphanumerics or '-', starting and ending alphanumeric";
    }
    return NULL;
}

/* RFC 1123 subdomain, as the CRD's SectionName. */
const char *gm_check_dns_subdomain(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 253)
        return "must have 1 to 253 characters";
    for (size_t i = 0; i < n; i++) {
        bool alnum = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9');
        bool edge = i == 0 || i == n - 1 || s[i - 1] == '.' || s[i + 1] == '.';
        if (!alnum && (edge || (s[i] != '-' && s[i] != '.')))
            return "must be lower-case alphanumerics, '-' or '.', each label starting and ending "
                   "alphanumeric";
    }
    return NULL;
}

void gm_buf_init(struct gm_buf *b, size_t cap)
{
    memset(b, 0, sizeof(*b));
    b->cap = cap;
}

void gm_buf_done(struct gm_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

static int buf_reserve(struct gm_buf *b, size_t extra)
{
    size_t need = b->len + extra + 1;

    if (b->cap && b->len + extra > b->cap)
        return -ENOBUFS;
    if (need <= b->alloc)
        return 0;
    size_t n = b->alloc ? b->alloc : 256;
    while (n < need)
        n *= 2;
    b->data = gm_xrealloc(b->data, n);
    b->alloc = n;
    return 0;
}

int gm_buf_append(struct gm_buf *b, const void *p, size_t n)
{
    int rc = buf_reserve(b, n);

    if (rc < 0)
        return rc;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int gm_buf_printf(struct gm_buf *b, const char *fmt, ...)
{
    va_list ap;
    char small[512];

    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    if ((size_t)n < sizeof(small))
        return gm_buf_append(b, small, (size_t)n);
    int rc = buf_reserve(b, (size_t)n);
    if (rc < 0)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int gm_ip_parse(const char *s, struct gm_ip *out)
{
    memset(out, 0, sizeof(*out));
    if (s == NULL)
        return -EINVAL;
    if (inet_pton(AF_INET, s, out->addr) == 1) {
        out->family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, s, out->addr) == 1) {
        out->family = AF_INET6;
        return 0;
    }
    return -EINVAL;
}

size_t gm_fmt_u64(char *buf, uint64_t v)
{
    char rev[20];
    size_t n = 0;

    do {
        rev[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        buf[i] = rev[n - 1 - i];
    return n;
}

char *gm_fmt_hex(char *out, const uint8_t *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        *out++ = hex[p[i] >> 4];
        *out++ = hex[p[i] & 0xf];
    }
    return out;
}

size_t gm_str_join(char *buf, size_t len, const char *const *parts, size_t n)
{
    size_t used = 0;

    for (size_t i = 0; i < n; i++) {
        size_t k = strlen(parts[i]);
        if (k > len - 1 - used)
            k = len - 1 - used;
        memcpy(buf + used, parts[i], k);
        used += k;
    }
    buf[used] = '\0';
    return used;
}

/* IPv4 without inet_ntop (which goes through sprintf): addresses are formatted per connection
 * for the access log. "255.255.255.255" and ":65535" fit in 22 bytes. */
static size_t format_v4(const uint8_t *a, int port, char *out)
{
    char *p = out;

    for (int i = 0; i < 4; i++) {
        if (i)
            *p++ = '.';
        p += gm_fmt_u64(p, a[i]);
    }
    if (port >= 0) {
        *p++ = ':';
        p += gm_fmt_u64(p, (uint64_t)port);
    }
    *p = '\0';
    return (size_t)(p - out);
}

const char *gm_ip_format(const struct gm_ip *ip, char *buf, size_t len)
{
    char v4[24];

    if (ip->family == AF_INET && len > 0) {
        size_t n = format_v4(ip->addr, -1, v4);
        if (n < len) {
            memcpy(buf, v4, n + 1);
            return buf;
        }
    }
    if (ip->family == 0 || inet_ntop(ip->family, ip->addr, buf, (socklen_t)len) == NULL)
        snprintf(buf, len, "-");
    return buf;
}

const char *gm_ipport_format(const struct gm_ip *ip, int port, char *buf, size_t len)
{
    char a[64];

    if (ip->family == AF_INET && port >= 0 && port <= 65535 && len > 0) {
        size_t n = format_v4(ip->addr, port, a);
        if (n < len) {
            memcpy(buf, a, n + 1);
            return buf;
        }
    }
    gm_ip_format(ip, a, sizeof(a));
    snprintf(buf, len, ip->family == AF_INET6 ? "[%s]:%d" : "%s:%d", a, port);
    return buf;
}

bool gm_ip_equal(const struct gm_ip *a, const struct gm_ip *b)
{
    if (a->family != b->family)
        return false;
    return memcmp(a->addr, b->addr, a->family == AF_INET ? 4 : 16) == 0;
}

int gm_ipport_parse(const char *s, struct gm_ip *ip, int *port)
{
    char host[64];
    const char *colon;
    const char *h = s;
    size_t hl;

    if (s == NULL)
        return -EINVAL;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (end == NULL || end[1] != ':')
            return -EINVAL;
        h = s + 1;
        hl = (size_t)(end - h);
        colon = end + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || strchr(s, ':') != colon)
            return -EINVAL;
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || hl >= sizeof(host))
        return -EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    char *endp;
    errno = 0;
    long p = strtol(colon + 1, &endp, 10);
    if (errno || *endp || endp == colon + 1 || p < 0 || p > 65535)
        return -EINVAL;
    *port = (int)p;
    return gm_ip_parse(host, ip);
}

int gm_ip_in_cidr(const struct gm_ip *ip, const char *cidr)
{
    char host[64];
    const char *slash = strchr(cidr, '/');
    size_t hl = slash ? (size_t)(slash - cidr) : strlen(cidr);
    struct gm_ip net;
    long bits;

    if (hl >= sizeof(host))
        return -EINVAL;
    memcpy(host, cidr, hl);
    host[hl] = '\0';
    if (gm_ip_parse(host, &net) < 0)
        return -EINVAL;
    int max = net.family == AF_INET ? 32 : 128;
    if (slash) {
        char *endp;
        bits = strtol(slash + 1, &endp, 10);
        if (*endp || endp == slash + 1 || bits < 0 || bits > max)
            return -EINVAL;
    } else {
        bits = max;
    }
    if (ip->family != net.family)
        return 0;
    for (int i = 0; i < bits; i++) {
        int byte = i / 8, bit = 7 - i % 8;
        if (((ip->addr[byte] >> bit) & 1) != ((net.addr[byte] >> bit) & 1))
            return 0;
    }
    return 1;
}

bool gm_str_ieq(const char *a, const char *b)
{
    return strcasecmp(a, b) == 0;
}

size_t gm_bsearch_pos(size_t n, int (*cmp_at)(const void *ctx, size_t i, const void *key),
                      const void *ctx, const void *key, bool *found)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_at(ctx, mid, key);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

struct sorted_ptrs {
    void *const *v;
    size_t offset;
};

static int cmp_member(const void *ctx, size_t i, const void *key)
{
    const struct sorted_ptrs *sp = ctx;

    return strcmp(*(const char *const *)((const char *)sp->v[i] + sp->offset), key);
}

size_t gm_sorted_find(void *const *v, size_t n, size_t offset, const char *key, bool *found)
{
    struct sorted_ptrs sp = {v, offset};

    return gm_bsearch_pos(n, cmp_member, &sp, key, found);
}

const char *gm_fmt_rfc3339(char *buf, size_t len, int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (gmtime_r(&tt, &tm) == NULL || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        return NULL;
    return buf;
}

uint64_t gm_hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

const char *gm_http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}
