/* fuzz_form.c — libFuzzer harness of the /token body parser and of HTTP
 * Basic client credentials (http/form.c), with the invariants they promise. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz_common.h"
#include "http/form.h"
#include "util/b64.h"
#include "util/secret.h"

/* The singular parameters of /token, as in http/handle_token.c. */
static const char *const singular[] = {
    "grant_type", "client_id",	"client_secret", "subject_token", "subject_token_type", "requested_token_type",
    "scope",	  "expires_in", "job_id",	 "actor_token",	  "actor_token_type",	NULL,
};

/* Decoded text as form.h promises it: UTF-8 without C0, DEL or C1 (U+0080..U+009F) controls. */
static void check_text(const char *s)
{
	FUZZ_ASSERT(fuzz_utf8_valid((const unsigned char *)s, strlen(s)));
	FUZZ_ASSERT(fuzz_no_controls(s));
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		FUZZ_ASSERT(!(p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f));
}

static bool is_singular(const char *name)
{
	for (const char *const *p = singular; *p; p++)
		if (strcmp(*p, name) == 0)
			return true;
	return false;
}

/* Appends the form-urlencoding of s (unreserved bytes kept, space as '+',
 * everything else %XX) at out; returns the new end. */
static char *encode_into(char *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		unsigned char c = *p;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-._~", c)) {
			*out++ = (char)c;
		} else if (c == ' ') {
			*out++ = '+';
		} else {
			*out++ = '%';
			*out++ = hex[c >> 4];
			*out++ = hex[c & 15];
		}
	}
	return out;
}

static bool forms_equal(const scrip_form_t *a, const scrip_form_t *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->params[i].name, b->params[i].name) || strcmp(a->params[i].value, b->params[i].value))
			return false;
	return true;
}

/* A parsed form, encoded again, parses to the same form. */
static void check_roundtrip(const scrip_form_t *form)
{
	size_t cap = 1;
	for (size_t i = 0; i < form->n; i++)
		cap += 3 * (strlen(form->params[i].name) + strlen(form->params[i].value)) + 2;
	char *body = malloc(cap), *p = body;
	FUZZ_ASSERT(body);
	for (size_t i = 0; i < form->n; i++) {
		if (i)
			*p++ = '&';
		p = encode_into(p, form->params[i].name);
		*p++ = '=';
		p = encode_into(p, form->params[i].value);
	}
	scrip_form_t again;
	scrip_err_t err = {0};
	bool ok = scrip_form_parse(body, (size_t)(p - body), singular, &again, &err);
	FUZZ_ASSERT(ok);
	FUZZ_ASSERT(forms_equal(form, &again));
	scrip_form_clear(&again);
	free(body);
}

/* The accessors agree with the parameters they read. */
static void check_accessors(const scrip_form_t *form)
{
	for (size_t i = 0; i < form->n; i++) {
		const char *name = form->params[i].name;
		size_t count = 0;
		const char *first = NULL;
		FUZZ_ASSERT(name[0] != '\0');
		check_text(name);
		check_text(form->params[i].value);
		for (size_t k = 0; k < form->n; k++) {
			if (strcmp(form->params[k].name, name) == 0 && form->params[k].value[0]) {
				if (!first)
					first = form->params[k].value;
				count++;
			}
		}
		FUZZ_ASSERT(scrip_form_get(form, name) == first);
		FUZZ_ASSERT(scrip_form_count(form, name) == count);
		FUZZ_ASSERT(scrip_form_get_nth(form, name, count) == NULL);
		if (count)
			FUZZ_ASSERT(scrip_form_get_nth(form, name, count - 1) != NULL);
		if (is_singular(name))
			FUZZ_ASSERT(count <= 1);
	}
}

/* True if some singular name occurs twice in form. */
static bool singular_repeated(const scrip_form_t *form)
{
	for (size_t i = 0; i < form->n; i++)
		for (size_t k = i + 1; k < form->n; k++)
			if (is_singular(form->params[i].name) &&
			    strcmp(form->params[i].name, form->params[k].name) == 0)
				return true;
	return false;
}

