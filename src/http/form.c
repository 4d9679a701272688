/* form.c — not written yet. */
