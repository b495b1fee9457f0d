"""The canary router: sticky users split between main and nightly, retries, health checks, the admin API.

Its state is the `deployments` table (state); the release pipeline (load_balancer.release) drives it
through the admin API and reads the same table. Nothing here imports the release pipeline.
"""
