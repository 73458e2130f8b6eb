"""The process's one reader of job events: every follower gets the events after its
own position, in order and once; a new follower is served without waiting out the
read in progress; a Redis restart is survived."""

import uuid

from api.services.stream_hub import BLOCK_MS, StreamHub
from db.redis_client import get_redis
from tests.fakes.services import RedisServer
from workers import job_stream

# Well under the reader's own wait: a follower served within it was woken, not timed out.
SOON = BLOCK_MS / 1000 / 4


def publish(redis, job_id, count: int, start: int = 0) -> list[str]:
    return [
        job_stream.publish(redis, job_id, job_stream.DELTA, {"text": f"t{n}"})
        for n in range(start, start + count)
    ]


def take(follower, count: int) -> list[job_stream.Event]:
    got: list[job_stream.Event] = []
    for _ in range(count):
        got += follower.wait(SOON)
        if len(got) >= count:
            break
    return got


def test_followers_each_get_the_events_after_their_own_position(settings):
    hub, redis, job_id = StreamHub(settings.redis_url), get_redis(), uuid.uuid4()
    ids = publish(redis, job_id, 6)
    from_start = hub.follow(job_id, after="0")
    from_middle = hub.follow(job_id, after=ids[2])
    assert [event.id for event in take(from_start, 6)] == ids
    assert [event.id for event in take(from_middle, 3)] == ids[3:]

    more = publish(redis, job_id, 2, start=6)
    assert [event.id for event in take(from_start, 2)] == more
    assert [event.id for event in take(from_middle, 2)] == more
    hub.unfollow(from_start)
    hub.unfollow(from_middle)


def test_a_new_follower_does_not_wait_for_the_read_in_progress(settings):
    hub, redis = StreamHub(settings.redis_url), get_redis()
    quiet, busy = uuid.uuid4(), uuid.uuid4()
    waiting = hub.follow(quiet, after="0")
    assert waiting.wait(0.2) == []  # the reader now blocks on the quiet job
    joined = hub.follow(busy, after="0")
    published = publish(redis, busy, 1)
    assert [event.id for event in joined.wait(SOON)] == published
    # A follower that resumes from further back than one already following the job.
    late = hub.follow(busy, after="0")
    assert [event.id for event in late.wait(SOON)] == published
    for follower in (waiting, joined, late):
        hub.unfollow(follower)


def test_the_reader_reads_on_after_a_redis_restart(tmp_path):
    server = RedisServer(tmp_path).start()
    try:
        hub, job_id = StreamHub(server.url), uuid.uuid4()
        follower = hub.follow(job_id, after="0")
        assert follower.wait(0.2) == []
        server.restart()
        redis = get_redis(server.url)
        published, got = [], []
        for _ in range(20):  # until the reader has connected again
            published += publish(redis, job_id, 1, start=len(published))
            got += follower.wait(1)
            if got:
                break
        got += follower.wait(0.2)
        # Nothing published after the restart is lost or handed out twice.
        assert [event.id for event in got] == published
    finally:
        server.stop()
