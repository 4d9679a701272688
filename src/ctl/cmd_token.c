/* cmd_token.c — not written yet. */
