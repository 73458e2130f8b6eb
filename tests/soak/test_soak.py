"""The chaos soak (soak/, `make soak`) for under a minute, so it cannot rot: the whole stack
under load while every kind of fault is injected, then the audit must find nothing."""

import json

import pytest

from soak.chaos import KINDS
from soak.run import run

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(400)
def test_a_minute_of_chaos_loses_nothing_charges_nothing_twice_and_leaves_nothing_stuck(tmp_path):
    # Faults close together: the first round (every kind once) fits in the load's time.
    result = run(
        minutes=0.75,
        seed=26,
        out=tmp_path / "result.json",
        users=30,
        rate=2.0,
        drain_limit=120,
        interval=(0.5, 2.5),
    )

    assert result["findings"] == {}, result["findings"]
    assert result["chaos_errors"] == [] and result["load_errors"] == []
    assert set(result["faults"]) == set(KINDS)  # every kind of fault, at least once
    counts = result["counts"]
    assert counts["accepted"] >= 45 and counts["lost"] == counts["charged_twice"] == counts["stuck"] == 0
    assert counts["webhooks_wanted"] > 0 and counts["emails_sent"] > 0
    assert all(kind["not_recovered"] == 0 for kind in result["recovery_seconds"].values())
    assert json.loads((tmp_path / "result.json").read_text())["passed"] is True
