/* A strict, incremental validator of HTTP/1.1 request heads (pure). It runs on the raw bytes
 * before llhttp sees them, because Debian's llhttp 8.1.0 lacks the upstream fixes for
 * CVE-2023-30589 (line endings other than CRLF) and CVE-2024-27982 (whitespace before a header
 * name). Refused, with the status to answer:
 *   400  a line not ending in CRLF (bare LF, bare CR), a CR, NUL or other control byte inside a
 *        line, whitespace at the start of a header line (obs-fold, or before a name such as
 *        " Content-Length"), whitespace before the colon, a name with non-token bytes, a bad
 *        request line, a missing or repeated Host (HTTP/1.1), a Content-Length that is not
 *        digits or that is repeated (even with the same value), Content-Length together with
 * Transfer-Encoding, Transfer-Encoding in HTTP/1.0, "chunked" not last or repeated; 431  a head
 * longer than max_head_bytes, more than max_headers fields; 501  a transfer coding other than
 * chunked; 505  an HTTP version other than 1.0 and 1.1. The scan is incremental: feed the whole
 * head so far (from its first byte) each time; only the new bytes are examined. */
#ifndef WP_H1_CHECK_H
#define WP_H1_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct wp_h1_limits {
    size_t max_head_bytes; /* request line + fields + the empty line */
    size_t max_headers;    /* fields */
};

/* A slice of the scanned buffer. */
struct wp_h1_span {
    uint32_t off, len;
};

struct wp_h1_field {
    struct wp_h1_span name, value; /* value without surrounding whitespace */
};

enum wp_h1_verdict {
    WP_H1_MORE = 0, /* the head is not complete yet: call again with more bytes */
    WP_H1_DONE,     /* complete and valid: head.length bytes */
    WP_H1_BAD,      /* refuse with head.status (400, 431, 501, 505) and close */
    WP_H1__MAX
};

struct wp_h1_head {
    /* results (offsets into the scanned buffer) */
    struct wp_h1_span method, target;
    int minor;                  /* HTTP/1.<minor>: 0 or 1 */
    struct wp_h1_field *fields; /* max_headers entries, owned */
    size_t n_fields;
    int64_t content_length; /* -1: none */
    bool chunked;           /* Transfer-Encoding: chunked */
    size_t length;          /* bytes of the complete head, empty line included */
    int status;             /* WP_H1_BAD: the status to answer */
    const char *why;        /* WP_H1_BAD: a static reason for logs */
    /* scanner state */
    size_t pos;  /* first byte of the first line not yet validated */
    size_t scan; /* how far the search for the end of that line got */
    bool have_line;
    int hosts;
    struct wp_h1_limits lim;
};

void wp_h1_head_init(struct wp_h1_head *h, const struct wp_h1_limits *lim);
void wp_h1_head_done(struct wp_h1_head *h);
/* Forget the results and state for the next request (keeps the allocation). */
void wp_h1_head_reset(struct wp_h1_head *h);

/* Scan buf[0..len) (the head so far, from its first byte; earlier bytes must be unchanged). */
enum wp_h1_verdict wp_h1_head_scan(struct wp_h1_head *h, const char *buf, size_t len);

/* Is c an RFC 9110 token character? */
bool wp_h1_tchar(unsigned char c);

#endif
