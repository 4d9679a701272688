/* handle_token.c — not written yet. */
