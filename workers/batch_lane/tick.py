"""One beat tick of the batch lane: follow the open batches, take out the jobs whose
deadline is near, gather the held jobs not sent yet."""

from __future__ import annotations

from settings import Settings
from workers import admission
from workers.admission import Send
from workers.batch_lane.client import BatchClient
from workers.batch_lane.follow import Followed, follow
from workers.batch_lane.gather import gather
from workers.batch_lane.takeout import take_out


def run(settings: Settings, send: Send, client: BatchClient | None = None) -> Followed:
    """Following comes first, so a batch that answered is recorded rather than its jobs
    taken out; the take-out before gathering, so a job is never sent in a batch it
    cannot wait for. The owners of the jobs taken out are admitted, as for scheduled
    jobs that came due. Without the openai provider only the take-out runs: jobs held
    before the provider was changed still finish, on the normal lane."""
    followed = Followed()
    if settings.ai_provider == "openai":
        client = client or BatchClient(settings)
        followed = follow(settings, client)
    followed.taken_out += take_out(settings, due=True)
    if settings.ai_provider == "openai" and client is not None:
        gather(settings, client)
    for owner in dict.fromkeys(owner for _job_id, owner in followed.taken_out):
        admission.admit(owner, send)
    return followed
