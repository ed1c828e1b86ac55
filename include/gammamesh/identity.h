/*
 * identity.h: workload certificates (DESIGN §7).
 *
 * - struct gm_cert: an immutable, reference-counted leaf certificate with its private key and
 *   intermediates. References may move between threads (atomic count); a connection keeps its own
 *   reference, so a refresh never pulls a certificate out from under it.
 * - struct gm_identity_provider: where certificates come from (an interface; one implementation,
 *   the local signer, which answers synchronously).
 * - struct gm_signer: the local signer: a CA certificate and key (files, or made in memory for
 *   tests and benches) minting ECDSA P-256 leaves whose only SAN is a critical URI SAN with the
 *   SPIFFE ID and whose subject is empty, as Istio's do.
 * - struct gm_cert_cache: one certificate per identity, minted on first use, refreshed at half
 *   life by gm_cert_cache_tick(); a failed refresh keeps serving the valid certificate and retries
 *   with exponential backoff (1 s doubling to 60 s).
 *
 * Key material never leaves these objects except through gm_cert_key_to_pem(), which exists for
 * writing files for tools (benchmarks, the lab); never log what it returns.
 */
#ifndef GAMMAMESH_IDENTITY_H
#define GAMMAMESH_IDENTITY_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "gammamesh/spiffe.h"

#define GM_CERT_LIFETIME_DEFAULT (24 * 3600)       /* seconds */
#define GM_CERT_LIFETIME_MAX     (366 * 24 * 3600) /* longest leaf a signer mints */
#define GM_CERT_BACKDATE         300               /* notBefore = now - this, for clock skew */
#define GM_CERT_BACKOFF_MIN      1                 /* first retry after a failed issue, s */
#define GM_CERT_BACKOFF_MAX      60                /* retry interval cap, s */

/* Seconds since the epoch; injectable so tests can move time. */
typedef int64_t (*gm_clock_fn)(void *arg);

/* ---- certificates ---- */

/* Read-only after creation; take references with gm_cert_ref. */
struct gm_cert {
    atomic_int refs;
    X509 *leaf;
    EVP_PKEY *key;
    STACK_OF(X509) *chain; /* intermediates sent after the leaf; never the root; may be empty */
    int64_t not_before;    /* unix seconds */
    int64_t not_after;     /* unix seconds */
    char identity[GM_SPIFFE_ID_MAX]; /* the SPIFFE ID of the URI SAN */
    char serial[2 * 20 + 1];         /* lower-case hex, for logs and config_dump */
};

/* Take a reference; returns c. */
struct gm_cert *gm_cert_ref(struct gm_cert *c);
/* Drop a reference; frees on the last one. Accepts NULL. */
void gm_cert_unref(struct gm_cert *c);

/* The leaf then the intermediates as PEM, in a fresh NUL-terminated heap string *out (caller
 * frees; *len, if non-NULL, gets its length). No key material. 0 or -ENOMEM. */
int gm_cert_to_pem(const struct gm_cert *c, char **out, size_t *len);
/* The private key as unencrypted PKCS#8 PEM, same conventions. For tools writing key files;
 * never log it, and OPENSSL_cleanse() it before free(). 0 or -ENOMEM. */
int gm_cert_key_to_pem(const struct gm_cert *c, char **out, size_t *len);

/* ---- provider interface ---- */

struct gm_identity_provider;

/* The result of an issue: status 0 and cert (a reference the callback now owns), or a negative
 * errno and cert NULL. */
typedef void (*gm_identity_issue_cb)(void *arg, int status, struct gm_cert *cert);

struct gm_identity_provider_ops {
    const char *name; /* for logs and config_dump: "local-signer" */
    /* Start minting a certificate for spiffe_id (lifetime_s 0 = the provider's default).
     * Returns 0 when cb will run exactly once (possibly before issue returns), or a negative
     * errno when it will not run at all. */
    int (*issue)(struct gm_identity_provider *p, const char *spiffe_id, int64_t lifetime_s,
                 gm_identity_issue_cb cb, void *arg);
    /* Every trusted root as PEM in a fresh heap string (caller frees); NULL if none. */
    char *(*roots_pem)(struct gm_identity_provider *p, size_t *len);
    /* Destroy the provider. */
    void (*free)(struct gm_identity_provider *p);
};

/* Embedded first in each implementation. */
struct gm_identity_provider {
    const struct gm_identity_provider_ops *ops;
    char trust_domain[GM_SPIFFE_TD_MAX + 1]; /* the only domain it issues for */
};

/* Convenience wrappers over the vtable. */
int gm_identity_issue(struct gm_identity_provider *p, const char *spiffe_id, int64_t lifetime_s,
                      gm_identity_issue_cb cb, void *arg);
char *gm_identity_roots_pem(struct gm_identity_provider *p, size_t *len);
/* Accepts NULL. */
void gm_identity_free(struct gm_identity_provider *p);

/* ---- the local signer ---- */

struct gm_signer;

/*
 * Load a signer from a PEM CA certificate file and a PEM key file (EC or RSA, unencrypted).
 * The certificate file may be a bundle: its first certificate signs (and must match the key and
 * be a CA); self-signed certificates in it are trusted roots (so an old and a new root can be
 * trusted during rotation); others are intermediates sent with every leaf. Leaves are issued
 * for trust_domain only. 0 and *out (caller frees with gm_signer_free); else a negative errno
 * (-ENOENT, -EACCES, -EINVAL) and a reason in err[0..err_len) (err may be NULL).
 */
int gm_signer_new_from_files(const char *ca_cert_path, const char *ca_key_path,
                             const char *trust_domain, struct gm_signer **out, char *err,
                             size_t err_len);
