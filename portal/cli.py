"""Command-line interface: `flask --app wsgi …`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from werkzeug.serving import run_simple

from ingest.pipeline import PollSummary, poll_all, settle_worker_process
from ingest.scheduler import run_worker
from portal.extensions import db
from portal.models import Role, SendStatus
from portal.services import (
    buyer_data,
    http_ingress,
    mailbox_config,
    offboarding,
    outbox_delivery,
    two_factor,
)
from portal.services import channels as channel_service
from portal.services import export as export_service
from portal.services import keys as key_service
from portal.services import mailboxes as mailbox_service
from portal.services import outbox as outbox_service
from portal.services import reports as report_service
from portal.services import sessions as session_service
from portal.services import users as user_service
from portal.sqltypes import utcnow

users_cli = AppGroup("users", help="Manage users and their organisations.")


def _fail(message: str) -> None:
    raise click.ClickException(message)


@users_cli.command("create")
@click.option("--email", required=True)
@click.option("--password", required=True)
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option(
    "--org", "org_name", help="Organisation (sellers only); created when it does not exist."
)
@click.option("--name", default="", help="Display name.")
def create_user_command(
    email: str, password: str, role: str, org_name: str | None, name: str
) -> None:
    """Create a user."""
    organisation = None
    try:
        if org_name:
            organisation = user_service.get_or_create_organisation(org_name, actor=None)
        user = user_service.create_user(
            email, password, role=Role(role), organisation=organisation, name=name
        )
    except user_service.AccountError as exc:
        db.session.rollback()
        _fail(str(exc))
    db.session.commit()
    where = f" in {organisation.name}" if organisation else ""
    click.echo(f"Created {user.role.value} {user.email}{where}.")


@users_cli.command("assign")
@click.option("--email", required=True, help="The agent's e-mail.")
@click.option("--org", "org_name", required=True, help="The organisation to assign them to.")
def assign_command(email: str, org_name: str) -> None:
    """Assign an agent to an organisation."""
    agent = user_service.find_user_by_email(email)
    if agent is None:
        _fail(f"No user with the e-mail {email}.")
    organisation = user_service.find_organisation(org_name)
    if organisation is None:
        _fail(f"No organisation called {org_name!r}.")
    try:
        added = user_service.assign_agent(agent, organisation, actor=None)
    except user_service.AccountError as exc:
        _fail(str(exc))
    db.session.commit()
    if added:
        click.echo(f"Assigned {agent.email} to {organisation.name}.")
    else:
        click.echo(f"{agent.email} was already assigned to {organisation.name}.")


@users_cli.command("end-sessions")
@click.option("--email", required=True, help="The user to sign out everywhere.")
def end_sessions_command(email: str) -> None:
    """Sign a user out of every browser (audited); prints `ended<TAB>N<TAB>EMAIL`."""
    user = user_service.find_user_by_email(email)
    if user is None:
        _fail(f"No user with the e-mail {email}.")
    ended = session_service.end_sessions_by_admin(user, actor=None)
    db.session.commit()
    click.echo(f"ended\t{ended}\t{user.email}")


@users_cli.command("totp")
@click.option("--email", required=True, help="The user to enrol.")
def totp_command(email: str) -> None:
    """Enrol a user in TOTP two-factor sign-in; print `EMAIL<TAB>SECRET` once.

    Replaces any earlier authenticator and recovery codes and ends the user's sign-ins.
    """
    user = user_service.find_user_by_email(email)
    if user is None:
        _fail(f"No user with the e-mail {email}.")
    secret = two_factor.provision_totp(user, now=utcnow(), actor=None)
    db.session.commit()
    click.echo(f"{user.email}\t{secret}")


@users_cli.command("reset-two-factor")
@click.option("--email", required=True, help="The user whose second factor to remove.")
def reset_two_factor_command(email: str) -> None:
    """Remove a user's second factor (a lost phone) and end their sign-ins; print
    `EMAIL<TAB>reset`. Admins and agents enrol again at their next login."""
    user = user_service.find_user_by_email(email)
    if user is None:
        _fail(f"No user with the e-mail {email}.")
    two_factor.reset_second_factor(user, actor=None)
    db.session.commit()
    click.echo(f"{user.email}\treset")


@users_cli.command("bootstrap-admin")
@click.option("--email", default=None, help="Defaults to admin@INBOUND_DOMAIN.")
def bootstrap_admin_command(email: str | None) -> None:
    """On an empty install, create an admin and print its one-time password."""
    email = email or f"admin@{current_app.config['INBOUND_DOMAIN']}"
    created = user_service.ensure_first_admin(email)
    if created is None:
        return
    db.session.commit()
    user, password = created
    click.echo(
        "\n  First run: created the admin account\n"
        f"    e-mail:   {user.email}\n"
        f"    password: {password}   (one-time: you choose your own at first login)\n"
    )


@click.command("run-all")
@click.option("--host", default="127.0.0.1", show_default=True)
def run_all_command(host: str) -> None:
    """Run the web server and the ingest worker together; Ctrl-C stops both."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    port = app.config["PORT"]
    worker = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "ingest", "run"],
        env=os.environ.copy(),
    )
    click.echo(
        f"Sellerdesk on http://{host}:{port}/ (ingest worker pid {worker.pid}); Ctrl-C stops both."
    )
    # `kill` (SIGTERM) stops both too: it becomes the same clean exit as Ctrl-C.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    try:
        # app.run() refuses to start inside a `flask` command; serve directly.
        run_simple(host, port, app, threaded=True, use_reloader=False, use_debugger=False)
    finally:
        # Ctrl-C in a terminal has reached the worker already (same process group):
        # a second SIGINT would cut its shutdown short. Let it finish its pass, then
        # ask with SIGTERM (a clean stop too), and only then insist.
        try:
            worker.wait(timeout=5)
        except subprocess.TimeoutExpired:
            worker.terminate()
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()


