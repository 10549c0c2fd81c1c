"""The pieces of the HTTP API that need no server: tokens, input parsing, the OpenAPI
document against the app's real route table."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from starlette.routing import Route

from rotator.config import load_settings
from rotator.errors import BadInput, ConfigError
from rotator.httpapi import queries
from rotator.httpapi.app import PUBLIC_ROUTES, ROUTES, create_app
from rotator.httpapi.auth import TokenTable, bearer, digest, parse_tokens
from rotator.httpapi.idempotency import request_fingerprint, valid_key
from rotator.httpapi.openapi import document
from rotator.models import new_job_id

from .conftest import TARGETS

D1 = hashlib.sha256(b"token-one").hexdigest()
D2 = hashlib.sha256(b"token-two").hexdigest()


def test_tokens_parse_with_names_and_scopes() -> None:
    tokens = parse_tokens(f" bot:enqueue+read:{D1} , siem:audit:{D2.upper()} ")
    assert [(t.name, sorted(t.scopes), t.actor) for t in tokens] == [
        ("bot", ["enqueue", "read"], "api:bot"),
        ("siem", ["audit"], "api:siem"),
    ]
    table = TokenTable(tokens)
    assert table.find("token-one") is tokens[0]
    assert table.find("token-two") is tokens[1]
    assert table.find("token-three") is None
    assert table.find("") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no API tokens configured"),
        (" , ", "no API tokens configured"),
        ("bot:read", "expected name:scopes:sha256hex"),
        (f"bot:read:{D1}:x", "expected name:scopes:sha256hex"),
        (f"b t:read:{D1}", "token name 'b t'"),
        (f"bot:admin:{D1}", "scopes must be among audit+enqueue+read"),
        (f"bot::{D1}", "scopes must be among"),
        ("bot:read:abc123", "64 hex characters"),
        (f"bot:read:{D1},bot:audit:{D2}", "configured twice"),
    ],
)
def test_bad_token_configuration_is_reported_without_the_digest(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_tokens(text)
    assert message in str(caught.value)
    assert D1 not in str(caught.value) and D2 not in str(caught.value)


def test_digests_never_show_in_reprs() -> None:
    tokens = parse_tokens(f"bot:read:{D1}")
    assert D1 not in repr(tokens) and "token-one" not in repr(tokens)
    assert repr(TokenTable(tokens)) == "TokenTable(bot)"
    assert digest("token-one") == D1


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("Bearer  abc ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        ("Bearer a b", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_header_parsing(header: str | None, token: str | None) -> None:
    assert bearer(header) == token


def test_job_id_format_is_the_models_format() -> None:
    for _ in range(50):
        assert queries.job_id(new_job_id())
    for bad in ("", "0" * 31, "0" * 33, "G" * 32, "../" + "0" * 29, "A" * 32):
        with pytest.raises(BadInput):
            queries.job_id(bad)


def test_idempotency_keys_and_fingerprints() -> None:
    assert valid_key("a") and valid_key("x" * 255)
    assert not valid_key("") and not valid_key("x" * 256) and not valid_key("a b")
    assert not valid_key("caf\u00e9")
    base = request_fingerprint("POST", "/v1/targets/a/rotations", b"{}")
    assert base == request_fingerprint("POST", "/v1/targets/a/rotations", b"{}")
    assert base != request_fingerprint("POST", "/v1/targets/b/rotations", b"{}")
    assert base != request_fingerprint("POST", "/v1/targets/a/rotations", b'{"reason":"x"}')


def test_openapi_document_matches_the_app_routes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "rotator.yaml").write_text(TARGETS)
    monkeypatch.setenv("ROTATOR_TARGETS_FILE", str(tmp_path / "rotator.yaml"))
    monkeypatch.setenv("ROTATOR_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("ROTATOR_ALLOWED_HOSTS", "adobe=127.0.0.1")
    app = create_app(
        load_settings(), TokenTable(parse_tokens(f"bot:read:{D1}")), idempotency_ttl=60,
        max_body=2048,
    )  # fmt: skip
    served = {
        (method.lower(), route.path)
        for route in app.routes
        if isinstance(route, Route)
        for method in (route.methods or ())
        if method != "HEAD"
    }
    paths = document()["paths"]
    documented = {(method, path) for path, ops in paths.items() for method in ops}
    assert served == documented
    # Scopes in the document are the ones the app enforces.
    for method, path, scope, _handler in ROUTES:
        assert paths[path][method.lower()]["security"] == [{"bearer": [scope]}]
    for path in PUBLIC_ROUTES:
        assert paths[path]["get"]["security"] == []


def test_openapi_document_references_resolve() -> None:
    doc = document()
    schemas = doc["components"]["schemas"]

    def walk(node: object) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if ref is not None:
                assert ref.startswith("#/components/schemas/") and ref.rsplit("/")[-1] in schemas
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    assert doc["openapi"].startswith("3.1")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ([("targte", "crm")], "unknown query parameter"),
        ([("limit", "0")], "limit"),
        ([("limit", "501")], "limit"),
        ([("limit", "ten")], "limit"),
        ([("since", "yesterday")], "since"),
        ([("cursor", "nonsense")], "cursor"),
        ([("job", "123")], "job id"),
        ([("target", "../x")], "target name"),
        ([("target", "a"), ("target", "b")], "more than once"),
        ([("actor", "x" * 257)], "longer than"),
    ],
)
def test_bad_audit_queries(params: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(BadInput, match=message):
        queries.audit_query(params)


def test_audit_query_builds_the_readers_filter() -> None:
    where, limit, cursor = queries.audit_query(
        [("target", "crm"), ("event", "job.enqueued"), ("event", "api.request"),
         ("since", "1700000000"), ("limit", "7"), ("actor", "api:*")]
    )  # fmt: skip
    assert where.target == "crm" and where.events == ("job.enqueued", "api.request")
    assert where.since == 1700000000.0 and where.actor == "api:*"
    assert limit == 7 and cursor is None
