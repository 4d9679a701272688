/* mint.c — not written yet. */
