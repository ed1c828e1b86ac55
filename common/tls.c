/* TLS 1.3 contexts for HBONE and the SPIFFE peer check, enforced inside the handshake. */
#include "gammamesh/tls.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "gammamesh/identity.h"
#include "gammamesh/util.h"

#define CIPHERSUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384"
#define GROUPS       "X25519:P-256:P-384"
#define VERIFY_DEPTH 8

static const unsigned char alpn_h2[] = {2, 'h', '2'};

/* What the peer must prove, attached to an SSL as ex_data; also where the verify callback leaves
 * its reason for refusing. */
struct peer_policy {
    bool set;    /* false: only a reason holder, accept nobody */
    bool has_td; /* td is required */
    char td[GM_SPIFFE_TD_MAX + 1];
    char reason[192]; /* why the handshake refused the peer; "" if it did not */
    size_t n;
    struct gm_spiffe_id expected[]; /* n entries */
};

static int policy_idx = -1;
static pthread_once_t policy_once = PTHREAD_ONCE_INIT;

static void policy_free_ex(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                           void *argp)
{
    free(ptr);
}

static void policy_idx_init(void)
{
    policy_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, policy_free_ex);
    GM_ASSERT(policy_idx >= 0);
}

static int policy_index(void)
{
    pthread_once(&policy_once, policy_idx_init);
    return policy_idx;
}

/* ---- contexts ---- */

static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    unsigned int i = 0;

    while (i < inlen) {
        unsigned int n = in[i];
        if (n == 2 && i + 1 + n <= inlen && memcmp(in + i + 1, "h2", 2) == 0) {
            *out = in + i + 1;
            *outlen = 2;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + n;
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL; /* no_application_protocol */
}

/* The ALPN callback does not run when the client sent no ALPN at all: refuse that here. */
static int on_client_hello(SSL *ssl, int *al, void *arg)
{
    const unsigned char *ext;
    size_t len;

    if (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &ext,
                                   &len)) {
        *al = SSL_AD_NO_APPLICATION_PROTOCOL;
        return SSL_CLIENT_HELLO_ERROR;
    }
    return SSL_CLIENT_HELLO_SUCCESS;
}

static int verify_cb(int ok, X509_STORE_CTX *xs);

static bool ctx_configure(SSL_CTX *ctx, enum gm_tls_role role)
{
    int mode = SSL_VERIFY_PEER;

    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_ciphersuites(ctx, CIPHERSUITES) || !SSL_CTX_set1_groups_list(ctx, GROUPS))
        return false;
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_NO_AUTO_CHAIN); /* send the leaf and its chain, nothing else */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_verify_depth(ctx, VERIFY_DEPTH);
    if (role == GM_TLS_SERVER) {
        mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        if (!SSL_CTX_set_num_tickets(ctx, 0))
            return false;
        SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
        SSL_CTX_set_client_hello_cb(ctx, on_client_hello, NULL);
    } else if (SSL_CTX_set_alpn_protos(ctx, alpn_h2, sizeof(alpn_h2)) != 0) {
        return false; /* this one returns 0 on success */
    }
    SSL_CTX_set_verify(ctx, mode, verify_cb);
    return true;
}

SSL_CTX *gm_tls_ctx_new(enum gm_tls_role role)
{
    SSL_CTX *ctx;

    GM_ASSERT(role >= GM_TLS_CLIENT && role < GM_TLS__MAX);
    ctx = SSL_CTX_new_ex(NULL, NULL,
                         role == GM_TLS_SERVER ? TLS_server_method() : TLS_client_method());
    if (ctx == NULL)
        return NULL;
    if (!ctx_configure(ctx, role)) {
        SSL_CTX_free(ctx);
        ERR_clear_error();
        return NULL;
    }
    return ctx;
}

/* Never ask for a passphrase (OpenSSL would prompt on the terminal by default). */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    return -1;
}

int gm_tls_ctx_set_roots(SSL_CTX *ctx, const void *pem, size_t len)
{
    STACK_OF(X509_INFO) *infos = NULL;
    X509_STORE *store = NULL;
    BIO *bio = NULL;
    int added = 0;

    if (pem == NULL || len == 0 || len > INT_MAX)
        return -EINVAL;
    bio = BIO_new_mem_buf(pem, (int)len);
    store = X509_STORE_new();
    if (bio == NULL || store == NULL)
        goto fail;
    infos = PEM_X509_INFO_read_bio_ex(bio, NULL, no_passphrase, NULL, NULL, NULL);
    for (int i = 0; infos != NULL && i < sk_X509_INFO_num(infos); i++) {
        X509 *x = sk_X509_INFO_value(infos, i)->x509;
        if (x != NULL && !X509_STORE_add_cert(store, x))
            goto fail;
        added += x != NULL;
    }
    if (added == 0)
        goto fail;
    SSL_CTX_set_cert_store(ctx, store); /* takes store, frees the old one */
    sk_X509_INFO_pop_free(infos, X509_INFO_free);
    BIO_free(bio);
    return 0;
fail:
    sk_X509_INFO_pop_free(infos, X509_INFO_free);
    X509_STORE_free(store);
    BIO_free(bio);
    ERR_clear_error();
    return -EINVAL;
}

