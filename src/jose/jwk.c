/* jwk.c — not written yet. */
