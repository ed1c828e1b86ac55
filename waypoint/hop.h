/* Header hygiene between hops (pure): hop-by-hop fields (RFC 9110 §7.6.1), x-forwarded-for,
 * x-request-id (UUIDv4 when absent), and the client address from a Forwarded header. */
#ifndef WP_HOP_H
#define WP_HOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gammamesh/route_filter.h"

#define WP_REQUEST_ID_MAX 128 /* longer or odd x-request-id values are replaced */

/*
 * Remove the hop-by-hop fields of h: Connection and every field it names (except a few
 * end-to-end fields a client must not be able to strip: Host, Authorization, Cookie,
 * X-Forwarded-For, X-Request-Id, Forwarded, traceparent), Keep-Alive, Proxy-Connection, TE,
 * Transfer-Encoding, Upgrade, HTTP2-Settings. With keep_te_trailers (toward an HTTP/2 peer), a TE
 * that lists "trailers" becomes "te: trailers". Returns how many fields were removed.
 */
size_t wp_hop_strip(struct gm_hlist *h, bool keep_te_trailers);

/*
 * The protocol a message asks to switch to (RFC 9110 §7.8): an Upgrade field, and a Connection
 * field that lists the "upgrade" option. Returns the Upgrade value as a fresh heap string (several
 * fields joined with ","), or NULL when either is missing or the value is empty or over 256 bytes.
 * Call before wp_hop_strip(), which removes both.
 */
char *wp_hop_upgrade(const struct gm_hlist *h);

/* True when every token of the comma-separated list v (case-insensitive) is one of list's. */
bool wp_hop_tokens_in(const char *v, const char *list);

/* The tokens of the Upgrade value asked that allowed (comma-separated) lists, joined with ", ",
 * as a fresh heap string; NULL when none is. h2c is never passed on: after its 101 a client's
 * requests would travel unseen by routes and policies. */
char *wp_hop_upgrade_allowed(const char *asked, const char *allowed);

/* Append client (an IP address text) to x-forwarded-for: "a, b" becomes "a, b, client".
 * 0 or -ENOBUFS (the list's cap). */
int wp_hop_xff(struct gm_hlist *h, const char *client);

/* Write a UUIDv4 made of the bits of a and b ("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx", lower-case,
 * NUL-terminated) to out[37]. */
void wp_hop_uuid4(uint64_t a, uint64_t b, char out[37]);

/* Keep a well-formed x-request-id (1..WP_REQUEST_ID_MAX visible ASCII characters, exactly one
 * field); otherwise set one made from a and b. The id in use is copied to out[WP_REQUEST_ID_MAX +
 * 1]. 0 or -ENOBUFS. */
int wp_hop_request_id(struct gm_hlist *h, uint64_t a, uint64_t b, char *out);

/* The address in the first `for=` of a Forwarded value (RFC 7239: token or quoted, IPv6 in
 * brackets, optional port), as text without brackets or port, into out. 0, or -EINVAL when
 * there is none or it is not an IP address. */
int wp_hop_forwarded_for(const char *v, size_t len, char *out, size_t out_len);

#endif
