/* alg.c — not written yet. */
