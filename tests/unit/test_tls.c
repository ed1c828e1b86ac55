/* HBONE TLS in memory: two SSL objects joined by a BIO pair, no sockets. A successful mutual
 * handshake that shows each side the other's SPIFFE ID, and every way it must fail. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "gammamesh/identity.h"
#include "gammamesh/tls.h"
#include "gammamesh/util.h"
#include "test.h"

#define TD        "cluster.local"
#define CLIENT_ID "spiffe://cluster.local/ns/default/sa/client"
#define SERVER_ID "spiffe://cluster.local/ns/echo/sa/server"
#define OTHER_ID  "spiffe://cluster.local/ns/echo/sa/other"
#define FOREIGN   "spiffe://other.td/ns/default/sa/client"

static struct gm_signer *ca_a, *ca_b, *ca_a_other_td;
static char *roots_a, *roots_b, *roots_ab;

static void world_init(void)
{
    char *cp, *kp;
    size_t cl, kl;

    GM_ASSERT(gm_signer_new_self_signed(TD, &ca_a) == 0);
    GM_ASSERT(gm_signer_new_self_signed(TD, &ca_b) == 0);
    GM_ASSERT(gm_signer_ca_to_pem(ca_a, &cp, &cl, &kp, &kl) == 0);
    GM_ASSERT(gm_signer_new_from_pem(cp, cl, kp, kl, "other.td", &ca_a_other_td, NULL, 0) == 0);
    roots_a = gm_identity_roots_pem(gm_signer_provider(ca_a), NULL);
    roots_b = gm_identity_roots_pem(gm_signer_provider(ca_b), NULL);
    roots_ab = gm_xasprintf("%s%s", roots_a, roots_b);
    free(cp);
    OPENSSL_cleanse(kp, kl);
    free(kp);
}

static void world_done(void)
{
    gm_signer_free(ca_a);
    gm_signer_free(ca_b);
    gm_signer_free(ca_a_other_td);
    free(roots_a);
    free(roots_b);
    free(roots_ab);
}

/* ---- one connection ---- */

struct conn {
    SSL_CTX *cctx, *sctx;
    SSL *c, *s;
    int rc_c, rc_s; /* 1: handshake completed */
    int err_c;      /* reason of the client's first OpenSSL error (SSL_R_…), 0 if none */
    char why_c[192], why_s[192];
};

static SSL_CTX *ctx_with_roots(enum gm_tls_role role, const char *roots)
{
    SSL_CTX *ctx = gm_tls_ctx_new(role);

    GM_ASSERT(ctx != NULL);
    GM_ASSERT(gm_tls_ctx_set_roots(ctx, roots, strlen(roots)) == 0);
    return ctx;
}

static void present(SSL *ssl, struct gm_signer *signer, const char *id)
{
    struct gm_cert *cert = NULL;

    GM_ASSERT(gm_signer_issue(signer, id, 0, &cert) == 0);
    GM_ASSERT(gm_tls_set_identity(ssl, cert) == 0);
    gm_cert_unref(cert); /* the SSL holds its own references */
}

/* Client and server SSLs over a BIO pair; contexts trust client_roots / server_roots. */
static void conn_init(struct conn *k, const char *client_roots, const char *server_roots)
{
    BIO *bc = NULL, *bs = NULL;

    memset(k, 0, sizeof(*k));
    k->cctx = ctx_with_roots(GM_TLS_CLIENT, client_roots);
    k->sctx = ctx_with_roots(GM_TLS_SERVER, server_roots);
    k->c = SSL_new(k->cctx);
    k->s = SSL_new(k->sctx);
    GM_ASSERT(k->c != NULL && k->s != NULL && BIO_new_bio_pair(&bc, 0, &bs, 0) == 1);
    SSL_set_bio(k->c, bc, bc);
    SSL_set_bio(k->s, bs, bs);
    SSL_set_connect_state(k->c);
    SSL_set_accept_state(k->s);
}

/* The usual policies: the client wants SERVER_ID, the server anyone in TD. */
static void conn_policies(struct conn *k)
{
    const char *want[] = {SERVER_ID};

    GM_ASSERT(gm_tls_set_peer_policy(k->c, want, 1, NULL) == 0);
    GM_ASSERT(gm_tls_set_peer_policy(k->s, NULL, 0, TD) == 0);
}

