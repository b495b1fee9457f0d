"""Property-based tests of the HTTP contracts (schemathesis) against live gunicorn servers.

Each service serves its OpenAPI document (inference/openapi.yaml, load_balancer/openapi.yaml) at
/openapi.json; schemathesis generates valid and invalid requests for every operation and checks that
no answer is a 5xx and that every answer conforms (status, content type, headers, body schema), and
that invalid input is rejected with a 4xx. Bounded: MAX_EXAMPLES per operation and mode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from load_balancer.router.admin_schemas import CanaryWeightBody, DecisionBody, RegisterBackendBody
from tests.api.conftest import ADMIN_TOKEN

REPO = Path(__file__).resolve().parents[2]
MAX_EXAMPLES = 40  # per operation and generation mode: about a minute for the three services here
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection]


def run_contract(base_url: str, *, include_admin: bool, headers: dict[str, str] | None = None) -> list[str]:
    """Every operation of the served document, positive then negative; returns the operations run."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    checks = CHECKS + ([ignored_auth] if headers else [])
    ran = []
    requests_sent = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path.startswith("/admin") != include_admin:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def call(case: Any) -> None:
                nonlocal requests_sent
                requests_sent += 1
                case.call_and_validate(headers=headers, checks=checks, timeout=10)

            try:
                call()
            except Unsatisfiable:
                if mode is GenerationMode.POSITIVE:
                    raise  # only an operation without any input has no negative case (/health)
        ran.append(operation.label)
    print(f"schemathesis: {requests_sent} requests to {len(ran)} operations of {base_url}, every answer conformed")
    return ran


def test_inference_answers_conform_to_its_openapi_document(inference_url: str) -> None:
    ran = run_contract(inference_url, include_admin=False)  # schemathesis skips the document's own path
    assert sorted(ran) == ["GET /", "GET /health", "GET /metrics", "GET /recommend/{user_id}"]


def test_router_answers_conform_to_its_openapi_document(router_url: str) -> None:
    ran = run_contract(router_url, include_admin=False)
    assert sorted(ran) == ["GET /health", "GET /metrics", "GET /recommend/{user_id}"]


def test_admin_answers_conform_to_its_openapi_document(admin_router_url: str) -> None:
    ran = run_contract(admin_router_url, include_admin=True, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert sorted(ran) == ["DELETE /admin/backends/{name}", "GET /admin/backends", "POST /admin/backends",
                           "POST /admin/promote", "POST /admin/rollback", "PUT /admin/canary-weight"]


def test_admin_body_schemas_in_the_document_are_the_pydantic_models() -> None:
    with open(REPO / "load_balancer" / "openapi.yaml") as handle:
        document = yaml.safe_load(handle)
    for model in (CanaryWeightBody, RegisterBackendBody, DecisionBody):
        generated = model.model_json_schema(ref_template="#/components/schemas/{model}")
        assert document["components"]["schemas"][model.__name__] == generated, model.__name__


@pytest.mark.parametrize("path", ["inference/openapi.yaml", "load_balancer/openapi.yaml"])
def test_documents_are_valid_openapi(path: str) -> None:
    with open(REPO / path) as handle:
        schemathesis.openapi.from_dict(yaml.safe_load(handle)).validate()
