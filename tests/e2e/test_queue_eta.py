"""A real worker drains a queue: the jobs' places fall, and the ETA a job was given
comes true within its stated error."""

import time

import pytest

from tests.helpers import API, register, submit, wait_for

pytestmark = pytest.mark.e2e

RUN = 0.5  # the fake provider's pause before each of the reply's two chunks
PROMPT = f"[[reply:done]] [[slow:{RUN}]]"
JOBS = 4


def test_places_fall_and_the_eta_comes_true_as_a_worker_drains_the_queue(client, celery_worker):
    headers, _ = register(client)
    # One run first: the ETA comes from the recent run times of the tool and model.
    warm = wait_for(client, headers, submit(client, headers, input={"prompt": PROMPT}).get_json()["id"])
    assert warm["status"] == "succeeded" and warm["queue"] is None

    ids = [submit(client, headers, input={"prompt": PROMPT}).get_json()["id"] for _ in range(JOBS)]
    last = client.get(f"{API}/jobs/{ids[-1]}", headers=headers).get_json()
    given_at, eta = time.monotonic(), last["queue"]["eta_seconds"]
    positions = [last["queue"]["position"]]
    while True:
        job = client.get(f"{API}/jobs/{ids[-1]}", headers=headers).get_json()
        if job["status"] != "queued":
            waited = time.monotonic() - given_at
            break
        positions.append(job["queue"]["position"])
        time.sleep(0.05)

    assert job["queue"] is None  # running, or already finished
    assert positions[0] >= JOBS - 1 and positions[-1] == 1  # the worker may have taken the first
    assert positions == sorted(positions, reverse=True)  # only ever moving up
    # The stated error (docs/api.md): late by up to the run of the job in progress, and
    # each job ahead may take twice or half the mean on a busy machine.
    per_job = 2 * RUN  # the mean run time the warm-up gave, about
    assert eta is not None and eta >= (JOBS - 2) * per_job / 2
    assert eta / 2 - per_job <= waited <= 2 * eta + 2 * per_job
    done = wait_for(client, headers, ids[-1])
    assert done["status"] == "succeeded" and done["queue"] is None