static bool retry(SSL *ssl, int rc)
{
    int e = SSL_get_error(ssl, rc);
    return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
}

/* Step both handshakes until both finished or neither can move. */
static void conn_run(struct conn *k)
{
    bool dead_c = false, dead_s = false;

    for (int i = 0; i < 32 && !(k->rc_c == 1 && k->rc_s == 1) && !(dead_c && dead_s); i++) {
        if (k->rc_c != 1 && !dead_c) {
            ERR_clear_error();
            k->rc_c = SSL_do_handshake(k->c);
            dead_c = k->rc_c != 1 && !retry(k->c, k->rc_c);
            if (dead_c)
                k->err_c = ERR_GET_REASON(ERR_peek_error());
        }
        if (k->rc_s != 1 && !dead_s) {
            k->rc_s = SSL_do_handshake(k->s);
            dead_s = k->rc_s != 1 && !retry(k->s, k->rc_s);
        }
        if ((dead_c || dead_s) && i > 8)
            break;
    }
    ERR_clear_error();
}

/* The server's usual check, and the client's. */
static void conn_check(struct conn *k, const char *client_expects)
{
    const char *want[] = {client_expects};

    k->why_c[0] = k->why_s[0] = '\0';
    gm_tls_check_peer(k->c, want, 1, NULL, k->why_c, sizeof(k->why_c));
    gm_tls_check_peer(k->s, NULL, 0, TD, k->why_s, sizeof(k->why_s));
}

/* After the server refused, the client's next read must fail too (TLS 1.3 clients finish first). */
static bool client_read_fails(struct conn *k)
{
    char buf[16];
    int rc;

    if (k->rc_c != 1)
        return true;
    rc = SSL_read(k->c, buf, sizeof(buf));
    ERR_clear_error();
    return rc <= 0 && SSL_get_error(k->c, rc) != SSL_ERROR_WANT_READ;
}

static void conn_done(struct conn *k)
{
    SSL_free(k->c);
    SSL_free(k->s);
    SSL_CTX_free(k->cctx);
    SSL_CTX_free(k->sctx);
}

/* ---- cases ---- */

