"""App-wide error pages: friendly, and never a stack trace."""

from __future__ import annotations

import logging

from flask import Flask, render_template
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from portal.extensions import db

log = logging.getLogger(__name__)

_TEMPLATES = {
    400: "errors/400.html",
    403: "errors/403.html",
    404: "errors/404.html",
    429: "errors/429.html",
}


def init_app(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError):
        return (
            render_template(
                "errors/400.html",
                title="Form expired",
                message="The form was missing its security token or it had expired. "
                "Go back, reload the page and try again.",
            ),
            400,
        )

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        code = error.code or 500
        template = _TEMPLATES.get(code)
        if template is None:
            return render_template("errors/generic.html", error=error), code
        return render_template(template, error=error), code

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception):
        # Roll back first: the failed transaction must not leak into the next request.
        db.session.rollback()
        log.exception("Unhandled error")
        return render_template("errors/500.html"), 500
