"""`POST /inbound/<token>`: mail delivered over HTTP by a provider or an MTA.

No login and no CSRF token: the path token finds the mailbox and the provider's
signature authenticates the request (services/http_ingress.py). Every answer is a
short JSON object; 2xx only once the mail is committed.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import RequestEntityTooLarge

from portal.extensions import csrf, db, limiter
from portal.services import http_ingress

bp = Blueprint("inbound", __name__)


def _per_mailbox() -> str:
    # Counted per path token (one per mailbox), not per client: providers post from
    # many addresses, and one noisy mailbox must not slow the others.
    token = (request.view_args or {}).get("token", "")
    return "inbound:" + http_ingress.token_hash(str(token))[:32]


def _settings() -> http_ingress.IngressSettings:
    config = current_app.config
    return http_ingress.IngressSettings(
        max_age=timedelta(seconds=config["INBOUND_MAX_AGE_SECONDS"]),
        sns_cert_host_suffix=config["SNS_CERT_HOST_SUFFIX"],
        sns_ca_file=config["SNS_CA_FILE"] or None,
        s3_endpoint=config["SES_S3_ENDPOINT"],
        inbound_domain=config["INBOUND_DOMAIN"],
        max_attachment_bytes=config["MAX_ATTACHMENT_BYTES"],
        parse_seconds=config["INGEST_PARSE_SECONDS"],
        s3_region=config["SES_S3_REGION"],
        s3_access_key_id=config["SES_S3_ACCESS_KEY_ID"],
        s3_secret_access_key=config["SES_S3_SECRET_ACCESS_KEY"],
        s3_session_token=config["SES_S3_SESSION_TOKEN"],
    )


def _body(limit: int) -> bytes:
    # Checked here as well as by the declared length: a chunked post declares none.
    if request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge()
    data = request.stream.read(limit + 1)
    if len(data) > limit:
        raise RequestEntityTooLarge()
    return data


def _answer(code: int, **body: object):
    response = jsonify(body)
    response.status_code = code
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/inbound/<token>", methods=["POST"])
# Mailgun posts raw MIME only to an address ending in "mime".
@bp.route("/inbound/<token>/mime", methods=["POST"], endpoint="deliver_mime")
@csrf.exempt
@limiter.limit(lambda: current_app.config["INBOUND_RATE_LIMIT"], key_func=_per_mailbox)
def deliver(token: str):
    mailbox = http_ingress.mailbox_for_token(token)
    if mailbox is None:
        return _answer(404, error="unknown ingress address")
    limit = current_app.config["INBOUND_MAX_BYTES"]
    request.max_content_length = limit
    settings, now = _settings(), http_ingress.now_seconds()
    provider = http_ingress.provider_of(mailbox)
    try:
        if provider == "mailgun":
            form = http_ingress.mailgun_form(request.content_type or "", _body(limit))
            delivery = http_ingress.check_mailgun(
                mailbox,
                {
                    k: form.get(k, b"").decode("utf-8", "replace")
                    for k in ("timestamp", "token", "signature")
                },
                form.get("body-mime"),
                settings,
                now,
            )
        elif provider == "ses":
            delivery = http_ingress.check_ses(mailbox, _body(limit), settings, now)
        else:
            delivery = http_ingress.check_generic(
                mailbox, _body(limit), dict(request.headers), settings, now
            )
        stored = http_ingress.deliver(mailbox, delivery, settings)
    except RequestEntityTooLarge:
        db.session.rollback()
        return _answer(413, error="message larger than INBOUND_MAX_BYTES")
    except http_ingress.Refused as refused:
        db.session.rollback()
        current_app.logger.info("Inbound delivery to %s refused: %s", mailbox.name, refused.reason)
        status = refused.status
        if provider == "mailgun" and status == 409:
            status = 406  # Mailgun stops retrying on 406 only
        return _answer(status, error=refused.reason)
    except OperationalError:
        db.session.rollback()
        current_app.logger.warning("Inbound delivery to %s: database unavailable", mailbox.name)
        return _answer(503, error="try again later")
    if stored.outcome is None:
        return _answer(200, status=stored.note)
    return _answer(200, status=stored.outcome.value)
