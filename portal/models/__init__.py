"""All models; importing this package registers every table on `db.metadata`."""

from portal.models.audit import AuditEvent
from portal.models.channels import Channel, ChannelStatus, Credential, CredentialKind
from portal.models.mailboxes import Mailbox
from portal.models.organisations import Organisation, agent_assignments
from portal.models.threads import (
    Attachment,
    Direction,
    Message,
    SendStatus,
    Thread,
    ThreadStatus,
)
from portal.models.users import Role, User

__all__ = [
    "Attachment",
    "AuditEvent",
    "Channel",
    "ChannelStatus",
    "Credential",
    "CredentialKind",
    "Direction",
    "Mailbox",
    "Message",
    "Organisation",
    "Role",
    "SendStatus",
    "Thread",
    "ThreadStatus",
    "User",
    "agent_assignments",
]
