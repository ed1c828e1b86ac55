/*
 * tls.h: OpenSSL 3 contexts and peer checks for HBONE (DESIGN §6).
 *
 * Both roles: TLS 1.3 only, TLS_AES_128_GCM_SHA256 and TLS_AES_256_GCM_SHA384, groups X25519,
 * P-256, P-384, ALPN "h2" and nothing else, no SNI, no session resumption (every connection
 * verifies its peer), a certificate required from the peer and verified against the context's
 * trust bundle (several roots at once, for rotation).
 *
 *     SSL_CTX *ctx = gm_tls_ctx_new(GM_TLS_SERVER);
 *     gm_tls_ctx_set_roots(ctx, roots_pem, roots_len);
 *     SSL *ssl = SSL_new(ctx);
 *     gm_tls_set_identity(ssl, pod_cert);                       // this listener's pod
 *     gm_tls_set_peer_policy(ssl, NULL, 0, "cluster.local");    // server: any peer in our td
 *     ... handshake; on failure gm_tls_check_peer() says why ...
 *
 * The peer policy is enforced inside the handshake by the context's verify callback (the peer
 * gets a bad_certificate alert and never completes a handshake). An SSL without a policy fails
 * every handshake: forgetting it cannot accept an unchecked peer.
 *
 * Threads: a context is shared read-only by every worker once configured; an SSL belongs to one
 * thread. Replacing the roots of a context in use by another thread is not safe: build a new
 * context and swap the pointer instead (the old one lives on in its SSLs via OpenSSL's refcount).
 */
#ifndef GAMMAMESH_TLS_H
#define GAMMAMESH_TLS_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "gammamesh/spiffe.h"

struct gm_cert;

enum gm_tls_role {
    GM_TLS_CLIENT = 0, /* dials: offers only ALPN h2, sends no SNI */
    GM_TLS_SERVER,     /* accepts: selects h2 or fails, requires a client certificate */
    GM_TLS__MAX
};

/* Expected identities a policy may hold. */
#define GM_TLS_MAX_EXPECTED 32
/* URI SANs looked at per certificate; later ones are ignored. */
#define GM_TLS_MAX_SANS 64

/* A new context for role with the settings above and an empty trust bundle (which verifies
 * nothing: set roots before use). The caller owns the result and frees it with SSL_CTX_free.
 * NULL only when OpenSSL fails (out of memory). */
SSL_CTX *gm_tls_ctx_new(enum gm_tls_role role);

/* Replace the trust bundle of ctx with every certificate in pem[0..len) (one or more PEM
 * CERTIFICATE blocks; other blocks are ignored). 0, or -EINVAL when the bytes hold no
 * certificate or a malformed one (ctx is then unchanged). Not while other threads use ctx. */
int gm_tls_ctx_set_roots(SSL_CTX *ctx, const void *pem, size_t len);

/* Present cert (leaf, its key, and its intermediates) on this connection only. ssl takes its own
 * references: the caller may drop cert afterwards. 0, or -EINVAL when cert is unusable. */
int gm_tls_set_identity(SSL *ssl, const struct gm_cert *cert);

/*
 * Set what the peer must prove on ssl, before the handshake; everything is copied.
 * - n > 0 (client: the destination's identity, plus any alternatives): some SPIFFE URI SAN of
 *   the peer leaf equals one of expected[0..n);
 * - required_td != NULL (server: our own trust domain): some SPIFFE URI SAN of the peer is in
 *   that trust domain, and (when n > 0) the matching one is;
 * - n == 0 and required_td == NULL is refused (-EINVAL): a policy that accepts anyone.
 * 0, or -EINVAL (an expected string that is not a SPIFFE ID, a bad trust domain, n too large),
 * -ENOMEM if OpenSSL cannot store it.
 */
int gm_tls_set_peer_policy(SSL *ssl, const char *const *expected, size_t n,
                           const char *required_td);

/* Fill ids[0..max) with the SPIFFE IDs among the URI SANs of ssl's verified peer leaf (SANs that
 * are not such IDs are skipped). Returns how many were stored, -ENOENT without a peer
 * certificate, or -EPERM when the peer's chain did not verify. */
int gm_tls_peer_identities(SSL *ssl, struct gm_spiffe_id *ids, size_t max);

/*
 * Check ssl's peer against (expected, n, required_td) with the rules of gm_tls_set_peer_policy,
 * after the handshake finished or failed. 0 when the peer is acceptable; else -EPERM and a
 * NUL-terminated reason in why[0..why_len) (why may be NULL): "no peer certificate",
 * "chain invalid: …", "no SPIFFE SAN", "wrong trust domain: …", "unexpected identity: …",
 * "ALPN h2 not negotiated". When the verify callback refused the peer during the handshake, its
 * reason is reported. -EINVAL for bad arguments (as in gm_tls_set_peer_policy).
 */
int gm_tls_check_peer(SSL *ssl, const char *const *expected, size_t n, const char *required_td,
                      char *why, size_t why_len);

/* Called once per URI SAN with its raw bytes (not NUL-terminated; may contain anything). Return
 * nonzero to stop the walk. */
typedef int (*gm_x509_uri_cb)(void *arg, const char *uri, size_t len);

/* Parse der[0..len) as exactly one X.509 certificate and call cb for each of its URI SANs, in
 * order, up to GM_TLS_MAX_SANS. 0 (also with no SAN), or -EINVAL when the bytes are not one
 * certificate or its SAN extension is malformed or repeated. cb runs before this returns. */
int gm_x509_uri_sans(const uint8_t *der, size_t len, gm_x509_uri_cb cb, void *arg);

#endif
