"""A schema-driven fuzzer over every operator route, against a real server: whatever
`/openapi.json` says may be sent, the answer is documented, schema-conformant and
never a 500; what it says may not be sent is refused with a 4xx."""

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from service.web.openapi import OPENAPI
from tests.helpers import API_TOKEN, RedisServer
from tests.processes import Services, running_stack

SCHEMA = schemathesis.openapi.from_dict(OPENAPI)
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture(scope="module")
def web(
    redis_server: RedisServer | str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Services]:
    url = redis_server if isinstance(redis_server, str) else redis_server.url
    with running_stack(url, tmp_path_factory.mktemp("fuzz")) as services:
        yield services


@SCHEMA.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_operator_api_does_what_its_document_says(
    case: schemathesis.Case[Any], web: Services
) -> None:
    response = case.call(base_url=web.web, headers=AUTH)
    case.validate_response(response)
