/* tls.c — the listener's OpenSSL server context: built from the certificate
 * chain and key files, swapped under a mutex on reload so that each new
 * connection takes a reference to whichever context is current. */
#include "http/tls.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "util/log.h"

/* Mozilla's "intermediate" TLS 1.2 suites (ssl-config.mozilla.org, guideline
 * 5.7): forward secret AEAD only. TLS 1.3 keeps OpenSSL's default suites,
 * which are all AEAD. */
#define SCRIP_TLS12_CIPHERS                                                                                        \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"                 \
	"ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"                   \
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"

struct scrip_tls {
	pthread_mutex_t lock;     /* guards ctx and generation */
	SSL_CTX *ctx;             /* the context new connections get; one reference held here */
	unsigned long generation; /* contexts installed so far */
	char *cert_file;          /* as configured (absolute) */
	char *key_file;
};

/* An encrypted key would make OpenSSL prompt on the terminal; refuse instead. */
static int no_password_cb(char *buf, int size, int rwflag, void *userdata)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)userdata;
	return 0;
}

/* OpenSSL's first queued reason (the root cause), emptying the queue. Its
 * reason strings name what failed (no start line, bad decrypt), never key
 * bytes. */
static const char *ssl_reason(char *buf, size_t size)
{
	unsigned long first = ERR_get_error();
	ERR_clear_error();
	if (!first)
		return "unknown error";
	ERR_error_string_n(first, buf, size);
	return buf;
}

/* The context for cert_file and key_file, or NULL with err. */
static SSL_CTX *ctx_build(const char *cert_file, const char *key_file, scrip_err_t *err)
{
	char why[256];
	SSL_CTX *ctx = NULL;
	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		SCRIP_ERR(err, SCRIP_E_CONFIG, "tls", "cannot create a TLS context: %s", ssl_reason(why, sizeof(why)));
		goto fail;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	    !SSL_CTX_set_cipher_list(ctx, SCRIP_TLS12_CIPHERS) || !SSL_CTX_set_dh_auto(ctx, 1)) {
		SCRIP_ERR(err, SCRIP_E_CONFIG, "tls", "cannot set the TLS protocol versions and ciphers: %s",
			  ssl_reason(why, sizeof(why)));
		goto fail;
	}
	/* Compression invites CRIME; renegotiation is a denial-of-service lever
	 * and nothing here needs it (OpenSSL 3 already refuses client-initiated
	 * renegotiation unless SSL_OP_ALLOW_CLIENT_RENEGOTIATION is set). Session
	 * tickets (the default) stay on. */
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"scripd", 6);
	SSL_CTX_set_default_passwd_cb(ctx, no_password_cb);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		SCRIP_ERR(err, SCRIP_E_CONFIG, "tls", "[server] tls_certificate %s: cannot load a PEM certificate chain: %s",
			  cert_file, ssl_reason(why, sizeof(why)));
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
			SCRIP_ERR(err, SCRIP_E_CONFIG, "tls", "[server] tls_key %s does not match tls_certificate %s",
				  key_file, cert_file);
			goto fail;
		}
		SCRIP_ERR(err, SCRIP_E_CONFIG, "tls",
			  "[server] tls_key %s: cannot load an unencrypted PEM private key: %s", key_file,
			  ssl_reason(why, sizeof(why)));
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		SCRIP_ERR(err, SCRIP_E_CONFIG, "tls", "[server] tls_key %s does not match tls_certificate %s: %s",
			  key_file, cert_file, ssl_reason(why, sizeof(why)));
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	ERR_clear_error();
	return NULL;
}

/* Says what is now served, and warns about what an operator should fix. */
static void ctx_describe(SSL_CTX *ctx, const char *key_file)
{
	X509 *cert = SSL_CTX_get0_certificate(ctx);
	char subject[256] = "?", not_after[64] = "?";
	if (cert) {
		X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof(subject));
		BIO *b = BIO_new(BIO_s_mem());
		if (b && ASN1_TIME_print(b, X509_get0_notAfter(cert)) == 1) {
			int n = BIO_read(b, not_after, (int)sizeof(not_after) - 1);
			not_after[n > 0 ? n : 0] = '\0';
		}
		BIO_free(b);
		if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0)
			scrip_log_warn("TLS certificate %s expired on %s", subject, not_after);
	}
	scrip_log_info("TLS certificate %s, valid until %s", subject, not_after);
	struct stat st;
	if (stat(key_file, &st) == 0 && (st.st_mode & S_IROTH))
		scrip_log_warn("[server] tls_key %s is readable by every user; make it mode 0640 (group scrip)", key_file);
	ERR_clear_error();
}

scrip_tls_t *scrip_tls_new(const char *cert_file, const char *key_file, scrip_err_t *err)
{
	scrip_tls_t *tls = calloc(1, sizeof(*tls));
	if (!tls || !(tls->cert_file = strdup(cert_file)) || !(tls->key_file = strdup(key_file))) {
		SCRIP_ERR(err, SCRIP_E_CONFIG, "tls", "out of memory");
		goto fail;
	}
	if (pthread_mutex_init(&tls->lock, NULL) != 0) {
		SCRIP_ERR(err, SCRIP_E_CONFIG, "tls", "cannot create a mutex");
		goto fail;
	}
	tls->ctx = ctx_build(cert_file, key_file, err);
	if (!tls->ctx) {
		pthread_mutex_destroy(&tls->lock);
		goto fail;
	}
	tls->generation = 1;
	ctx_describe(tls->ctx, key_file);
	return tls;
fail:
	if (tls) {
		free(tls->cert_file);
		free(tls->key_file);
		free(tls);
	}
	return NULL;
}

void scrip_tls_free(scrip_tls_t *tls)
{
	if (!tls)
		return;
	SSL_CTX_free(tls->ctx);
	pthread_mutex_destroy(&tls->lock);
	free(tls->cert_file);
	free(tls->key_file);
	free(tls);
}

bool scrip_tls_reload(scrip_tls_t *tls, scrip_err_t *err)
{
	/* Built outside the lock: reading files must not hold up accepts. */
	SSL_CTX *fresh = ctx_build(tls->cert_file, tls->key_file, err);
	if (!fresh) {
		scrip_log_error("TLS reload failed, still serving the previous certificate: %s", err->text);
		return false;
	}
	pthread_mutex_lock(&tls->lock);
	SSL_CTX *old = tls->ctx;
	tls->ctx = fresh;
	tls->generation++;
	pthread_mutex_unlock(&tls->lock);
	/* Connections made with the old context hold their own references. */
	SSL_CTX_free(old);
	ctx_describe(fresh, tls->key_file);
	return true;
}

SSL *scrip_tls_ssl_new(scrip_tls_t *tls)
{
	pthread_mutex_lock(&tls->lock);
	SSL_CTX *ctx = tls->ctx;
	SSL_CTX_up_ref(ctx);
	pthread_mutex_unlock(&tls->lock);
	SSL *ssl = SSL_new(ctx); /* takes its own reference */
	SSL_CTX_free(ctx);
	return ssl;
}

unsigned long scrip_tls_generation(scrip_tls_t *tls)
{
	pthread_mutex_lock(&tls->lock);
	unsigned long g = tls->generation;
	pthread_mutex_unlock(&tls->lock);
	return g;
}
