"""The suite's webhook receiver itself (tests/fakes/webhook_receiver.py)."""

import urllib.error
import urllib.request

from tests.fakes.webhook_receiver import WebhookReceiver


def test_a_flaky_receiver_fails_every_tenth_events_first_delivery_only():
    # The soak's receiver (soak/): each 500 is delivered again, and then answered.
    receiver = WebhookReceiver(fail_every=10).start()
    try:
        statuses = []
        for event in [*(f"msg_{n}" for n in range(10)), "msg_9", "msg_3"]:
            request = urllib.request.Request(receiver.url(), data=b"{}", headers={"webhook-id": event})
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    statuses.append(response.status)
            except urllib.error.HTTPError as error:
                statuses.append(error.code)
        assert statuses == [200] * 9 + [500, 200, 200]
        assert len(receiver.requests) == 12
    finally:
        receiver.stop()
