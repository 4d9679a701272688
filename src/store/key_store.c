/* key_store.c — scripd's signing keys in the database, on its event loop:
 * loading the keys of the served VOs (a VO's first key made here), and the
 * key schedule: one read of the key rows, then each due step as one
 * guarded statement, one after the other. */
#include "store/key_store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jose/keyring.h"
#include "store/migrations.h"
#include "util/log.h"

static char *hex_encode(const uint8_t *data, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	char *s = malloc(2 * len + 1);
	if (!s)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		s[2 * i] = digits[data[i] >> 4];
		s[2 * i + 1] = digits[data[i] & 15];
	}
	s[2 * len] = '\0';
	return s;
}

/* ---- loading the keys of the served VOs ----------------------------------- */

struct keys_op {
	scrip_db_t *db;
	char *base_issuer;
	char **vos;        /* the VOs the configuration serves: each gets a first key if it has none */
	size_t n_vos;
	scrip_alg_t alg;
	uint8_t enc_key[32];
	size_t created;    /* first keys inserted (or raced) so far: at most one per VO */
	char *new_kid;     /* the first key being inserted ("ES256 key KID"), and its VO, for the log */
	char *new_vo;
	scrip_store_keys_cb cb;
	void *arg;
};

/* Every VO with published keys, not only the configured ones: a VO that
 * a configuration stopped naming keeps its issuer, so that its tokens still
 * verify, introspect and revoke, and its grants still redeem. */
static const char keys_select_sql[] =
	"SELECT vo, kid, alg, state, private_sealed FROM scrip.signing_keys"
	" WHERE state <> 'retired' ORDER BY created_at";

/* sql/009: under the key lock, only while the VO has no current key (two
 * instances starting at once: one key wins and both load it). */
static const char key_insert_sql[] =
	"SELECT scrip.signing_key_add_first($1, $2, $3::jsonb, decode($4, 'hex'), $5)";

static void keys_op_finish(struct keys_op *op, scrip_keyrings_t *rings, const scrip_err_t *err)
{
	op->cb(rings, err, op->arg);
	explicit_bzero(op->enc_key, sizeof(op->enc_key));
	for (size_t i = 0; i < op->n_vos; i++)
		free(op->vos[i]);
	free(op->vos);
	free(op->base_issuer);
	free(op->new_kid);
	free(op->new_vo);
	free(op);
}

static void keys_select(struct keys_op *op);

/* The schema this scripd was built for: its newest migration. */
static int schema_needed(void)
{
	return scrip_n_migrations ? scrip_migrations[scrip_n_migrations - 1].version : 0;
}

/* An older database lacks what the queries of this scripd read: keys are
 * not loaded (so /healthz says not ready and /token answers 503) until
 * `scripctl db migrate` has run, with a log line that says so. */
static void schema_cb(const scrip_db_result_t *res, const scrip_err_t *err, void *arg)
{
	struct keys_op *op = arg;
	const char *v = res && scrip_db_result_rows(res) == 1 ? scrip_db_result_value(res, 0, 0) : NULL;
	if (!res) {
		keys_op_finish(op, NULL, err);
		return;
	}
	int version = v ? atoi(v) : 0;
	if (version < schema_needed()) {
		scrip_err_t e;
		scrip_err_clear(&e);
		SCRIP_ERR(&e, SCRIP_E_SERVER_ERROR, "schema_older",
			  "the database schema is version %d; this scripd needs %d: run 'scripctl db migrate'", version,
			  schema_needed());
		keys_op_finish(op, NULL, &e);
		return;
	}
	keys_select(op);
}

static const char schema_sql[] = "SELECT coalesce(max(version), 0) FROM scrip.schema_migrations";

static void key_insert_cb(const scrip_db_result_t *res, const scrip_err_t *err, void *arg)
{
	struct keys_op *op = arg;
	if (!res) {
		keys_op_finish(op, NULL, err);
		return;
	}
	/* Said once the insert is known: two workers or instances starting at
	 * once each make a key, and only one of them is stored. */
	const char *inserted = scrip_db_result_rows(res) == 1 ? scrip_db_result_value(res, 0, 0) : NULL;
	if (inserted && strcmp(inserted, "t") == 0)
		scrip_log_info("VO %s had no current signing key: created %s", op->new_vo, op->new_kid);
	else
		scrip_log_debug("VO %s: its first signing key was created by another worker or instance; %s discarded",
				op->new_vo, op->new_kid);
	keys_select(op);
}

