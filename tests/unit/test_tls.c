/* test_tls.c — the listener's TLS context (http/tls.c): built from
 * certificate and key files made here, refused files with their messages,
 * and reload: a good pair swaps the context for new connections while
 * existing ones keep theirs, a bad one keeps the current context, and
 * connections are made from other threads while it happens. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "http/tls.h"
#include "suites.h"

static char dir[] = "/tmp/scrip-unit-tls-XXXXXX";
static char cert_path[64], key_path[64];

static void path_in_dir(char *out, size_t size, const char *name)
{
	snprintf(out, size, "%s/%s", dir, name);
}

/* Writes a fresh P-256 key (optionally encrypted) to key_file and a
 * self-signed certificate with CN=cn for it to cert_file (either may be NULL). */
static bool make_pair(const char *cert_file, const char *key_file, const char *cn, bool encrypt)
{
	bool ok = false;
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	FILE *f = NULL;
	if (!key || !x)
		goto end;
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, key);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, name);
	if (!X509_sign(x, key, EVP_sha256()))
		goto end;
	if (cert_file) {
		if (!(f = fopen(cert_file, "w")) || !PEM_write_X509(f, x))
			goto end;
		fclose(f);
		f = NULL;
	}
	if (key_file) {
		if (!(f = fopen(key_file, "w")))
			goto end;
		if (!PEM_write_PrivateKey(f, key, encrypt ? EVP_aes_128_cbc() : NULL,
					  encrypt ? (unsigned char *)"password" : NULL, encrypt ? 8 : 0, NULL, NULL))
			goto end;
	}
	ok = true;
end:
	if (f)
		fclose(f);
	X509_free(x);
	EVP_PKEY_free(key);
	return ok;
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs(text, f);
	fclose(f);
}

/* The CN of the certificate an SSL would present. */
static void ssl_cn(SSL *ssl, char *out, size_t size)
{
	out[0] = '\0';
	X509 *x = SSL_get_certificate(ssl);
	if (x)
		X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, out, (int)size);
}

static int suite_init(void)
{
	if (!mkdtemp(dir))
		return 1;
	path_in_dir(cert_path, sizeof(cert_path), "cert.pem");
	path_in_dir(key_path, sizeof(key_path), "key.pem");
	return 0;
}

static int suite_clean(void)
{
	static const char *const names[] = { "cert.pem", "key.pem", "other.pem", "enc.pem" };
	char p[64];
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		path_in_dir(p, sizeof(p), names[i]);
		unlink(p);
	}
	rmdir(dir);
	return 0;
}

