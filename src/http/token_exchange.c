/* token_exchange.c — not written yet. */
