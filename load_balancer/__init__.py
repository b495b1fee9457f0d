"""The canary router (sticky users, health checks, timeouts) and the release pipeline."""
