/* handle_health.c — GET /healthz: ready (200) only when the database is
 * reachable and signing keys are loaded, since without either /token can
 * only answer 503. A load balancer takes the instance out meanwhile. A
 * server that hangs keeps its connections up: not_answering says a
 * connection was given up for the server's silence (a statement unanswered
 * past query_timeout) and nothing has been answered since. The
 * keys must be loaded by every loop of the process, not only the one that
 * answers: the next connection may go to any of them. */
#include <event2/http.h>
#include <jansson.h>

#include "http/handlers.h"
#include "http/httpd.h"

void scrip_handle_health(struct evhttp_request *req, void *arg)
{
	const scrip_app_t *app = arg;
	if (!scrip_http_method_is(req, EVHTTP_REQ_GET, "GET, HEAD"))
		return;
	bool db_up = scrip_db_is_answering(app->db);
	const char *database = db_up ? "up" : scrip_db_is_up(app->db) ? "not_answering" : "down";
	bool keys = app->keys && !scrip_keyrings_missing_current(app->keys) && /* every VO's */
		    atomic_load(&app->shared->loops_without_keys) == 0;
	bool ready = db_up && keys;
	json_t *body = json_pack("{s:s, s:s, s:s}", "status", ready ? "ok" : "unavailable", "database", database,
				 "signing_keys", keys ? "loaded" : "missing");
	if (!ready)
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", SCRIP_RETRY_AFTER_S);
	scrip_http_reply_json(req, ready ? 200 : 503, body, true);
}
