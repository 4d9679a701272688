/* form.h — strict application/x-www-form-urlencoded bodies and HTTP Basic
 * client credentials. Pure parsing: no libevent, so it is unit-tested and
 * fuzzed on its own. evhttp's own parser keeps the first duplicate, cuts
 * values at %00 and leaves keys undecoded; scrip never uses it for bodies. */
#ifndef SCRIP_FORM_H
#define SCRIP_FORM_H

#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"

/* The most parameters a form holds: the ceiling of [limits] max_params. */
#define SCRIP_FORM_MAX_PARAMS 64

typedef struct {
	char *name;  /* decoded, NUL-terminated */
	char *value; /* decoded, NUL-terminated; may be "" */
} scrip_form_param_t;

typedef struct {
	scrip_form_param_t params[SCRIP_FORM_MAX_PARAMS];
	size_t n;
} scrip_form_t;

/* Parses body (body_len bytes, not NUL-terminated) into *form.
 * Rules: pairs separated by '&'; each pair is split at its first '=' (the
 * HTML form encoding RFC 6749 Appendix B names: a padded token sent
 * unencoded keeps its '=') and has a non-empty name; '+' is a space; %XX needs two hex digits; the decoded
 * bytes must be valid UTF-8 with no control character (so no NUL, CR, LF);
 * empty pairs ("a=1&&b=2") are refused; more than SCRIP_FORM_MAX_PARAMS
 * pairs is refused. A parameter named in `singular` (a NULL-terminated list)
 * that appears twice is refused (RFC 6749 §3.2); other names may repeat
 * (RFC 8693 audience/resource). An empty body gives an empty form.
 * On failure err is SCRIP_E_INVALID_REQUEST with a description naming the
 * parameter, never its value. [out] form: free with scrip_form_clear. */
bool scrip_form_parse(const char *body, size_t body_len, const char *const *singular, scrip_form_t *form,
		      scrip_err_t *err) SCRIP_MUST_CHECK;

/* scrip_form_parse with a cap of max_params pairs ([limits] max_params)
 * instead of SCRIP_FORM_MAX_PARAMS; 0 or more than SCRIP_FORM_MAX_PARAMS
 * means SCRIP_FORM_MAX_PARAMS. The cap is checked before each pair is
 * decoded, so a body of many pairs costs no more than max_params of them. */
bool scrip_form_parse_capped(const char *body, size_t body_len, const char *const *singular, size_t max_params,
			     scrip_form_t *form, scrip_err_t *err) SCRIP_MUST_CHECK;

/* The value of the first parameter called name, or NULL. Borrowed from form.
 * A parameter given with an empty value counts as absent (RFC 6749 §3.1). */
const char *scrip_form_get(const scrip_form_t *form, const char *name);

/* Number of non-empty values of name, and the i-th of them (borrowed). */
size_t scrip_form_count(const scrip_form_t *form, const char *name);
const char *scrip_form_get_nth(const scrip_form_t *form, const char *name, size_t i);

/* Frees what scrip_form_parse allocated; the struct may be reused. */
void scrip_form_clear(scrip_form_t *form);

/* Parses an Authorization header value "Basic <base64>" (scheme
 * case-insensitive, one space). The base64 is strict; the decoded text is
 * split at the first ':' and both halves are form-urlencoding-decoded
 * (RFC 6749 §2.3.1). Empty id or secret refused. [out] *client_id, *secret
 * malloc'd; caller frees (secret with scrip_secret_free); both NULL on failure.
 * Returns false with SCRIP_E_INVALID_CLIENT on any malformation. */
bool scrip_basic_auth_parse(const char *header, char **client_id, char **secret, scrip_err_t *err) SCRIP_MUST_CHECK;

/* Decodes one form-urlencoded component (the same rules as a value in
 * scrip_form_parse). [out] *out malloc'd; caller frees. */
bool scrip_form_decode(const char *in, size_t in_len, char **out) SCRIP_MUST_CHECK;

#endif
