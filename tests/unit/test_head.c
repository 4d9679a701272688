/* test_head.c — unit tests of the request-head checks that evhttp would
 * not make: the raw bytes (where the head ends, a NUL byte, the HTTP
 * version) and the parsed fields (Host, Content-Encoding). */
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <string.h>
#include <sys/queue.h>

#include "http/head.h"
#include "suites.h"

typedef struct {
	bool ended;
	size_t at; /* bytes of the head */
	scrip_head_flaw_t flaw;
	bool chunked;
} scanned_t;

/* Feeds the n bytes of raw in pieces of step bytes. */
static scanned_t scan(const char *raw, size_t n, size_t step)
{
	scrip_head_scan_t s;
	scrip_head_scan_begin(&s);
	scanned_t out = { 0 };
	out.chunked = false;
	for (size_t i = 0; i < n && !out.ended; i += step) {
		size_t k = n - i < step ? n - i : step;
		bool ended;
		size_t used = scrip_head_scan_feed(&s, (const unsigned char *)raw + i, k, &ended);
		CU_ASSERT_TRUE(used <= k);
		if (ended) {
			out.ended = true;
			out.at = i + used;
		}
	}
	out.flaw = s.flaw;
	out.chunked = s.chunked;
	return out;
}

#define SCAN(raw, step) scan(raw, sizeof(raw) - 1, step)

