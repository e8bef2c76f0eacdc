"""The `kpibot` command line: the same use cases as Slack, for operators and scripts."""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, cast

from sqlalchemy.exc import OperationalError, SQLAlchemyError

from bot.app import entries
from bot.app.context import Context, UserError, open_context
from bot.app.names import not_in_future, period_for
from bot.app.reports import report
from bot.grammar import CommandError, range_and_names
from bot.settings import Settings
from kpis.catalogue import DEFAULT_PACKS
from kpis.periods import Period, PeriodError, parse_date
from storage import Store, Workspace, open_store

EXIT_BAD_INPUT = 2


class CliError(Exception):
    """Bad input on the command line: one line on stderr, exit status 2, nothing written."""


class _Parser(argparse.ArgumentParser):
    """A usage mistake is bad input too: one line on stderr (not the usage block), status 2."""

    _intermixing = False

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: {message} (see {self.prog} --help)\n")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None,
    ) -> tuple[argparse.Namespace, list[str]]:
        """A subcommand's options and words in any order: `report --from A --to B cpl leads`
        keeps both names (plain argparse gives the first one to an earlier positional)."""
        if self._intermixing or self._subparsers is not None:
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


def _now() -> datetime:
    return datetime.now(UTC)


def _store(args: argparse.Namespace) -> Store:
    url = args.db or Settings().database_url
    try:
        return open_store(url)
    except SQLAlchemyError as error:
        raise SystemExit(f"kpibot: cannot open the database {_safe_url(url)}: {error.__class__.__name__}") from None


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _context(args: argparse.Namespace, store: Store, *, create: bool = True) -> Context:
    """Who and where; `create=False` (reports, exports) reads an unknown workspace as empty
    instead of creating it, so a mistyped --workspace cannot change the default one."""
    workspace = args.workspace
    if workspace is None:
        known = store.workspace_ids()
        workspace = known[0] if len(known) == 1 else "local"
    actor = getattr(args, "as_user", None) or _local_user()
    if not create and store.workspace(workspace) is None:
        blank = Workspace(workspace, "UTC", "USD", "en_US", DEFAULT_PACKS)
        return Context(store, blank, actor, _now())
    return open_context(store, workspace, actor, _now())


def _local_user() -> str:
    """The local user name; a container user with no name in /etc/passwd is `local`."""
    try:
        return getpass.getuser() or "local"
    except (KeyError, OSError):
        return "local"


def _pairs(items: Sequence[str], what: str) -> list[tuple[str, str]]:
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CliError(f"`{item}` is not {what}=VALUE (e.g. leads=12)")
        pairs.append((key.strip(), value.strip()))
    return pairs


def _range(args: argparse.Namespace, ctx: Context, spec: str | None = None) -> Period:
    if args.start or args.end:
        if not (args.start and args.end):
            raise CliError("give both --from and --to (YYYY-MM-DD)")
        try:
            period = Period(parse_date(args.start), parse_date(args.end))
        except PeriodError as error:
            raise CliError(str(error)) from None
        return not_in_future(ctx, period)
    return period_for(ctx, spec, "week")


# -- subcommands ----------------------------------------------------------------------------


