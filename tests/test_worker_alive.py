"""The workers' container health check: alive while the heartbeat /ready reads is fresh."""

from db.redis_client import get_redis
from scripts.worker_alive import main
from workers import queues


def test_alive_while_the_worker_beats_and_not_once_it_left(capsys):
    redis = get_redis()
    assert main(["ai@box"]) == 1
    assert "ai@box: no heartbeat" in capsys.readouterr().err
    queues.write_heartbeat(redis, hostname="ai@box", queues=["ai"], interval=5)
    assert main(["ai@box"]) == 0
    queues.leave(redis, hostname="ai@box")
    assert main(["ai@box"]) == 1
    assert main([]) == 2
