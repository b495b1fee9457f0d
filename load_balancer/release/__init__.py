"""The release pipeline: a git tag's offline gate, the nightly's start (process or container), the router
registration, the scheduled online evaluation that promotes or rolls back, and the Slack notifications.

It uses the router (load_balancer.router) through its admin API and its `deployments` table.
"""
