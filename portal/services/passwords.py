"""The password rules (Amazon's Data Protection Policy for SP-API applications: at least
12 characters) and the password hashes.

A password must be long enough and not weak by an offline strength estimator (zxcvbn:
dictionaries of common passwords, names and words, keyboard walks, repeats, dates), told
about the person's own e-mail, name and business so that "Acme Trading 2026" is weak
for Acme Trading. Its verdict comes with a reason a person can act on, shown next to
the field. Hashes made with an older scheme keep working and are replaced on the next
sign-in (`needs_rehash`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from werkzeug.security import generate_password_hash

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 200
#: zxcvbn's score runs 0 (too guessable) to 4 (very unguessable); below 3 is weak.
MIN_SCORE = 3
#: zxcvbn's time grows faster than linearly with the length: past this it only reads
#: the start (a password that long is not weak because of its end).
_ESTIMATE_CHARS = 64
#: Words of the product a password should not lean on.
_PRODUCT_WORDS = ("sellerdesk", "helpdesk", "amazon", "seller", "central")
#: The scheme new hashes use (werkzeug's default); a stored hash of another is upgraded.
HASH_METHOD = "scrypt"


def password_problem(password: str, *, about: Iterable[str] = ()) -> str | None:
    """Why `password` is refused, as a sentence for its field; None when it is fine.

    `about`: what the person's password must not be built from (their e-mail address,
    name, business name).
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Use at least {MIN_PASSWORD_LENGTH} characters."
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"Use at most {MAX_PASSWORD_LENGTH} characters."
    # Imported on first use: its dictionaries take 13 MB, which the processes that never
    # judge a password (the ingest worker, most web workers) need not carry.
    from zxcvbn import zxcvbn

    result = zxcvbn(password[:_ESTIMATE_CHARS], user_inputs=_words_of(about))
    if result["score"] >= MIN_SCORE:
        return None
    feedback = result["feedback"]
    why = feedback.get("warning") or "This password is easy to guess."
    hints = " ".join(feedback.get("suggestions") or [])
    return f"{_sentence(why)} {hints or 'Add another word or two.'}".strip()


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=HASH_METHOD)


def needs_rehash(password_hash: str) -> bool:
    """True for a hash made with another scheme than new ones use (or other settings)."""
    return not password_hash.startswith(_prefix_of(HASH_METHOD))


@functools.cache
def _prefix_of(method: str) -> str:
    # "scrypt:32768:8:1$salt$hash": the method and its parameters, up to the salt.
    return generate_password_hash("x", method=method).split("$", 1)[0] + "$"


def _words_of(about: Iterable[str]) -> list[str]:
    """The e-mail's local part and domain words, names split into words, lowercased."""
    words = list(_PRODUCT_WORDS)
    for text in about:
        if text:
            words.append(text.lower())
            words += [w for w in re.split(r"[^\w]+", text.lower()) if len(w) >= 3]
    return words


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."