static void test_new_and_connection(void)
{
	CU_ASSERT_TRUE_FATAL(make_pair(cert_path, key_path, "first", false));
	scrip_err_t err = { 0 };
	scrip_tls_t *tls = scrip_tls_new(cert_path, key_path, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(tls);
	CU_ASSERT_EQUAL(scrip_tls_generation(tls), 1);
	SSL *ssl = scrip_tls_ssl_new(tls);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ssl);
	char cn[64];
	ssl_cn(ssl, cn, sizeof(cn));
	CU_ASSERT_STRING_EQUAL(cn, "first");
	CU_ASSERT_EQUAL(SSL_CTX_get_min_proto_version(SSL_get_SSL_CTX(ssl)), TLS1_2_VERSION);
	CU_ASSERT_TRUE(SSL_get_options(ssl) & SSL_OP_NO_COMPRESSION);
	CU_ASSERT_TRUE(SSL_get_options(ssl) & SSL_OP_NO_RENEGOTIATION);
	CU_ASSERT_TRUE(SSL_get_options(ssl) & SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* The context outlives the object that made it while a connection holds it. */
	scrip_tls_free(tls);
	ssl_cn(ssl, cn, sizeof(cn));
	CU_ASSERT_STRING_EQUAL(cn, "first");
	SSL_free(ssl);
	scrip_tls_free(NULL);
}

static void test_refused_files(void)
{
	char other[64], enc[64];
	path_in_dir(other, sizeof(other), "other.pem");
	path_in_dir(enc, sizeof(enc), "enc.pem");
	CU_ASSERT_TRUE_FATAL(make_pair(cert_path, key_path, "first", false));
	CU_ASSERT_TRUE_FATAL(make_pair(NULL, other, "other", false));
	CU_ASSERT_TRUE_FATAL(make_pair(NULL, enc, "enc", true));
	static const struct {
		const char *cert, *key, *says;
	} cases[] = {
		{ "missing", "key", "cannot load a PEM certificate chain" },
		{ "cert", "missing", "cannot load an unencrypted PEM private key" },
		{ "cert", "other", "does not match tls_certificate" },
		{ "cert", "enc", "cannot load an unencrypted PEM private key" },
		{ "key", "key", "cannot load a PEM certificate chain" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char missing[64];
		path_in_dir(missing, sizeof(missing), "missing.pem");
		const char *c = strcmp(cases[i].cert, "cert") == 0 ? cert_path
				: strcmp(cases[i].cert, "key") == 0 ? key_path
								    : missing;
		const char *k = strcmp(cases[i].key, "key") == 0     ? key_path
				: strcmp(cases[i].key, "other") == 0 ? other
				: strcmp(cases[i].key, "enc") == 0   ? enc
								     : missing;
		scrip_err_t err = { 0 };
		scrip_tls_t *tls = scrip_tls_new(c, k, &err);
		CU_ASSERT_PTR_NULL(tls);
		scrip_tls_free(tls);
		if (!strstr(err.text, cases[i].says))
			fprintf(stderr, "\ncase %zu: %s\n", i, err.text);
		CU_ASSERT_PTR_NOT_NULL(strstr(err.text, cases[i].says));
		CU_ASSERT_PTR_NULL(strstr(err.text, "BEGIN"));
	}
}

static void test_reload(void)
{
	CU_ASSERT_TRUE_FATAL(make_pair(cert_path, key_path, "first", false));
	scrip_err_t err = { 0 };
	scrip_tls_t *tls = scrip_tls_new(cert_path, key_path, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(tls);
	SSL *before = scrip_tls_ssl_new(tls);
	CU_ASSERT_PTR_NOT_NULL_FATAL(before);
	char cn[64];

	/* A new pair: new connections present it, the open one keeps the old. */
	CU_ASSERT_TRUE_FATAL(make_pair(cert_path, key_path, "second", false));
	CU_ASSERT_TRUE(scrip_tls_reload(tls, &err));
	CU_ASSERT_EQUAL(scrip_tls_generation(tls), 2);
	SSL *after = scrip_tls_ssl_new(tls);
	CU_ASSERT_PTR_NOT_NULL_FATAL(after);
	ssl_cn(after, cn, sizeof(cn));
	CU_ASSERT_STRING_EQUAL(cn, "second");
	ssl_cn(before, cn, sizeof(cn));
	CU_ASSERT_STRING_EQUAL(cn, "first");
	CU_ASSERT_PTR_NOT_EQUAL(SSL_get_SSL_CTX(before), SSL_get_SSL_CTX(after));

	/* A broken certificate file: refused, the current context stays. */
	write_text(cert_path, "not a certificate\n");
	scrip_err_t bad = { 0 };
	CU_ASSERT_FALSE(scrip_tls_reload(tls, &bad));
	CU_ASSERT_PTR_NOT_NULL(strstr(bad.text, cert_path));
	CU_ASSERT_EQUAL(scrip_tls_generation(tls), 2);
	SSL *still = scrip_tls_ssl_new(tls);
	CU_ASSERT_PTR_NOT_NULL_FATAL(still);
	ssl_cn(still, cn, sizeof(cn));
	CU_ASSERT_STRING_EQUAL(cn, "second");

	/* A certificate that does not go with the key (one file replaced, not yet the other). */
	char other[64];
	path_in_dir(other, sizeof(other), "other.pem");
	CU_ASSERT_TRUE_FATAL(make_pair(cert_path, other, "third", false));
	scrip_err_t mismatch = { 0 };
	CU_ASSERT_FALSE(scrip_tls_reload(tls, &mismatch));
	CU_ASSERT_PTR_NOT_NULL(strstr(mismatch.text, "does not match"));
	CU_ASSERT_EQUAL(scrip_tls_generation(tls), 2);

	SSL_free(before);
	SSL_free(after);
	SSL_free(still);
	scrip_tls_free(tls);
}

/* Connections made on other threads while the context is swapped. */
typedef struct {
	scrip_tls_t *tls;
	int made;
} worker_t;

static void *worker(void *arg)
{
	worker_t *w = arg;
	for (int i = 0; i < 300; i++) {
		SSL *ssl = scrip_tls_ssl_new(w->tls);
		if (ssl && SSL_get_certificate(ssl))
			w->made++;
		SSL_free(ssl);
	}
	return NULL;
}

static void test_reload_while_connecting(void)
{
	CU_ASSERT_TRUE_FATAL(make_pair(cert_path, key_path, "threads", false));
	scrip_err_t err = { 0 };
	scrip_tls_t *tls = scrip_tls_new(cert_path, key_path, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(tls);
	worker_t w[4];
	pthread_t t[4];
	for (int i = 0; i < 4; i++) {
		w[i] = (worker_t){ tls, 0 };
		CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, worker, &w[i]), 0);
	}
	int reloaded = 0;
	for (int i = 0; i < 20; i++)
		reloaded += scrip_tls_reload(tls, &err);
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		CU_ASSERT_EQUAL(w[i].made, 300);
	}
	CU_ASSERT_EQUAL(reloaded, 20);
	CU_ASSERT_EQUAL(scrip_tls_generation(tls), 21);
	scrip_tls_free(tls);
}

bool scrip_test_tls_suite(void)
{
	CU_pSuite s = CU_add_suite("tls", suite_init, suite_clean);
	if (!s)
		return false;
	SCRIP_ADD_TEST(s, test_new_and_connection);
	SCRIP_ADD_TEST(s, test_refused_files);
	SCRIP_ADD_TEST(s, test_reload);
	SCRIP_ADD_TEST(s, test_reload_while_connecting);
	return true;
}
