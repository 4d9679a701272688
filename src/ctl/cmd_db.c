/* cmd_db.c — `scripctl db migrate` and `db status`: the schema versions
 * compiled into this binary (sql/ via migrations.h) against the database's. */
#include <stdio.h>

#include "ctl/scripctl.h"
#include "store/migrations.h"

static int latest_version(void)
{
	return scrip_n_migrations > 0 ? scrip_migrations[scrip_n_migrations - 1].version : 0;
}

/* {"from": N, "to": M, "applied": [{"version": V, "name": F}, ...]}; NULL
 * when out of memory. */
static json_t *migrated_json(int from, int to)
{
	json_t *applied = json_array();
	for (size_t i = 0; applied && i < scrip_n_migrations; i++) {
		if (scrip_migrations[i].version <= from || scrip_migrations[i].version > to)
			continue;
		if (json_array_append_new(applied, json_pack("{s:i, s:s}", "version", scrip_migrations[i].version,
							     "name", scrip_migrations[i].name)) != 0) {
			json_decref(applied);
			return NULL;
		}
	}
	return json_pack("{s:i, s:i, s:o}", "from", from, "to", to, "applied", applied);
}

int scrip_ctl_db_migrate(scrip_ctl_t *ctl, int argc, char **argv)
{
	scrip_sync_t *db = NULL;
	scrip_err_t err = { 0 };
	json_t *out = NULL;
	bool json = false;
	int from = 0;
	int to = 0;
	int rc = scrip_ctl_simple_args(argc, argv, &json, 0, NULL);
	if (rc >= 0)
		return rc;
	if ((rc = scrip_ctl_connect(ctl, &db)) != SCRIP_CTL_OK)
		goto end;
	bool ok = scrip_sync_migrate(db, scrip_migrations, scrip_n_migrations, &from, &to, &err);
	/* Said also on failure: those before the failing one are committed.
	 * (A migration below the version found, applied because a build that
	 * lacked it migrated this database, is counted in the version reached.) */
	if (json) {
		if (!(out = migrated_json(from, to))) {
			scrip_ctl_error("out of memory");
			rc = SCRIP_CTL_FAIL;
			goto end;
		}
		if (!scrip_ctl_print_json(out)) {
			rc = SCRIP_CTL_FAIL;
			goto end;
		}
	} else {
		for (size_t i = 0; i < scrip_n_migrations; i++)
			if (scrip_migrations[i].version > from && scrip_migrations[i].version <= to)
				printf("applied %s (version %d)\n", scrip_migrations[i].name,
				       scrip_migrations[i].version);
	}
	if (!ok) {
		scrip_ctl_error_err(&err);
		rc = SCRIP_CTL_FAIL;
		goto end;
	}
	if (!json && to == from)
		printf("database schema is up to date (version %d)\n", to);
	else if (!json)
		printf("database schema is now at version %d\n", to);
	rc = SCRIP_CTL_OK;
end:
	json_decref(out);
	scrip_sync_close(db);
	return rc;
}

/* {"current": N, "latest": M, "pending": [{"version": V, "name": F}, ...]};
 * NULL when out of memory. */
static json_t *status_json(int current)
{
	json_t *pending = json_array();
	for (size_t i = 0; pending && i < scrip_n_migrations; i++) {
		if (scrip_migrations[i].version <= current)
			continue;
		if (json_array_append_new(pending, json_pack("{s:i, s:s}", "version", scrip_migrations[i].version,
							     "name", scrip_migrations[i].name)) != 0) {
			json_decref(pending);
			return NULL;
		}
	}
	/* "o" hands pending over, also when packing fails. */
	return json_pack("{s:i, s:i, s:o}", "current", current, "latest", latest_version(), "pending", pending);
}

static void status_print(int current)
{
	printf("current version: %d\n", current);
	printf("latest version:  %d\n", latest_version());
	printf("pending:        ");
	bool any = false;
	for (size_t i = 0; i < scrip_n_migrations; i++) {
		if (scrip_migrations[i].version <= current)
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
	int current = 0;
	int rc = scrip_ctl_simple_args(argc, argv, &json, 0, NULL);
	if (rc >= 0)
		return rc;
	if ((rc = scrip_ctl_connect(ctl, &db)) != SCRIP_CTL_OK)
		goto end;
	rc = SCRIP_CTL_FAIL;
	if (!scrip_sync_schema_version(db, &current, &err)) {
		scrip_ctl_error_err(&err);
		goto end;
	}
	if (json) {
		if (!(out = status_json(current))) {
			scrip_ctl_error("out of memory");
			goto end;
		}
		if (!scrip_ctl_print_json(out))
			goto end;
	} else {
		status_print(current);
	}
	if (current > latest_version()) {
		scrip_ctl_error("the database schema (version %d) is newer than this scripctl knows (%d)", current,
				latest_version());
		goto end;
	}
	rc = current == latest_version() ? SCRIP_CTL_OK : SCRIP_CTL_FAIL;
end:
	json_decref(out);
	scrip_sync_close(db);
	return rc;
}
