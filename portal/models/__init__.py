"""All models; importing this package registers every table on `db.metadata`."""

from portal.models.audit import AuditEvent
from portal.models.channels import (
    Channel,
    ChannelAlias,
    ChannelStatus,
    Credential,
    CredentialKind,
)
from portal.models.drafts import Draft, DraftAttachment
from portal.models.invitations import Invitation
from portal.models.mailboxes import (
    InboundReplay,
    Mailbox,
    MailboxOAuthState,
    MailboxPollHour,
    MailboxRemoval,
    SendingMailbox,
)
from portal.models.orders import Order
from portal.models.organisations import Organisation, agent_assignments
from portal.models.presence import ThreadPresence
from portal.models.ratelimits import LoginLockout, RateLimitCounter
from portal.models.reports import ReportSnapshot
from portal.models.sessions import SpapiState, UserSession
from portal.models.settings import Setting
from portal.models.threads import (
    Attachment,
    CannedReply,
    Direction,
    Message,
    NoResponseMark,
    SendStatus,
    Tag,
    Thread,
    ThreadStatus,
    thread_tags,
)
from portal.models.two_factor import Passkey, RecoveryCode, TrustedBrowser
from portal.models.users import OrgRole, Role, User

__all__ = [
    "Attachment",
    "AuditEvent",
    "CannedReply",
    "Channel",
    "ChannelAlias",
    "ChannelStatus",
    "Credential",
    "CredentialKind",
    "Direction",
    "Draft",
    "DraftAttachment",
    "InboundReplay",
    "Invitation",
    "LoginLockout",
    "Mailbox",
    "MailboxOAuthState",
    "MailboxPollHour",
    "MailboxRemoval",
    "Message",
    "NoResponseMark",
    "Order",
    "OrgRole",
    "Passkey",
    "Organisation",
    "RateLimitCounter",
    "RecoveryCode",
    "ReportSnapshot",
    "Role",
    "SendStatus",
    "SendingMailbox",
    "Setting",
    "SpapiState",
    "Tag",
    "Thread",
    "ThreadPresence",
    "ThreadStatus",
    "TrustedBrowser",
    "User",
    "UserSession",
    "agent_assignments",
    "thread_tags",
]
