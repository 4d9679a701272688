/* cmd_key.c — not written yet. */
