"""The TLS options of mail URLs (`?ca=`, `?verify=`): parsed in one place, kept on the URL."""

from __future__ import annotations

import ssl

import pytest

from ingest.mail.compose import MailError
from ingest.mail.smtp import parse_smtp_url
from ingest.mail.tls import TlsOptionError, client_context, tls_options
from portal.services.mailboxes import (
    MailSourceError,
    parse_source_url,
    source_url_without_password,
)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", (None, True)),
        ("ca=/etc/ca.pem", ("/etc/ca.pem", True)),
        ("verify=0", (None, False)),
        ("verify=1&ca=/x.pem", ("/x.pem", True)),
        ("processed=Done&verify=no", (None, False)),
    ],
)
def test_tls_options(query, expected):
    assert tls_options(query) == expected


def test_a_verify_value_that_is_not_a_yes_or_no_is_refused():
    with pytest.raises(TlsOptionError, match="verify= must be 0 or 1"):
        tls_options("verify=maybe")


def test_the_default_context_verifies_and_verify_0_does_not():
    strict = client_context()
    assert (strict.verify_mode, strict.check_hostname) == (ssl.CERT_REQUIRED, True)
    loose = client_context(verify=False)
    assert (loose.verify_mode, loose.check_hostname) == (ssl.CERT_NONE, False)


def test_a_missing_ca_file_is_a_clear_error(tmp_path):
    with pytest.raises(TlsOptionError, match="cannot read the CA file"):
        client_context(ca_file=str(tmp_path / "nope.pem"))


def test_imap_url_keeps_its_tls_options_without_the_password():
    settings = parse_source_url("imaps://u:secret@mail.test/INBOX?ca=/etc/ca.pem&verify=0")
    assert (settings.ca_file, settings.verify) == ("/etc/ca.pem", False)
    public = source_url_without_password(settings)
    assert public == "imaps://u@mail.test:993/INBOX?ca=/etc/ca.pem&verify=0"
    assert "secret" not in public
    assert parse_source_url(public).ca_file == "/etc/ca.pem"
    assert "not verified" in settings.describe()


@pytest.mark.parametrize(
    "url", ["imap://u:p@mail.test/INBOX?verify=0", "imaps://u:p@mail.test/?verify=perhaps"]
)
def test_imap_tls_options_that_make_no_sense_are_refused(url):
    with pytest.raises(MailSourceError):
        parse_source_url(url)


def test_smtp_url_tls_options():
    transport = parse_smtp_url("smtps://u:p@smtp.test?ca=/etc/ca.pem")
    assert (transport.ca_file, transport.verify) == ("/etc/ca.pem", True)
    assert parse_smtp_url("smtp+starttls://smtp.test?verify=0").verify is False
    with pytest.raises(MailError, match="verify="):
        parse_smtp_url("smtps://smtp.test?verify=x")
