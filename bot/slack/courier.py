"""Posting that happens exactly once: digests, alerts and reminders go out through the Courier.

The path is claim -> build -> post -> record the message -> upload charts into its thread ->
mark delivered. Only the claimer posts. Calls are paced per channel and workspace
(bot/slack/pacing.py); a call that must wait, or that Slack answers 429 (nothing was posted),
gives the delivery back until then instead of sleeping, so no other workspace waits behind
it. After a 5xx, a timeout or a dropped connection nobody knows whether Slack posted, so
the channel's recent history is searched for the delivery key (carried in the message's
metadata) before trying again. Permanent errors are recorded for App Home, never retried.
A message Slack refuses with `invalid_blocks` (a workspace without the native table or
data_visualization blocks) is posted once more, at once, with its `fallback_blocks`: Slack
posted nothing the first time, so it is still one message.

A delivery may belong to an earlier one (its parent, by key): `thread_of` posts it as a reply
in the parent message's thread (searched for in that thread after an unclear attempt), and
`edits` updates the parent message in place with `chat.update` (an update carries the whole
message, so an unclear one is simply made again). Until the parent's message is known to be
out the delivery waits; a parent that never went out (snoozed, or failed for good) means a
reply goes to the channel itself and an update has nothing to do.

A `direct` delivery goes to a person: `channel` is their user id, and their DM with the bot
is opened (`conversations.open`, which gives the same conversation every time) by the
claimer just before posting; its errors (`user_not_found`, `cannot_dm_bot`...) are permanent
like a channel's.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.observability import Metrics
from bot.render.posts import Attachment, Outgoing, outgoing_of
from bot.slack.pacing import DEFAULT_RETRY_AFTER, Pacer
from storage import Store
from storage.repository import Delivery

log = logging.getLogger("kpibot.courier")

METADATA_EVENT = "kpibot_delivery"
LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 5
#: errors that no retry will fix: recorded and shown to admins
PERMANENT = frozenset({
    "channel_not_found", "is_archived", "not_in_channel", "invalid_auth", "account_inactive",
    "token_revoked", "token_expired", "missing_scope", "invalid_blocks", "msg_too_long",
    "no_permission", "restricted_action", "team_access_not_granted", "not_authed",
    "method_not_supported_for_channel_type", "ekm_access_denied", "user_not_found",
    "cannot_dm_bot", "user_disabled", "no_installation",
    "message_not_found", "cant_update_message", "edit_window_closed",
})
#: how long a reply or an update waits for its parent message to be recorded as posted
PARENT_WAIT = timedelta(seconds=60)
_IN_PLACE_TRIES = 3


class Unclear(Exception):
    """Slack may or may not have carried out the call (5xx, timeout, dropped connection).

    After a 5xx Slack has answered, so the channel's history is checked and the post retried
    at once. After a timeout Slack may still be working on the call: the retry waits for a
    later attempt, so a late post is in the history by the time it is checked.
    """

    def __init__(self, code: str, *, retry_now: bool) -> None:
        super().__init__(code)
        self.retry_now = retry_now


class Paced(Exception):
    """Not now: Slack's limits (or its 429 with Retry-After) say to wait this long."""

    def __init__(self, wait: timedelta, *, by_slack: bool = False, unclear: bool = False) -> None:
        super().__init__(f"paced for {wait.total_seconds():.1f} s")
        self.wait = wait
        #: Slack answered 429: the whole workspace waits, not only this channel
        self.by_slack = by_slack
        #: an earlier call of this attempt may have posted: the next one must look first
        self.unclear = unclear


class NotDelivered(Exception):
    def __init__(self, code: str, *, permanent: bool) -> None:
        super().__init__(code)
        self.code = code
        self.permanent = permanent


