/* framing.c — where a request ends (framing.h). */
#include "http/framing.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

int scrip_header_count(const struct evkeyvalq *headers, const char *name, const char **value)
{
	int n = 0;
	*value = NULL;
	for (const struct evkeyval *h = headers->tqh_first; h; h = h->next.tqe_next) {
		if (strcasecmp(h->key, name) != 0)
			continue;
		if (n++ == 0)
			*value = h->value;
	}
	return n;
}

/* RFC 9110 §8.6: 1*DIGIT; at most 18 of them, so that it fits an int64. */
static bool content_length_valid(const char *value)
{
	size_t len = strlen(value);
	return len >= 1 && len <= 18 && strspn(value, "0123456789") == len;
}

static bool all_zero(const char *value)
{
	return strspn(value, "0") == strlen(value);
}

/* The methods evhttp reads no body for (evhttp_method_may_have_body). */
static bool body_never_read(enum evhttp_cmd_type method)
{
	switch (method) {
	case EVHTTP_REQ_POST:
	case EVHTTP_REQ_PUT:
	case EVHTTP_REQ_PATCH:
		return false;
	default:
		return true;
	}
}

/* RFC 9112 §5.1: white space between a field name and its colon must be
 * refused (evhttp keeps "Content-Length " as another name, and would not
 * see the length a proxy saw). */
static bool name_has_white_space(const struct evkeyvalq *headers)
{
	for (const struct evkeyval *h = headers->tqh_first; h; h = h->next.tqe_next)
		if (strpbrk(h->key, " \t"))
			return true;
	return false;
}

const char *scrip_framing_problem(enum evhttp_cmd_type method, int minor, const struct evkeyvalq *headers)
{
	const char *length, *coding;
	if (name_has_white_space(headers))
		return "a header field name holds white space";
	int n_length = scrip_header_count(headers, "Content-Length", &length);
	int n_coding = scrip_header_count(headers, "Transfer-Encoding", &coding);
	if (n_length > 1)
		return "more than one Content-Length header";
	if (n_coding > 1)
		return "more than one Transfer-Encoding header";
	if (n_length == 1 && n_coding == 1)
		return "both Content-Length and Transfer-Encoding";
	if (n_length == 1 && !content_length_valid(length))
		return "Content-Length is not a number of bytes";
	if (n_coding == 1 && minor == 0)
		return "an HTTP/1.0 request has no Transfer-Encoding";
	if (n_coding == 1 && strcasecmp(coding, "chunked") != 0)
		return "the only Transfer-Encoding understood is chunked";
	if (body_never_read(method) && (n_coding == 1 || (n_length == 1 && !all_zero(length))))
		return "a request of this method has no body here";
	return NULL;
}
