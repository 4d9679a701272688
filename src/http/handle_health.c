/* handle_health.c — not written yet. */
