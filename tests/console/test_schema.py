"""schemathesis against the schema the real server serves, as an admin, with valid and invalid input:
no 5xx, and every response is one the schema documents (status code, content type, body)."""

from __future__ import annotations

import hypothesis
import psycopg
import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from mrv_engine.console import users
from mrv_engine.console.users import Role
from tests.console.conftest import ConsoleServer

pytestmark = pytest.mark.integration

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 3  # per operation and generation mode (20 operations): ~120 requests, kept short for the default run


def test_the_served_schema_holds(console_server: ConsoleServer) -> None:
    schema = schemathesis.openapi.from_url(f"{console_server.url}/openapi.json")
    conn = psycopg.connect(console_server.conninfo, autocommit=True)
    token = console_server.seed.tokens[Role.ADMIN]

    def admin_token() -> str:
        """The admin's token, or a new one once a generated request revoked it (POST tokens/{id}/revoke)."""
        nonlocal token
        if users.principal_for_token(conn, token) is None:
            token = users.create_token(conn, "admin", "schemathesis")[1]
        return token

    failures, tried = [], 0
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
            @hypothesis.settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                                 suppress_health_check=list(hypothesis.HealthCheck))
            def call(case: schemathesis.Case) -> None:
                case.call_and_validate(headers={"Authorization": f"Bearer {admin_token()}"},
                                       checks=CHECKS)

            tried += 1
            try:
                call()
            except hypothesis.errors.Unsatisfiable:
                pass  # no invalid input exists (an operation without parameters)
            except Exception as e:  # collect every operation's failure, then report them all
                failures.append(f"{operation.label} ({mode.value}): {str(e)[:2000]}")
    conn.close()
    assert tried >= 2 * 20
    assert not failures, "\n\n".join(failures)
