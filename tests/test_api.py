"""The HTTP API (interface.md, "Numbers that come in by themselves"), through a real server.

The sub-app (bot.api.build_api) runs under waitress on a free local port, on a real SQLite
file (and PostgreSQL where configured); requests are real HTTP. The workspace clock is fixed
at Wednesday 2026-03-11 15:00 UTC (11:00 in New York, the workspace's zone).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from waitress.server import create_server

from bot import api
from bot.app import reports, tokens
from bot.app.context import open_context
from bot.cli import main
from kpis.periods import Period
from storage import Store, open_store
from tests.conftest import _stop_waitress, at_once
from tests.test_security import db_state

NOW = datetime(2026, 3, 11, 15, 0, tzinfo=UTC)
TODAY = date(2026, 3, 11)
TEAM = "TAPI1"
EXAMPLES = int(os.environ.get("KPIBOT_FUZZ_EXAMPLES", "200"))


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def message(self) -> str:
        return " ".join(e["message"] for e in self.json["errors"])


@dataclass
class Server:
    store: Store
    port: int
    logged: list[tuple[str, date, set[str]]] = field(default_factory=list)

    def call(self, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()},
                         response.read())
        finally:
            conn.close()

    def post(self, token: str, payload: Any, *, key: str | None = None,
             content_type: str = "application/json") -> Reply:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
        if key is not None:
            headers["Idempotency-Key"] = key
        return self.call("POST", "/api/v1/entries", body, headers)

    def report(self, token: str, query: str) -> Reply:
        return self.call("GET", f"/api/v1/report?{query}", headers={"Authorization": f"Bearer {token}"})


@contextlib.contextmanager
def running(store: Store, **options: Any) -> Iterator[Server]:
    """build_api under waitress on a free port, its clock at NOW; stopped afterwards."""
    server_box: list[Server] = []

    def on_logged(workspace_id: str, day: date, metrics: set[str]) -> None:
        server_box[0].logged.append((workspace_id, day, metrics))

    app = api.build_api(store, clock=lambda: NOW, on_logged=on_logged, **options)
    server = create_server(app, host="127.0.0.1", port=0, threads=8, asyncore_loop_timeout=0.1)
    thread = threading.Thread(target=server.run, daemon=True, name="waitress-api")
    thread.start()
    server_box.append(Server(store, server.effective_port))
    try:
        yield server_box[0]
    finally:
        _stop_waitress(server, thread)


def new_token(store: Store, team: str = TEAM, name: str = "zapier") -> str:
    ctx = open_context(store, team, "U0001", NOW, timezone="America/New_York")
    return tokens.create_token(ctx, name).secret


def stored(store: Store, team: str = TEAM) -> list[tuple[str, date, float, str, tuple[Any, ...]]]:
    return sorted((e.metric, e.day, e.value, e.author, e.dims)
                  for e in store.entries_between(team, None, None))


@pytest.fixture
def server(any_store: Store) -> Iterator[Server]:
    with running(any_store) as running_server:
        yield running_server


@pytest.fixture
def token(server: Server) -> str:
    return new_token(server.store)


# -- tokens -------------------------------------------------------------------------------------


def test_a_token_is_shown_once_and_only_its_hash_is_kept(store: Store) -> None:
    new = tokens.create_token(open_context(store, TEAM, "U0001", NOW), "zapier")
    assert new.secret.startswith("kpi_") and len(new.secret) >= 40
    everything = json.dumps(db_state(store))
    assert new.secret not in everything
    assert tokens.hash_token(new.secret) in everything
    listed = tokens.tokens(open_context(store, TEAM, "U0001", NOW))
    assert [(t.id, t.name, t.created_at, t.last_used_at) for t in listed] == [
        (new.token.id, "zapier", NOW, None)]


def test_tokens_from_the_cli_list_their_last_use_and_revoke(sqlite_url: str,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", sqlite_url, "--workspace", TEAM, "token", "create", "--name", "n8n"]) == 0
    secret = capsys.readouterr().out.splitlines()[1]
    store = open_store(sqlite_url)
    try:
        with running(store) as srv:
            assert srv.post(secret, {"entries": [{"metric": "leads", "value": 3}]}).status == 201
            assert main(["--db", sqlite_url, "--workspace", TEAM, "token", "list"]) == 0
            listing = capsys.readouterr().out
            assert "n8n" in listing and f"last used {NOW:%Y-%m-%d %H:%M} UTC" in listing
            assert main(["--db", sqlite_url, "--workspace", TEAM, "token", "revoke", "1"]) == 0
            capsys.readouterr()
            refused = srv.post(secret, {"entries": [{"metric": "leads", "value": 4}]})
            assert refused.status == 401 and "Bearer" in refused.message
            assert main(["--db", sqlite_url, "--workspace", TEAM, "token", "revoke", "7"]) == 2
            assert "no token 7" in capsys.readouterr().err
        assert stored(store) == [("leads", TODAY, 3.0, "n8n", ())]
    finally:
        store.engine.dispose()


# -- POST /api/v1/entries -------------------------------------------------------------------------


def test_a_batch_is_stored_with_its_dates_dims_authors_and_audit(server: Server, token: str) -> None:
    reply = server.post(token, {"entries": [
        {"metric": "leads", "value": 12, "date": "2026-03-10", "dims": {"source": "Facebook"},
         "author": "zapier-fb"},
        {"metric": "spend", "value": "$340.50"},
        {"metric": "program_completion", "value": 80, "date": "yesterday"},
    ]})
    assert (reply.status, reply.json) == (201, {"stored": 3})
    assert stored(server.store) == [
        ("leads", date(2026, 3, 10), 12.0, "zapier-fb", (("source", "facebook"),)),
        ("program_completion", date(2026, 3, 10), 0.8, "zapier", ()),
        ("spend", TODAY, 340.5, "zapier", ()),
    ]
    audit = server.store.history(TEAM, None, 10)
    assert {(h.origin, h.actor) for h in audit} == {("api", "token:zapier")}
    assert sorted(server.logged) == [(TEAM, date(2026, 3, 10), {"leads", "program_completion"}),
                                     (TEAM, TODAY, {"spend"})]


def test_the_same_author_replaces_and_another_adds_as_in_slack(server: Server, token: str) -> None:
    for entries in ([{"metric": "leads", "value": 5}], [{"metric": "leads", "value": 7}],
                    [{"metric": "leads", "value": 2, "author": "ana"}]):
        assert server.post(token, {"entries": entries}).status == 201
    assert stored(server.store) == [("leads", TODAY, 2.0, "ana", ()), ("leads", TODAY, 7.0, "zapier", ())]
    ctx = open_context(server.store, TEAM, "x", NOW)
    assert reports.report(ctx, Period.day(TODAY)).metrics["leads"].value == 9.0


GOOD = {"metric": "leads", "value": 1}
BAD_ENTRIES = [
    # (entry, field, words the message must contain)
    ({"metric": "leads", "value": 1, "date": "2026-03-12"}, "date", "future"),
    ({"metric": "lead", "value": 1}, "metric", "leads"),
    ({"metric": "cpl", "value": 1}, "metric", "computed"),
    ({"metric": "leads", "value": -3}, "value", "negative"),
    ({"metric": "leads", "value": "twelve"}, "value", "twelve"),
    ({"metric": "leads", "value": True}, "value", "number"),
    ({"metric": "leads"}, "value", "number"),
    ({"value": 3}, "metric", "missing"),
    ({"metric": "leads", "value": 1, "date": "2026-02-30"}, "date", "February 2026 has 28 days"),
    ({"metric": "leads", "value": 1, "dims": {"colour": "red"}}, "dims", "not a dimension"),
    ({"metric": "leads", "value": 1, "dims": {"source": 3}}, "dims", "strings"),
    ({"metric": "leads", "value": 1, "author": ""}, "author", "1 to 64"),
    ({"metric": "leads", "value": 1, "colour": "red"}, "colour", "Unknown field"),
    ({"metric": "program_completion", "value": 150}, "value", "at most"),
    ("leads=3", "entry", "object"),
]


@pytest.mark.parametrize(("entry", "field_name", "words"), BAD_ENTRIES)
def test_one_bad_entry_refuses_the_whole_batch_naming_its_index_and_field(
    server: Server, token: str, entry: Any, field_name: str, words: str
) -> None:
    before = db_state(server.store)
    reply = server.post(token, {"entries": [GOOD, {"metric": "spend", "value": 10}, entry]})
    assert reply.status == 422, reply.body
    [problem] = reply.json["errors"]
    assert (problem["index"], problem["field"]) == (2, field_name)
    assert words in problem["message"]
    assert db_state(server.store) == before and server.logged == []


def test_every_bad_entry_is_named_and_a_duplicate_too(server: Server, token: str) -> None:
    reply = server.post(token, {"entries": [GOOD, {"metric": "lead", "value": 1}, GOOD,
                                            {"metric": "spend", "value": -1}]})
    assert reply.status == 422
    assert [(e["index"], e["field"]) for e in reply.json["errors"]] == [
        (1, "metric"), (2, "metric"), (3, "value")]
    assert "Entry 0 already sets `leads`" in reply.json["errors"][1]["message"]


BAD_REQUESTS = [
    # (body, content type, status, words)
    (b'{"entries": [', "application/json", 400, "not valid JSON (line 1, column 14)"),
    (b'{"entries": [{"metric": "leads", "value": NaN}]}', "application/json", 400, "NaN"),
    (b"\xff\xfe", "application/json", 400, "UTF-8"),
    (b'{"entries": []}', "application/json", 422, "non-empty"),
    (b'[1, 2]', "application/json", 422, "JSON object"),
    (b'{"entries": [], "x": 1}', "application/json", 422, "Unknown field `x`"),
    (b"metric=leads&value=3", "application/x-www-form-urlencoded", 415, "application/json"),
    (b'{"entries": [{"metric": "leads", "value": 1}]}', "", 415, "nothing"),
    (json.dumps({"entries": [GOOD] * 1001}).encode(), "application/json", 413, "1,001 entries"),
    (b'{"entries": ["' + b"x" * 1_000_001 + b'"]}', "application/json", 413, "1 MB"),
]


@pytest.mark.parametrize(("body", "content_type", "status", "words"), BAD_REQUESTS,
                         ids=[f"{s}-{w[:12]}" for _, _, s, w in BAD_REQUESTS])
def test_a_bad_request_gets_its_status_and_a_message_naming_the_problem(
    server: Server, token: str, body: bytes, content_type: str, status: int, words: str
) -> None:
    before = db_state(server.store)
    reply = server.post(token, body, content_type=content_type)
    assert reply.status == status, reply.body[:300]
    assert words in reply.message
    assert db_state(server.store) == before


@pytest.mark.parametrize("authorization", [None, "Bearer", "Bearer kpi_wrong", "Basic a2Fp",
                                           "kpi_abc"])
def test_without_a_valid_token_it_is_401(server: Server, token: str, authorization: str | None) -> None:
    headers = {"Content-Type": "application/json"}
    if authorization:
        headers["Authorization"] = authorization
    reply = server.call("POST", "/api/v1/entries", json.dumps({"entries": [GOOD]}).encode(), headers)
    assert reply.status == 401 and reply.headers["www-authenticate"] == "Bearer"
    assert "kpibot token create" in reply.message
    assert stored(server.store) == []


def test_a_token_writes_only_to_its_own_workspace(server: Server) -> None:
    other = new_token(server.store, "TOTHER", "other")
    assert server.post(other, {"entries": [GOOD]}).status == 201
    assert stored(server.store, "TOTHER") == [("leads", TODAY, 1.0, "other", ())]
    assert stored(server.store, TEAM) == []


def test_wrong_methods_and_paths_are_named(server: Server, token: str) -> None:
    got = server.call("GET", "/api/v1/entries")
    assert (got.status, got.headers["allow"]) == (405, "POST")
    missing = server.call("GET", "/api/v2/things")
    assert missing.status == 404 and "/api/v1/entries" in missing.message


# -- Idempotency-Key ------------------------------------------------------------------------------


def test_a_retry_with_the_same_key_and_body_answers_the_same_and_stores_once(
    server: Server, token: str
) -> None:
    body = {"entries": [{"metric": "leads", "value": 4, "author": "ana"}]}
    first = server.post(token, body, key="order-1")
    server.post(token, {"entries": [{"metric": "leads", "value": 9, "author": "ana"}]})
    again = server.post(token, body, key="order-1")
    assert (first.status, first.json) == (again.status, again.json) == (201, {"stored": 1})
    assert again.headers["idempotent-replayed"] == "true"
    assert stored(server.store) == [("leads", TODAY, 9.0, "ana", ())]  # the retry did not undo 9
    conflict = server.post(token, {"entries": [{"metric": "leads", "value": 5}]}, key="order-1")
    assert conflict.status == 409 and "order-1" in conflict.message
    assert server.post(token, body, key=" ").status == 400


def test_concurrent_retries_with_one_key_store_once(server: Server, token: str) -> None:
    body = {"entries": [{"metric": "leads", "value": 1, "author": f"a{n}"} for n in range(20)]}

    def send() -> list[str]:
        reply = server.post(token, body, key="burst")
        return [f"{reply.status} {reply.json}"]

    answers = at_once(*([send] * 8))
    assert set(answers) == {"201 {'stored': 20}"}
    assert len(stored(server.store)) == 20
    assert len(server.store.history(TEAM, None, 100)) == 20


def test_a_key_refused_for_bad_entries_is_still_free(server: Server, token: str) -> None:
    assert server.post(token, {"entries": [{"metric": "lead", "value": 1}]}, key="k").status == 422
    assert server.post(token, {"entries": [GOOD]}, key="k").status == 201


# -- rate limit -------------------------------------------------------------------------------


def test_over_the_rate_limit_it_is_429_with_retry_after(store: Store) -> None:
    token = new_token(store)
    with running(store, per_second=0.01, burst=2) as srv:
        statuses = [srv.post(token, {"entries": [GOOD]}).status for _ in range(3)]
        limited = srv.post(token, {"entries": [GOOD]})
        other = new_token(store, TEAM, "other")
        assert srv.post(other, {"entries": [GOOD]}).status == 201  # per token, not per server
    assert statuses == [201, 201, 429]
    assert limited.status == 429 and int(limited.headers["retry-after"]) >= 1
    assert "zapier" in limited.message


# -- GET /api/v1/report ---------------------------------------------------------------------------


def test_the_report_is_the_cli_json_object(server: Server, token: str) -> None:
    server.post(token, {"entries": [{"metric": "leads", "value": 10}, {"metric": "spend", "value": 500},
                                    {"metric": "leads", "value": 4, "date": "2026-03-02"}]})
    reply = server.report(token, "from=2026-03-09&to=2026-03-15")
    ctx = open_context(server.store, TEAM, "x", NOW)
    expected = reports.report(ctx, Period(date(2026, 3, 9), date(2026, 3, 15))).to_json()
    assert reply.status == 200 and reply.json == json.loads(json.dumps(expected))
    assert reply.json["kpis"]["cpl"]["value"] == 50.0
    assert reply.json["metrics"]["leads"]["previous"] == 4.0


@pytest.mark.parametrize(("query", "field_name", "words"), [
    ("to=2026-03-15", "from", "missing"),
    ("from=2026-03-15&to=2026-03-01", "to", "before it starts"),
    ("from=2026-13-01&to=2026-03-01", "from", "not a date"),
    ("from=0001-01-01&to=0001-01-02", "from", "calendar"),
    ("from=2000-01-01&to=2026-03-01", "to", "at most"),
    ("from=2026-03-01&to=2026-03-02&kpi=cpl", "kpi", "Unknown parameter"),
])
def test_a_bad_report_query_is_422_naming_the_parameter(server: Server, token: str, query: str,
                                                        field_name: str, words: str) -> None:
    reply = server.report(token, query)
    assert reply.status == 422
    assert reply.json["errors"][0]["field"] == field_name and words in reply.message


def test_a_report_by_source_has_one_group_per_value_adding_up_to_the_total(
    server: Server, token: str
) -> None:
    entries = [{"metric": "leads", "value": v, "date": "2026-03-01", "dims": d}
               for v, d in ((30, {"source": "facebook"}), (12, {"source": "seo"}), (5, {}))]
    entries.append({"metric": "spend", "value": 300, "date": "2026-03-01",
                    "dims": {"source": "facebook"}})
    assert server.post(token, {"entries": entries}).status == 201
    reply = server.report(token, "from=2026-03-01&to=2026-03-02&by=source")
    assert reply.status == 200 and reply.json["by"] == "source"
    groups = reply.json["groups"]
    assert [g["value"] for g in groups] == ["facebook", "seo", None]
    assert sum(g["metrics"]["leads"]["value"] for g in groups) == reply.json["metrics"]["leads"]["value"]
    assert groups[0]["kpis"]["cpl"]["value"] == 10.0
    reply = server.report(token, "from=2026-03-01&to=2026-03-02&by=sauce")
    assert reply.status == 422 and reply.json["errors"][0]["field"] == "by"
    assert "Did you mean `source`" in reply.message


def _own_dimension(store: Store, key: str = "temperature", *values: str) -> None:
    from bot.app.definitions import add_dimension

    add_dimension(open_context(store, TEAM, "U0001", NOW, timezone="America/New_York"), key,
                  values)


def test_entries_take_the_workspaces_own_dimensions_by_name(server: Server, token: str) -> None:
    _own_dimension(server.store, "temperature", "warm", "cold")
    _own_dimension(server.store, "channel_group")
    reply = server.post(token, {"entries": [
        {"metric": "leads", "value": 7, "date": "2026-03-01",
         "dims": {"temperature": "Warm", "source": "seo", "channel_group": "webinar"}},
        {"metric": "leads", "value": 3, "date": "2026-03-01", "dims": {"temperature": "cold"}},
        {"metric": "leads", "value": 1, "date": "2026-03-01"},
    ]})
    assert (reply.status, reply.json) == (201, {"stored": 3})
    assert stored(server.store) == [
        ("leads", date(2026, 3, 1), 1.0, "zapier", ()),
        ("leads", date(2026, 3, 1), 3.0, "zapier", (("dim1", "cold"),)),
        ("leads", date(2026, 3, 1), 7.0, "zapier",
         (("dim1", "warm"), ("dim2", "webinar"), ("source", "seo"))),
    ]
    report = server.report(token, "from=2026-03-01&to=2026-03-02&by=temperature")
    assert report.status == 200 and report.json["by"] == "temperature"
    assert {g["value"]: g["metrics"]["leads"]["value"] for g in report.json["groups"]} == {
        "warm": 7.0, "cold": 3.0, None: 1.0}


@pytest.mark.parametrize(("dims", "words"), [
    ({"temperature": "hot"}, "`temperature=hot` is not one of its values; did you mean "
                             "`temperature=warm`? The values are warm, cold."),
    ({"temprature": "warm"}, "`temprature` is not a dimension. Did you mean `temperature`? "
                             "Dimensions are source, rep, campaign, product, temperature."),
])
def test_an_unknown_dimension_or_value_is_422_naming_the_valid_ones(
    server: Server, token: str, dims: dict[str, str], words: str
) -> None:
    _own_dimension(server.store, "temperature", "warm", "cold")
    before = db_state(server.store)
    reply = server.post(token, {"entries": [GOOD, {"metric": "leads", "value": 2, "dims": dims}]})
    assert reply.status == 422
    [problem] = reply.json["errors"]
    assert (problem["index"], problem["field"]) == (1, "dims")
    assert words in problem["message"]
    assert db_state(server.store) == before and server.logged == []


# -- OpenAPI --------------------------------------------------------------------------------------


def test_the_openapi_document_is_valid_and_describes_real_answers(server: Server, token: str) -> None:
    from openapi_core import OpenAPI
    from openapi_core.testing import MockRequest, MockResponse
    from openapi_spec_validator import validate

    doc = server.call("GET", "/api/v1/openapi.json").json
    validate(doc)
    spec = OpenAPI.from_dict(doc)
    base = "http://127.0.0.1"
    _own_dimension(server.store, "temperature", "warm", "cold")
    good = {"entries": [{"metric": "leads", "value": 3,
                         "dims": {"source": "seo", "temperature": "warm"}}]}
    off_list = {"entries": [{"metric": "leads", "value": 3, "dims": {"temperature": "hot"}}]}
    cases = [
        ("post", "/api/v1/entries", good, server.post(token, good)),
        ("post", "/api/v1/entries", {"entries": [{"metric": "x", "value": 1}]},
         server.post(token, {"entries": [{"metric": "x", "value": 1}]})),
        ("get", "/api/v1/report", None, server.report(token, "from=2026-03-09&to=2026-03-15")),
        ("get", "/api/v1/report", None, server.report("kpi_nope", "from=2026-03-09&to=2026-03-15")),
        ("post", "/api/v1/entries", off_list, server.post(token, off_list)),
        ("get", "/api/v1/report", None,
         server.report(token, "from=2026-03-09&to=2026-03-15&by=temperature")),
        ("get", "/api/v1/report", None,
         server.report(token, "from=2026-03-09&to=2026-03-15&by=source")),
    ]
    assert [c[3].status for c in cases] == [201, 422, 200, 401, 422, 200, 200]
    assert cases[-1][3].json["groups"] and cases[-2][3].json["by"] == "temperature"
    by = {len(cases) - 2: "temperature", len(cases) - 1: "source"}
    for i, (method, path, body, reply) in enumerate(cases):
        query = {"from": "2026-03-09", "to": "2026-03-15"} if method == "get" else None
        if i in by:
            query = {"from": "2026-03-09", "to": "2026-03-15", "by": by[i]}
        request = MockRequest(base, method, path, args=query,
                              data=json.dumps(body).encode() if body else None,
                              headers={"Authorization": f"Bearer {token}"},
                              content_type="application/json")
        spec.validate_request(request)
        spec.validate_response(request, MockResponse(reply.body, status_code=reply.status,
                                                      content_type="application/json"))


# -- logs -----------------------------------------------------------------------------------------


def test_no_token_is_ever_logged(server: Server, token: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server.post(token, {"entries": [GOOD]})
    server.post(token, {"entries": [{"metric": "lead", "value": 1}]})
    server.post(token + "x", {"entries": [GOOD]})
    server.report(token, "from=2026-03-01&to=2026-03-02")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "stored 1 entries" in logged
    assert token[4:20] not in logged


# -- through the whole bot ------------------------------------------------------------------------


def test_kpibot_serve_hands_the_api_to_the_sub_app_and_logs_reach_alerting(
    fake_slack: Any, tmp_path: Path
) -> None:
    from tests.conftest import serve_bot

    store = open_store(f"sqlite:///{tmp_path / 'bot.db'}")
    try:
        token = new_token(store)
        with serve_bot(fake_slack, store) as bot:
            poked: list[tuple[str, date, set[str]]] = []
            assert bot.services.alerting is not None
            bot.services.alerting.logged = lambda *args: poked.append(args)  # type: ignore[method-assign]
            srv = Server(store, int(bot.base_url.rsplit(":", 1)[1]))
            assert srv.call("GET", "/api/v1/openapi.json").status == 200
            assert srv.post(token, {"entries": [GOOD]}).status == 201
            assert srv.call("GET", "/healthz").status == 200
            status, _, metrics = bot.get("/metrics")
            assert status == 200 and b'kpibot_entries_logged_total{origin="api"} 1.0' in metrics
        assert poked == [(TEAM, date(2026, 3, 11), {"leads"})]
    finally:
        store.engine.dispose()


# -- hostile input: never a 5xx, nothing stored on a refusal ----------------------------------

_text = st.one_of(st.sampled_from(["leads", "spend", "cpl", "program_completion", "", "today",
                                   "yesterday", "2026-03-11", "2026-03-12", "9999-12-31",
                                   "source", "rep", "-1", "1e309", "$1,234", "12%", "NaN"]),
                  st.text(max_size=30))
_scalar = st.one_of(st.none(), st.booleans(), st.integers(min_value=-10**40, max_value=10**40),
                    st.floats(allow_nan=False), _text)
_json = st.recursive(_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(_text, inner, max_size=4)), max_leaves=12)
_entry = st.fixed_dictionaries({}, optional={
    "metric": st.one_of(_text, _json), "value": st.one_of(_scalar, _json),
    "date": st.one_of(_text, _json), "dims": st.one_of(st.dictionaries(_text, _text, max_size=3), _json),
    "author": st.one_of(_text, _json), "extra": _json})
_body = st.one_of(st.fixed_dictionaries({"entries": st.lists(st.one_of(_entry, _json), max_size=6)}),
                  _json)


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('api-fuzz') / 'kpibot.db'}")
    try:
        token = new_token(store, "TFUZZ")
        with running(store, burst=10**9) as srv:
            yield srv, token
    finally:
        store.engine.dispose()


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=_body, key=st.one_of(st.none(), st.text(max_size=10)))
def test_any_body_gets_an_answer_and_a_refusal_stores_nothing(
    fuzz_server: tuple[Server, str], body: Any, key: str | None
) -> None:
    srv, token = fuzz_server
    before = db_state(srv.store, "TFUZZ")
    try:
        header_key = key if key is None or key.isprintable() and key.isascii() else None
        reply = srv.post(token, body, key=header_key)
    except ValueError:
        return  # a body json.dumps itself refuses (1e309 as an int is fine; nothing to send)
    assert reply.status in (201, 400, 409, 413, 422), reply.body[:300]
    payload = reply.json
    if reply.status == 201:
        assert payload["stored"] >= 1
        return
    assert payload["errors"] and all(e["message"] for e in payload["errors"])
    assert db_state(srv.store, "TFUZZ") == before