static void key_create(struct keys_op *op, const char *vo)
{
	scrip_err_t err;
	scrip_err_clear(&err);
	scrip_key_new_t key;
	char *sealed_hex = NULL;
	if (scrip_key_new_generate(op->alg, op->enc_key, &key, &err))
		sealed_hex = hex_encode(key.sealed, key.sealed_len);
	if (!sealed_hex) {
		if (err.code == SCRIP_E_NONE)
			SCRIP_ERR(&err, SCRIP_E_SERVER_ERROR, "key_create_failed", "cannot create a signing key");
		keys_op_finish(op, NULL, &err);
	} else {
		op->created++;
		const char *params[] = { key.kid, scrip_alg_name(op->alg), key.public_jwk, sealed_hex, vo };
		free(op->new_kid);
		free(op->new_vo);
		if (asprintf(&op->new_kid, "%s key %s", params[1], params[0]) < 0 || !(op->new_vo = strdup(vo)))
			abort();
		scrip_db_query(op->db, key_insert_sql, 5, params, key_insert_cb, op);
	}
	free(sealed_hex);
	scrip_key_new_clear(&key);
}

/* Fills rings from the rows; false with err set when a row cannot be read. */
static bool keys_fill(struct keys_op *op, const scrip_db_result_t *res, scrip_keyrings_t *rings, scrip_err_t *err)
{
	for (int row = 0; row < scrip_db_result_rows(res); row++) {
		uint8_t *sealed = NULL;
		size_t len = 0;
		bool ok = scrip_db_result_bytea(res, row, 4, &sealed, &len) &&
			  scrip_keyrings_add(rings, scrip_db_result_value(res, row, 0), scrip_db_result_value(res, row, 1),
					     scrip_db_result_value(res, row, 2), scrip_db_result_value(res, row, 3), sealed,
					     len, op->enc_key, err);
		free(sealed);
		if (!ok) {
			if (err->code == SCRIP_E_NONE)
				SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "key_unreadable", "signing key %s cannot be read",
					  scrip_db_result_value(res, row, 1));
			return false;
		}
	}
	return true;
}

static void keys_select_cb(const scrip_db_result_t *res, const scrip_err_t *err, void *arg)
{
	struct keys_op *op = arg;
	if (!res) {
		keys_op_finish(op, NULL, err);
		return;
	}
	scrip_err_t e;
	scrip_err_clear(&e);
	scrip_keyrings_t *rings = scrip_keyrings_new(op->base_issuer, (const char *const *)op->vos, op->n_vos);
	if (!rings)
		abort();
	if (!keys_fill(op, res, rings, &e)) {
		scrip_keyrings_free(rings);
		keys_op_finish(op, NULL, &e);
		return;
	}
	const scrip_vo_keys_t *missing = scrip_keyrings_missing_current(rings); /* a configured VO's first key */
	if (!missing) {
		keys_op_finish(op, rings, NULL);
		return;
	}
	if (op->created >= op->n_vos) {
		SCRIP_ERR(&e, SCRIP_E_SERVER_ERROR, "no_current_key", "VO %s has no current signing key after creating one",
			  missing->vo);
		scrip_keyrings_free(rings);
		keys_op_finish(op, NULL, &e);
		return;
	}
	char *vo = strdup(missing->vo);
	if (!vo)
		abort();
	scrip_keyrings_free(rings);
	key_create(op, vo);
	free(vo);
}

static void keys_select(struct keys_op *op)
{
	scrip_db_query(op->db, keys_select_sql, 0, NULL, keys_select_cb, op);
}

static char **strings_copy(const char *const *strings, size_t n)
{
	char **copy = calloc(n ? n : 1, sizeof(*copy));
	for (size_t i = 0; copy && i < n; i++)
		if (!(copy[i] = strdup(strings[i])))
			abort();
	if (!copy)
		abort();
	return copy;
}

void scrip_store_keys_load(scrip_db_t *db, const char *base_issuer, const char *const *vos, size_t n, scrip_alg_t alg,
			   const uint8_t enc_key[32], scrip_store_keys_cb cb, void *arg)
{
	struct keys_op *op = calloc(1, sizeof(*op));
	if (!op || !(op->base_issuer = strdup(base_issuer)))
		abort();
	op->db = db;
	op->vos = strings_copy(vos, n);
	op->n_vos = n;
	op->alg = alg;
	memcpy(op->enc_key, enc_key, sizeof(op->enc_key));
	op->cb = cb;
	op->arg = arg;
	scrip_db_query(db, schema_sql, 0, NULL, schema_cb, op);
}

/* ---- the key schedule ---------------------------------------------------------- */

