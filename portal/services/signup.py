"""Sign-up that answers the same for every address: a new business is created and its
owner welcomed by mail; an address that already has an account gets a mail saying so,
and nothing is created. The caller shows one answer for both and signs no one in, so the
page tells nobody which addresses have accounts (issue 17's finding). Nothing commits.
"""

from __future__ import annotations

import logging
from datetime import datetime

from portal.models import User
from portal.services import users as user_service
from portal.services.audit import record_event
from portal.services.passwords import hash_password
from portal.services.system_mail import external_url, queue_system_mail

log = logging.getLogger(__name__)


def request_sign_up(
    email: str, password: str, *, organisation_name: str, name: str, now: datetime
) -> User | None:
    """Create the business and its owner and mail a welcome; or, when `email` has an
    account, mail its owner instead and return None (the caller must not let it show)."""
    existing = user_service.find_user_by_email(email)
    if existing is not None:
        # The work a sign-up does, so the answer's time tells nothing either.
        hash_password(password)
        queue_system_mail(
            existing.email,
            subject="Someone tried to sign up to Sellerdesk with your address",
            body=(
                f"Someone, perhaps you, tried to create a Sellerdesk account for the "
                f"address {existing.email}, which already has one. Nothing was changed.\n\n"
                f"Log in here: {external_url('auth.login')}\n"
                f"Forgot your password? Choose a new one here: "
                f"{external_url('account.forgot_password')}\n"
            ),
            kind="signup_taken",
            organisation_id=existing.organisation_id,
            now=now,
        )
        record_event(
            "user.signup_with_taken_address",
            actor=None,
            organisation_id=existing.organisation_id,
            target=existing,
        )
        log.info("sign-up asked for an address that has an account")
        return None
    user = user_service.sign_up(email, password, organisation_name=organisation_name, name=name)
    queue_system_mail(
        user.email,
        subject="Welcome to Sellerdesk",
        body=(
            f"Your Sellerdesk account for {user.organisation.name} is ready.\n\n"
            f"Log in with {user.email} and the password you chose: "
            f"{external_url('auth.login')}\n\n"
            f"If you did not sign up, ignore this mail or tell us.\n"
        ),
        kind="signup_welcome",
        organisation_id=user.organisation_id,
        now=now,
    )
    return user
