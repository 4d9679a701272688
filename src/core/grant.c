/* grant.c — not written yet. */