struct sched_op {
	scrip_db_t *db;
	scrip_key_policy_t policy;
	scrip_alg_t alg;
	uint8_t enc_key[32];       /* wiped when done */
	scrip_store_schedule_cb cb;
	void *arg;
	char **kids;               /* owned; the rows' kids point here */
	char **row_vos;            /* owned; the rows' VOs point here */
	scrip_key_row_t *rows;     /* owned; n of them */
	size_t n;
	scrip_key_step_t *steps;   /* owned; n_steps of them, applied in order */
	size_t n_steps;
	size_t next_step;          /* index of the step being applied */
	size_t changes;            /* steps that changed a key's state */
};

/* The database's clock decides, so that every instance sees one time. */
#define EPOCH(col) "coalesce(floor(extract(epoch FROM " col "))::bigint, 0)"
static const char rows_sql[] =
	"SELECT " EPOCH("now()") ", k.kid, k.state, " EPOCH("k.created_at") ", " EPOCH("k.activates_at") ", "
	EPOCH("k.activated_at") ", " EPOCH("k.retires_at") ", " EPOCH("k.drops_at") ","
	"       " EPOCH("(SELECT max(t.expires_at) FROM scrip.issued_tokens t WHERE t.kid = k.kid)") ", k.vo"
	"  FROM scrip.signing_keys k WHERE k.state <> 'retired' ORDER BY k.created_at, k.kid";

static const char add_next_sql[] =
	"SELECT scrip.signing_key_add_next($1, $2, $3::jsonb, decode($4, 'hex'), $5, to_timestamp($6::bigint),"
	" $7::integer)";
static const char promote_sql[] = "SELECT scrip.signing_key_promote($2, $1, $3::integer)";
static const char drop_sql[] = "SELECT scrip.signing_key_drop($1, $2::integer)";
static const char set_retires_sql[] =
	"UPDATE scrip.signing_keys SET retires_at = to_timestamp(NULLIF($2::bigint, 0))"
	" WHERE kid = $1 AND state = 'current'";
static const char set_drops_sql[] =
	"UPDATE scrip.signing_keys SET drops_at = to_timestamp($2::bigint) WHERE kid = $1 AND state = 'retiring'";

static void sched_finish(struct sched_op *op, const scrip_err_t *err)
{
	op->cb(op->changes, err, op->arg);
	for (size_t i = 0; i < op->n; i++) {
		free(op->kids[i]);
		free(op->row_vos[i]);
	}
	free(op->kids);
	free(op->row_vos);
	free(op->rows);
	free(op->steps);
	explicit_bzero(op->enc_key, sizeof(op->enc_key));
	free(op);
}

static void step_apply(struct sched_op *op);

static void step_done_cb(const scrip_db_result_t *res, const scrip_err_t *err, void *arg)
{
	struct sched_op *op = arg;
	if (!res) {
		sched_finish(op, err);
		return;
	}
	const scrip_key_step_t *s = &op->steps[op->next_step];
	const char *v = scrip_db_result_rows(res) == 1 ? scrip_db_result_value(res, 0, 0) : NULL;
	bool took = v && strcmp(v, "t") == 0;
	switch (s->kind) {
	case SCRIP_KEY_STEP_CREATE_NEXT:
	case SCRIP_KEY_STEP_PROMOTE:
	case SCRIP_KEY_STEP_DROP:
		if (took) {
			op->changes++;
			scrip_log_info("key schedule: %s %s done", scrip_key_step_name(s->kind), s->kid);
		} else {
			/* Another instance (or scripctl) changed the keys since
			 * they were read: the next look plans afresh. */
			scrip_log_debug("key schedule: %s %s taken elsewhere", scrip_key_step_name(s->kind), s->kid);
		}
		break;
	default:
		break;
	}
	op->next_step++;
	step_apply(op);
}

