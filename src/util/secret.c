/* secret.c — not written yet. */
