"""All models; importing this package registers every table on `db.metadata`."""

from portal.models.audit import AuditEvent
from portal.models.channels import Channel, ChannelStatus, Credential, CredentialKind
from portal.models.mailboxes import Mailbox
from portal.models.organisations import Organisation, agent_assignments
from portal.models.threads import (
    Attachment,
    CannedReply,
    Direction,
    Message,
    SendStatus,
    Tag,
    Thread,
    ThreadStatus,
    thread_tags,
)
from portal.models.users import Role, User

__all__ = [
    "Attachment",
    "AuditEvent",
    "CannedReply",
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
    "Tag",
    "Thread",
    "ThreadStatus",
    "User",
    "agent_assignments",
    "thread_tags",
]
