/* aead.c — not written yet. */
