"""The admin areas; each import registers that area's routes on the admin blueprint."""

from portal.admin import audit, channels, mail, mailboxes, outbox, people, settings  # noqa: F401
