/* scope.c — not written yet. */
