/* db.c — not written yet. */
