/* form.c — strict application/x-www-form-urlencoded parsing of request
 * bodies and of the two halves of HTTP Basic client credentials. */
#include "http/form.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/b64.h"
#include "util/secret.h"

/* An Authorization header longer than this is not a client's credentials. */
#define BASIC_HEADER_MAX 4096

/* Length of the UTF-8 sequence at s (at most n bytes), or 0 if it is not
 * well formed: overlong forms, surrogates (U+D800..DFFF) and code points
 * above U+10FFFF are refused (RFC 3629 §4). C0 and C1 controls and DEL are
 * refused too: a NUL cuts C strings, CR and LF split log lines and headers. */
static size_t utf8_char(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	if (c < 0x20 || c == 0x7f)
		return 0;
	if (c < 0x80)
		return 1;
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4;
	else
		return 0;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	if (c == 0xc2 && s[1] <= 0x9f)
		return 0; /* U+0080..U+009F, the C1 controls */
	return len;
}

static bool utf8_text_ok(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t k = utf8_char(s + i, n - i);
		if (k == 0)
			return false;
		i += k;
	}
	return true;
}

bool scrip_form_decode(const char *in, size_t in_len, char **out)
{
	bool ok = false;
	char *buf = NULL;
	size_t n = 0;
	*out = NULL;
	if (!in && in_len > 0)
		goto end;
	buf = malloc(in_len + 1);
	if (!buf)
		goto end;
	for (size_t i = 0; i < in_len; i++) {
		char c = in[i];
		if (c == '+') {
			buf[n++] = ' ';
		} else if (c == '%') {
			if (i + 2 >= in_len)
				goto end;
			int h = scrip_hex_digit(in[i + 1]), l = scrip_hex_digit(in[i + 2]);
			if (h < 0 || l < 0)
				goto end;
			buf[n++] = (char)(h << 4 | l);
			i += 2;
		} else {
			buf[n++] = c;
		}
	}
	buf[n] = '\0';
	if (!utf8_text_ok((const unsigned char *)buf, n))
		goto end;
	*out = buf;
	buf = NULL;
	ok = true;
end:
	if (buf) {
		/* The input may be a secret or a token. */
		explicit_bzero(buf, in_len + 1);
		free(buf);
	}
	return ok;
}

static bool name_in(const char *name, const char *const *list)
{
	for (; list && *list; list++)
		if (strcmp(*list, name) == 0)
			return true;
	return false;
}

static bool form_seen(const scrip_form_t *form, const char *name)
{
	for (size_t i = 0; i < form->n; i++)
		if (strcmp(form->params[i].name, name) == 0)
			return true;
	return false;
}

/* Decodes one "name=value" pair of len bytes and appends it to form. */
static bool pair_add(const char *pair, size_t len, const char *const *singular, scrip_form_t *form,
		     scrip_err_t *err)
{
	char *name = NULL, *value = NULL;
	bool ok = false;
	const char *eq = memchr(pair, '=', len);
	if (len == 0) {
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "form_malformed",
			  "empty parameter in the body (\"&&\", or '&' at the start or end)");
		goto end;
	}
	if (!eq) {
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "form_malformed", "parameter without '=' in the body");
		goto end;
	}
	size_t name_len = (size_t)(eq - pair), value_len = len - name_len - 1;
	if (name_len == 0) {
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "form_malformed", "parameter with an empty name in the body");
		goto end;
	}
	if (!scrip_form_decode(pair, name_len, &name)) {
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "form_malformed",
			  "badly encoded parameter name (bad %%XX, control character or not UTF-8)");
		goto end;
	}
	if (!scrip_form_decode(eq + 1, value_len, &value)) {
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "form_malformed",
			  "badly encoded value of parameter %.40s (bad %%XX, control character or not UTF-8)", name);
		goto end;
	}
	/* Names are compared decoded, so grant%5Ftype repeats grant_type. A
	 * repeated singular parameter is refused even if one copy is empty:
	 * which copy wins is exactly what parsers disagree on. */
	if (name_in(name, singular) && form_seen(form, name)) {
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "form_duplicate", "parameter %.40s is repeated", name);
		goto end;
	}
	form->params[form->n].name = name;
	form->params[form->n].value = value;
	form->n++;
	name = value = NULL;
	ok = true;
end:
	free(name);
	scrip_secret_free(value);
	return ok;
}

bool scrip_form_parse(const char *body, size_t body_len, const char *const *singular, scrip_form_t *form,
		      scrip_err_t *err)
{
	return scrip_form_parse_capped(body, body_len, singular, SCRIP_FORM_MAX_PARAMS, form, err);
}

