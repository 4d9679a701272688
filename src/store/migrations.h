/* migrations.h — the schema files of sql/, compiled into the binaries so
 * that scripctl needs nothing installed beside it. Generated into
 * migrations.c by tools/embed-sql.sh at build time. */
#ifndef SCRIP_MIGRATIONS_H
#define SCRIP_MIGRATIONS_H

#include <stddef.h>

typedef struct {
	int version;      /* the file's number: 1 for 001_initial.sql */
	const char *name; /* the file name */
	const char *sql;  /* its text */
} scrip_migration_t;

extern const scrip_migration_t scrip_migrations[]; /* ascending version */
extern const size_t scrip_n_migrations;

#endif