static void fuzz_body(const char *body, size_t len)
{
	scrip_form_t strict, loose;
	scrip_err_t err = {0}, err_loose = {0};
	bool ok = scrip_form_parse(body, len, singular, &strict, &err);
	bool ok_loose = scrip_form_parse(body, len, NULL, &loose, &err_loose);

	if (ok) {
		FUZZ_ASSERT(strict.n <= SCRIP_FORM_MAX_PARAMS);
		FUZZ_ASSERT(len > 0 || strict.n == 0);
		check_accessors(&strict);
		check_roundtrip(&strict);
		/* The singular list only ever refuses more. */
		FUZZ_ASSERT(ok_loose && forms_equal(&strict, &loose));
	} else {
		fuzz_check_refusal(&err);
		FUZZ_ASSERT(err.code == SCRIP_E_INVALID_REQUEST);
		FUZZ_ASSERT(strict.n == 0);
		FUZZ_ASSERT(!ok_loose || singular_repeated(&loose));
	}
	if (!ok_loose)
		fuzz_check_refusal(&err_loose);
	scrip_form_clear(&strict);
	scrip_form_clear(&loose);
}

/* Parsed credentials, encoded again (form-urlencoded halves, base64),
 * parse to the same pair. */
static void check_basic_roundtrip(const char *id, const char *secret)
{
	size_t cap = 3 * (strlen(id) + strlen(secret)) + 2;
	char *raw = malloc(cap), *p = raw, *header = NULL, *b64 = NULL, *id2 = NULL, *secret2 = NULL;
	FUZZ_ASSERT(raw);
	p = encode_into(p, id);
	*p++ = ':';
	p = encode_into(p, secret);
	b64 = scrip_b64_encode((const uint8_t *)raw, (size_t)(p - raw));
	FUZZ_ASSERT(b64 && asprintf(&header, "Basic %s", b64) > 0);
	scrip_err_t err = {0};
	bool ok = scrip_basic_auth_parse(header, &id2, &secret2, &err);
	FUZZ_ASSERT(ok);
	FUZZ_ASSERT(strcmp(id, id2) == 0 && strcmp(secret, secret2) == 0);
	free(id2);
	scrip_secret_free(secret2);
	free(header);
	free(b64);
	free(raw);
}

static void fuzz_basic(const char *header)
{
	char *id = NULL, *secret = NULL;
	scrip_err_t err = {0};
	if (scrip_basic_auth_parse(header, &id, &secret, &err)) {
		FUZZ_ASSERT(id && secret && id[0] && secret[0]);
		check_text(id);
		check_text(secret);
		check_basic_roundtrip(id, secret);
	} else {
		fuzz_check_refusal(&err);
		FUZZ_ASSERT(err.code == SCRIP_E_INVALID_CLIENT);
		FUZZ_ASSERT(!id && !secret);
	}
	free(id);
	scrip_secret_free(secret);
}

/* Strict standard base64 is canonical: what decodes encodes back to itself. */
static void fuzz_b64(const char *text)
{
	uint8_t *raw = NULL;
	size_t raw_len = 0;
	if (!scrip_b64_decode(text, strlen(text), &raw, &raw_len))
		return;
	char *again = scrip_b64_encode(raw, raw_len);
	FUZZ_ASSERT(again && strcmp(again, text) == 0);
	free(again);
	free(raw);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The body as evhttp hands it over: bytes with a length, NULs included. */
	char *body = malloc(size + 1);
	FUZZ_ASSERT(body);
	if (size)
		memcpy(body, data, size);
	body[size] = '\0';
	fuzz_body(body, size);
	free(body);

	/* The same bytes as an Authorization header value (a C string). */
	char *header = fuzz_cstring(data, size);
	FUZZ_ASSERT(header);
	fuzz_basic(header);
	if (strncasecmp(header, "Basic ", 6) == 0)
		fuzz_b64(header + 6);
	free(header);

	char *decoded = NULL;
	if (scrip_form_decode((const char *)data, size, &decoded)) {
		check_text(decoded);
		free(decoded);
	}
	return 0;
}