static void test_success(void)
{
    struct conn k;
    struct gm_spiffe_id ids[4];
    char buf[GM_SPIFFE_ID_MAX];
    const unsigned char *alpn = NULL;
    unsigned int alpn_len = 0;
    const char *want2[] = {OTHER_ID, SERVER_ID};

    conn_init(&k, roots_a, roots_a);
    present(k.c, ca_a, CLIENT_ID);
    present(k.s, ca_a, SERVER_ID);
    GM_ASSERT(gm_tls_set_peer_policy(k.c, want2, 2, TD) == 0); /* any of several */
    GM_ASSERT(gm_tls_set_peer_policy(k.s, NULL, 0, TD) == 0);
    conn_run(&k);
    CHECK_EQ_INT(k.rc_c, 1);
    CHECK_EQ_INT(k.rc_s, 1);

    /* each side sees the other's SPIFFE ID */
    CHECK_EQ_INT(gm_tls_peer_identities(k.s, ids, 4), 1);
    gm_spiffe_format(&ids[0], buf, sizeof(buf));
    CHECK_EQ_STR(buf, CLIENT_ID);
    CHECK_EQ_INT(gm_tls_peer_identities(k.c, ids, 4), 1);
    gm_spiffe_format(&ids[0], buf, sizeof(buf));
    CHECK_EQ_STR(buf, SERVER_ID);
    CHECK_EQ_INT(gm_tls_peer_identities(k.c, ids, 0), 0);

    /* the after-the-fact checks agree, and say why when the expectation differs */
    CHECK_EQ_INT(gm_tls_check_peer(k.c, want2, 2, NULL, k.why_c, sizeof(k.why_c)), 0);
    CHECK_EQ_INT(gm_tls_check_peer(k.s, NULL, 0, TD, k.why_s, sizeof(k.why_s)), 0);
    CHECK_EQ_STR(k.why_s, "");
    CHECK_EQ_INT(gm_tls_check_peer(k.c, want2, 1, NULL, k.why_c, sizeof(k.why_c)), -EPERM);
    CHECK_EQ_STR(k.why_c, "unexpected identity: " SERVER_ID);
    CHECK_EQ_INT(gm_tls_check_peer(k.s, NULL, 0, "other.td", k.why_s, sizeof(k.why_s)), -EPERM);
    CHECK_EQ_STR(k.why_s, "wrong trust domain: " CLIENT_ID " (want other.td)");
    CHECK_EQ_INT(gm_tls_check_peer(k.s, NULL, 0, TD, NULL, 0), 0);
    CHECK_EQ_INT(gm_tls_check_peer(k.s, NULL, 0, NULL, NULL, 0), -EINVAL);

    /* the negotiated parameters */
    SSL_get0_alpn_selected(k.s, &alpn, &alpn_len);
    CHECK(alpn_len == 2 && memcmp(alpn, "h2", 2) == 0);
    CHECK_EQ_INT(SSL_version(k.c), TLS1_3_VERSION);
    CHECK_EQ_STR(SSL_get_cipher_name(k.c), "TLS_AES_128_GCM_SHA256");
    CHECK(SSL_get_servername(k.s, TLSEXT_NAMETYPE_host_name) == NULL); /* no SNI */
    CHECK_EQ_INT(sk_X509_num(SSL_get_peer_cert_chain(k.c)), 1); /* the leaf, never the root */
    CHECK_EQ_INT(sk_X509_num(SSL_get_peer_cert_chain(k.s)), 0); /* server side: without leaf */

    /* application bytes flow; no session ticket arrives (no resumption) */
    CHECK_EQ_INT(SSL_write(k.c, "ping", 4), 4);
    CHECK_EQ_INT(SSL_read(k.s, buf, sizeof(buf)), 4);
    CHECK(memcmp(buf, "ping", 4) == 0);
    CHECK_EQ_INT(SSL_write(k.s, "pong", 4), 4);
    CHECK_EQ_INT(SSL_read(k.c, buf, sizeof(buf)), 4);
    CHECK(!SSL_SESSION_is_resumable(SSL_get0_session(k.c)));
    conn_done(&k);
}

static void test_other_ca(void)
{
    struct conn k;

    /* the client's certificate comes from a CA the server does not trust */
    conn_init(&k, roots_a, roots_a);
    present(k.c, ca_b, CLIENT_ID);
    present(k.s, ca_a, SERVER_ID);
    conn_policies(&k);
    conn_run(&k);
    conn_check(&k, SERVER_ID);
    CHECK(k.rc_s != 1);
    CHECK(client_read_fails(&k));
    CHECK(strncmp(k.why_s, "chain invalid: ", 15) == 0);
    CHECK(strstr(k.why_s, "issuer") != NULL);
    conn_done(&k);

    /* the server's certificate comes from a CA the client does not trust */
    conn_init(&k, roots_a, roots_a);
    present(k.c, ca_a, CLIENT_ID);
    present(k.s, ca_b, SERVER_ID);
    conn_policies(&k);
    conn_run(&k);
    conn_check(&k, SERVER_ID);
    CHECK(k.rc_c != 1);
    CHECK(k.rc_s != 1);
    CHECK(strncmp(k.why_c, "chain invalid: ", 15) == 0);
    conn_done(&k);

    /* root rotation: both roots trusted, either CA's certificates pass */
    conn_init(&k, roots_ab, roots_ab);
    present(k.c, ca_b, CLIENT_ID);
    present(k.s, ca_a, SERVER_ID);
    conn_policies(&k);
    conn_run(&k);
    CHECK_EQ_INT(k.rc_c, 1);
    CHECK_EQ_INT(k.rc_s, 1);
    conn_done(&k);
}

static void test_other_trust_domain(void)
{
    struct conn k;

    conn_init(&k, roots_a, roots_a);
    present(k.c, ca_a_other_td, FOREIGN); /* same CA, so the chain verifies */
    present(k.s, ca_a, SERVER_ID);
    conn_policies(&k);
    conn_run(&k);
    conn_check(&k, SERVER_ID);
    CHECK(k.rc_s != 1);
    CHECK(client_read_fails(&k));
    CHECK_EQ_STR(k.why_s, "wrong trust domain: " FOREIGN " (want cluster.local)");
    conn_done(&k);
}

