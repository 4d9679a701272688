/* tls.h — the listener's TLS: an OpenSSL server context built from the
 * [server] tls_certificate and tls_key files, and its reload, which swaps
 * the context that new connections get while open ones keep theirs. */
#ifndef SCRIP_TLS_H
#define SCRIP_TLS_H

#include <stdbool.h>

#include <openssl/ssl.h>

#include "util/err.h"

typedef struct scrip_tls scrip_tls_t;

/* Builds the context from cert_file (PEM: the certificate, then its
 * intermediates) and key_file (PEM, unencrypted): TLS 1.2 at least, the
 * Mozilla "intermediate" ciphers for 1.2 in the server's order, OpenSSL's
 * defaults for 1.3, no compression, no renegotiation, session tickets on.
 * The paths are copied. NULL on failure, with err naming the file and
 * OpenSSL's reason (never key material). [out] free with scrip_tls_free. */
scrip_tls_t *scrip_tls_new(const char *cert_file, const char *key_file, scrip_err_t *err) SCRIP_MUST_CHECK;

/* Frees tls (NULL: no-op). Connections still open keep their context
 * alive through their SSL objects. */
void scrip_tls_free(scrip_tls_t *tls);

/* Re-reads both files and, when they make a good context, makes it the one
 * that new connections use; open connections are not affected. When they do
 * not (unreadable, bad PEM, key not matching the certificate), the current
 * context stays and false is returned with err saying why. Safe to call from
 * any thread while others call scrip_tls_ssl_new. */
bool scrip_tls_reload(scrip_tls_t *tls, scrip_err_t *err) SCRIP_MUST_CHECK;

/* A server-side SSL for one new connection, from the current context.
 * NULL when OpenSSL cannot make one. [out] the caller (or the bufferevent it
 * is given to with BEV_OPT_CLOSE_ON_FREE) frees it with SSL_free. */
SSL *scrip_tls_ssl_new(scrip_tls_t *tls);

/* How many times a context was installed (1 after scrip_tls_new, one more
 * per successful reload): lets tests and logs tell a reload happened. */
unsigned long scrip_tls_generation(scrip_tls_t *tls);

#endif
