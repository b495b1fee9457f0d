"""The canary router (load_balancer.router) and the release pipeline (load_balancer.release); cli.py runs both."""
