"""The admin areas; each import registers that area's routes on the admin blueprint."""

from portal.admin import (  # noqa: F401
    audit,
    channels,
    mail,
    mailbox_oauth,
    mailboxes,
    outbox,
    people,
    sending,
    settings,
)