channels_cli = AppGroup("channels", help="Manage sellers' Amazon channels.")


@channels_cli.command("add")
@click.option("--org", "org_name", required=True, help="The seller's organisation.")
@click.option("--marketplace", required=True, help="Marketplace code, e.g. UK, DE, US, JP.")
def channels_add_command(org_name: str, marketplace: str) -> None:
    """Add a channel as the seller would, and print its helpdesk address."""
    organisation = user_service.find_organisation(org_name)
    if organisation is None:
        _fail(f"No organisation called {org_name!r}.")
    try:
        channel = channel_service.create_channel(
            organisation,
            marketplace,
            actor=None,
            inbound_domain=current_app.config["INBOUND_DOMAIN"],
        )
    except channel_service.ChannelError as exc:
        db.session.rollback()
        _fail(str(exc))
    db.session.commit()
    click.echo(channel.helpdesk_address)


@channels_cli.command("list")
@click.option("--org", "org_name", default=None, help="Only this organisation's channels.")
def channels_list_command(org_name: str | None) -> None:
    """Print every channel: organisation, marketplace, helpdesk address, status."""
    organisation_id = None
    if org_name:
        organisation = user_service.find_organisation(org_name)
        if organisation is None:
            _fail(f"No organisation called {org_name!r}.")
        organisation_id = organisation.id
    for row in channel_service.list_channels(None, organisation_id=organisation_id):
        channel = row.channel
        last = (
            channel.last_message_at.strftime("%Y-%m-%d %H:%M") if channel.last_message_at else "-"
        )
        click.echo(
            "\t".join(
                [
                    channel.organisation.name,
                    channel.marketplace,
                    channel.helpdesk_address,
                    channel.status.value,
                    f"last_message={last}",
                    f"messages_7d={row.messages_7d}",
                ]
            )
        )


ingest_cli = AppGroup("ingest", help="Fetch buyer mail from the mailboxes.")


@ingest_cli.command("run")
def ingest_run_command() -> None:
    """Run the ingest worker: poll every POLL_SECONDS until stopped."""
    run_worker(current_app._get_current_object())  # type: ignore[attr-defined]