static void test_head_scan_ends(void)
{
	for (size_t step = 1; step <= 64; step *= 4) {
		scanned_t r = SCAN("POST /token HTTP/1.1\r\nHost: x\r\n\r\nbody", step);
		CU_ASSERT_TRUE(r.ended);
		CU_ASSERT_EQUAL(r.flaw, SCRIP_HEAD_FINE);
		r = SCAN("GET /jwks HTTP/1.0\n\n", step);
		CU_ASSERT_TRUE(r.ended);
		CU_ASSERT_EQUAL(r.flaw, SCRIP_HEAD_FINE);
		/* Empty lines before the request line are skipped, not an end. */
		r = SCAN("\r\n\r\nGET /jwks HTTP/1.1\r\nHost: x\r\n\r\n", step);
		CU_ASSERT_TRUE(r.ended);
		CU_ASSERT_EQUAL(r.flaw, SCRIP_HEAD_FINE);
		r = SCAN("GET /jwks HTTP/1.1\r\nHost: x\r\n", step);
		CU_ASSERT_FALSE(r.ended);
	}
	for (size_t step = 1; step <= 64; step *= 2) {
		scanned_t r = SCAN("GET / HTTP/1.1\r\nHost: x\r\n\r\nGET", step);
		CU_ASSERT_EQUAL(r.at, strlen("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
	}
}

/* A Transfer-Encoding header, whatever its case, says the body is read as
 * chunks; a name that only begins or ends like it does not. */
static void test_head_scan_chunked(void)
{
	for (size_t step = 1; step <= 16; step *= 4) {
		CU_ASSERT_TRUE(SCAN("POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", step).chunked);
		CU_ASSERT_TRUE(SCAN("POST /t HTTP/1.1\r\ntransfer-ENCODING:chunked\n\n", step).chunked);
		CU_ASSERT_FALSE(SCAN("POST /t HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n", step).chunked);
		CU_ASSERT_FALSE(SCAN("POST /t HTTP/1.1\r\nX-Transfer-Encoding: chunked\r\n\r\n", step).chunked);
		CU_ASSERT_FALSE(SCAN("POST /t HTTP/1.1\r\nTransfer-Encodings: chunked\r\n\r\n", step).chunked);
		CU_ASSERT_FALSE(SCAN("POST /t HTTP/1.1\r\nX: Transfer-Encoding: chunked\r\n\r\n", step).chunked);
		CU_ASSERT_FALSE(SCAN("POST /transfer-encoding: HTTP/1.1\r\nHost: x\r\n\r\n", step).chunked);
	}
}

static void test_head_scan_nul(void)
{
	static const char chunked[] = "POST /introspect HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\0, "
				      "identity\r\n\r\n";
	CU_ASSERT_EQUAL(SCAN(chunked, 1).flaw, SCRIP_HEAD_NUL);
	CU_ASSERT_EQUAL(SCAN(chunked, 1000).flaw, SCRIP_HEAD_NUL);
	CU_ASSERT_EQUAL(SCAN("POST /to\0ken HTTP/1.1\r\nHost: x\r\n\r\n", 3).flaw, SCRIP_HEAD_NUL);
	/* A NUL in the body, after the head, is the form parser's to refuse. */
	CU_ASSERT_EQUAL(SCAN("POST /token HTTP/1.1\r\nHost: x\r\n\r\na\0b", 1).flaw, SCRIP_HEAD_FINE);
}

static void test_head_scan_version(void)
{
	static const char *const refused[] = {
		"POST /token HTTP/4294967295.255\r\n\r\n", "POST /token HTTP/257.1\r\n\r\n",
		"POST /token HTTP/1.9\r\n\r\n",            "GET / HTTP/0.9\r\n\r\n",
		"GET / HTTP/2.0\r\n\r\n",                  "GET / http/1.1\r\n\r\n",
		"GET /\r\n\r\n",                           "GET / XHTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1 \r\n\r\n",                 "GET / HTTP/1.11\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(*refused); i++) {
		scanned_t r = scan(refused[i], strlen(refused[i]), 1);
		CU_ASSERT_TRUE(r.ended);
		CU_ASSERT_EQUAL(r.flaw, SCRIP_HEAD_VERSION);
	}
	CU_ASSERT_EQUAL(SCAN("GET / HTTP/1.0\r\n\r\n", 2).flaw, SCRIP_HEAD_FINE);
	CU_ASSERT_EQUAL(SCAN("GET / HTTP/1.1\n\n", 5).flaw, SCRIP_HEAD_FINE);
}

/* The flaw of the headers given as name, value pairs (NULL-terminated). */
static scrip_head_flaw_t fields(const char *const *pairs, int minor)
{
	struct evkeyvalq headers;
	TAILQ_INIT(&headers);
	for (size_t i = 0; pairs[i]; i += 2)
		CU_ASSERT_EQUAL_FATAL(evhttp_add_header(&headers, pairs[i], pairs[i + 1]), 0);
	scrip_head_flaw_t f = scrip_head_fields_flaw(&headers, minor);
	evhttp_clear_headers(&headers);
	return f;
}

#define H(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define NONE ((const char *const[]){ NULL })

static void test_head_fields(void)
{
	CU_ASSERT_EQUAL(fields(H("Host", "scrip.example.org"), 1), SCRIP_HEAD_FINE);
	CU_ASSERT_EQUAL(fields(H("host", "x", "Content-Encoding", "identity"), 1), SCRIP_HEAD_FINE);
	CU_ASSERT_EQUAL(fields(NONE, 0), SCRIP_HEAD_FINE); /* HTTP/1.0 needs no Host */
	CU_ASSERT_EQUAL(fields(NONE, 1), SCRIP_HEAD_HOST);
	CU_ASSERT_EQUAL(fields(H("Host", "a", "Host", "b"), 1), SCRIP_HEAD_HOST);
	CU_ASSERT_EQUAL(fields(H("Host", "a", "HOST", "a"), 0), SCRIP_HEAD_HOST);
	CU_ASSERT_EQUAL(fields(H("Host", "x", "Content-Encoding", "gzip"), 1), SCRIP_HEAD_CONTENT_ENCODING);
	CU_ASSERT_EQUAL(fields(H("Host", "x", "Content-Encoding", "br"), 1), SCRIP_HEAD_CONTENT_ENCODING);
	CU_ASSERT_EQUAL(fields(H("Host", "x", "Content-Encoding", "identity", "Content-Encoding", "gzip"), 1),
			SCRIP_HEAD_CONTENT_ENCODING);
}

static void test_head_answers(void)
{
	CU_ASSERT_EQUAL(scrip_head_flaw_status(SCRIP_HEAD_NUL), 400);
	CU_ASSERT_EQUAL(scrip_head_flaw_status(SCRIP_HEAD_HOST), 400);
	CU_ASSERT_EQUAL(scrip_head_flaw_status(SCRIP_HEAD_VERSION), 505);
	CU_ASSERT_EQUAL(scrip_head_flaw_status(SCRIP_HEAD_CONTENT_ENCODING), 415);
	CU_ASSERT_STRING_EQUAL(scrip_head_flaw_reason(SCRIP_HEAD_VERSION), "HTTP Version Not Supported");
	CU_ASSERT_PTR_NOT_NULL(strstr(scrip_head_flaw_text(SCRIP_HEAD_HOST), "Host"));
}

bool scrip_test_head_suite(void)
{
	CU_pSuite s = CU_add_suite("head", NULL, NULL);
	if (!s)
		return false;
	SCRIP_ADD_TEST(s, test_head_scan_ends);
	SCRIP_ADD_TEST(s, test_head_scan_chunked);
	SCRIP_ADD_TEST(s, test_head_scan_nul);
	SCRIP_ADD_TEST(s, test_head_scan_version);
	SCRIP_ADD_TEST(s, test_head_fields);
	SCRIP_ADD_TEST(s, test_head_answers);
	return true;
}
