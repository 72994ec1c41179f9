"""Sellerdesk: the support portal for small Amazon sellers."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.routing import IntegerConverter

from portal.sqltypes import MAX_ID

ROOT = Path(__file__).resolve().parent.parent


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app. `config` (tests) replaces reading the environment and `.env`."""
    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        instance_path=str(ROOT / "instance"),
        instance_relative_config=True,
    )
    # Every `<int:…>` in our URLs is a row id: one beyond the database's integer is a 404
    # here, not an out-of-range error from PostgreSQL (a 500).
    app.url_map.converters["int"] = _IdConverter
    from portal.config import DEFAULTS, check_config, complete_config, config_from_env

    app.config.from_mapping(DEFAULTS)
    if config is None:
        from dotenv import load_dotenv

        # Values already in the environment win over the file.
        load_dotenv(ROOT / ".env", override=False)
        app.config.from_mapping(config_from_env(app.instance_path))
    else:
        app.config.from_mapping(config)
    complete_config(app.config)
    check_config(app.config)
    _configure_logging(app)

    from portal import lazy_migrate
    from portal.extensions import csrf, db, limiter, login_manager

    db.init_app(app)
    lazy_migrate.init_app(app, db)
    csrf.init_app(app)
    # Registers RATELIMIT_STORAGE_URI's `database://` with `limits` before the limiter
    # builds its storage.
    from portal import ratelimit  # noqa: F401

    limiter.init_app(app)
    login_manager.init_app(app)

    from portal import errors, security, templating

    security.init_app(app)
    errors.init_app(app)
    templating.init_app(app)

    from portal.account.views import bp as account_bp
    from portal.admin.views import bp as admin_bp
    from portal.auth.views import bp as auth_bp
    from portal.canned.views import bp as canned_bp
    from portal.channels.views import bp as channels_bp
    from portal.inbound.views import bp as inbound_bp
    from portal.inbox.views import bp as inbox_bp
    from portal.main.views import bp as main_bp
    from portal.orgs.views import bp as orgs_bp
    from portal.reports.views import bp as reports_bp

    app.register_blueprint(account_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(canned_bp)
    app.register_blueprint(channels_bp)
    app.register_blueprint(inbound_bp)
    app.register_blueprint(inbox_bp)
    app.register_blueprint(main_bp)
    app.register_blueprint(orgs_bp)
    app.register_blueprint(reports_bp)

    from portal import cli

    cli.init_app(app)
    return app


def _configure_logging(app: Flask) -> None:
    # One readable format for the web server, the ingest worker and the CLI.
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=os.environ.get("LOG_LEVEL", "INFO"),
            format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s",
        )
    # Alembic announces each of its plugins at INFO on every start.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


class _IdConverter(IntegerConverter):
    # ASCII digits: werkzeug's `\d+` also matches ١٢ and full-width １２, which int()
    # reads as 12, so one row would have many URLs.
    regex = r"[0-9]+"

    def __init__(self, map, *args, **kwargs):  # noqa: A002 (werkzeug's parameter name)
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)
