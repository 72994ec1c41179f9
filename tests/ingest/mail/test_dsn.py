"""Reading bounces: the returned message's Message-ID and the reason, from the shapes
MTAs send (RFC 3464 reports with the message or only its headers, plain-text bounces),
and never an exception on a broken one."""

from __future__ import annotations

import pytest

from ingest.mail.dsn import MAX_REASON_CHARS, read_bounce
from tests.helpers import MAIL

OURS = "<sellerdesk.5f2c0e9a7b3d4c1e8f6a2b9d0c7e5a31@helpdesk.test>"

POSTFIX_HEADERS_ONLY = f"""\
Return-Path: <>
From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
To: uk-chan01@helpdesk.test
Subject: Undelivered Mail Returned to Sender
Message-ID: <20261205101500.ABC12@mx.example.net>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B1"

--B1
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.net.
I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

--B1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
Arrival-Date: Sat,  5 Dec 2026 10:14:59 +0000

Final-Recipient: rfc822; jane-x1y2@marketplace.amazon.co.uk
Original-Recipient: rfc822;jane-x1y2@marketplace.amazon.co.uk
Action: failed
Status: 5.1.1
Remote-MTA: dns; inbound-smtp.amazon.com
Diagnostic-Code: smtp; 550 5.1.1 <jane-x1y2@marketplace.amazon.co.uk>:
    Recipient address rejected: the buyer's alias has expired

--B1
Content-Type: text/rfc822-headers

From: Acme <uk-chan01@helpdesk.test>
To: jane-x1y2@marketplace.amazon.co.uk
Subject: Re: Where is my parcel?
Message-ID: {OURS}
In-Reply-To: <buyer-1@marketplace.amazon.co.uk>

--B1--
""".encode()

WHOLE_MESSAGE_RETURNED = f"""\
From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
To: uk-chan01@helpdesk.test
Subject: Delivery Status Notification (Failure)
Message-ID: <gm-1@mail.gmail.com>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="G"

--G
Content-Type: text/plain; charset=UTF-8

Address not found
--G
Content-Type: message/delivery-status

Reporting-MTA: dns; googlemail.com

Final-Recipient: rfc822; nobody@example.org
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550-5.1.1 The email account that you tried to reach does not exist.

--G
Content-Type: message/rfc822

From: Acme <uk-chan01@helpdesk.test>
To: nobody@example.org
Subject: Re: hello
Message-ID: {OURS}
Content-Type: text/plain

Thanks for your message.
--G--
""".encode()

PLAIN_TEXT = f"""\
From: MAILER-DAEMON@old.example.com
To: uk-chan01@helpdesk.test
Subject: failure notice
Message-ID: <qmail-1@old.example.com>
In-Reply-To: <something-else@example.com>

Hi. This is the qmail-send program at old.example.com.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<nobody@old.example.com>:
Sorry, no mailbox here by that name. (#5.1.1)

--- Below this line is a copy of the message.

From: Acme <uk-chan01@helpdesk.test>
Message-ID: {OURS}
Subject: Re: hello

Thanks.
""".encode()


def test_a_report_with_the_returned_headers_names_our_reply_and_the_reason():
    report = read_bounce(POSTFIX_HEADERS_ONLY)
    assert report.cited_ids[0] == OURS
    assert report.status == "5.1.1"
    # The status is in the diagnostic already: not said twice.
    assert report.reason == (
        "550 5.1.1 <jane-x1y2@marketplace.amazon.co.uk>: "
        "Recipient address rejected: the buyer's alias has expired"
    )


def test_a_report_returning_the_whole_message():
    report = read_bounce(WHOLE_MESSAGE_RETURNED)
    assert report.cited_ids == [OURS]
    assert report.reason.startswith("550-5.1.1 The email account")


def test_a_plain_text_bounce_quoting_the_message():
    report = read_bounce(PLAIN_TEXT)
    # The quoted copy's id first; the bounce's own In-Reply-To after it.
    assert report.cited_ids == [OURS, "<something-else@example.com>"]
    assert report.status is None
    assert report.reason.startswith("Hi. This is the qmail-send program")


def test_the_fixture_bounce_without_the_returned_message_cites_nothing():
    report = read_bounce((MAIL / "bounce.eml").read_bytes())
    assert report.cited_ids == []
    assert report.status == "5.1.1"
    # No Diagnostic-Code: the bounce's own words.
    assert report.reason == (
        "This is the mail system at host mx.example.net. Your message could not be delivered."
    )


def test_a_status_alone_is_the_reason_when_nothing_else_is_said():
    raw = (
        (MAIL / "bounce.eml")
        .read_bytes()
        .replace(
            b"This is the mail system at host mx.example.net. Your message could not be delivered.",
            b"",
        )
    )
    assert read_bounce(raw).reason == "delivery failed (5.1.1)"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"From: x\n\n",
        b'Content-Type: multipart/report; boundary="x"\n\n--x\nContent-Type: message/delivery-status\n\n\x00\xff\n',
        b"Content-Type: text/plain; charset=no-such-charset\n\n\xe9chec",
        # A NUL in the charset's name: bytes.decode raises ValueError, not LookupError
        # (found by `make verify`'s parser fuzzing).
        b"Content-Type: text/plain; charset=\x00s-ascii\n\n\xe9chec",
        b"Content-Transfer-Encoding: base64\nContent-Type: text/plain\n\n!!!not base64",
    ],
)
def test_broken_bounces_give_a_reason_and_never_raise(raw):
    report = read_bounce(raw)
    assert report.reason
    assert len(report.reason) <= MAX_REASON_CHARS


def test_a_long_reason_is_cut():
    raw = POSTFIX_HEADERS_ONLY.replace(b"the buyer's alias has expired", b"x" * 5000)
    assert len(read_bounce(raw).reason) == MAX_REASON_CHARS
