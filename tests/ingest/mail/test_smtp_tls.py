"""SMTP over verified TLS, against the suite's aiosmtpd serving certificates it makes."""

from __future__ import annotations

import pytest

from ingest.mail.smtp import TemporarySendError, parse_smtp_url, send_raw
from tests.servers import SmtpServer

pytestmark = pytest.mark.smtp

RAW = b"From: a@shop.test\r\nTo: b@buyer.test\r\nSubject: hi\r\nMessage-ID: <1@shop.test>\r\n\r\nHi\r\n"


@pytest.fixture(scope="module")
def tls_smtp(test_pki):
    """tls_smtp(kind, implicit): an SMTP sink with TLS, started on first use."""
    servers: dict[tuple[str, bool], SmtpServer] = {}

    def get(kind: str, implicit: bool) -> SmtpServer:
        if (kind, implicit) not in servers:
            files = getattr(test_pki, kind)
            server = SmtpServer(tls=(files.cert, files.key), implicit_tls=implicit)
            server.start()
            servers[kind, implicit] = server
        return servers[kind, implicit]

    yield get
    for server in servers.values():
        server.stop()


def _send(server, scheme, query):
    transport = parse_smtp_url(f"{scheme}://127.0.0.1:{server.port}{query}")
    return send_raw(
        transport, sender="a@shop.test", recipients=["b@buyer.test"], raw=RAW, message_id="1"
    )


@pytest.mark.parametrize(("scheme", "implicit"), [("smtps", True), ("smtp+starttls", False)])
def test_a_good_certificate_from_the_private_ca_is_accepted(tls_smtp, test_pki, scheme, implicit):
    server = tls_smtp("good", implicit)
    _send(server, scheme, f"?ca={test_pki.ca}")
    assert server.wait_for_messages(1)[-1].message["Subject"] == "hi"


@pytest.mark.parametrize("kind", ["wrong_host", "expired", "unknown_ca"])
@pytest.mark.parametrize(("scheme", "implicit"), [("smtps", True), ("smtp+starttls", False)])
def test_a_bad_certificate_is_refused_and_nothing_is_sent(
    tls_smtp, test_pki, kind, scheme, implicit
):
    server = tls_smtp(kind, implicit)
    with pytest.raises(TemporarySendError, match="certificate verify failed"):
        _send(server, scheme, f"?ca={test_pki.ca}")
    assert server.messages == []


def test_verify_0_sends_despite_a_bad_certificate(tls_smtp):
    server = tls_smtp("expired", True)
    _send(server, "smtps", "?verify=0")
    assert len(server.wait_for_messages(1)) == 1
