"""What the mail sources (IMAP, Maildir, HTTP ingress) share: where to read, and what they hand over."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceSettings:
    """Where and how to read one mailbox (password included: never log this)."""

    kind: str  # "imap", "maildir" or "http" (mail posted to /inbound/<token>)
    path: str = ""
    host: str = ""
    port: int = 0
    security: str = "plain"  # plain | starttls | tls
    username: str = ""
    password: str = ""
    folder: str = "INBOX"
    processed_folder: str | None = None
    #: TLS: a private CA file instead of the system's, and whether to verify at all.
    ca_file: str | None = None
    verify: bool = True
    #: HTTP ingress: how deliveries are signed ("generic", "mailgun" or "ses").
    provider: str = ""
    #: An OAuth2 access token: log in with AUTHENTICATE XOAUTH2 instead of the password.
    oauth_token: str = ""

    def __repr__(self) -> str:  # keep the password out of logs and tracebacks
        return f"SourceSettings({self.describe()})"

    def describe(self) -> str:
        if self.kind == "maildir":
            return f"maildir:{self.path}"
        if self.kind == "http":
            return f"http ingress ({self.provider})"
        unverified = " (certificate not verified)" if not self.verify else ""
        oauth = " (XOAUTH2)" if self.oauth_token else ""
        return (
            f"{self.security} imap {self.username}@{self.host}:{self.port}/{self.folder}"
            f"{unverified}{oauth}"
        )


@dataclass
class FetchedMail:
    #: What `mark_processed` needs to find it again: an IMAP UID or a Maildir key.
    key: int | str
    uid: int | None
    raw: bytes