static void test_wrong_identity(void)
{
    struct conn k;
    const char *want[] = {OTHER_ID};

    conn_init(&k, roots_a, roots_a);
    present(k.c, ca_a, CLIENT_ID);
    present(k.s, ca_a, SERVER_ID);
    GM_ASSERT(gm_tls_set_peer_policy(k.c, want, 1, NULL) == 0);
    GM_ASSERT(gm_tls_set_peer_policy(k.s, NULL, 0, TD) == 0);
    conn_run(&k);
    conn_check(&k, OTHER_ID);
    CHECK(k.rc_c != 1);
    CHECK(k.rc_s != 1);
    CHECK_EQ_STR(k.why_c, "unexpected identity: " SERVER_ID);
    conn_done(&k);
}

static void test_no_client_cert(void)
{
    struct conn k;

    conn_init(&k, roots_a, roots_a);
    present(k.s, ca_a, SERVER_ID);
    conn_policies(&k);
    conn_run(&k);
    conn_check(&k, SERVER_ID);
    CHECK(k.rc_s != 1);
    CHECK(client_read_fails(&k));
    CHECK_EQ_STR(k.why_s, "no peer certificate");
    CHECK_EQ_INT(gm_tls_peer_identities(k.s, NULL, 0), -ENOENT);
    conn_done(&k);
}

static void test_no_policy(void)
{
    struct conn k;

    conn_init(&k, roots_a, roots_a);
    present(k.c, ca_a, CLIENT_ID);
    present(k.s, ca_a, SERVER_ID);
    GM_ASSERT(gm_tls_set_peer_policy(k.s, NULL, 0, TD) == 0);
    conn_run(&k); /* the client forgot its policy: it must not accept anyone */
    conn_check(&k, SERVER_ID);
    CHECK(k.rc_c != 1);
    CHECK_EQ_STR(k.why_c, "no peer policy set");
    conn_done(&k);
}

static void test_tls12_client(void)
{
    struct conn k;
    SSL_CTX *old = SSL_CTX_new(TLS_client_method());
    BIO *bc = NULL, *bs = NULL;

    conn_init(&k, roots_a, roots_a);
    GM_ASSERT(old != NULL && SSL_CTX_set_max_proto_version(old, TLS1_2_VERSION));
    SSL_CTX_set_alpn_protos(old, (const unsigned char *)"\x02h2", 3);
    SSL_free(k.c);
    SSL_free(k.s);
    k.c = SSL_new(old);
    k.s = SSL_new(k.sctx);
    GM_ASSERT(BIO_new_bio_pair(&bc, 0, &bs, 0) == 1);
    SSL_set_bio(k.c, bc, bc);
    SSL_set_bio(k.s, bs, bs);
    SSL_set_connect_state(k.c);
    SSL_set_accept_state(k.s);
    present(k.c, ca_a, CLIENT_ID);
    present(k.s, ca_a, SERVER_ID);
    GM_ASSERT(gm_tls_set_peer_policy(k.s, NULL, 0, TD) == 0);
    conn_run(&k);
    CHECK(k.rc_c != 1);
    CHECK(k.rc_s != 1);
    conn_done(&k);
    SSL_CTX_free(old);
}

/* The client offers some other ALPN, none at all, or a suite outside AES-GCM: the server refuses
 * the ClientHello with the alert the client then reports (err_c). */
static void test_client_offers(const unsigned char *alpn, unsigned int len, const char *suites,
                               int err_c)
{
    struct conn k;

    conn_init(&k, roots_a, roots_a);
    present(k.c, ca_a, CLIENT_ID);
    present(k.s, ca_a, SERVER_ID);
    conn_policies(&k);
    if (alpn != NULL || len == 0)
        GM_ASSERT(SSL_set_alpn_protos(k.c, alpn, len) == 0);
    if (suites != NULL)
        GM_ASSERT(SSL_set_ciphersuites(k.c, suites) == 1);
    conn_run(&k);
    CHECK(k.rc_c != 1);
    CHECK(k.rc_s != 1);
    CHECK_EQ_INT(k.err_c, err_c);
    conn_done(&k);
}