bool scrip_form_parse_capped(const char *body, size_t body_len, const char *const *singular, size_t max_params,
			     scrip_form_t *form, scrip_err_t *err)
{
	memset(form, 0, sizeof(*form));
	if (max_params == 0 || max_params > SCRIP_FORM_MAX_PARAMS)
		max_params = SCRIP_FORM_MAX_PARAMS;
	if (body_len == 0)
		return true;
	if (!body) {
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "form_malformed", "no body");
		return false;
	}
	const char *p = body, *end = body + body_len;
	for (;;) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *stop = amp ? amp : end;
		if (form->n == max_params) {
			SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "form_too_many", "more than %zu parameters in the body",
				  max_params);
			goto fail;
		}
		if (!pair_add(p, (size_t)(stop - p), singular, form, err))
			goto fail;
		if (!amp)
			return true;
		p = amp + 1;
	}
fail:
	scrip_form_clear(form);
	return false;
}

const char *scrip_form_get(const scrip_form_t *form, const char *name)
{
	return scrip_form_get_nth(form, name, 0);
}

size_t scrip_form_count(const scrip_form_t *form, const char *name)
{
	size_t count = 0;
	for (size_t i = 0; form && i < form->n; i++)
		if (form->params[i].value[0] && strcmp(form->params[i].name, name) == 0)
			count++;
	return count;
}

const char *scrip_form_get_nth(const scrip_form_t *form, const char *name, size_t i)
{
	for (size_t k = 0; form && k < form->n; k++) {
		const scrip_form_param_t *p = &form->params[k];
		/* An empty value is an omitted parameter (RFC 6749 §3.1). */
		if (p->value[0] && strcmp(p->name, name) == 0 && i-- == 0)
			return p->value;
	}
	return NULL;
}

void scrip_form_clear(scrip_form_t *form)
{
	if (!form)
		return;
	for (size_t i = 0; i < form->n && i < SCRIP_FORM_MAX_PARAMS; i++) {
		free(form->params[i].name);
		/* Values are secrets and tokens: wipe them. */
		scrip_secret_free(form->params[i].value);
	}
	memset(form, 0, sizeof(*form));
}

bool scrip_basic_auth_parse(const char *header, char **client_id, char **secret, scrip_err_t *err)
{
	bool ok = false;
	uint8_t *raw = NULL;
	size_t raw_len = 0;
	*client_id = NULL;
	*secret = NULL;
	if (!header || strncasecmp(header, "Basic ", 6) != 0) {
		SCRIP_ERR(err, SCRIP_E_INVALID_CLIENT, "client_auth_malformed", "Authorization is not Basic");
		goto end;
	}
	const char *b64 = header + 6;
	size_t b64_len = strlen(b64);
	if (b64_len == 0 || b64_len > BASIC_HEADER_MAX) {
		SCRIP_ERR(err, SCRIP_E_INVALID_CLIENT, "client_auth_malformed",
			  "Basic credentials are missing or too long");
		goto end;
	}
	/* Strict base64: one spelling per credential, so a second space,
	 * whitespace, base64url characters or bad padding are all refused. */
	if (!scrip_b64_decode(b64, b64_len, &raw, &raw_len)) {
		SCRIP_ERR(err, SCRIP_E_INVALID_CLIENT, "client_auth_malformed",
			  "Basic credentials are not valid base64");
		goto end;
	}
	const uint8_t *colon = memchr(raw, ':', raw_len);
	if (!colon) {
		SCRIP_ERR(err, SCRIP_E_INVALID_CLIENT, "client_auth_malformed", "Basic credentials have no ':'");
		goto end;
	}
	/* RFC 6749 §2.3.1: both halves are form-urlencoded before base64, so
	 * they are decoded here; the secret may itself contain ':'. */
	size_t id_len = (size_t)(colon - raw);
	if (!scrip_form_decode((const char *)raw, id_len, client_id) ||
	    !scrip_form_decode((const char *)colon + 1, raw_len - id_len - 1, secret)) {
		SCRIP_ERR(err, SCRIP_E_INVALID_CLIENT, "client_auth_malformed",
			  "Basic credentials are badly form-encoded");
		goto end;
	}
	if (!**client_id || !**secret) {
		SCRIP_ERR(err, SCRIP_E_INVALID_CLIENT, "client_auth_malformed", "Basic credentials have an empty %s",
			  **client_id ? "secret" : "client id");
		goto end;
	}
	ok = true;
end:
	if (raw) {
		explicit_bzero(raw, raw_len);
		free(raw);
	}
	if (!ok) {
		free(*client_id);
		scrip_secret_free(*secret);
		*client_id = NULL;
		*secret = NULL;
	}
	return ok;
}
