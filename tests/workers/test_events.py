"""The job's event stream: streamed text is batched into few delta events, in order."""

import uuid

from db.redis_client import get_redis
from workers import events


def deltas(job_id):
    return [event.data["text"] for event in events.read(get_redis(), job_id) if event.type == events.DELTA]


def test_the_first_piece_goes_out_at_once_and_the_rest_in_batches():
    job_id = uuid.uuid4()
    batcher = events.DeltaBatcher(get_redis(), job_id, interval=60)
    batcher.add("Once ")
    assert deltas(job_id) == ["Once "]  # the first token reaches a live client without delay
    for piece in ["upon ", "a ", "time"]:
        batcher.add(piece)
    assert deltas(job_id) == ["Once "]  # within the interval: held
    batcher.flush()
    assert deltas(job_id) == ["Once ", "upon a time"]
    batcher.flush()  # nothing left: nothing sent
    assert len(deltas(job_id)) == 2


def test_a_piece_after_the_interval_is_sent_with_what_waited():
    job_id = uuid.uuid4()
    batcher = events.DeltaBatcher(get_redis(), job_id, interval=0)
    for piece in ["a", "b", "c"]:
        batcher.add(piece)
    assert deltas(job_id) == ["a", "b", "c"]


def test_deltas_keep_the_expiry_the_status_event_set():
    job_id = uuid.uuid4()
    redis = get_redis()
    events.publish(redis, job_id, events.STATUS, {"status": "running"})
    events.DeltaBatcher(redis, job_id).add("text")
    assert 0 < redis.ttl(events.stream_key(job_id)) <= events.TTL_SECONDS


def test_several_events_go_out_in_order_with_the_streams_expiry():
    job_id = uuid.uuid4()
    redis = get_redis()
    last = events.publish_all(
        redis, job_id, [(events.DELTA, {"text": "end"}), (events.DONE, {"status": "x"})]
    )
    told = events.read(redis, job_id)
    assert [(event.type, event.data) for event in told] == [
        (events.DELTA, {"text": "end"}),
        (events.DONE, {"status": "x"}),
    ]
    assert last == told[-1].id
    assert 0 < redis.ttl(events.stream_key(job_id)) <= events.TTL_SECONDS
