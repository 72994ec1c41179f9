"""The worker's retention pass: buyer data of closed threads kept no longer than needed.

Raw mail and attachments go a first period after a thread was closed, its texts (the
thread left as a tombstone) a second period after (the admins' settings, else
RAW_RETENTION_DAYS and TEXT_RETENTION_DAYS: services/settings.py); each batch is its own
transaction, so a long backlog neither holds locks for long nor starts over after a
failure. The order data has its own pass (ingest/orders.py). The same job erases the
data of closed organisations once their grace period is over (`run_offboarding_erasure`).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import datetime

from portal.extensions import db
from portal.services import buyer_data, offboarding
from portal.services.buyer_data import RetentionCounts

log = logging.getLogger(__name__)


def run_retention(
    *, now: datetime, raw_days: int, text_days: int, batch_size: int = buyer_data.BATCH_SIZE
) -> RetentionCounts:
    """Apply both retention periods, `batch_size` messages or threads per transaction;
    audit the run when it removed anything. Returns the counts."""
    counts = RetentionCounts()
    while True:
        batch = buyer_data.drop_raw_mail(now=now, days=raw_days, limit=batch_size)
        db.session.commit()
        if not batch.total:
            break
        counts.raw_messages += batch.raw_messages
        counts.attachments += batch.attachments
    while True:
        erased = buyer_data.erase_closed_threads(now=now, days=text_days, limit=batch_size)
        db.session.commit()
        if not erased.threads:
            break
        counts.erased.add(erased)
    if counts.total:
        buyer_data.record_retention_run(counts, raw_days=raw_days, text_days=text_days)
        db.session.commit()
    return counts


def run_offboarding_erasure(*, now: datetime, batch_size: int = buyer_data.BATCH_SIZE) -> int:
    """Erase the buyer data of closed organisations whose grace period is over, one batch
    per transaction (services/offboarding.py); returns how many organisations finished."""
    finished = 0
    for organisation in offboarding.due_for_erasure(now=now):
        organisation_id = organisation.id
        while True:
            counts = offboarding.erase_batch(organisation, now=now, limit=batch_size)
            db.session.commit()
            if not counts.total:
                finished += 1
                break
            log.info("Closed organisation %s: erased %s", organisation_id, asdict(counts))
    return finished
