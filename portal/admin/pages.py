"""The admin areas; each import registers that area's routes on the admin blueprint."""

from portal.admin import mail, mailboxes, outbox  # noqa: F401
