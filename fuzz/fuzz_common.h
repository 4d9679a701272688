/* fuzz_common.h — what every harness shares: the libFuzzer entry point's
 * prototype, an assertion that survives NDEBUG, and the checks on refusals
 * that hold for every parser (a refusal's description reaches json_pack). */
#ifndef SCRIP_FUZZ_COMMON_H
#define SCRIP_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant is a finding: abort so that libFuzzer (or the replay
 * driver under ASan) reports it with a stack and keeps the input. */
#define FUZZ_ASSERT(cond)                                                                                              \
	do {                                                                                                           \
		if (!(cond)) {                                                                                         \
			fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond);                   \
			abort();                                                                                       \
		}                                                                                                      \
	} while (0)

/* Strict UTF-8 (RFC 3629: no overlong form, no surrogate, nothing above
 * U+10FFFF) of s[0..len). jansson refuses anything else in json_pack "s". */
static inline bool fuzz_utf8_valid(const unsigned char *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		unsigned char c = s[i];
		size_t n;
		unsigned char lo = 0x80, hi = 0xbf;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			n = 2;
		else if (c >= 0xe0 && c <= 0xef)
			n = 3;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 4;
		else
			return false;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
		else if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
		if (len - i < n || s[i + 1] < lo || s[i + 1] > hi)
			return false;
		for (size_t k = 2; k < n; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xbf)
				return false;
		i += n;
	}
	return true;
}

/* No C0 control and no DEL: the text is a log line or a JSON value. */
static inline bool fuzz_no_controls(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* What every refusal that can reach an HTTP client must look like: a code,
 * a reason, and a description that jansson accepts (error_description is
 * sent with json_pack "s", which fails on invalid UTF-8) on one line. */
static inline void fuzz_check_refusal(const scrip_err_t *err)
{
	FUZZ_ASSERT(err->code != SCRIP_E_NONE);
	FUZZ_ASSERT(err->reason[0] != '\0');
	FUZZ_ASSERT(memchr(err->text, '\0', sizeof(err->text)) != NULL);
	FUZZ_ASSERT(fuzz_utf8_valid((const unsigned char *)err->text, strlen(err->text)));
	FUZZ_ASSERT(fuzz_no_controls(err->text));
}

/* data[0..size) as a NUL-terminated string, cut at the first NUL byte as a
 * C string parser would see it. malloc'd; NULL only when out of memory. */
static inline char *fuzz_cstring(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, '\0', size);
	size_t len = nul ? (size_t)(nul - data) : size;
	char *s = malloc(len + 1);
	if (s) {
		if (len)
			memcpy(s, data, len);
		s[len] = '\0';
	}
	return s;
}

#endif
