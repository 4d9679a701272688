/* test_framing.c — unit tests of how a request's end is checked: every
 * header combination that scripd and a proxy could read differently is
 * refused. */
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <string.h>
#include <sys/queue.h>

#include "http/framing.h"
#include "suites.h"

/* The problem with method and the headers given as name, value pairs
 * (NULL-terminated); "" for none. */
static const char *problem_in(enum evhttp_cmd_type method, int minor, const char *const *pairs)
{
	struct evkeyvalq headers;
	TAILQ_INIT(&headers);
	for (size_t i = 0; pairs[i]; i += 2)
		CU_ASSERT_EQUAL_FATAL(evhttp_add_header(&headers, pairs[i], pairs[i + 1]), 0);
	const char *p = scrip_framing_problem(method, minor, &headers);
	evhttp_clear_headers(&headers);
	return p ? p : "";
}

/* The same in HTTP/1.1. */
static const char *problem(enum evhttp_cmd_type method, const char *const *pairs)
{
	return problem_in(method, 1, pairs);
}

#define H(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define NONE ((const char *const[]){ NULL })

/* RFC 9112 §6.1: a Transfer-Encoding in HTTP/1.0 is faulty framing; a
 * Content-Length is not. */
static void test_framing_http10(void)
{
	CU_ASSERT_STRING_EQUAL(problem_in(EVHTTP_REQ_POST, 0, H("Content-Length", "36")), "");
	CU_ASSERT_STRING_EQUAL(problem_in(EVHTTP_REQ_GET, 0, NONE), "");
	CU_ASSERT_PTR_NOT_NULL(strstr(problem_in(EVHTTP_REQ_POST, 0, H("Transfer-Encoding", "chunked")), "HTTP/1.0"));
	CU_ASSERT_STRING_EQUAL(problem_in(EVHTTP_REQ_POST, 1, H("Transfer-Encoding", "chunked")), "");
}

static void test_framing_accepted(void)
{
	CU_ASSERT_STRING_EQUAL(problem(EVHTTP_REQ_POST, H("Content-Length", "36")), "");
	CU_ASSERT_STRING_EQUAL(problem(EVHTTP_REQ_POST, H("content-length", "0")), "");
	CU_ASSERT_STRING_EQUAL(problem(EVHTTP_REQ_POST, H("Transfer-Encoding", "chunked")), "");
	CU_ASSERT_STRING_EQUAL(problem(EVHTTP_REQ_POST, H("Transfer-Encoding", "Chunked")), "");
	CU_ASSERT_STRING_EQUAL(problem(EVHTTP_REQ_POST, NONE), "");
	CU_ASSERT_STRING_EQUAL(problem(EVHTTP_REQ_GET, NONE), "");
	CU_ASSERT_STRING_EQUAL(problem(EVHTTP_REQ_GET, H("Content-Length", "0")), "");
	CU_ASSERT_STRING_EQUAL(problem(EVHTTP_REQ_GET, H("Content-Length", "000")), "");
	CU_ASSERT_STRING_EQUAL(problem(EVHTTP_REQ_PUT, H("Content-Length", "5")), "");
	CU_ASSERT_STRING_EQUAL(problem(EVHTTP_REQ_GET, H("Host", "x", "Accept", "*/*")), "");
}

static void test_framing_refused(void)
{
	const struct {
		enum evhttp_cmd_type method;
		const char *const *headers;
		const char *says;
	} cases[] = {
		{ EVHTTP_REQ_POST, H("Content-Length ", "5"), "white space" },
		{ EVHTTP_REQ_POST, H("Content-Length\t", "5"), "white space" },
		{ EVHTTP_REQ_GET, H("X Y", "1"), "white space" },
		{ EVHTTP_REQ_POST, H("Content-Length", "5", "Content-Length", "5"), "more than one Content-Length" },
		{ EVHTTP_REQ_POST, H("Content-Length", "5", "content-length", "7"), "more than one Content-Length" },
		{ EVHTTP_REQ_POST, H("Transfer-Encoding", "chunked", "Transfer-Encoding", "chunked"),
		  "more than one Transfer-Encoding" },
		{ EVHTTP_REQ_POST, H("Content-Length", "5", "Transfer-Encoding", "chunked"), "both" },
		{ EVHTTP_REQ_POST, H("Content-Length", "+5"), "not a number" },
		{ EVHTTP_REQ_POST, H("Content-Length", "-1"), "not a number" },
		{ EVHTTP_REQ_POST, H("Content-Length", "5 "), "not a number" },
		{ EVHTTP_REQ_POST, H("Content-Length", "0x10"), "not a number" },
		{ EVHTTP_REQ_POST, H("Content-Length", ""), "not a number" },
		{ EVHTTP_REQ_POST, H("Content-Length", "1234567890123456789"), "not a number" },
		{ EVHTTP_REQ_POST, H("Transfer-Encoding", "gzip, chunked"), "only Transfer-Encoding" },
		{ EVHTTP_REQ_POST, H("Transfer-Encoding", "identity"), "only Transfer-Encoding" },
		{ EVHTTP_REQ_POST, H("Transfer-Encoding", "chunked, chunked"), "only Transfer-Encoding" },
		{ EVHTTP_REQ_GET, H("Content-Length", "36"), "has no body" },
		{ EVHTTP_REQ_GET, H("Transfer-Encoding", "chunked"), "has no body" },
		{ EVHTTP_REQ_HEAD, H("Content-Length", "1"), "has no body" },
		{ EVHTTP_REQ_DELETE, H("Content-Length", "1"), "has no body" },
		{ EVHTTP_REQ_OPTIONS, H("Transfer-Encoding", "chunked"), "has no body" },
		{ EVHTTP_REQ_TRACE, H("Content-Length", "10"), "has no body" },
		{ EVHTTP_REQ_CONNECT, H("Content-Length", "10"), "has no body" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *p = problem(cases[i].method, cases[i].headers);
		if (!strstr(p, cases[i].says))
			CU_FAIL_FATAL("a request refused for the wrong reason, or not refused");
	}
}

bool scrip_test_framing_suite(void)
{
	CU_pSuite suite = CU_add_suite("framing", NULL, NULL);
	if (!suite)
		return false;
	SCRIP_ADD_TEST(suite, test_framing_accepted);
	SCRIP_ADD_TEST(suite, test_framing_refused);
	SCRIP_ADD_TEST(suite, test_framing_http10);
	return true;
}