static void test_server_ignores_alpn(void)
{
    struct conn k;

    conn_init(&k, roots_a, roots_a);
    SSL_free(k.s);
    SSL_CTX_set_alpn_select_cb(k.sctx, NULL, NULL); /* a server that never answers ALPN */
    k.s = SSL_new(k.sctx);
    {
        BIO *bc = NULL, *bs = NULL;
        GM_ASSERT(BIO_new_bio_pair(&bc, 0, &bs, 0) == 1);
        SSL_set_bio(k.c, bc, bc);
        SSL_set_bio(k.s, bs, bs);
        SSL_set_accept_state(k.s);
    }
    present(k.c, ca_a, CLIENT_ID);
    present(k.s, ca_a, SERVER_ID);
    conn_policies(&k);
    conn_run(&k);
    conn_check(&k, SERVER_ID);
    CHECK(k.rc_c != 1);
    CHECK_EQ_STR(k.why_c, "ALPN h2 not negotiated");
    conn_done(&k);
}

/* ---- certificates made by hand: SANs the signer never writes ---- */

/* CA A's certificate and key, read back from its PEM export. */
static void ca_a_load(X509 **ca, EVP_PKEY **key)
{
    char *cp, *kp;
    size_t cl, kl;
    BIO *b;

    GM_ASSERT(gm_signer_ca_to_pem(ca_a, &cp, &cl, &kp, &kl) == 0);
    b = BIO_new_mem_buf(cp, (int)cl);
    *ca = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    b = BIO_new_mem_buf(kp, (int)kl);
    *key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    GM_ASSERT(*ca != NULL && *key != NULL);
    free(cp);
    OPENSSL_cleanse(kp, kl);
    free(kp);
}

static void hand_ext(X509 *x, X509 *ca, int nid, const char *value)
{
    X509V3_CTX v3;
    X509_EXTENSION *ext;

    X509V3_set_ctx(&v3, ca, x, NULL, NULL, 0);
    ext = X509V3_EXT_nconf_nid(NULL, &v3, nid, value);
    GM_ASSERT(ext != NULL && X509_add_ext(x, ext, -1) == 1);
    X509_EXTENSION_free(ext);
}

/* A certificate for a fresh P-256 key (*key_out) signed by CA A; with san NULL an intermediate
 * CA, else a leaf with that subjectAltName (OpenSSL config syntax). */
static X509 *hand_cert(const char *san, EVP_PKEY **key_out)
{
    EVP_PKEY *ca_key, *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *ca, *x = X509_new();

    ca_a_load(&ca, &ca_key);
    GM_ASSERT(key != NULL && x != NULL);
    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 42);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_set_issuer_name(x, X509_get_subject_name(ca));
    if (san == NULL) {
        X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "O", MBSTRING_ASC,
                                   (const unsigned char *)"intermediate", -1, -1, 0);
        hand_ext(x, ca, NID_basic_constraints, "critical,CA:TRUE");
        hand_ext(x, ca, NID_key_usage, "critical,keyCertSign");
    } else {
        hand_ext(x, ca, NID_subject_alt_name, san);
        hand_ext(x, ca, NID_ext_key_usage, "serverAuth,clientAuth");
    }
    GM_ASSERT(X509_sign(x, ca_key, EVP_sha256()) > 0);
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    *key_out = key;
    return x;
}

static char *pem_of_cert(X509 *x)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data, *out;
    long n;

    PEM_write_bio_X509(b, x);
    n = BIO_get_mem_data(b, &data);
    out = gm_xstrndup(data, (size_t)n);
    BIO_free(b);
    return out;
}

static char *pem_of_key(EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data, *out;
    long n;

    PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
    n = BIO_get_mem_data(b, &data);
    out = gm_xstrndup(data, (size_t)n);
    BIO_free(b);
    return out;
}

/* A server whose certificate comes from an intermediate under root A: the intermediate travels
 * in the handshake and the client, trusting only root A, verifies the chain. */
