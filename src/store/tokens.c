/* tokens.c — not written yet. */
