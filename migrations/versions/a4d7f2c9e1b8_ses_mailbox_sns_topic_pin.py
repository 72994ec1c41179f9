"""SES mailboxes remember the SNS topic they take mail from

Revision ID: a4d7f2c9e1b8
Revises: c1cbc83555f2
Create Date: 2026-12-06 20:15:00

Issue 24 (HTTP ingress, SES through SNS): SNS's signature proves only that a message
came from SNS, not from the seller's topic, so anyone who learns a mailbox's path token
could subscribe a topic of their own. The mailbox keeps the TopicArn of the first
verified message (services/http_ingress.py) and refuses every other topic.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "a4d7f2c9e1b8"
down_revision = "c1cbc83555f2"
branch_labels = None
depends_on = None


def upgrade():
    # Plain ALTER TABLE (not batch mode): a nullable column needs no table rebuild.
    op.add_column("mailboxes", sa.Column("sns_topic_arn", sa.String(length=500)))


def downgrade():
    op.drop_column("mailboxes", "sns_topic_arn")
