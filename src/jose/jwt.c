/* jwt.c — not written yet. */
