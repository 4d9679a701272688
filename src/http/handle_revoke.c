/* handle_revoke.c — not written yet: answers 501. */
#include <event2/http.h>

#include "http/handlers.h"

void scrip_handle_revoke(struct evhttp_request *req, void *arg)
{
	evhttp_send_error(req, 501, NULL);
}
