/* cmd_job.c — not written yet. */
