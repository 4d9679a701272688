/* token_refresh.c — not written yet. */
