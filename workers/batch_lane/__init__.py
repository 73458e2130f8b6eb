"""The batch lane: jobs with a deadline go through the provider's Batch API at its
lower price, and fall back to the normal lane when the deadline comes near.

A job on this lane is held `scheduled` in Postgres (as a job with a `run_at` is; see
workers/scheduled_jobs.py), with `lane = 'batch'`, its `deadline`, and no `run_at`, so
neither the due-job pickup nor admission sends it. The beat (tasks/batch_lane.py) then,
every BATCH_LANE_INTERVAL:

- gathers (gather.py) the held jobs not yet sent, one model at a time, into a JSONL
  file of the very requests the normal lane would make, uploads it through the Files
  API, creates a Batch and records its id on the jobs;
- follows (follow.py) each open batch: once it has ended, records each job's outcome
  with the same compare-and-set `finish` as a worker (from `scheduled` only), the
  ledger at batch prices, so the job's events, webhook and email follow as for any
  job; a line the provider could not run goes to the normal lane;
- takes out (takeout.py) a job whose deadline is within BATCH_LANE_TAKEOUT: queued
  and admitted like a job just submitted. Its batch's late answer then finds it no
  longer `scheduled` and is refused, so it is charged once;
- cancels at the provider a batch no job waits for any more (all canceled or taken out).
"""

from __future__ import annotations

import datetime as dt

WINDOW = dt.timedelta(hours=24)  # the Batch API's one completion window
COMPLETION_WINDOW = "24h"
ENDPOINT = "/v1/chat/completions"