static void create_next(struct sched_op *op, const scrip_key_step_t *s)
{
	scrip_err_t err;
	scrip_err_clear(&err);
	scrip_key_new_t key;
	char *hex = NULL;
	char at[24], ahead[24];
	if (!scrip_key_new_generate(op->alg, op->enc_key, &key, &err) || !(hex = hex_encode(key.sealed, key.sealed_len))) {
		if (err.code == SCRIP_E_NONE)
			SCRIP_ERR(&err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
		scrip_key_new_clear(&key);
		sched_finish(op, &err);
		return;
	}
	snprintf(at, sizeof(at), "%" PRId64, s->at);
	snprintf(ahead, sizeof(ahead), "%" PRId64, op->policy.publish_ahead);
	const char *params[] = { key.kid, scrip_alg_name(op->alg), key.public_jwk, hex, s->kid, at, ahead };
	scrip_log_info("key schedule: publishing next %s key %s to sign from %" PRId64, params[1], key.kid, s->at);
	scrip_db_query(op->db, add_next_sql, 7, params, step_done_cb, op); /* params are copied */
	explicit_bzero(hex, strlen(hex));
	free(hex);
	scrip_key_new_clear(&key);
}

static void step_apply(struct sched_op *op)
{
	if (op->next_step == op->n_steps) {
		sched_finish(op, NULL);
		return;
	}
	const scrip_key_step_t *s = &op->steps[op->next_step];
	char at[24], every[24], ahead[24];
	snprintf(at, sizeof(at), "%" PRId64, s->at);
	snprintf(every, sizeof(every), "%" PRId64, op->policy.rotate_every);
	snprintf(ahead, sizeof(ahead), "%" PRId64, op->policy.publish_ahead);
	switch (s->kind) {
	case SCRIP_KEY_STEP_CREATE_NEXT:
		create_next(op, s);
		return;
	case SCRIP_KEY_STEP_PROMOTE: {
		const char *params[] = { s->kid, s->other, every };
		scrip_db_query(op->db, promote_sql, 3, params, step_done_cb, op);
		return;
	}
	case SCRIP_KEY_STEP_DROP: {
		const char *params[] = { s->kid, ahead };
		scrip_db_query(op->db, drop_sql, 2, params, step_done_cb, op);
		return;
	}
	case SCRIP_KEY_STEP_SET_RETIRES: {
		const char *params[] = { s->kid, at };
		scrip_db_query(op->db, set_retires_sql, 2, params, step_done_cb, op);
		return;
	}
	case SCRIP_KEY_STEP_SET_DROPS: {
		const char *params[] = { s->kid, at };
		scrip_db_query(op->db, set_drops_sql, 2, params, step_done_cb, op);
		return;
	}
	}
	op->next_step++;
	step_apply(op);
}

static int64_t int_value(const scrip_db_result_t *res, int row, int col)
{
	const char *v = scrip_db_result_value(res, row, col);
	return v ? strtoll(v, NULL, 10) : 0;
}

static void rows_cb(const scrip_db_result_t *res, const scrip_err_t *err, void *arg)
{
	struct sched_op *op = arg;
	if (!res) {
		sched_finish(op, err);
		return;
	}
	int n = scrip_db_result_rows(res);
	op->n = 0;
	op->kids = calloc((size_t)n + 1, sizeof(*op->kids));
	op->rows = calloc((size_t)n + 1, sizeof(*op->rows));
	op->row_vos = calloc((size_t)n + 1, sizeof(*op->row_vos));
	op->steps = calloc(SCRIP_KEY_STEPS_MAX_VOS((size_t)n), sizeof(*op->steps));
	if (!op->kids || !op->rows || !op->row_vos || !op->steps)
		abort();
	int64_t now = 0;
	for (int r = 0; r < n; r++) {
		const char *kid = scrip_db_result_value(res, r, 1);
		const char *vo = scrip_db_result_value(res, r, 9);
		scrip_key_state_t state;
		if (!kid || !vo || !scrip_key_state_parse(scrip_db_result_value(res, r, 2), &state))
			continue;
		if (!(op->kids[op->n] = strdup(kid)) || !(op->row_vos[op->n] = strdup(vo)))
			abort();
		now = int_value(res, r, 0);
		op->rows[op->n] = (scrip_key_row_t){
			.kid = op->kids[op->n],
			.vo = op->row_vos[op->n],
			.state = state,
			.created_at = int_value(res, r, 3),
			.activates_at = int_value(res, r, 4),
			.activated_at = int_value(res, r, 5),
			.retires_at = int_value(res, r, 6),
			.drops_at = int_value(res, r, 7),
			.last_expiry = int_value(res, r, 8),
		};
		op->n++;
	}
	op->n_steps = scrip_key_schedule_plan_vos(op->rows, op->n, now, &op->policy, op->steps);
	step_apply(op);
}

void scrip_store_keys_schedule(scrip_db_t *db, const scrip_key_policy_t *policy, scrip_alg_t alg,
			       const uint8_t enc_key[32], scrip_store_schedule_cb cb, void *arg)
{
	struct sched_op *op = calloc(1, sizeof(*op));
	if (!op)
		abort();
	op->db = db;
	op->policy = *policy;
	op->alg = alg;
	memcpy(op->enc_key, enc_key, sizeof(op->enc_key));
	op->cb = cb;
	op->arg = arg;
	scrip_db_query(db, rows_sql, 0, NULL, rows_cb, op);
}
