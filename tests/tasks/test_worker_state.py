"""What a worker process keeps once rather than per task: tasks under the gevent pool
each run in a greenlet of their own, which Celery counts as a thread."""

import threading

from workers.celery_app import app


def test_tasks_on_different_threads_share_one_result_backend():
    first = app.backend
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(app.backend)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(backend is first for backend in seen)