@dataclass
class Courier:
    """Delivers messages exactly once across restarts and processes (the use cases' Poster).

    `build` gives an `Outgoing`, or a domain payload (a digest, an alert, a nudge) that
    bot/render/posts.py renders.
    """

    store: Store
    client_for: Callable[[str], WebClient | None]
    metrics: Metrics
    clock: Callable[[], datetime]
    owner: str = field(default_factory=lambda: f"kpibot-{uuid.uuid4().hex[:10]}")
    lease: timedelta = LEASE
    backoff: float = 1.0
    #: how much of Slack's limits this process has used (a Pacer of its own when not given)
    pacer: Pacer | None = None

    def __post_init__(self) -> None:
        self._pacer = self.pacer or Pacer(self.clock)

    def deliver(
        self, workspace_id: str, key: str, *, kind: str, channel: str, due_at: datetime,
        build: Callable[[], object], thread_of: str | None = None, edits: str | None = None,
        direct: bool = False,
    ) -> str:
        """'posted'; 'skipped' (done before, or an edit of a message never posted) or 'held'
        (being done elsewhere); 'retry' (later); 'failed' (for good); or 'stopped': the app is
        uninstalled there, nothing is claimed and Slack is not called (the tokens are
        revoked), so it goes out after a reinstall.

        `thread_of`: a reply in the thread of the message delivered under that key; `edits`:
        that message is updated in place instead of posting one; `direct`: `channel` is a
        user id and the message goes to their DM with the bot."""
        outcome = self._deliver(workspace_id, key, kind=kind, channel=channel, due_at=due_at,
                                build=build, parent_key=edits or thread_of, edits=edits is not None,
                                direct=direct)
        self.metrics.delivered(kind, outcome)
        return outcome

    def _deliver(
        self, workspace_id: str, key: str, *, kind: str, channel: str, due_at: datetime,
        build: Callable[[], object], parent_key: str | None, edits: bool, direct: bool = False,
    ) -> str:
        workspace = self.store.workspace(workspace_id)
        if workspace is not None and not workspace.installed:
            log.info("not delivering key=%s: the app is uninstalled from %s", key, workspace_id)
            return "stopped"
        delivery = self.store.claim_delivery(
            workspace_id, key, kind=kind, channel_id=channel, due_at=due_at, owner=self.owner,
            now=self.clock(), lease=self.lease,
        )
        if delivery is None:
            # 'held': another process is on it right now (or crashed holding it: the claim
            # expires); 'skipped': it went out already, or failed for good
            known = self.store.delivery(key)
            done = known is not None and (known.delivered_at or known.failed_at)
            return "skipped" if done else "held"
        parent_ts: str | None = None
        if parent_key is not None:
            parent = self.store.delivery(parent_key)
            if parent is not None and parent.message_ts is None and not (
                    parent.delivered_at or parent.failed_at):
                # its message may be out without being recorded yet (a crash, a 5xx): wait
                self.store.release_delivery(key, self.owner, self.clock(), "waiting for its parent",
                                            permanent=False, retry_after=PARENT_WAIT,
                                            attempted=False)
                return "retry"
            parent_ts = parent.message_ts if parent is not None else None
            if edits and parent_ts is None:
                self.store.mark_delivered(key, self.owner, self.clock())
                return "skipped"  # the message was never posted: nothing shows a state
        try:
            if edits:
                assert parent_key is not None and parent_ts is not None
                client = self.client_for(workspace_id)
                if client is None:
                    raise NotDelivered("no_installation", permanent=True)
                self._update(client, delivery, parent_key, parent_ts, outgoing_of(build()))
                self.store.record_posted(key, self.owner, parent_ts)
                self.store.mark_delivered(key, self.owner, self.clock())
                log.info("updated key=%s channel=%s attempt=%d", key, channel, delivery.attempts)
                return "posted"
            if delivery.message_ts is None:
                self._pace(self._pacer.wait_to_post(workspace_id, channel))
            client = self.client_for(workspace_id)
            if client is None:
                raise NotDelivered("no_installation", permanent=True)
            if direct:
                opened = _call(self, "conversations.open",
                               lambda: client.conversations_open(users=channel))
                delivery = replace(delivery, channel_id=str(opened["channel"]["id"]))
            outgoing = outgoing_of(build())
            ts = delivery.message_ts or self._post_once(client, delivery, outgoing, parent_ts)
            if delivery.message_ts is None:
                self.store.record_posted(key, self.owner, ts)
            files = outgoing.files()  # once the message is out (a digest's charts)
            comment = outgoing.comment
            if files and delivery.message_ts is not None:
                # an earlier attempt posted the message: it may have shared charts too
                shared = self._files_in_thread(client, delivery, ts)
                if shared & {f.filename for f in files}:
                    comment = None  # it went with the first of them
                files = [f for f in files if f.filename not in shared]
            if files:
                self._upload(client, delivery.channel_id, ts, files, comment)
        except Paced as paced:
            return self._postpone(delivery, paced)
        except NotDelivered as problem:
            return self._give_up(delivery, problem.code, permanent=problem.permanent)
        except Unclear as problem:
            return self._give_up(delivery, str(problem), permanent=False)
        except Exception:
            error_id = uuid.uuid4().hex[:8]
            log.exception("delivery failed error id=%s key=%s", error_id, key)
            return self._give_up(delivery, f"internal error {error_id}", permanent=False)
        self.store.mark_delivered(key, self.owner, self.clock())
        log.info("delivered key=%s channel=%s attempt=%d", key, channel, delivery.attempts)
        return "posted"

    def _pace(self, wait: timedelta) -> None:
        if wait > timedelta(0):
            raise Paced(wait)

    def _postpone(self, delivery: Delivery, paced: Paced) -> str:
        """Gives the delivery back until Slack's limit allows it; nothing was attempted, so
        it does not count towards MAX_ATTEMPTS (unless an unclear call came first)."""
        if paced.by_slack:
            self._pacer.rate_limited(delivery.workspace_id, paced.wait)
        self.store.release_delivery(delivery.key, self.owner, self.clock(), "ratelimited",
                                    permanent=False, retry_after=paced.wait,
                                    attempted=paced.unclear)
        self.metrics.slack_errors.labels(method="paced", error="ratelimited").inc()
        log.info("delivery paced key=%s for %.1f s", delivery.key, paced.wait.total_seconds())
        return "retry"

    def _give_up(self, delivery: Delivery, code: str, *, permanent: bool) -> str:
        permanent = permanent or delivery.attempts >= MAX_ATTEMPTS
        retry_after = timedelta(minutes=2 ** min(delivery.attempts, 5))
        self.store.release_delivery(delivery.key, self.owner, self.clock(), code,
                                    permanent=permanent, retry_after=retry_after)
        log.warning("delivery %s key=%s error=%s attempt=%d",
                    "failed" if permanent else "postponed", delivery.key, code, delivery.attempts)
        return "failed" if permanent else "retry"

    # -- posting ---------------------------------------------------------------------------

    def _post_once(self, client: WebClient, delivery: Delivery, outgoing: Outgoing,
                   thread_ts: str | None = None) -> str:
        """Posts (in `thread_ts`'s thread when given), or finds the copy an earlier unclear
        attempt left in the channel or that thread."""
        unclear = delivery.attempts > 1
        for attempt in range(_IN_PLACE_TRIES):
            try:
                if unclear:
                    found = self._find_posted(client, delivery, thread_ts)
                    if found:
                        return found
                return self._post(client, delivery, outgoing, thread_ts)
            except Paced as paced:
                paced.unclear = unclear
                raise
            except Unclear as problem:
                unclear = True
                if not problem.retry_now or attempt == _IN_PLACE_TRIES - 1:
                    raise
                time.sleep(self.backoff * 2 ** attempt)
        raise AssertionError("unreachable")

    def _post(self, client: WebClient, delivery: Delivery, outgoing: Outgoing,
              thread_ts: str | None = None) -> str:
        kwargs: dict[str, Any] = {
            "channel": delivery.channel_id, "text": outgoing.text, "blocks": outgoing.blocks,
            "metadata": {"event_type": METADATA_EVENT, "event_payload": {"key": delivery.key}},
            "unfurl_links": False, "unfurl_media": False,
            **({"thread_ts": thread_ts} if thread_ts else {}),
        }
        try:
            response = self._post_or_fall_back(client, kwargs, outgoing)
        except NotDelivered as problem:
            if problem.code != "not_in_channel":
                raise
            _call(self, "conversations.join",
                  lambda: client.conversations_join(channel=delivery.channel_id))
            response = self._post_or_fall_back(client, kwargs, outgoing)
        return str(response["ts"])

    def _update(self, client: WebClient, delivery: Delivery, parent_key: str, ts: str,
                outgoing: Outgoing) -> None:
        """Updates the parent message in place. It keeps its own key in its metadata; the
        update carries the whole message, so after an unclear answer it is simply sent again.
        Not paced like a post (chat.update has a limit of its own, well above an alert's
        few updates); Slack's 429 pauses the workspace as for any call."""
        kwargs: dict[str, Any] = {
            "channel": delivery.channel_id, "ts": ts, "text": outgoing.text,
            "blocks": outgoing.blocks,
            "metadata": {"event_type": METADATA_EVENT, "event_payload": {"key": parent_key}},
        }
        plain = {**kwargs, "blocks": outgoing.fallback_blocks}
        for attempt in range(_IN_PLACE_TRIES):
            try:
                try:
                    _call(self, "chat.update", lambda: client.chat_update(**kwargs))
                except NotDelivered as problem:
                    if problem.code != "invalid_blocks" or outgoing.fallback_blocks is None:
                        raise
                    _call(self, "chat.update", lambda: client.chat_update(**plain))
                return
            except Unclear as problem:
                if not problem.retry_now or attempt == _IN_PLACE_TRIES - 1:
                    raise
                time.sleep(self.backoff * 2 ** attempt)

    def _post_or_fall_back(self, client: WebClient, kwargs: dict[str, Any],
                           outgoing: Outgoing) -> Any:
        """Posts; when Slack refuses the blocks (`invalid_blocks`: this workspace takes no
        table or data_visualization yet), posts the message's text fallback instead. Slack
        posted nothing on `invalid_blocks`, so this is still one message under one key."""
        try:
            return _call(self, "chat.postMessage", lambda: client.chat_postMessage(**kwargs))
        except NotDelivered as problem:
            if problem.code != "invalid_blocks" or outgoing.fallback_blocks is None:
                raise
        log.warning("blocks refused (invalid_blocks); posting the text fallback key=%s",
                    kwargs["metadata"]["event_payload"]["key"])
        plain = {**kwargs, "blocks": outgoing.fallback_blocks}
        return _call(self, "chat.postMessage", lambda: client.chat_postMessage(**plain))

    def _find_posted(self, client: WebClient, delivery: Delivery,
                     thread_ts: str | None = None) -> str | None:
        """The ts of the message carrying this delivery's key: among the channel's latest, or
        in the thread of `thread_ts` (replies are not in the channel's history)."""
        oldest = (delivery.due_at - timedelta(minutes=1)).timestamp()
        method = "conversations.replies" if thread_ts else "conversations.history"
        self._pace(self._pacer.wait_to_read(delivery.workspace_id, method))
        try:
            if thread_ts:
                response = client.conversations_replies(
                    channel=delivery.channel_id, ts=thread_ts, oldest=str(oldest), limit=15,
                    include_all_metadata=True,
                )
            else:
                response = client.conversations_history(
                    channel=delivery.channel_id, oldest=str(oldest), limit=15,
                    include_all_metadata=True,
                )
        except SlackApiError as error:
            wait = _retry_after(error)
            if wait is not None:
                raise Paced(wait, by_slack=True) from None
            log.warning("could not check the channel for an earlier copy: %s",
                        error.response.get("error") if error.response is not None else "?")
            return None
        except (SlackClientError, OSError) as error:
            log.warning("could not check the channel for an earlier copy: %s",
                        error.__class__.__name__)
            return None
        for message in response.get("messages") or []:
            metadata = message.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            if metadata.get("event_type") == METADATA_EVENT and payload.get("key") == delivery.key:
                return str(message["ts"])
        return None

    def _files_in_thread(self, client: WebClient, delivery: Delivery, ts: str) -> set[str]:
        self._pace(self._pacer.wait_to_read(delivery.workspace_id, "conversations.replies"))
        try:
            response = client.conversations_replies(channel=delivery.channel_id, ts=ts, limit=15)
        except SlackApiError as error:
            wait = _retry_after(error)
            if wait is not None:
                raise Paced(wait, by_slack=True) from None
            log.warning("could not check the thread for charts already shared: %s",
                        error.response.get("error") if error.response is not None else "?")
            return set()
        except (SlackClientError, OSError) as error:
            log.warning("could not check the thread for charts already shared: %s",
                        error.__class__.__name__)
            return set()
        return {str(f.get("name")) for m in response.get("messages") or []
                for f in m.get("files") or []}

    def _upload(self, client: WebClient, channel: str, ts: str, files: Sequence[Attachment],
                comment: str | None = None) -> None:
        uploads = [{"content": f.content, "filename": f.filename, "title": f.title} for f in files]
        extra: dict[str, Any] = {"initial_comment": comment} if comment else {}
        _call(self, "files.completeUploadExternal", lambda: client.files_upload_v2(
            channel=channel, thread_ts=ts, file_uploads=uploads, **extra,
        ))


