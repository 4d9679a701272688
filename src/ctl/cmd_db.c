/* cmd_db.c — `scripctl db migrate` and `db status`: the schema versions
 * compiled into this binary (sql/ via migrations.h) against the database's. */
#include <stdio.h>
#include <stdlib.h>

#include "ctl/scripctl.h"
#include "store/migrations.h"

static int latest_version(void)
{
	return scrip_n_migrations > 0 ? scrip_migrations[scrip_n_migrations - 1].version : 0;
}

/* Which migrations are not recorded: each is asked for, since one can be
 * missing below the current version (it landed after a later one that
 * this database already has). */
static bool find_pending(scrip_sync_t *db, int current, bool *pending, bool *any, scrip_err_t *err)
{
	*any = false;
	for (size_t i = 0; i < scrip_n_migrations; i++) {
		bool applied = false;
		if (current > 0 && !scrip_sync_migration_applied(db, scrip_migrations[i].version, &applied, err))
			return false;
		pending[i] = !applied;
		*any = *any || pending[i];
	}
	return true;
}

/* {"from": N, "to": M, "applied": [{"version": V, "name": F}, ...]}; NULL
 * when out of memory. */
static json_t *migrated_json(int from, int to, const bool *applied)
{
	json_t *list = json_array();
	for (size_t i = 0; list && i < scrip_n_migrations; i++) {
		if (!applied[i])
			continue;
		if (json_array_append_new(list, json_pack("{s:i, s:s}", "version", scrip_migrations[i].version,
							  "name", scrip_migrations[i].name)) != 0) {
			json_decref(list);
			return NULL;
		}
	}
	return json_pack("{s:i, s:i, s:o}", "from", from, "to", to, "applied", list);
}

/* Which of the migrations pending before are recorded now: applied[i]. */
static bool find_applied(scrip_sync_t *db, const bool *pending_before, bool *applied, scrip_err_t *err)
{
	for (size_t i = 0; i < scrip_n_migrations; i++) {
		applied[i] = false;
		if (pending_before[i] && !scrip_sync_migration_applied(db, scrip_migrations[i].version, &applied[i], err))
			return false;
	}
	return true;
}

int scrip_ctl_db_migrate(scrip_ctl_t *ctl, int argc, char **argv)
{
	scrip_sync_t *db = NULL;
	scrip_err_t err = { 0 };
	scrip_err_t err2 = { 0 };
	json_t *out = NULL;
	bool json = false;
	bool any = false;
	bool *pending = NULL;
	bool *applied = NULL;
	int from = 0;
	int to = 0;
	int before = 0;
	int rc = scrip_ctl_simple_args(argc, argv, &json, 0, NULL);
	if (rc >= 0)
		return rc;
	if ((rc = scrip_ctl_connect(ctl, &db)) != SCRIP_CTL_OK)
		goto end;
	rc = SCRIP_CTL_FAIL;
	pending = calloc(scrip_n_migrations + 1, sizeof(*pending));
	applied = calloc(scrip_n_migrations + 1, sizeof(*applied));
	if (!pending || !applied) {
		scrip_ctl_error("out of memory");
		goto end;
	}
	/* What is pending first, so that what was applied can be named after,
	 * also a migration below the version found (one that landed after a
	 * later one this database already had). */
	if (!scrip_sync_schema_version(db, &before, &err) || !find_pending(db, before, pending, &any, &err)) {
		scrip_ctl_error_err(&err);
		goto end;
	}
	bool ok = scrip_sync_migrate(db, scrip_migrations, scrip_n_migrations, &from, &to, &err);
	/* Said also on failure: those before the failing one are committed. */
	if (!find_applied(db, pending, applied, &err2)) {
		/* After a failed migration the first error is the one that matters. */
		scrip_ctl_error_err(ok ? &err2 : &err);
		goto end;
	}
	if (json) {
		if (!(out = migrated_json(from, to, applied))) {
			scrip_ctl_error("out of memory");
			goto end;
		}
		if (!scrip_ctl_print_json(out))
			goto end;
	} else {
		for (size_t i = 0; i < scrip_n_migrations; i++)
			if (applied[i])
				printf("applied %s (version %d)\n", scrip_migrations[i].name,
				       scrip_migrations[i].version);
	}
	if (!ok) {
		scrip_ctl_error_err(&err);
		goto end;
	}
	bool none = true;
	for (size_t i = 0; i < scrip_n_migrations; i++)
		none = none && !applied[i];
	if (!json && none)
		printf("database schema is up to date (version %d)\n", to);
	else if (!json)
		printf("database schema is now at version %d\n", to);
	rc = SCRIP_CTL_OK;
end:
	free(pending);
	free(applied);
	json_decref(out);
	scrip_sync_close(db);
	return rc;
}

/* {"current": N, "latest": M, "pending": [{"version": V, "name": F}, ...]};
 * NULL when out of memory. */
static json_t *status_json(int current, const bool *pending)
{
	json_t *list = json_array();
	for (size_t i = 0; list && i < scrip_n_migrations; i++) {
		if (!pending[i])
			continue;
		if (json_array_append_new(list, json_pack("{s:i, s:s}", "version", scrip_migrations[i].version,
							  "name", scrip_migrations[i].name)) != 0) {
			json_decref(list);
			return NULL;
		}
	}
	/* "o" hands list over, also when packing fails. */
	return json_pack("{s:i, s:i, s:o}", "current", current, "latest", latest_version(), "pending", list);
}

static void status_print(int current, const bool *pending)
{
	printf("current version: %d\n", current);
	printf("latest version:  %d\n", latest_version());
	printf("pending:        ");
	bool any = false;
	for (size_t i = 0; i < scrip_n_migrations; i++) {
		if (!pending[i])
			continue;
		printf(" %s", scrip_migrations[i].name);
		any = true;
	}
	printf("%s\n", any ? "" : " none (up to date)");
}

int scrip_ctl_db_status(scrip_ctl_t *ctl, int argc, char **argv)
{
	scrip_sync_t *db = NULL;
	scrip_err_t err = { 0 };
	json_t *out = NULL;
	bool json = false;
	bool any = false;
	int current = 0;
	bool *pending = NULL;
	int rc = scrip_ctl_simple_args(argc, argv, &json, 0, NULL);
	if (rc >= 0)
		return rc;
	if ((rc = scrip_ctl_connect(ctl, &db)) != SCRIP_CTL_OK)
		goto end;
	rc = SCRIP_CTL_FAIL;
	if (!(pending = calloc(scrip_n_migrations + 1, sizeof(*pending)))) {
		scrip_ctl_error("out of memory");
		goto end;
	}
	if (!scrip_sync_schema_version(db, &current, &err) || !find_pending(db, current, pending, &any, &err)) {
		scrip_ctl_error_err(&err);
		goto end;
	}
	if (json) {
		if (!(out = status_json(current, pending))) {
			scrip_ctl_error("out of memory");
			goto end;
		}
		if (!scrip_ctl_print_json(out))
			goto end;
	} else {
		status_print(current, pending);
	}
	if (current > latest_version()) {
		scrip_ctl_error("the database schema (version %d) is newer than this scripctl knows (%d)", current,
				latest_version());
		goto end;
	}
	rc = any ? SCRIP_CTL_FAIL : SCRIP_CTL_OK;
end:
	free(pending);
	json_decref(out);
	scrip_sync_close(db);
	return rc;
}