int gm_tls_set_identity(SSL *ssl, const struct gm_cert *cert)
{
    if (cert == NULL || cert->leaf == NULL || cert->key == NULL)
        return -EINVAL;
    if (SSL_use_certificate(ssl, cert->leaf) != 1 || SSL_use_PrivateKey(ssl, cert->key) != 1 ||
        (cert->chain != NULL && SSL_set1_chain(ssl, cert->chain) != 1) ||
        SSL_check_private_key(ssl) != 1) {
        ERR_clear_error();
        return -EINVAL;
    }
    return 0;
}

/* ---- SAN walking ---- */

static int walk_uri_sans(X509 *x, gm_x509_uri_cb cb, void *arg)
{
    int crit = -1, seen = 0;
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, &crit, NULL);

    if (gens == NULL)
        return crit == -1 ? 0 : -EINVAL; /* -1: absent; -2: repeated; else malformed */
    for (int i = 0; i < sk_GENERAL_NAME_num(gens) && seen < GM_TLS_MAX_SANS; i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(gens, i);
        if (gn->type != GEN_URI)
            continue;
        seen++;
        const ASN1_IA5STRING *u = gn->d.uniformResourceIdentifier;
        if (cb(arg, (const char *)ASN1_STRING_get0_data(u), (size_t)ASN1_STRING_length(u)))
            break;
    }
    GENERAL_NAMES_free(gens);
    return 0;
}

int gm_x509_uri_sans(const uint8_t *der, size_t len, gm_x509_uri_cb cb, void *arg)
{
    const unsigned char *p = der;
    X509 *x;
    int rc;

    if (der == NULL || len == 0 || len > INT_MAX)
        return -EINVAL;
    x = d2i_X509(NULL, &p, (long)len);
    if (x == NULL || p != der + len) {
        X509_free(x);
        ERR_clear_error();
        return -EINVAL;
    }
    rc = walk_uri_sans(x, cb, arg);
    X509_free(x);
    ERR_clear_error();
    return rc;
}

/* ---- policies ---- */

/* A validated policy on the heap (caller frees), or NULL with *rc set. */
static struct peer_policy *policy_new(const char *const *expected, size_t n, const char *td,
                                      int *rc)
{
    struct peer_policy *p;

    *rc = -EINVAL;
    if (n > GM_TLS_MAX_EXPECTED || (n == 0 && td == NULL) || (n > 0 && expected == NULL))
        return NULL;
    if (td != NULL && !gm_spiffe_td_valid(td, strlen(td)))
        return NULL;
    p = gm_xcalloc(1, sizeof(*p) + n * sizeof(p->expected[0]));
    for (size_t i = 0; i < n; i++) {
        if (expected[i] == NULL ||
            gm_spiffe_parse(expected[i], strlen(expected[i]), &p->expected[i]) < 0) {
            free(p);
            return NULL;
        }
    }
    p->set = true;
    p->n = n;
    p->has_td = td != NULL;
    if (td != NULL)
        snprintf(p->td, sizeof(p->td), "%s", td);
    *rc = 0;
    return p;
}

/* Replace ssl's policy by p (owned by ssl from now on). */
static int policy_attach(SSL *ssl, struct peer_policy *p)
{
    struct peer_policy *old = SSL_get_ex_data(ssl, policy_index());

    if (!SSL_set_ex_data(ssl, policy_index(), p)) {
        free(p);
        return -ENOMEM;
    }
    free(old);
    return 0;
}

int gm_tls_set_peer_policy(SSL *ssl, const char *const *expected, size_t n, const char *required_td)
{
    int rc;
    struct peer_policy *p = policy_new(expected, n, required_td, &rc);

    return p == NULL ? rc : policy_attach(ssl, p);
}

/* ssl's policy; when it has none, an empty one (accepting nobody) that can hold a reason. */
static struct peer_policy *policy_of(SSL *ssl)
{
    struct peer_policy *p = SSL_get_ex_data(ssl, policy_index());

    if (p == NULL) {
        p = gm_xcalloc(1, sizeof(*p));
        if (policy_attach(ssl, p) < 0)
            return NULL;
    }
    return p;
}

/* ---- matching ---- */

struct match {
    const struct peer_policy *p;
    size_t spiffe; /* SANs that were SPIFFE IDs */
    bool td_seen;  /* one of them was in the required trust domain */
    bool ok;
    struct gm_spiffe_id first; /* the first SPIFFE SAN, for the reason */
};

static bool expected_has(const struct peer_policy *p, const struct gm_spiffe_id *id)
{
    for (size_t i = 0; i < p->n; i++)
        if (gm_spiffe_equal(&p->expected[i], id))
            return true;
    return false;
}