def _call(courier: Courier, method: str, work: Callable[[], Any]) -> Any:
    """Runs one Web API call, sorting failures into permanent, unclear and transient ones."""
    try:
        return work()
    except SlackApiError as error:
        status = error.response.status_code if error.response is not None else 0
        code = str(error.response.get("error", "unknown")) if error.response is not None else "unknown"
        courier.metrics.slack_errors.labels(method=method, error=code).inc()
        wait = _retry_after(error)
        if wait is not None:
            raise Paced(wait, by_slack=True) from None
        if status >= 500:
            raise Unclear(f"http_{status}", retry_now=True) from None
        raise NotDelivered(code, permanent=code in PERMANENT) from None
    except (SlackClientError, OSError) as error:
        courier.metrics.slack_errors.labels(method=method, error=error.__class__.__name__).inc()
        raise Unclear(error.__class__.__name__, retry_now=False) from None


def _retry_after(error: SlackApiError) -> timedelta | None:
    """Slack's Retry-After on a 429 (a default when the header is missing), else None."""
    response = error.response
    if response is None or response.status_code != 429:
        return None
    headers = {str(k).lower(): v for k, v in (response.headers or {}).items()}
    value = headers.get("retry-after")
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        return timedelta(seconds=max(1, int(str(value))))
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER
