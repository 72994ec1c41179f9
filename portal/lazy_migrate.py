"""Flask-Migrate (the schema's Alembic migrations), loaded only when used.

Every process builds the whole app, the ingest worker and each web worker included,
and importing Flask-Migrate imports Alembic, Mako and Pygments: 11 MB that only
`flask db …` and the test and bench set-ups (`flask_migrate.upgrade()`) need. So the
app gets stand-ins for the two things Flask-Migrate's `init_app` installs, the `db`
command group and `app.extensions["migrate"]`; the first use of either installs the
real ones, which then replace the stand-ins.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

OPTIONS = {
    "directory": str(Path(__file__).resolve().parent.parent / "migrations"),
    "render_as_batch": True,
    "compare_type": True,
}


def init_app(app: Flask, db: SQLAlchemy) -> None:
    app.extensions["migrate"] = _Pending(app, db)
    app.cli.add_command(_Commands("db", help="Perform database migrations."))


def _install(app: Flask, db: SQLAlchemy) -> Any:
    from flask_migrate import Migrate

    Migrate(app, db, **OPTIONS)  # sets app.extensions["migrate"] and the `db` group
    return app.extensions["migrate"]


class _Pending:
    """app.extensions["migrate"] until something reads it (flask_migrate's functions,
    migrations/env.py)."""

    def __init__(self, app: Flask, db: SQLAlchemy) -> None:
        self._app = app
        self._db = db

    def __getattr__(self, name: str) -> Any:
        return getattr(_install(self._app, self._db), name)


class _Commands(click.Group):
    """`flask db …`: Flask-Migrate's own group parses and runs the command line (its
    options, subcommands and help), imported when the group is invoked; `flask --help`
    lists this stand-in."""

    def make_context(self, info_name: str | None, args: list[str], parent=None, **extra):  # noqa: ANN001
        from flask_migrate.cli import db

        return db.make_context(info_name, args, parent=parent, **extra)
