"""The admin token `movierec up` makes: the router and the release pipeline's client read it, nobody sets it."""

from __future__ import annotations

import pytest
import requests
from sqlalchemy import Engine

from load_balancer.release.admin_client import AdminClient, AdminError
from load_balancer.release.settings import ReleaseSettings
from load_balancer.router.admin_token import ensure_token, read_token
from load_balancer.router.settings import RouterSettings


@pytest.fixture
def db_url(sqlite_engine: Engine) -> str:
    return sqlite_engine.url.render_as_string(hide_password=False)


def test_router_and_release_client_share_the_generated_token(db_url, data_dir, start_backend, start_router
                                                             ) -> None:
    _, main_server = start_backend("main-v1")
    ensure_token(data_dir)  # what `movierec up` does when LB_ADMIN_TOKEN is unset
    environ = {"DATABASE_URL": db_url, "MOVIEREC_DATA_DIR": str(data_dir), "LB_MAIN_URL": main_server.url,
               "LB_HEALTH_INTERVAL_SECONDS": "0.2", "LB_STATE_POLL_SECONDS": "0.2"}
    assert "LB_ADMIN_TOKEN" not in environ
    _, router = start_router(RouterSettings.from_env(environ))
    token = read_token(data_dir)
    assert requests.get(f"{router.url}/admin/backends", timeout=5).status_code == 401
    assert requests.get(f"{router.url}/admin/backends", timeout=5,
                        headers={"Authorization": "Bearer not-the-token"}).status_code == 401
    assert requests.get(f"{router.url}/admin/backends", timeout=5,
                        headers={"Authorization": f"Bearer {token}"}).status_code == 200
    release = ReleaseSettings.from_env({**environ, "LB_ADMIN_URL": router.url})
    assert release.admin_token == token
    assert AdminClient(release.admin_url, release.admin_token).backends()["main"]["url"] == main_server.url
    with pytest.raises(AdminError, match="401"):
        AdminClient(release.admin_url, "guess").backends()