static int match_san(void *arg, const char *uri, size_t len)
{
    struct match *m = arg;
    struct gm_spiffe_id id;
    bool in_td;

    if (gm_spiffe_parse(uri, len, &id) < 0)
        return 0; /* not ours: ignore, as ztunnel does */
    if (m->spiffe++ == 0)
        m->first = id;
    in_td = !m->p->has_td || strcmp(id.trust_domain, m->p->td) == 0;
    m->td_seen |= in_td;
    m->ok = in_td && (m->p->n == 0 || expected_has(m->p, &id));
    return m->ok;
}

/* 0 when leaf satisfies p; else -EPERM and the reason. */
static int match_leaf(X509 *leaf, const struct peer_policy *p, char *why, size_t why_len)
{
    struct match m = {.p = p};
    char first[GM_SPIFFE_ID_MAX];

    if (walk_uri_sans(leaf, match_san, &m) < 0) {
        snprintf(why, why_len, "malformed subjectAltName");
        return -EPERM;
    }
    if (m.ok)
        return 0;
    gm_spiffe_format(&m.first, first, sizeof(first));
    if (m.spiffe == 0)
        snprintf(why, why_len, "no SPIFFE SAN");
    else if (p->has_td && !m.td_seen)
        snprintf(why, why_len, "wrong trust domain: %s (want %s)", first, p->td);
    else
        snprintf(why, why_len, "unexpected identity: %s", first);
    return -EPERM;
}

static bool alpn_is_h2(const SSL *ssl)
{
    const unsigned char *proto = NULL;
    unsigned int len = 0;

    SSL_get0_alpn_selected(ssl, &proto, &len);
    return len == 2 && memcmp(proto, "h2", 2) == 0;
}

/* Both roles: the chain must verify, and at the leaf the peer policy must hold. In TLS 1.3 the
 * ALPN result (EncryptedExtensions, or the ClientHello on a server) is known by now. */
static int verify_cb(int ok, X509_STORE_CTX *xs)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct peer_policy *p = ssl ? policy_of(ssl) : NULL;
    char why[sizeof(p->reason)];

    if (p == NULL)
        return 0;
    if (!ok) {
        snprintf(p->reason, sizeof(p->reason), "chain invalid: %s",
                 X509_verify_cert_error_string(X509_STORE_CTX_get_error(xs)));
        return 0;
    }
    if (X509_STORE_CTX_get_error_depth(xs) != 0)
        return 1;
    if (!p->set)
        snprintf(why, sizeof(why), "no peer policy set");
    else if (!alpn_is_h2(ssl))
        snprintf(why, sizeof(why), "ALPN h2 not negotiated");
    else if (match_leaf(X509_STORE_CTX_get_current_cert(xs), p, why, sizeof(why)) == 0)
        return 1;
    memcpy(p->reason, why, sizeof(why));
    X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
}

/* ---- after the handshake ---- */

struct collect {
    struct gm_spiffe_id *ids;
    size_t n, max;
};

static int collect_san(void *arg, const char *uri, size_t len)
{
    struct collect *c = arg;

    if (c->n < c->max && gm_spiffe_parse(uri, len, &c->ids[c->n]) == 0)
        c->n++;
    return c->n == c->max;
}

int gm_tls_peer_identities(SSL *ssl, struct gm_spiffe_id *ids, size_t max)
{
    X509 *leaf = SSL_get0_peer_certificate(ssl);
    struct collect c = {.ids = ids, .max = max};

    if (leaf == NULL)
        return -ENOENT;
    if (SSL_get_verify_result(ssl) != X509_V_OK)
        return -EPERM;
    if (max == 0)
        return 0;
    if (walk_uri_sans(leaf, collect_san, &c) < 0)
        return -EPERM;
    return (int)c.n;
}

static int refuse(char *why, size_t why_len, const char *reason)
{
    snprintf(why, why_len, "%s", reason);
    return -EPERM;
}

int gm_tls_check_peer(SSL *ssl, const char *const *expected, size_t n, const char *required_td,
                      char *why, size_t why_len)
{
    char scratch[1];
    const struct peer_policy *hs = SSL_get_ex_data(ssl, policy_index());
    struct peer_policy *p;
    X509 *leaf;
    int rc;

    if (why == NULL || why_len == 0) {
        why = scratch;
        why_len = sizeof(scratch);
    }
    why[0] = '\0';
    p = policy_new(expected, n, required_td, &rc);
    if (p == NULL)
        return rc;
    leaf = SSL_get0_peer_certificate(ssl);
    if (hs != NULL && hs->reason[0] != '\0')
        rc = refuse(why, why_len, hs->reason);
    else if (leaf == NULL)
        rc = refuse(why, why_len, "no peer certificate");
    else if (SSL_get_verify_result(ssl) != X509_V_OK)
        rc = refuse(why, why_len, "chain invalid");
    else if (!alpn_is_h2(ssl))
        rc = refuse(why, why_len, "ALPN h2 not negotiated");
    else
        rc = match_leaf(leaf, p, why, why_len);
    free(p);
    return rc;
}
