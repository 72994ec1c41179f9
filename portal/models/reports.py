"""Report figures computed ahead (issue 22, Speed): one row per report asked for."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, String
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db
from portal.sqltypes import UTCDateTime


class ReportSnapshot(db.Model):
    """The figures of one report (a kind, a scope, a period, filters) as last computed.

    Pages show a snapshot younger than REPORTS_FRESH_SECONDS with its time and compute
    a new one otherwise; the worker recomputes the snapshots read lately before they get
    that old (portal/services/report_snapshots.py). Figures only: counts, times, and the
    names of channels and agents, never a buyer's message or address.
    """

    __tablename__ = "report_snapshots"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The SHA-256 of `params`, canonically written: one row per distinct report.
    key: Mapped[str] = mapped_column(String(64), unique=True)
    #: What to compute: the kind, organisation IDs, filters and period, as the service
    #: takes them (the worker recomputes from these alone).
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    figures: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: The "now" the figures were computed for: rolling periods end there.
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: How long computing them took, in seconds.
    compute_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    #: When a page last showed them (to the hour or so): the worker keeps read ones fresh
    #: and forgets the others.
    read_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)

    def __repr__(self) -> str:
        return f"<ReportSnapshot {self.params.get('kind')} {self.key[:8]}>"
