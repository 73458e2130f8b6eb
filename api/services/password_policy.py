"""What a new password must be: 8 to 256 characters (the schemas) and hard to guess,
as zxcvbn scores it. zxcvbn (Dropbox's estimator) knows the common and leaked
passwords, names, dictionary words, keyboard walks, repeats, sequences, dates and
l33t spellings of them all, and is given the user's email and name too.

Only a password being set is checked (registration, a reset): an account whose
password predates the policy still logs in with it.
"""

from __future__ import annotations

from zxcvbn import zxcvbn

from api.services.errors import Invalid

# zxcvbn's scores run 0-4; 3 is "safely unguessable: moderate protection from an
# offline slow-hash attack", which is what a stolen argon2id table would face.
MIN_SCORE = 3
# zxcvbn scores at most this many characters (its work grows quickly with length, and
# it refuses longer input); a longer password is judged by its start, since what
# follows can only add strength.
SCORED_CHARACTERS = 72
DEFAULT_ADVICE = "Use a longer password, such as four or five words no one would put together."


def check(password: str, *, email: str, name: str) -> None:
    """Refuse a guessable password with a 422 on the `password` field saying what to change."""
    local_part = email.partition("@")[0]
    result = zxcvbn(password[:SCORED_CHARACTERS], user_inputs=[email, local_part, name])
    if result["score"] >= MIN_SCORE:
        return
    feedback = result["feedback"]
    advice = " ".join(part for part in (feedback["warning"], *feedback["suggestions"]) if part)
    message = f"This password is too easy to guess. {advice or DEFAULT_ADVICE}"
    raise Invalid(message, errors={"json": {"password": [message]}})