/* The same, reading each file once, with a SHA-256 of their contents in digest (to notice that
 * they changed: a rotated Secret). When unless is not NULL and equals that digest, nothing is
 * parsed and it returns 1 with *out NULL (the contents are the ones already loaded). */
#define GM_CA_DIGEST_LEN 32
int gm_signer_load_files(const char *ca_cert_path, const char *ca_key_path,
                         const char *trust_domain, const uint8_t *unless,
                         uint8_t digest[GM_CA_DIGEST_LEN], struct gm_signer **out, char *err,
                         size_t err_len);
/* The same from PEM bytes in memory. */
int gm_signer_new_from_pem(const char *cert_pem, size_t cert_len, const char *key_pem,
                           size_t key_len, const char *trust_domain, struct gm_signer **out,
                           char *err, size_t err_len);
/* A signer over a fresh in-memory self-signed P-256 root (10 years), for tests and benches.
 * 0 and *out, or -EINVAL for a bad trust domain. */
int gm_signer_new_self_signed(const char *trust_domain, struct gm_signer **out);
/* Accepts NULL. */
void gm_signer_free(struct gm_signer *s);

/* The signer's CA as PEM that gm_signer_new_from_pem() reloads: *cert_pem is the signing CA,
 * then the intermediates and roots of its bundle; *key_pem the CA key as unencrypted PKCS#8.
 * Fresh heap strings the caller frees (OPENSSL_cleanse() the key first). For tools that write a
 * CA for daemons to share (the lab, benches) and for tests; never log the key. 0 or -ENOMEM. */
int gm_signer_ca_to_pem(const struct gm_signer *s, char **cert_pem, size_t *cert_len,
                        char **key_pem, size_t *key_len);

/*
 * Mint a fresh P-256 key and a leaf for spiffe_id (which must be in the signer's trust domain)
 * valid from now - GM_CERT_BACKDATE to now + lifetime_s (0 = 24 h; capped at the CA's own
 * notAfter). 0 and *out (a reference the caller owns), -EINVAL for a bad ID or lifetime, -EPERM
 * for an ID of another trust domain, -EIO when OpenSSL fails. Thread-safe.
 */
int gm_signer_issue(struct gm_signer *s, const char *spiffe_id, int64_t lifetime_s,
                    struct gm_cert **out);
/* Take "now" from clock(arg) instead of the wall clock (tests; NULL restores the wall clock).
 * Call before the signer is shared. */
void gm_signer_set_clock(struct gm_signer *s, gm_clock_fn clock, void *arg);
/* {"signing_ca": {"subject", "sha256", "not_after"}, "roots": [{"subject", "sha256"}…],
 * "intermediates": N} for /config_dump (a new reference; no key material). */
json_t *gm_signer_describe(const struct gm_signer *s);
/* The signer as a provider (owned by the signer; ops->free frees the signer). */
struct gm_identity_provider *gm_signer_provider(struct gm_signer *s);

/* ---- the per-identity cache ---- */

/* Told when identity got a new certificate (status 0) or an issue failed (negative errno). */
typedef void (*gm_cert_cache_cb)(void *arg, const char *identity, int status);

struct gm_cert_cache_opts {
    int64_t lifetime_s;    /* asked of the provider; 0 = GM_CERT_LIFETIME_DEFAULT */
    size_t max_identities; /* 0 = 4096; more fail with -ENOSPC */
    gm_clock_fn clock;     /* NULL = the wall clock */
    void *clock_arg;
    gm_cert_cache_cb on_update; /* optional; runs on the cache's thread, possibly inside get or
                                 * tick: it must not call gm_cert_cache_forget or _free */
    void *on_update_arg;
};

struct gm_cert_cache;

/* A cache over provider p (borrowed: it must outlive the cache). opts may be NULL. The cache
 * belongs to one thread (the control loop); the certificates it hands out may travel. */
struct gm_cert_cache *gm_cert_cache_new(struct gm_identity_provider *p,
                                        const struct gm_cert_cache_opts *opts);
/* Accepts NULL. Outstanding certificate references stay valid; issues still in flight are
 * dropped when they complete. */
void gm_cert_cache_free(struct gm_cert_cache *c);

/*
 * A reference to a valid certificate for spiffe_id in *out (caller unrefs). On a miss (or when
 * the cached one expired) it issues one; the local signer answers at once. 0; -EAGAIN while an
 * asynchronous issue is in flight (on_update tells when it lands); -EINVAL for a bad ID; -EPERM
 * for an ID outside the provider's trust domain; -ENOSPC past max_identities; or the last issue
 * error while backing off without a valid certificate.
 */
int gm_cert_cache_get(struct gm_cert_cache *c, const char *spiffe_id, struct gm_cert **out);

/* Stop tracking spiffe_id (its workloads left the node). References already out stay valid. */
void gm_cert_cache_forget(struct gm_cert_cache *c, const char *spiffe_id);

/* Re-issue every certificate past half life, and retry failed ones whose backoff elapsed, as
 * of now (unix seconds). Returns the time of the next thing to do (INT64_MAX if nothing), for
 * arming a timer. on_update may run before this returns. */
int64_t gm_cert_cache_tick(struct gm_cert_cache *c, int64_t now);

/* A JSON array, sorted by identity, of {identity, state (valid|refreshing|expired|initializing),
 * serial, not_before, not_after, refresh_at (RFC 3339 UTC), error (after a failure)} for
 * /config_dump; never key material. New reference, caller json_decref()s. */
json_t *gm_cert_cache_states(struct gm_cert_cache *c);

#endif
