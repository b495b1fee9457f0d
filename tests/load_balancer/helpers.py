"""Helpers shared by the load balancer tests (the fixtures live in conftest.py)."""

from tests.load_balancer.conftest import (  # noqa: F401
    ADMIN_TOKEN,
    BackendBehaviour,
    auth,
    router_settings,
    serve_in_thread,
    wait_until,
)
