/* cmd_db.c — not written yet. */
