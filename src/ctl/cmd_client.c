/* cmd_client.c — not written yet. */
