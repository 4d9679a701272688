/* jwks_cache.c — not written yet. */
