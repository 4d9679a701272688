/* claims.c — not written yet. */
