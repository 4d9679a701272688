/* exchange.c — not written yet. */
