/* handle_introspect.c — not written yet: answers 501. */
#include <event2/http.h>

#include "http/handlers.h"

void scrip_handle_introspect(struct evhttp_request *req, void *arg)
{
	evhttp_send_error(req, 501, NULL);
}
