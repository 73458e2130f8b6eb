"""A prefork worker whose pool process dies while the worker starts exits, by Celery's
design: the first time its consumer's loop starts (celery/worker/loops.py, `asynloop`),
Celery asks the pool whether every process it forked is still there
(`did_start_ok`, billiard/pool.py `_join_exited_workers`) and stops the worker with
`WorkerLostError('Could not start worker processes')` when one is gone, whatever killed
it. There is no setting against it; a restart policy starts the worker again
(docs/soak.md, "What it found"). This test fails when Celery changes that, so the
docs can say so. A pool process killed once the loop runs is replaced
(tests/e2e/test_crashes.py)."""

import os
import signal

import pytest
from redis import Redis

from tests.fakes.services import TcpProxy, celery_worker, wait_until

pytestmark = pytest.mark.e2e


def test_a_pool_process_killed_while_the_worker_starts_stops_the_worker(tmp_path):
    redis = Redis.from_url(os.environ["REDIS_URL"]).connection_pool.connection_kwargs
    # The broker behind a proxy that refuses connections: the pool is up and the consumer
    # keeps retrying, so the worker stays in its start for as long as the test needs.
    broker = TcpProxy(redis["port"], target_host=redis["host"])
    broker.cut()
    env = {**os.environ, "CELERY_BROKER_URL": f"redis://127.0.0.1:{broker.port}/{redis['db']}"}
    worker = celery_worker(env, tmp_path / "worker.log", concurrency=2)
    try:
        children = wait_until(worker.children, 30, message="the pool's processes")
        wait_until(lambda: "Trying again" in worker.log(), 30, message="a refused broker connection")
        os.kill(children[0], signal.SIGKILL)
        broker.restore()

        wait_until(lambda: worker.popen.poll() is not None, 60, message="the worker to exit")
        assert worker.popen.returncode == 1
        assert "Could not start worker processes" in worker.log()
    finally:
        worker.stop()
        broker.close()
