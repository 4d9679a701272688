/* test_chunks.c — unit tests of the chunked-body framing reader: bodies as
 * RFC 9112 §7.1 writes them pass, whatever pieces they arrive in; every size
 * line that evhttp's strtoll would read otherwise than a strict proxy is a
 * flaw. */
#include <string.h>

#include "http/chunks.h"
#include "suites.h"

/* Feeds the n bytes of raw in pieces of step bytes; *used: the body's. */
static scrip_chunk_state_t feed(const char *raw, size_t n, size_t step, size_t *used)
{
	scrip_chunks_t c;
	scrip_chunks_begin(&c);
	*used = 0;
	for (size_t i = 0; i < n && scrip_chunks_reading(&c); i += step) {
		size_t k = n - i < step ? n - i : step;
		size_t u = scrip_chunks_feed(&c, (const unsigned char *)raw + i, k);
		CU_ASSERT_TRUE(u <= k);
		*used += u;
	}
	return c.state;
}

#define FEED(raw, step, used) feed(raw, sizeof(raw) - 1, step, used)

static void test_chunks_good(void)
{
	static const char *const good[] = {
		"c\r\ntoken=abcdef\r\n0\r\n\r\n",
		"C\r\ntoken=abcdef\r\n0\r\n\r\n",
		"3\r\nabc\r\n9\r\n&d=efghij\r\n0\r\n\r\n",
		"3\nabc\n0\n\n", /* evhttp ends lines at LF too */
		"0\r\n\r\n",
		"3\r\na\r\n\r\n0\r\nX-Trailer: 1\r\n\r\n", /* CR LF inside data is data */
		"0000000000000003\r\nabc\r\n0\r\n\r\n",   /* 16 digits */
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
		for (size_t step = 1; step <= 32; step *= 2) {
			size_t used;
			CU_ASSERT_EQUAL(feed(good[i], strlen(good[i]), step, &used), SCRIP_CHUNK_DONE);
			CU_ASSERT_EQUAL(used, strlen(good[i]));
		}
}

static void test_chunks_end_before_next_request(void)
{
	static const char body[] = "3\r\nabc\r\n0\r\n\r\nPOST /token HTTP/1.1\r\n";
	for (size_t step = 1; step <= 64; step *= 4) {
		size_t used;
		CU_ASSERT_EQUAL(FEED(body, step, &used), SCRIP_CHUNK_DONE);
		CU_ASSERT_EQUAL(used, strlen("3\r\nabc\r\n0\r\n\r\n"));
	}
}

static void test_chunks_refused(void)
{
	static const char *const bad[] = {
		"0x9\r\ntoken=abc\r\n0\r\n\r\n",     /* strtoll's base prefix */
		"+9\r\ntoken=abc\r\n0\r\n\r\n",      /* a sign */
		"-9\r\ntoken=abc\r\n0\r\n\r\n",
		" 9\r\ntoken=abc\r\n0\r\n\r\n",      /* white space, before or after */
		"9 \r\ntoken=abc\r\n0\r\n\r\n",
		"9;x=y\r\ntoken=abc\r\n0\r\n\r\n",   /* an extension: evhttp refuses it */
		"\r\ntoken=abc\r\n0\r\n\r\n",        /* no size */
		"g\r\n",                             /* not hex */
		"00000000000000003\r\nabc\r\n",      /* 17 digits */
		"3\r\nabcX\r\n0\r\n\r\n",            /* data longer than its size */
		"3\r\nabc\r\r\n0\r\n\r\n",
		"3\rabc\r\n0\r\n\r\n",               /* CR not followed by LF */
		"0\r\n\r\r",
		"0\r\nX-T: a\0b\r\n\r\n",
		"0\r\n\0\r\nGET /x HTTP/1.1\r\n", /* a NUL that evhttp reads as the empty last line */
	};
	static const size_t len[] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, sizeof("0\r\nX-T: a\0b\r\n\r\n") - 1,
				      sizeof("0\r\n\0\r\nGET /x HTTP/1.1\r\n") - 1 };
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		for (size_t step = 1; step <= 32; step *= 2) {
			size_t used, n = len[i] ? len[i] : strlen(bad[i]);
			CU_ASSERT_EQUAL(feed(bad[i], n, step, &used), SCRIP_CHUNK_BAD);
		}
}

static void test_chunks_unfinished(void)
{
	size_t used;
	CU_ASSERT_EQUAL(FEED("3\r\nab", 1, &used), SCRIP_CHUNK_DATA);
	CU_ASSERT_EQUAL(FEED("3\r\nabc\r\n0\r\n", 2, &used), SCRIP_CHUNK_TRAILER);
	CU_ASSERT_EQUAL(FEED("ffffffffffffffff\r\n", 5, &used), SCRIP_CHUNK_DATA);
}

bool scrip_test_chunks_suite(void)
{
	CU_pSuite s = CU_add_suite("chunks", NULL, NULL);
	if (!s)
		return false;
	SCRIP_ADD_TEST(s, test_chunks_good);
	SCRIP_ADD_TEST(s, test_chunks_end_before_next_request);
	SCRIP_ADD_TEST(s, test_chunks_refused);
	SCRIP_ADD_TEST(s, test_chunks_unfinished);
	return true;
}