def cmd_log(args: argparse.Namespace) -> int:
    store = _store(args)
    ctx = _context(args, store)
    result = entries.log_numbers(
        ctx, _pairs(args.values, "METRIC"), day=args.date, dims=_pairs(args.dim or [], "NAME"),
        origin="cli",
    )
    from bot.render.numbers import format_value

    catalogue = ctx.catalogue
    stored = ", ".join(
        f"{c.metric}={format_value(c.new, catalogue.metrics[c.metric].unit, currency=ctx.workspace.currency)}"
        for c in result.batch.changes
    )
    print(f"Stored for {result.day} as {ctx.actor}: {stored}")
    for moved in result.moved:
        kpi = catalogue.kpis[moved.key]
        fmt: dict[str, Any] = {"currency": ctx.workspace.currency, "locale": ctx.workspace.locale}
        print(f"  {kpi.label}: {format_value(moved.before, kpi.unit, **fmt)} -> "
              f"{format_value(moved.after, kpi.unit, **fmt)}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    store = _store(args)
    ctx = _context(args, store, create=False)
    spec, names = range_and_names(args.words, "kpibot report week cpl")
    if spec and (args.start or args.end):
        raise CliError(f"give the period once: {spec} or --from/--to, not both")
    result = report(ctx, _range(args, ctx, spec), names, tuple(_pairs(args.dim or [], "NAME")), args.by)
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        from bot.render.text import report_table

        kept = "".join(f", {name}={value}" for name, value in result.dims)
        print(f"KPIs for {result.period} against {result.previous} ({ctx.workspace.id}{kept})")
        print(report_table(result), end="")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    try:
        text = Path(args.file).read_text(encoding="utf-8-sig")
    except OSError as error:
        raise CliError(f"cannot read {args.file}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise CliError(f"{args.file} is not UTF-8 text; save the CSV as UTF-8") from None
    store = _store(args)
    batch = entries.import_csv(_context(args, store), text)
    print(f"Imported {len(batch.changes)} entries from {args.file}.")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    store = _store(args)
    ctx = _context(args, store, create=False)
    period = _range(args, ctx) if (args.start or args.end) else None
    sys.stdout.write(entries.export_csv(ctx, period))
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    _store(args)
    print("The database schema is up to date.")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from bot.demo import run_demo

    return run_demo(Path(args.out), _now())


def cmd_digest(args: argparse.Namespace) -> int:
    from bot.app.digests import channel_breakdown, compute_digest
    from bot.render.digest import digest_markdown, write_digest_files

    store = _store(args)
    ctx = _context(args, store, create=False)
    day = None
    if args.date:
        try:
            day = parse_date(args.date)
        except PeriodError as error:
            raise CliError(str(error)) from None
    by = args.by
    if by is None and args.post:  # the channel's digest as its schedule has it
        by = channel_breakdown(store, ctx.workspace.id, args.post.lstrip("#"), args.kind)
    digest = compute_digest(ctx, args.kind, on=day, by=by)
    if args.out:
        for path in write_digest_files(digest, Path(args.out)):
            print(path)
    if args.post:
        return _post_digest(args, store, ctx, digest)
    if not args.out:
        print(digest_markdown(digest), end="")
    return 0


def _post_digest(args: argparse.Namespace, store: Store, ctx: Context, digest: Any) -> int:
    """Posts through the same Courier as the scheduler: a period already posted is not repeated."""
    from bot.app.digests import digest_key
    from bot.bootstrap import posting_courier

    settings = Settings()
    if not settings.slack_bot_token:
        raise CliError("--post needs SLACK_BOT_TOKEN (in .env or the environment)")
    channel = args.post.lstrip("#")
    if channel[:1] not in ("C", "G", "D") or not channel.isalnum():
        raise CliError(f"--post takes a channel id like C0123ABCD (not a name): got {args.post}")
    courier = posting_courier(settings, store, _now)
    key = digest_key(ctx.workspace.id, channel, digest.kind, digest.period)
    outcome = courier.deliver(ctx.workspace.id, key, kind=f"digest-{digest.kind}", channel=channel,
                              due_at=_now(), build=lambda: digest)
    if outcome == "posted":
        print(f"Posted the {digest.kind} digest for {digest.period} to {channel}")
        return 0
    if outcome == "held":
        print(f"The {digest.kind} digest for {digest.period} is being posted to {channel} by "
              "another kpibot process right now; not posting it twice")
        return 0
    if outcome == "skipped":
        print(f"The {digest.kind} digest for {digest.period} was already posted to {channel}; "
              "not posting it twice")
        return 0
    if outcome == "stopped":
        raise CliError(f"the app is uninstalled from {ctx.workspace.id}; install it again to post there")
    problem = store.delivery(key)
    print(f"kpibot digest: could not post ({problem.error if problem else outcome})", file=sys.stderr)
    return 1


def cmd_alerts(args: argparse.Namespace) -> int:
    from bot.app import alerts
    from bot.render.alerts import rule_text

    store = _store(args)
    ctx = _context(args, store, create=False)
    rules = [r.rule for r in alerts.listed(ctx)]
    if args.json:
        print(json.dumps({"workspace": ctx.workspace.id, "rules": [{
            "id": r.id, "kpi": r.rule.kpi, "op": str(r.rule.op), "threshold": r.rule.threshold,
            "period": r.rule.period, "for": r.rule.for_periods, "dims": dict(r.rule.dims),
            "channel": r.channel_id, "state": r.state.status.value,
            "since": r.state.since.isoformat() if r.state.since else None,
            "last_value": r.state.last_value,
            "snoozed_until": r.state.snoozed_until.isoformat() if r.state.snoozed_until else None,
        } for r in rules]}))
        return 0
    if not rules:
        print(f"No alert rules in {ctx.workspace.id}.")
    for r in rules:
        shown = alerts.describe_rule(ctx, r)
        text = rule_text(r, shown.label, shown.unit, ctx.workspace.currency, ctx.workspace.locale)
        since = f" since {r.state.since:%Y-%m-%d %H:%M} UTC" if r.state.since else ""
        print(f"#{r.id}  {text}  -> {r.channel_id}  {r.state.status.value}{since}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from bot.bootstrap import bootstrap
    from bot.observability import configure_logging
    from bot.server import serve_http, serve_socket_mode
    from bot.settings import secret

    settings = Settings()
    if args.db:
        settings.database_url = args.db
    socket_mode = bool(settings.slack_app_token) and not args.http
    _check_token_kind("SLACK_APP_TOKEN", secret(settings.slack_app_token), "xapp-",
                      "the app-level token of Basic Information > App-Level Tokens")
    _check_token_kind("SLACK_BOT_TOKEN", secret(settings.slack_bot_token), "xoxb-",
                      "the Bot User OAuth Token of OAuth & Permissions")
    missing = []
    if not settings.slack_signing_secret and not socket_mode:  # Socket Mode signs nothing
        missing.append("SLACK_SIGNING_SECRET")
    if not settings.oauth and not settings.slack_bot_token:
        missing.append("SLACK_BOT_TOKEN (or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET for OAuth)")
    if missing:
        raise CliError(f"missing {' and '.join(missing)}: copy .env.example to .env and fill them in "
                       "(README, section Connect to Slack)")
    configure_logging()
    bot = bootstrap(settings, store=_store(args))
    bot.scheduler.start()
    if socket_mode:
        serve_socket_mode(bot.app, secret(settings.slack_app_token))
    else:
        serve_http(bot, args.host or settings.kpibot_host, args.port or settings.kpibot_port)
    return 0


_TOKEN_KIND = re.compile(r"(xox[a-z]|xapp)-")


def _check_token_kind(variable: str, token: str, prefix: str, what: str) -> None:
    """A token of the wrong kind (a user token as the bot token, the two swapped) is refused
    before anything starts, naming the variable and never showing the secret."""
    if not token or token.startswith(prefix):
        return
    kind = _TOKEN_KIND.match(token)
    got = f"; it starts with {kind.group(0)}" if kind else ""
    raise CliError(f"{variable} must start with {prefix} ({what}){got}")


def cmd_token(args: argparse.Namespace) -> int:
    """API tokens of a workspace: the secret is printed once, only its hash is kept."""
    from bot.app import tokens
    from bot.render.tokens import revoked_text, token_line

    ctx = _context(args, _store(args))
    zone = ctx.workspace.timezone
    if args.action == "create":
        new = tokens.create_token(ctx, args.name)
        print(f"Token {new.token.id} ({new.token.name}) for {ctx.workspace.id}; "
              "shown only now, keep it safe:")
        print(new.secret)
    elif args.action == "list":
        for t in tokens.tokens(ctx):
            print(token_line(t, zone))
    else:
        if args.id is None or not args.id.isdigit():
            raise CliError("token revoke takes the token's id (see kpibot token list)")
        print(revoked_text(tokens.revoke_token(ctx, int(args.id))))
    return 0


#: subcommands that are `/kpi` commands typed in a terminal, with the words of interface.md
SLASH_COMMANDS = {
    "define": ("KEY = FORMULA [as UNIT] [higher|lower]", "a custom KPI, the same as /kpi define"),
    "metric": ("add KEY [UNIT] [sum|last|mean] [LABEL ...] | remove KEY",
               "the team's own input metrics, the same as /kpi metric"),
    "dimension": ("add NAME [VALUE ...] | remove NAME",
                  "the team's own dimensions, the same as /kpi dimension"),
    "dimensions": ("", "the built-in and the team's own dimensions, the same as /kpi dimensions"),
    "source": ("[NAME paid|organic]", "how a source value counts for paid CAC and paid CPL "
                                      "(none: list them), the same as /kpi source"),
    "track": ("[NAME ...]", "exactly these metrics are asked for in the log form, App Home and "
                            "reminders (none: list them), the same as /kpi track"),
    "why": ("NAME [RANGE]", "what moved a KPI against the previous period, the same as /kpi why"),
    "whatif": ("STEP=+N% ...", "a funnel projection over the last 30 days, the same as /kpi whatif"),
}


def cmd_slash(args: argparse.Namespace) -> int:
    """A `/kpi` command from the terminal: the grammar parses the words, the registry runs the
    same use case and renderer as Slack, and the answer is printed as plain text.

    The operator at the terminal is an admin (`Spec.admin` is not asked), but changes go through
    the same use cases, so they are stored with the same checks and the same author fields. A
    terminal has no fold and no Show all button: what folds in Slack is printed in full."""
    from bot.grammar import FOLDED, Folded, parse_command
    from bot.registry import spec_for
    from bot.render.text import terminal_text

    command = parse_command(" ".join([args.command, *args.words]))
    if isinstance(command, tuple(FOLDED.values())):
        command = dataclasses.replace(cast(Folded, command), full=True)
    spec = spec_for(command)
    if spec.form:
        usage, _ = SLASH_COMMANDS[args.command]
        raise CliError(f"give the words here (Slack opens a form for them): kpibot {args.command} {usage}")
    ctx = _context(args, _store(args), create=spec.admin is not None)
    reply = spec.run(ctx)
    if not isinstance(reply, dict):
        raise CliError(f"{args.command} answers with a file or a form in Slack, not text")
    print(terminal_text(reply), end="")
    return 0


def cmd_workspace(args: argparse.Namespace) -> int:
    """`workspace delete ID --yes`: every row of the workspace, from every table, for good."""
    from bot.app.lifecycle import delete_workspace

    store = _store(args)
    if store.workspace(args.id) is None:
        known = ", ".join(store.workspace_ids()) or "none"
        raise CliError(f"there is no workspace {args.id} (workspaces: {known})")
    if not args.yes:
        raise CliError(f"this deletes every number, rule, schedule and token of {args.id} for "
                       f"good; to do it, run: kpibot workspace delete {args.id} --yes")
    deleted = delete_workspace(store, args.id, actor=getattr(args, "as_user", None) or _local_user(),
                               now=_now())
    rows = ", ".join(f"{table} {n}" for table, n in deleted.rows.items())
    print(f"Deleted workspace {deleted.workspace_id}: {deleted.total} rows ({rows}).")
    return 0


def cmd_webhook(args: argparse.Namespace) -> int:
    from bot.app.tokens import set_stripe_secret

    ctx = _context(args, _store(args))
    set_stripe_secret(ctx, args.secret)
    print(f"Stored the Stripe endpoint secret; point Stripe at /webhooks/stripe/{ctx.workspace.id}")
    return 0


# -- parser ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--db", default=argparse.SUPPRESS, help="SQLAlchemy URL (overrides DATABASE_URL)")
    common.add_argument("--workspace", default=argparse.SUPPRESS,
                        help="workspace id (team_id); default: the only one, or `local`")
    parser = _Parser(prog="kpibot", parents=[common],
                                     description="Team KPIs: log numbers, report, digests, alerts.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(handler=handler)
        return p

    p = add("log", cmd_log, "log numbers, the same as /kpi log")
    p.add_argument("values", nargs="+", metavar="METRIC=VALUE")
    p.add_argument("--date", help="YYYY-MM-DD, today or yesterday (default today)")
    p.add_argument("--as", dest="as_user", help="author (default: your user name)")
    p.add_argument("--dim", action="append", metavar="NAME=VALUE", help="source, rep, campaign, product or one of the team's own")

    p = add("report", cmd_report, "KPIs for a period against the previous one")
    p.add_argument("words", nargs="*", metavar="RANGE|NAME",
                   help="one period (today, yesterday, week, last-week, month, last-month, 7d, 30d, "
                        "90d or A..B) and any KPIs or metrics, in any order")
    p.add_argument("--from", dest="start")
    p.add_argument("--to", dest="end")
    p.add_argument("--dim", action="append", metavar="NAME=VALUE",
                   help="only entries with this source, rep, campaign, product or "
                        "one of the team's own")
    p.add_argument("--by", metavar="DIM", help="one group per value of this dimension")
    p.add_argument("--json", action="store_true")

    p = add("import", cmd_import, "import entries from a CSV file (all or nothing)")
    p.add_argument("file")
    p.add_argument("--as", dest="as_user", help="author of rows without one")

    p = add("export", cmd_export, "export entries as CSV to standard output")
    p.add_argument("--from", dest="start")
    p.add_argument("--to", dest="end")

    p = add("digest", cmd_digest, "render a daily or weekly digest to files, or post it")
    p.add_argument("kind", choices=["daily", "weekly"])
    p.add_argument("--date", help="a day of the period (default: yesterday, or last week)")
    p.add_argument("--out", metavar="DIR", help="write the charts, Markdown and Block Kit JSON here")
    p.add_argument("--post", metavar="CHANNEL", help="post it to this channel id")
    p.add_argument("--by", choices=["source"],
                   help="add each source's biggest move (a channel's schedule `by source` "
                        "adds it to --post by itself)")

    p = add("alerts", cmd_alerts, "alert rules and their state")
    p.add_argument("--json", action="store_true")

    p = add("db", cmd_db, "database maintenance")
    p.add_argument("action", choices=["upgrade"])

    p = add("serve", cmd_serve, "run the Slack bot (Socket Mode with SLACK_APP_TOKEN, else HTTP)")
    p.add_argument("--http", action="store_true", help="HTTP even when SLACK_APP_TOKEN is set")
    p.add_argument("--port", type=int, help="HTTP port (default KPIBOT_PORT or 3000)")
    p.add_argument("--host", help="HTTP interface (default KPIBOT_HOST or 0.0.0.0)")

    p = add("token", cmd_token, "API tokens: create (shown once), list, revoke")
    p.add_argument("action", choices=["create", "list", "revoke"])
    p.add_argument("id", nargs="?", help="the token id to revoke")
    p.add_argument("--name", help="who uses the token, e.g. zapier (create)")

    for name, (usage, about) in SLASH_COMMANDS.items():
        p = add(name, cmd_slash, about)
        p.add_argument("words", nargs="*", metavar=usage)
        p.add_argument("--as", dest="as_user", help="who makes the change (default: your user name)")

    p = add("webhook", cmd_webhook, "store a webhook's endpoint secret")
    p.add_argument("provider", choices=["stripe"])
    p.add_argument("--secret", required=True, help="the endpoint's signing secret, whsec_...")

    p = add("workspace", cmd_workspace, "delete a workspace and every row it has, for good")
    p.add_argument("action", choices=["delete"])
    p.add_argument("id", metavar="ID", help="the workspace id (team_id), e.g. T0123ABCD")
    p.add_argument("--yes", action="store_true", help="really delete it (there is no undo)")
    p.add_argument("--as", dest="as_user", help="who deletes it, for the audit log (default: you)")

    p = add("demo", cmd_demo, "fill a demo database and render the report and digests")
    p.add_argument("--out", default="demo-out")

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("db", "workspace"):
        if not hasattr(args, name):
            setattr(args, name, None)
    try:
        return int(args.handler(args))
    except (CliError, UserError, CommandError) as error:
        message = str(error).replace("`", "").splitlines()[0]
        print(f"kpibot {args.command}: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OperationalError as error:
        print(f"kpibot {args.command}: the database is not answering ({error.orig.__class__.__name__}); "
              "try again", file=sys.stderr)
        return 1
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
