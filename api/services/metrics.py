"""What GET /metrics serves: the web processes' metrics and the queue gauges."""

from __future__ import annotations

from prometheus_client.exposition import choose_encoder

from api.services.health import queue_names
from db.redis_client import get_redis
from settings import Settings
from workers import metrics


def scrape(*, accept: str | None, settings: Settings) -> tuple[bytes, str]:
    """The body and content type for one scrape, in the format Prometheus asked for."""
    queue_gauges = metrics.QueueCollector(
        broker=get_redis(settings.celery_broker_url), redis=get_redis(), queues=queue_names()
    )
    encode, content_type = choose_encoder(accept or "")
    return encode(metrics.registry(queue_gauges)), content_type
