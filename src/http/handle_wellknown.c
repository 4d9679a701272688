/* handle_wellknown.c — not written yet. */
