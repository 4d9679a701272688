/* framing.h — where a request ends, checked before it is routed.
 *
 * evhttp (libevent 2.1) takes the first of two Content-Length headers,
 * reads "+36" as 36, ignores a Transfer-Encoding other than exactly
 * "chunked", and never reads the body of a GET, HEAD, DELETE, OPTIONS,
 * TRACE or CONNECT: the bytes of such a body are then read as the next
 * request of the connection. A proxy in front of scripd that delimits the
 * request otherwise (RFC 9112 §6) would see one request where scripd sees
 * two, and the answers of a connection the proxy shares between clients
 * would reach the wrong ones (request smuggling, RFC 9112 §11.2). Every
 * such request is refused, and its connection closed. Pure. */
#ifndef SCRIP_FRAMING_H
#define SCRIP_FRAMING_H

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

/* How many of headers are named name (case-insensitively); *value the
 * first of them (NULL when none). */
int scrip_header_count(const struct evkeyvalq *headers, const char *name, const char **value);

/* What is wrong with how the request of method, in HTTP/1.minor, with
 * headers delimits its body, as an error_description; NULL when nothing
 * is. A Transfer-Encoding in HTTP/1.0 is faulty framing (RFC 9112 §6.1). */
const char *scrip_framing_problem(enum evhttp_cmd_type method, int minor, const struct evkeyvalq *headers);

#endif
