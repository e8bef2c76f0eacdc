"""The fake Slack must behave like the contract says, or every bot test built on it lies.

Each test drives it with the real slack_sdk clients, so encoding details
(JSON vs form bodies, the upload URL flow, retries) are exercised for real.
"""

from __future__ import annotations

import json
import struct
import threading
import time
import zlib
from urllib.parse import parse_qsl

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient

from tests import slackreq
from tests.fakeslack import FakeSlack, block_kit_problems

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


@pytest.fixture
def fake():
    with FakeSlack() as server:
        yield server


@pytest.fixture
def client(fake):
    return WebClient(base_url=fake.api_url, token="xoxb-test", retry_handlers=[])


def tiny_png() -> bytes:
    """A valid 1x1 RGB PNG, built by hand so the test needs no imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x80\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def modal(title: str = "KPI entry", **extra) -> dict:
    return {
        "type": "modal",
        "callback_id": "kpi_entry",
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": "Save"},
        "blocks": [
            {
                "type": "input",
                "block_id": "value",
                "label": {"type": "plain_text", "text": "Value"},
                "element": {
                    "type": "number_input",
                    "action_id": "amount",
                    "is_decimal_allowed": True,
                },
            },
            {
                "type": "input",
                "block_id": "metric",
                "label": {"type": "plain_text", "text": "Metric"},
                "element": {
                    "type": "static_select",
                    "action_id": "pick",
                    "options": [
                        {"text": {"type": "plain_text", "text": "Revenue"}, "value": "rev"},
                        {"text": {"type": "plain_text", "text": "Churn"}, "value": "churn"},
                    ],
                },
            },
            {
                "type": "input",
                "block_id": "note",
                "optional": True,
                "label": {"type": "plain_text", "text": "Note"},
                "element": {"type": "plain_text_input", "action_id": "text"},
            },
        ],
        **extra,
    }


def test_auth_test_reports_configured_identity(fake, client):
    resp = client.auth_test()

    assert (resp["team_id"], resp["user_id"], resp["bot_id"]) == ("T0001", "UBOT", "BBOT")
    assert "chat:write" in resp.headers["x-oauth-scopes"]
    assert fake.calls_to("auth.test")[0].headers["authorization"] == "Bearer xoxb-test"


def test_missing_token_is_not_authed(fake):
    with pytest.raises(SlackApiError) as err:
        WebClient(base_url=fake.api_url).auth_test()

    assert err.value.response["error"] == "not_authed"


def test_post_message_is_recorded_as_json_with_blocks(fake, client):
    blocks = [section("*Revenue* 1,234")]

    first = client.chat_postMessage(channel="C0001", text="Revenue 1,234", blocks=blocks)
    second = client.chat_postMessage(channel="C0001", text="again")

    call = fake.calls_to("chat.postMessage")[0]
    assert call.params["blocks"] == blocks
    assert call.headers["content-type"].startswith("application/json")
    assert float(second["ts"]) > float(first["ts"])
    assert first["message"]["bot_id"] == "BBOT"
    assert [m["text"] for m in fake.posted_messages("C0001")] == ["Revenue 1,234", "again"]


def test_post_to_user_id_lands_in_the_app_dm(fake, client):
    resp = client.chat_postMessage(channel="U0042", text="hi")
    opened = client.conversations_open(users="U0042")

    assert resp["channel"].startswith("D")
    assert opened["channel"]["id"] == resp["channel"]
    assert fake.posted_messages(resp["channel"])[0]["text"] == "hi"


def test_files_upload_v2_stores_exact_bytes(fake, client):
    png = tiny_png()

    resp = client.files_upload_v2(
        channel="C0001", content=png, filename="chart.png", title="Weekly revenue"
    )

    methods = [c.method for c in fake.calls]
    assert methods == ["files.getUploadURLExternal", "upload", "files.completeUploadExternal"]
    file_id = resp["file"]["id"]
    assert fake.uploads[file_id] == png
    assert fake.calls_to("upload")[0].headers.get("authorization") is None
    assert fake.calls_to("files.getUploadURLExternal")[0].params["length"] == str(len(png))
    complete = fake.calls_to("files.completeUploadExternal")[0].params
    assert complete["channel_id"] == "C0001"
    assert json.loads(complete["files"]) == [{"id": file_id, "title": "Weekly revenue"}]
    assert fake.uploaded_files("C0001")[0]["mimetype"] == "image/png"


def test_complete_upload_refuses_files_never_uploaded(fake, client):
    url = client.files_getUploadURLExternal(filename="a.png", length=3)

    with pytest.raises(SlackApiError) as err:
        client.files_completeUploadExternal(files=[{"id": url["file_id"], "title": "a"}])

    assert err.value.response["error"] == "file_not_found"


def test_retired_files_upload_is_refused_but_recorded(fake, client):
    with pytest.warns(UserWarning), pytest.raises(SlackApiError) as err:
        client.files_upload(channels="C0001", content="a,b\n1,2", filename="kpi.csv")

    assert err.value.response["error"] == "method_deprecated"
    assert fake.calls_to("files.upload")[0].params["filename"] == "kpi.csv"


def test_unknown_method(fake, client):
    with pytest.raises(SlackApiError) as err:
        client.api_call("kpi.explode")

    assert err.value.response["error"] == "unknown_method"


def test_rate_limit_once_then_retry_posts_exactly_once(fake):
    fake.fail("chat.postMessage", status=429, retry_after=0)
    client = WebClient(
        base_url=fake.api_url,
        token="xoxb-test",
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=2)],
    )

    client.chat_postMessage(channel="C0001", text="digest")

    posts = fake.calls_to("chat.postMessage")
    assert [c.status for c in posts] == [429, 200]
    assert [c for c in posts if not c.faulted] == posts[1:]
    assert len(fake.posted_messages()) == 1


def test_rate_limit_without_retry_handler_raises_with_retry_after(fake, client):
    fake.fail("chat.postMessage", status=429, retry_after=7)

    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C0001", text="x")

    assert err.value.response.status_code == 429
    assert err.value.response["error"] == "ratelimited"
    assert err.value.response.headers["Retry-After"] == "7"


def test_server_error_raises_then_recovers(fake, client):
    fake.fail("chat.postMessage", status=500, times=2)

    for _ in range(2):
        with pytest.raises(SlackApiError) as err:
            client.chat_postMessage(channel="C0001", text="x")
        assert err.value.response.status_code == 500
    client.chat_postMessage(channel="C0001", text="x")

    assert [c.faulted for c in fake.calls_to("chat.postMessage")] == [True, True, False]


def test_error_injection_answers_200_ok_false(fake, client):
    fake.error("chat.postMessage", "not_in_channel")

    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C0001", text="x")

    assert err.value.response.status_code == 200
    assert err.value.response["error"] == "not_in_channel"
    assert fake.posted_messages() == []


def test_delay_pushes_client_into_timeout(fake):
    fake.delay("auth.test", 2)
    client = WebClient(base_url=fake.api_url, token="xoxb-test", timeout=1, retry_handlers=[])

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        client.auth_test()

    assert time.monotonic() - started < 2
    assert fake.calls_to("auth.test")[0].faulted


def test_message_over_50_blocks_is_rejected(fake, client):
    blocks = [section(f"row {i}") for i in range(51)]

    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C0001", text="big", blocks=blocks)

    assert err.value.response["error"] == "invalid_blocks"
    assert fake.violations == ["chat.postMessage: 51 blocks in a message (max 50)"]


def test_blocks_without_text_fallback_are_rejected(fake, client):
    with pytest.warns(UserWarning), pytest.raises(SlackApiError):
        client.chat_postMessage(channel="C0001", blocks=[section("hi")])

    assert fake.violations == ["chat.postMessage: blocks without a non-empty text fallback"]


def test_modal_title_over_24_chars_is_rejected(fake, client):
    with pytest.raises(SlackApiError) as err:
        client.views_open(trigger_id=slackreq.new_trigger_id(), view=modal("x" * 25))

    assert err.value.response["error"] == "invalid_blocks"
    assert fake.violations == ["views.open: modal title is 25 chars (max 24)"]


@pytest.mark.parametrize(
    ("payload", "surface", "expected"),
    [
        ({"text": "ok", "blocks": [section("fine")]}, "message", []),
        (modal(submit=None), "modal", ["modal with input blocks needs submit"]),
        (
            {"text": "t", "blocks": [{"type": "image", "image_url": "https://x/a.png"}]},
            "message",
            ["blocks[0] (image).alt_text is required"],
        ),
        (
            {
                "text": "t",
                "blocks": [
                    {
                        "type": "actions",
                        "elements": [
                            {"type": "button", "text": {"type": "plain_text", "text": "b" * 76}}
                        ],
                    }
                ],
            },
            "message",
            ["blocks[0] (actions).elements[0].text is 76 chars (max 75)"],
        ),
        (
            {"type": "home", "blocks": [section("s" * 3001)], "private_metadata": "m" * 3001},
            "home",
            [
                "private_metadata is 3001 chars (max 3000)",
                "blocks[0] (section).text is 3001 chars (max 3000)",
            ],
        ),
    ],
)
def test_block_kit_problems_directly(payload, surface, expected):
    assert block_kit_problems(payload, surface) == expected


def test_views_round_trip_and_submission_body(fake, client):
    opened = client.views_open(trigger_id=slackreq.new_trigger_id(), view=modal())["view"]
    assert opened["id"].startswith("V")
    assert opened["callback_id"] == "kpi_entry"

    updated = client.views_update(view_id=opened["id"], hash=opened["hash"], view=modal("Edit"))
    with pytest.raises(SlackApiError) as err:
        client.views_update(view_id=opened["id"], hash=opened["hash"], view=modal())
    assert err.value.response["error"] == "hash_conflict"

    body = slackreq.view_submission_body(
        updated["view"], {"value": {"amount": 42.5}, "metric": {"pick": "rev"}}
    )
    payload = json.loads(dict(parse_qsl(body.decode()))["payload"])
    values = payload["view"]["state"]["values"]
    assert payload["type"] == "view_submission"
    assert payload["view"]["id"] == opened["id"]
    assert values["value"]["amount"] == {"type": "number_input", "value": "42.5"}
    assert values["metric"]["pick"]["selected_option"]["value"] == "rev"
    assert values["note"]["text"] == {"type": "plain_text_input", "value": None}


def test_trigger_ids_are_single_use(fake, client):
    trigger = slackreq.new_trigger_id()
    client.views_open(trigger_id=trigger, view=modal())

    with pytest.raises(SlackApiError) as err:
        client.views_open(trigger_id=trigger, view=modal())

    assert err.value.response["error"] == "exchanged_trigger_id"


def test_users_info_known_and_unknown(fake, client):
    fake.add_user("U0042", tz="Europe/Berlin", is_admin=True, name="greta")

    user = client.users_info(user="U0042", include_locale=True)["user"]
    with pytest.raises(SlackApiError) as err:
        client.users_info(user="U9999")

    assert (user["tz"], user["is_admin"], user["name"], user["locale"]) == (
        "Europe/Berlin",
        True,
        "greta",
        "en-US",
    )
    assert user["tz_offset"] in (3600, 7200)
    assert err.value.response["error"] == "user_not_found"


def test_oauth_install_token_is_recognised_by_auth_test(fake):
    fake.client_secret = "s3cret"
    fake.set_oauth_install("T0002", "Globex")
    anonymous = WebClient(base_url=fake.api_url)

    install = anonymous.oauth_v2_access(client_id="111.222", client_secret="s3cret", code="abc")
    with pytest.raises(SlackApiError) as err:
        anonymous.oauth_v2_access(client_id="111.222", client_secret="s3cret", code="abc")
    who = WebClient(base_url=fake.api_url, token=install["access_token"]).auth_test()

    assert install["team"] == {"id": "T0002", "name": "Globex"}
    assert err.value.response["error"] == "invalid_code"
    assert who["team_id"] == "T0002"


def test_socket_mode_needs_app_token(fake, client):
    with pytest.raises(SlackApiError) as err:
        client.apps_connections_open(app_token="xoxb-test")
    resp = WebClient(base_url=fake.api_url).apps_connections_open(app_token="xapp-1-A1-x")

    assert err.value.response["error"] == "not_allowed_token_type"
    assert resp["url"].startswith("ws://127.0.0.1:")


def test_response_url_allows_five_uses(fake):
    url = fake.new_response_url()
    webhook = WebhookClient(url)

    statuses = [webhook.send(text=f"update {i}").status_code for i in range(6)]

    assert statuses == [200] * 5 + [404]
    calls = fake.calls_to("response_url")
    assert calls[0].params == {"text": "update 0"}
    assert calls[-1].response == "used_url"


def test_response_url_rejects_bad_blocks_with_400(fake):
    resp = WebhookClient(fake.new_response_url()).send(blocks=[section("no fallback")])

    assert (resp.status_code, resp.body) == (400, "invalid_blocks")
    assert fake.violations == ["response_url: blocks without a non-empty text fallback"]


def test_wait_for_sees_work_done_after_an_ack(fake, client):
    timer = threading.Timer(
        0.1, client.chat_postMessage, kwargs={"channel": "C0001", "text": "late"}
    )
    timer.start()

    messages = fake.wait_for(lambda f: f.posted_messages("C0001"), timeout=3)

    assert messages[0]["text"] == "late"
    with pytest.raises(AssertionError):
        fake.wait_for(lambda: fake.calls_to("chat.delete"), timeout=0.1)


def test_signature_is_accepted_by_slack_sdk_verifier():
    body = slackreq.slash_command_body("revenue last 7d")
    headers = slackreq.sign(SECRET, body)
    verifier = SignatureVerifier(SECRET)

    assert verifier.is_valid_request(body, headers)
    assert not verifier.is_valid_request(body + b"x", headers)
    assert not SignatureVerifier("other").is_valid_request(body, headers)
    old = slackreq.sign(SECRET, body, timestamp=int(time.time()) - 301)
    assert not verifier.is_valid_request(body, old)


def test_slash_command_body_field_order(fake):
    url = fake.new_response_url()

    body = slackreq.slash_command_body("revenue", response_url=url, enterprise_id="E0001")
    fields = parse_qsl(body.decode(), keep_blank_values=True)

    assert [k for k, _ in fields] == [
        "token", "team_id", "team_domain", "channel_id", "channel_name", "user_id",
        "user_name", "command", "text", "api_app_id", "is_enterprise_install",
        "enterprise_id", "enterprise_name", "response_url", "trigger_id",
    ]  # fmt: skip
    assert b"command=%2Fkpi" in body
    assert dict(fields)["response_url"] == url


def test_block_actions_and_event_bodies_have_contract_shape():
    clicked = slackreq.block_actions_body("refresh", "rev", channel_id="C0009")
    payload = json.loads(dict(parse_qsl(clicked.decode()))["payload"])
    event = json.loads(slackreq.event_body({"type": "app_home_opened", "user": "U0001"}))

    assert payload["container"]["type"] == "message"
    assert payload["channel"]["id"] == "C0009"
    assert payload["actions"][0]["value"] == "rev"
    assert event["type"] == "event_callback"
    assert event["authorizations"][0]["team_id"] == "T0001"
    assert event["event"]["event_ts"]
    assert slackreq.sign(SECRET, json.dumps(event).encode())["Content-Type"] == "application/json"


def test_post_helper_does_not_raise_on_errors(fake):
    status, headers, body = slackreq.post(f"{fake.base_url}/nowhere", b"{}", {})

    assert (status, body) == (404, b"not_found")
    assert headers["content-type"].startswith("text/plain")


def test_a_revoked_token_answers_token_revoked_and_is_counted(fake, client):
    client.chat_postMessage(channel="C0001", text="before")
    fake.revoke("xoxb-test")
    with pytest.raises(SlackApiError) as raised:
        client.chat_postMessage(channel="C0001", text="after")
    assert raised.value.response["error"] == "token_revoked"
    assert len(fake.calls_with("xoxb-test")) == 2
    other = WebClient(base_url=fake.api_url, token="xoxb-other", retry_handlers=[])
    assert other.chat_postMessage(channel="C0001", text="fine")["ok"]
    assert [m["text"] for m in fake.posted_messages("C0001")] == ["before", "fine"]


def test_the_channel_limit_answers_429_past_n_messages_a_second():
    limited = FakeSlack(messages_per_channel_second=2).start()
    try:
        client = WebClient(base_url=limited.api_url, token="xoxb-test")
        for _ in range(2):
            client.chat_postMessage(channel="C0001", text="hi")
        client.chat_postMessage(channel="C0002", text="another channel has its own second")
        with pytest.raises(SlackApiError) as refused:
            client.chat_postMessage(channel="C0001", text="one too many")
        assert refused.value.response.status_code == 429
        assert refused.value.response.headers.get("Retry-After") == "1"
        assert limited.rate_limited == 1 and len(limited.messages_in("C0001")) == 2
    finally:
        limited.stop()
