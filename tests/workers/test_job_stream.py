"""The job's event stream: streamed text is batched into few delta events, in order."""

import uuid

from db.redis_client import get_redis
from workers import job_stream


def deltas(job_id):
    return [
        event.data["text"] for event in job_stream.read(get_redis(), job_id) if event.type == job_stream.DELTA
    ]


def test_the_first_piece_goes_out_at_once_and_the_rest_in_batches():
    job_id = uuid.uuid4()
    batcher = job_stream.DeltaBatcher(get_redis(), job_id, interval=60)
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
    batcher = job_stream.DeltaBatcher(get_redis(), job_id, interval=0)
    for piece in ["a", "b", "c"]:
        batcher.add(piece)
    assert deltas(job_id) == ["a", "b", "c"]


def test_deltas_keep_the_expiry_the_status_event_set():
    job_id = uuid.uuid4()
    redis = get_redis()
    job_stream.publish(redis, job_id, job_stream.STATUS, {"status": "running"})
    job_stream.DeltaBatcher(redis, job_id).add("text")
    assert 0 < redis.ttl(job_stream.stream_key(job_id)) <= job_stream.TTL_SECONDS


def test_several_events_go_out_in_order_with_the_streams_expiry():
    job_id = uuid.uuid4()
    redis = get_redis()
    last = job_stream.publish_all(
        redis, job_id, [(job_stream.DELTA, {"text": "end"}), (job_stream.DONE, {"status": "x"})]
    )
    told = job_stream.read(redis, job_id)
    assert [(event.type, event.data) for event in told] == [
        (job_stream.DELTA, {"text": "end"}),
        (job_stream.DONE, {"status": "x"}),
    ]
    assert last == told[-1].id
    assert 0 < redis.ttl(job_stream.stream_key(job_id)) <= job_stream.TTL_SECONDS


def test_a_write_sent_with_the_events_that_fails_does_not_stop_them():
    job_id = uuid.uuid4()
    redis = get_redis()
    kept = f"conveyor:test:{job_id}"
    last = job_stream.publish_all(
        redis,
        job_id,
        [(job_stream.STATUS, {"status": "running"})],
        also=[
            lambda pipe: pipe.eval("return redis.error_reply('refused')", 0),
            lambda pipe: pipe.set(kept, "1"),
        ],
    )
    assert last == job_stream.read(redis, job_id)[-1].id
    assert redis.get(kept) == "1"
