/* sync.c — not written yet. */
