"""The OpenAPI documents kept beside each HTTP service (`<package>/openapi.yaml`), served as /openapi.json."""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import yaml


@functools.cache
def load_openapi(package: str) -> dict[str, Any]:
    """The parsed `openapi.yaml` of `package` (inference, load_balancer); read once per process."""
    return yaml.safe_load((resources.files(package) / "openapi.yaml").read_text(encoding="utf-8"))
