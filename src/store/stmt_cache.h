/* stmt_cache.h — one database connection's prepared statements: a bounded
 * map from a statement's SQL text to the name it was prepared under on
 * that connection. Pure bookkeeping (no libpq): db.c decides when to
 * prepare, this remembers what was. */
#ifndef SCRIP_STMT_CACHE_H
#define SCRIP_STMT_CACHE_H

#include <stdbool.h>
#include <stddef.h>

/* The longest name scrip_stmt_cache_add hands out, with its NUL. */
#define SCRIP_STMT_NAME_MAX 24

typedef struct scrip_stmt_cache scrip_stmt_cache_t;

/* An empty cache holding at most capacity statements (at least 1).
 * NULL when out of memory. Free with scrip_stmt_cache_free. */
scrip_stmt_cache_t *scrip_stmt_cache_new(size_t capacity);

/* NULL is a no-op. */
void scrip_stmt_cache_free(scrip_stmt_cache_t *cache);

/* Forgets every statement and restarts the names: for a new session, in
 * which nothing is prepared yet. */
void scrip_stmt_cache_clear(scrip_stmt_cache_t *cache);

/* The name sql was prepared under, or NULL when it was not. Borrowed,
 * valid until the entry is forgotten or the cache cleared or freed. */
const char *scrip_stmt_cache_find(const scrip_stmt_cache_t *cache, const char *sql);

/* Records sql (copied) under a new name, never handed out before in this
 * session, and returns that name (borrowed as above). NULL when the cache
 * is full or out of memory: the caller then runs sql unprepared. Adding
 * text already present is the caller's error (find first). */
const char *scrip_stmt_cache_add(scrip_stmt_cache_t *cache, const char *sql);

/* Forgets sql, when present: its preparation failed, or the server no
 * longer accepts the prepared statement. Its name is not reused. */
void scrip_stmt_cache_forget(scrip_stmt_cache_t *cache, const char *sql);

/* Statements held now. */
size_t scrip_stmt_cache_size(const scrip_stmt_cache_t *cache);

#endif