static void test_intermediate_chain(void)
{
    EVP_PKEY *ikey = NULL;
    X509 *inter = hand_cert(NULL, &ikey);
    char *ipem = pem_of_cert(inter), *kpem = pem_of_key(ikey);
    char *bundle = gm_xasprintf("%s%s", ipem, roots_a);
    struct gm_signer *sub = NULL;
    struct conn k;

    CHECK_EQ_INT(
        gm_signer_new_from_pem(bundle, strlen(bundle), kpem, strlen(kpem), TD, &sub, NULL, 0), 0);
    GM_ASSERT(sub != NULL);
    conn_init(&k, roots_a, roots_a);
    present(k.c, ca_a, CLIENT_ID);
    present(k.s, sub, SERVER_ID);
    conn_policies(&k);
    conn_run(&k);
    CHECK_EQ_INT(k.rc_c, 1);
    CHECK_EQ_INT(k.rc_s, 1);
    CHECK_EQ_INT(sk_X509_num(SSL_get_peer_cert_chain(k.c)), 2); /* leaf + intermediate */
    conn_done(&k);

    gm_signer_free(sub);
    free(bundle);
    free(ipem);
    OPENSSL_cleanse(kpem, strlen(kpem));
    free(kpem);
    X509_free(inter);
    EVP_PKEY_free(ikey);
}

static void present_hand(SSL *ssl, const char *san)
{
    EVP_PKEY *key = NULL;
    X509 *x = hand_cert(san, &key);

    GM_ASSERT(SSL_use_certificate(ssl, x) == 1 && SSL_use_PrivateKey(ssl, key) == 1);
    X509_free(x);
    EVP_PKEY_free(key);
}

static void test_san_variants(void)
{
    struct conn k;
    struct gm_spiffe_id ids[4];

    /* only non-SPIFFE names */
    conn_init(&k, roots_a, roots_a);
    present_hand(k.c, "URI:https://client.example,DNS:client.example");
    present(k.s, ca_a, SERVER_ID);
    conn_policies(&k);
    conn_run(&k);
    conn_check(&k, SERVER_ID);
    CHECK(k.rc_s != 1);
    CHECK_EQ_STR(k.why_s, "no SPIFFE SAN");
    conn_done(&k);

    /* a SPIFFE SAN among others, and a malformed SPIFFE one: the good one counts */
    conn_init(&k, roots_a, roots_a);
    present_hand(k.c, "URI:https://x,URI:spiffe://cluster.local/ns/a/sa/b/c,DNS:y,"
                      "URI:" CLIENT_ID);
    present(k.s, ca_a, SERVER_ID);
    conn_policies(&k);
    conn_run(&k);
    CHECK_EQ_INT(k.rc_s, 1);
    CHECK_EQ_INT(gm_tls_peer_identities(k.s, ids, 4), 1);
    CHECK_EQ_STR(ids[0].sa, "client");
    conn_done(&k);
}

struct uris {
    int n, stop_after;
    char first[128];
};

static int on_uri(void *arg, const char *uri, size_t len)
{
    struct uris *u = arg;

    if (u->n++ == 0)
        snprintf(u->first, sizeof(u->first), "%.*s", (int)len, uri);
    return u->stop_after && u->n >= u->stop_after;
}

