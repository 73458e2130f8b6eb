"""Standard Webhooks signatures (https://www.standardwebhooks.com): HMAC-SHA256 over
`<webhook-id>.<webhook-timestamp>.<body>` with the user's `whsec_…` secret."""

from __future__ import annotations

import base64
import datetime as dt
import secrets

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
USER_AGENT = "Conveyor-Webhooks/1"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signed_headers(
    secret: str, *, message_id: str, body: str, at: dt.datetime | None = None
) -> dict[str, str]:
    """The headers a receiver checks with `Webhook(secret).verify(body, headers)`."""
    at = at or dt.datetime.now(dt.UTC)
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, at, body),
    }
