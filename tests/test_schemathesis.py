"""The OpenAPI schema, fuzzed: for every operation, bounded generated requests (valid and not)
never get a 5xx, and every response conforms to the schema the API publishes."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402

from tests.conftest import KEYS  # noqa: E402

pytestmark = pytest.mark.slow
EXAMPLES = 15
# What the schema can promise: no server error, documented status codes, content types and bodies.
# "Schema-valid request rejected" is not among them: rows after as_of, the claim invariant or an
# unknown town are bad input the JSON schema cannot express, and the API refuses them by contract.
CHECKS = [schemathesis.checks.not_a_server_error, schemathesis.checks.status_code_conformance,
          schemathesis.checks.content_type_conformance, schemathesis.checks.response_schema_conformance]


def _fuzzer(op, mode, key: str):
    @given(case=op.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {key}"}
        case.call_and_validate(checks=CHECKS)

    return check


def test_every_operation_conforms_to_its_schema(settings):
    from serving.app import create_app

    # an app of its own: schemathesis runs the app's lifespan and ends it with the test, which closes
    # the audit writer of whatever app it was given
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(settings))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 7
    for op, mode in [(op, mode) for op in operations for mode in schemathesis.GenerationMode]:
        role = "auditor" if op.path.startswith(("/v1/audit", "/ui")) else "platform"
        try:
            _fuzzer(op, mode, KEYS[role])()
        except Unsatisfiable:
            # an operation with no inputs (the health checks) has no invalid request to make
            assert mode is schemathesis.GenerationMode.NEGATIVE and not op.body and not op.query