static void test_uri_sans_der(void)
{
    struct gm_cert *cert = NULL;
    EVP_PKEY *key = NULL;
    X509 *hand = hand_cert("URI:https://a,DNS:b,URI:spiffe://c/ns/d/sa/e,URI:f:g", &key);
    unsigned char *der = NULL, *der2 = NULL;
    int len, len2;
    struct uris u = {0};

    GM_ASSERT(gm_signer_issue(ca_a, SERVER_ID, 0, &cert) == 0);
    len = i2d_X509(cert->leaf, &der);
    GM_ASSERT(len > 0);
    CHECK_EQ_INT(gm_x509_uri_sans(der, (size_t)len, on_uri, &u), 0);
    CHECK_EQ_INT(u.n, 1);
    CHECK_EQ_STR(u.first, SERVER_ID);

    len2 = i2d_X509(hand, &der2);
    memset(&u, 0, sizeof(u));
    CHECK_EQ_INT(gm_x509_uri_sans(der2, (size_t)len2, on_uri, &u), 0);
    CHECK_EQ_INT(u.n, 3);
    CHECK_EQ_STR(u.first, "https://a");
    memset(&u, 0, sizeof(u));
    u.stop_after = 2;
    CHECK_EQ_INT(gm_x509_uri_sans(der2, (size_t)len2, on_uri, &u), 0);
    CHECK_EQ_INT(u.n, 2);

    /* not exactly one certificate */
    memset(&u, 0, sizeof(u));
    CHECK_EQ_INT(gm_x509_uri_sans(der, (size_t)len - 1, on_uri, &u), -EINVAL);
    der = OPENSSL_realloc(der, (size_t)len + 1);
    der[len] = 0;
    CHECK_EQ_INT(gm_x509_uri_sans(der, (size_t)len + 1, on_uri, &u), -EINVAL);
    CHECK_EQ_INT(gm_x509_uri_sans((const uint8_t *)"\x30\x03\x02\x01\x01", 5, on_uri, &u), -EINVAL);
    CHECK_EQ_INT(gm_x509_uri_sans(NULL, 0, on_uri, &u), -EINVAL);
    CHECK_EQ_INT(u.n, 0);

    OPENSSL_free(der);
    OPENSSL_free(der2);
    X509_free(hand);
    EVP_PKEY_free(key);
    gm_cert_unref(cert);
}

static void test_arguments(void)
{
    SSL_CTX *ctx = gm_tls_ctx_new(GM_TLS_CLIENT);
    SSL *ssl = SSL_new(ctx);
    const char *bad[] = {"spiffe://cluster.local/ns/a"};
    const char *many[GM_TLS_MAX_EXPECTED + 1];

    for (size_t i = 0; i < GM_ARRAY_LEN(many); i++)
        many[i] = SERVER_ID;
    CHECK_EQ_INT(gm_tls_ctx_set_roots(ctx, "junk", 4), -EINVAL);
    CHECK_EQ_INT(gm_tls_ctx_set_roots(ctx, "", 0), -EINVAL);
    CHECK_EQ_INT(gm_tls_ctx_set_roots(ctx, roots_ab, strlen(roots_ab)), 0);
    CHECK_EQ_INT(gm_tls_set_peer_policy(ssl, NULL, 0, NULL), -EINVAL);
    CHECK_EQ_INT(gm_tls_set_peer_policy(ssl, bad, 1, NULL), -EINVAL);
    CHECK_EQ_INT(gm_tls_set_peer_policy(ssl, NULL, 0, "Bad TD"), -EINVAL);
    CHECK_EQ_INT(gm_tls_set_peer_policy(ssl, many, GM_ARRAY_LEN(many), NULL), -EINVAL);
    CHECK_EQ_INT(gm_tls_set_peer_policy(ssl, many, GM_TLS_MAX_EXPECTED, NULL), 0);
    CHECK_EQ_INT(gm_tls_set_peer_policy(ssl, NULL, 0, TD), 0); /* replaces, no leak */
    CHECK_EQ_INT(gm_tls_set_identity(ssl, NULL), -EINVAL);
    CHECK_EQ_INT(gm_tls_check_peer(ssl, bad, 1, NULL, NULL, 0), -EINVAL);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
}

int main(void)
{
    world_init();
    test_success();
    test_intermediate_chain();
    test_other_ca();
    test_other_trust_domain();
    test_wrong_identity();
    test_no_client_cert();
    test_no_policy();
    test_tls12_client();
    test_client_offers((const unsigned char *)"\x08http/1.1", 9, NULL,
                       SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL);
    test_client_offers((const unsigned char *)"\x03h2c\x02h3", 7, NULL,
                       SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL);
    test_client_offers(NULL, 0, NULL, SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL); /* no ALPN */
    test_client_offers((const unsigned char *)"\x02h2", 3, "TLS_CHACHA20_POLY1305_SHA256",
                       SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE);
    test_server_ignores_alpn();
    test_san_variants();
    test_uri_sans_der();
    test_arguments();
    world_done();
    return TEST_DONE();
}