#: At most this many passes in one `ingest poll` (mail arriving faster than it is stored).
MAX_POLL_PASSES = 10


@ingest_cli.command("poll")
def ingest_poll_command() -> None:
    """Poll every mailbox, again while mail arrived during the pass, and print a one-line
    summary ending in waiting=N: the mail still waiting at the end (0: caught up)."""
    settle_worker_process()
    total = PollSummary()
    for _ in range(MAX_POLL_PASSES):
        summary = poll_all()
        total.add(summary)
        # What each mailbox's poll saw beyond what it fetched, from the same search a
        # next pass would begin with: a catch-up run (and bench/ingest.py) learns here
        # that it is done, rather than paying a second start-up to find nothing.
        waiting = mailbox_service.mail_waiting()
        if summary.errors or not summary.fetched or not waiting:
            break
    click.echo(f"{total.line()} waiting={waiting}")
    if total.errors:
        sys.exit(1)


mailboxes_cli = AppGroup("mailboxes", help="The mailboxes ingest reads (as in the admin console).")


@mailboxes_cli.command("add")
@click.option("--name", required=True)
@click.option(
    "--url",
    required=True,
    help="imaps://USER@HOST[:PORT]/FOLDER (also imap+starttls://, imap://; ?ca=PATH, "
    "?verify=0, ?processed=FOLDER), maildir:PATH, or http-ingress:// for mail posted over "
    "HTTP (?provider=generic, mailgun or ses; Mailgun's signing key as the password).",
)
@click.option("--password", default=None, help="Visible to other users: prefer --password-stdin.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def mailboxes_add_command(name: str, url: str, password: str | None, password_stdin: bool) -> None:
    """Add a mailbox (audited); its password is stored encrypted."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    if url.strip().startswith("http-ingress:"):
        _add_http_mailbox(name, url.strip(), password)
        return
    try:
        mailbox = mailbox_config.create_mailbox_from_url(
            actor=None, name=name, url=url, password=password
        )
    except mailbox_config.MailboxConfigError as exc:
        db.session.rollback()
        _fail(str(exc))
    db.session.commit()
    click.echo(f"added\t{mailbox.name}\t{mailbox.source_url}")


def _add_http_mailbox(name: str, url: str, signing_key: str | None) -> None:
    # The path token (and a generated signing key) exist only in this output.
    try:
        provider = mailbox_service.parse_source_url(url).provider
        new = http_ingress.create_http_mailbox(
            actor=None, name=name, provider=provider, signing_key=signing_key
        )
    except (mailbox_config.MailboxConfigError, mailbox_service.MailSourceError) as exc:
        db.session.rollback()
        _fail(str(exc))
    db.session.commit()
    click.echo(f"added\t{new.mailbox.name}\t{new.mailbox.source_url}")
    click.echo(f"path\t/inbound/{new.token}")
    if new.signing_key:
        click.echo(f"signing_key\t{new.signing_key}")


def _kind(mailbox) -> str:
    return mailbox.source_url.partition(":")[0]


def _when(value) -> str:
    return value.isoformat(timespec="seconds") if value else ""


@mailboxes_cli.command("list")
def mailboxes_list_command() -> None:
    """One line per mailbox: name, kind, state, last success, last error (tab-separated)."""
    click.echo("name\tkind\tstate\tlast_success\tlast_error")
    for mailbox in mailbox_config.list_mailboxes():
        if not mailbox.is_enabled:
            state = "disabled"
        elif mailbox.consecutive_failures:
            state = "failing"
        else:
            state = "ok" if mailbox.last_success_at else "new"
        if mailbox_config.is_unverified(mailbox):
            state += ",unverified"
        error = " ".join((mailbox.last_error or "").split()) if mailbox.consecutive_failures else ""
        click.echo(
            f"{mailbox.name}\t{_kind(mailbox)}\t{state}\t{_when(mailbox.last_success_at)}\t{error}"
        )


@mailboxes_cli.command("test")
@click.option("--name", required=True)
def mailboxes_test_command(name: str) -> None:
    """Connect, log in and open the folder as a poll would; exit 1 on failure."""
    try:
        mailbox = mailbox_config.get_mailbox(name)
    except mailbox_config.MailboxConfigError as exc:
        _fail(str(exc))
    check = mailbox_config.check_connection(mailbox)
    click.echo(f"{'ok' if check.ok else 'failed'}\t{mailbox.name}\t{check.message}")
    if not check.ok:
        sys.exit(1)


@mailboxes_cli.command("remove")
@click.option("--name", required=True)
def mailboxes_remove_command(name: str) -> None:
    """Remove a mailbox (audited); the mail stored from it stays."""
    try:
        mailbox = mailbox_config.get_mailbox(name)
        mailbox_config.remove_mailbox(mailbox, actor=None)
    except mailbox_config.MailboxConfigError as exc:
        db.session.rollback()
        _fail(str(exc))
    db.session.commit()
    click.echo(f"removed\t{name}")


@mailboxes_cli.command("unpin-topic")
@click.option("--name", required=True)
def mailboxes_unpin_topic_command(name: str) -> None:
    """Forget an SES mailbox's SNS topic (audited): the next confirmed subscription pins
    its own. For moving the mailbox to a new topic."""
    try:
        mailbox = mailbox_config.get_mailbox(name)
        previous = http_ingress.unpin_sns_topic(actor=None, mailbox=mailbox)
    except mailbox_config.MailboxConfigError as exc:
        db.session.rollback()
        _fail(str(exc))
    db.session.commit()
    click.echo(f"unpinned\t{name}\t{previous or '-'}")


outbox_cli = AppGroup("outbox", help="Replies waiting to go out by SMTP.")


@outbox_cli.command("send")
def outbox_send_command() -> None:
    """Send every due pending reply once and print a one-line summary."""
    summary = outbox_delivery.deliver_pending(limit=1000)
    click.echo(summary.line())
    if summary.failed or summary.retrying:
        sys.exit(1)


@outbox_cli.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include sent and cancelled replies.")
def outbox_list_command(show_all: bool) -> None:
    """Print pending and failed replies (tab-separated), with their last error."""
    statuses = list(SendStatus) if show_all else [SendStatus.PENDING, SendStatus.FAILED]
    for message in outbox_service.list_outbox(statuses=statuses, limit=10_000):
        next_at = (
            message.next_attempt_at.strftime("%Y-%m-%d %H:%M:%S")
            if message.next_attempt_at
            else "-"
        )
        click.echo(
            "\t".join(
                [
                    str(message.id),
                    message.send_status.value if message.send_status else "-",
                    f"attempts={message.send_attempts}",
                    f"next={next_at}",
                    message.to_addresses,
                    message.message_id,
                    " ".join(message.subject.split()),
                    " ".join((message.last_send_error or "").split()),
                ]
            )
        )


@click.command("export")
@click.option("--jsonl", is_flag=True, help="JSON Lines: one object per message (required).")
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write to FILE (atomically) instead of standard output.",
)
@click.option(
    "--org", "org_name", metavar="NAME", default=None, help="Only this organisation's messages."
)
def export_command(jsonl: bool, out_path: str | None, org_name: str | None) -> None:
    """Export every stored message (or one organisation's) as JSON Lines."""
    if not jsonl:
        raise click.UsageError("Pass --jsonl: JSON Lines is the only export format for now.")
    organisation = None
    if org_name:
        organisation = user_service.find_organisation(org_name)
        if organisation is None:
            _fail(f"No organisation called {org_name!r}.")
    if out_path is None or out_path == "-":
        count = export_service.write_jsonl(sys.stdout.buffer, organisation=organisation)
        destination = "stdout"
    else:
        try:
            count = export_service.write_jsonl_file(out_path, organisation=organisation)
        except OSError as exc:
            _fail(f"Cannot write {out_path}: {exc.strerror or exc}")
        destination = out_path
    click.echo(f"exported {count} messages to {destination}", err=True)


keys_cli = AppGroup("keys", help="The key that encrypts stored secrets (TOKEN_KEY).")


@keys_cli.command("rotate")
@click.option(
    "--new-key",
    envvar="NEW_TOKEN_KEY",
    show_envvar=True,
    help="The new Fernet key (prefer the environment variable: a command line is visible "
    "to other users in `ps`).",
)
def keys_rotate_command(new_key: str | None) -> None:
    """Re-encrypt every stored secret from the current TOKEN_KEY to a new key, in one transaction."""
    if not new_key:
        _fail(
            "Give the new key in NEW_TOKEN_KEY (or --new-key). Generate one with: "
            'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
        )
    try:
        summary = key_service.rotate_token_key(
            old_key=current_app.config["TOKEN_KEY"], new_key=new_key
        )
    except key_service.KeyRotationError as exc:
        db.session.rollback()
        _fail(str(exc))
    db.session.commit()
    click.echo(summary.line())
    click.echo(
        "Done. Now set TOKEN_KEY to the new key (the environment, or instance/token_key for a "
        "local install) and restart the web and ingest processes.",
        err=True,
    )


@click.command("report")
@click.option("--org", "org_name", required=True, help="The seller's organisation.")
@click.option("--days", default=30, show_default=True, type=click.IntRange(1, 3660))
def report_command(org_name: str, days: int) -> None:
    """Print Amazon's 24-hour response metric per channel and in total (tab-separated)."""
    organisation = user_service.find_organisation(org_name)
    if organisation is None:
        _fail(f"No organisation called {org_name!r}.")
    now = utcnow()
    rows = report_service.channel_report(
        organisation_ids=[organisation.id], start=now - timedelta(days=days), end=now, now=now
    )
    click.echo("\t".join(report_service.REPORT_COLUMNS))
    for figures in rows:
        click.echo("\t".join(report_service.report_row(figures)))


buyers_cli = AppGroup(
    "buyers", help="Buyer data: erasure and subject access export of one buyer (issue 23)."
)


@buyers_cli.command("erase")
@click.option("--org", "org_name", required=True, metavar="NAME", help="The organisation.")
@click.option(
    "--email",
    "--alias",
    "address",
    required=True,
    metavar="ADDRESS",
    help="The buyer's e-mail address or Amazon relay alias.",
)
@click.option("--dry-run", is_flag=True, help="Only count what would be erased.")
def buyers_erase_command(org_name: str, address: str, dry_run: bool) -> None:
    """Erase everything the organisation holds about one buyer (threads stay as tombstones)."""
    organisation = user_service.find_organisation(org_name)
    if organisation is None:
        _fail(f"No organisation called {org_name!r}.")
    try:
        if dry_run:
            found = buyer_data.find_buyer_data(organisation, address, include_unassigned=True)
            if found.is_empty:
                _fail("Nothing is stored about this buyer in this organisation.")
            click.echo(f"would erase\tthreads={len(found.thread_ids)}\tmessages={found.messages}")
            return
        counts = buyer_data.erase_buyer(
            organisation, address, actor=None, now=utcnow(), include_unassigned=True
        )
    except buyer_data.BuyerDataError as exc:
        db.session.rollback()
        _fail(str(exc))
    db.session.commit()
    click.echo(
        "\t".join(
            [
                "erased",
                f"messages={counts.messages}",
                f"attachments={counts.attachments}",
                f"orders={counts.orders}",
                f"threads={counts.threads}",
                f"drafts={counts.drafts}",
            ]
        )
    )


@buyers_cli.command("export")
@click.option("--org", "org_name", required=True, metavar="NAME", help="The organisation.")
@click.option(
    "--email",
    "--alias",
    "address",
    required=True,
    metavar="ADDRESS",
    help="The buyer's e-mail address or Amazon relay alias.",
)
@click.option(
    "--out",
    "--output",
    "out_path",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write to FILE (atomically) instead of standard output.",
)
def buyers_export_command(org_name: str, address: str, out_path: str | None) -> None:
    """Write what the organisation holds about one buyer as JSON Lines (subject access)."""
    organisation = user_service.find_organisation(org_name)
    if organisation is None:
        _fail(f"No organisation called {org_name!r}.")
    try:
        found = export_service.find_buyer_export(organisation, address, include_unassigned=True)
    except buyer_data.BuyerDataError as exc:
        _fail(str(exc))
    if found.is_empty:
        _fail("Nothing is stored about this buyer in this organisation.")
    if out_path is None or out_path == "-":
        count = export_service.write_jsonl(
            sys.stdout.buffer, organisation=organisation, records=found.records()
        )
        destination = "stdout"
    else:
        try:
            count = export_service.write_jsonl_file(
                out_path, organisation=organisation, records=found.records()
            )
        except OSError as exc:
            db.session.rollback()
            _fail(f"Cannot write {out_path}: {exc.strerror or exc}")
        destination = out_path
    export_service.record_buyer_export(organisation, found, actor=None)
    db.session.commit()
    click.echo(
        f"exported\tmessages={len(found.message_ids)}\torders={len(found.order_keys)}"
        f"\tlines={count}\tto={destination}",
        err=True,
    )


orgs_cli = AppGroup("orgs", help="Organisations: closing (offboarding) and reopening.")


@orgs_cli.command("close")
@click.option("--org", "org_name", required=True, metavar="NAME", help="The organisation.")
@click.option(
    "--grace-days",
    type=click.IntRange(0, 3650),
    default=None,
    help="Days before its buyer data is erased [default: OFFBOARDING_GRACE_DAYS].",
)
def orgs_close_command(org_name: str, grace_days: int | None) -> None:
    """Close an organisation: channels disabled, Amazon authorisations deleted, users
    signed out and disabled; its buyer data is erased after the grace period."""
    organisation = user_service.find_organisation(org_name)
    if organisation is None:
        _fail(f"No organisation called {org_name!r}.")
    if grace_days is None:
        grace_days = current_app.config["OFFBOARDING_GRACE_DAYS"]
    try:
        done = offboarding.close_organisation(
            organisation, actor=None, now=utcnow(), grace_days=grace_days
        )
    except offboarding.OffboardingError as exc:
        db.session.rollback()
        _fail(str(exc))
    db.session.commit()
    click.echo(
        "\t".join(
            [
                "closed",
                organisation.name,
                f"channels_disabled={len(done.channels_disabled)}",
                f"authorisations_deleted={done.authorisations_deleted}",
                f"users_disabled={len(done.users_disabled)}",
                f"sessions_ended={done.sessions_ended}",
                f"erase_after={done.erase_after.isoformat()}",
            ]
        )
    )


@orgs_cli.command("reopen")
@click.option("--org", "org_name", required=True, metavar="NAME", help="The organisation.")
def orgs_reopen_command(org_name: str) -> None:
    """Reopen a closed organisation within its grace period."""
    organisation = user_service.find_organisation(org_name)
    if organisation is None:
        _fail(f"No organisation called {org_name!r}.")
    try:
        offboarding.reopen_organisation(organisation, actor=None, now=utcnow())
    except offboarding.OffboardingError as exc:
        db.session.rollback()
        _fail(str(exc))
    db.session.commit()
    click.echo(f"reopened\t{organisation.name}")


def init_app(app: Flask) -> None:
    app.cli.add_command(report_command)
    app.cli.add_command(users_cli)
    app.cli.add_command(run_all_command)
    app.cli.add_command(channels_cli)
    app.cli.add_command(ingest_cli)
    app.cli.add_command(mailboxes_cli)
    app.cli.add_command(export_command)
    app.cli.add_command(outbox_cli)
    app.cli.add_command(keys_cli)
    app.cli.add_command(buyers_cli)
    app.cli.add_command(orgs_cli)
