/*
 * spiffe.h: the one SPIFFE ID shape the mesh accepts,
 *
 *     spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>
 *
 * exactly as Istio ztunnel does: five path parts with the literal words "ns" and "sa", nothing
 * else (no port, userinfo, query, fragment, percent-encoding, trailing slash or extra segment).
 *
 * - trust domain: 1..255 bytes of [a-z0-9._-] (the SPIFFE character set), made of non-empty
 *   dot-separated labels (no leading or trailing '.', no "..");
 * - namespace: a DNS-1123 label, 1..63 bytes of [a-z0-9-], starting and ending alphanumeric;
 * - service account: a DNS-1123 subdomain, 1..253 bytes of [a-z0-9.-], each dot-separated label
 *   starting and ending alphanumeric.
 *
 * Pure functions, no allocation, any thread.
 */
#ifndef GAMMAMESH_SPIFFE_H
#define GAMMAMESH_SPIFFE_H

#include <stdbool.h>
#include <stddef.h>

#define GM_SPIFFE_TD_MAX 255 /* bytes of a trust domain */
#define GM_SPIFFE_NS_MAX 63  /* bytes of a namespace */
#define GM_SPIFFE_SA_MAX 253 /* bytes of a service account */
/* A buffer of this size holds any formatted ID with its NUL. */
#define GM_SPIFFE_ID_MAX                                                                           \
    (sizeof("spiffe://") - 1 + GM_SPIFFE_TD_MAX + sizeof("/ns/") - 1 + GM_SPIFFE_NS_MAX +          \
     sizeof("/sa/") - 1 + GM_SPIFFE_SA_MAX + 1)

/* A parsed ID; every field is NUL-terminated. */
struct gm_spiffe_id {
    char trust_domain[GM_SPIFFE_TD_MAX + 1];
    char ns[GM_SPIFFE_NS_MAX + 1];
    char sa[GM_SPIFFE_SA_MAX + 1];
};

/* Parse s[0..len) (need not be NUL-terminated; a NUL inside is an error) into *out, which the
 * caller owns. 0, or -EINVAL when s is not exactly an ID of the shape above (*out is then
 * zeroed). */
int gm_spiffe_parse(const char *s, size_t len, struct gm_spiffe_id *out);

/* Build an ID from its parts (each NUL-terminated, validated as by gm_spiffe_parse). 0 or
 * -EINVAL (*out is then zeroed). */
int gm_spiffe_init(struct gm_spiffe_id *out, const char *trust_domain, const char *ns,
                   const char *sa);

/* Is td a valid trust domain by the rules above? */
bool gm_spiffe_td_valid(const char *td, size_t len);

/* Write "spiffe://td/ns/ns/sa/sa" and a NUL into buf[0..len). 0, or -ENOSPC when it does not
 * fit (buf then holds ""; GM_SPIFFE_ID_MAX always fits). */
int gm_spiffe_format(const struct gm_spiffe_id *id, char *buf, size_t len);

/* Field-by-field equality. */
bool gm_spiffe_equal(const struct gm_spiffe_id *a, const struct gm_spiffe_id *b);

#endif
