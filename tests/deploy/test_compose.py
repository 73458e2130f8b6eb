"""docker-compose.yml and the Dockerfile, read as Docker would (Docker does not run
here): processes run directly under an init, workers outlast their jobs on a stop,
nothing ships with a development password, images are pinned, and every long-running
service has a health check."""

import re
import shlex
from pathlib import Path

import pytest
import yaml

from settings import Settings

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = ("migrate", "web", "worker_ai", "worker", "maintenance", "beat", "flower")
WORKERS = ("worker_ai", "worker", "maintenance")
VARIABLE = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def resolved(value: str, **given: str) -> str:
    """`value` as compose interpolates it with only `given` set ($$ is a literal $)."""

    def one(match: re.Match) -> str:
        name, kind, default = match.groups()
        if name in given:
            return given[name]
        if kind == "?":
            raise LookupError(f"{name} is required: {default}")
        return default or ""

    return VARIABLE.sub(one, value).replace("$$", "$")


def argv(service: dict) -> list[str]:
    command = service["command"]
    return (
        shlex.split(resolved(command)) if isinstance(command, str) else [resolved(part) for part in command]
    )


def seconds(duration: str) -> int:
    total = 0
    for amount, unit in re.findall(r"(\d+)([hms])", duration):
        total += int(amount) * {"h": 3600, "m": 60, "s": 1}[unit]
    return total


def test_each_app_service_runs_its_process_directly_under_an_init(compose):
    programs = {}
    for name in APP_SERVICES:
        service = compose["services"][name]
        assert service["init"] is True, name
        programs[name] = argv(service)[:4]
        assert "honcho" not in " ".join(argv(service)), name
    assert programs["web"][:4] == ["python", "-m", "gevent.monkey", "--module"]
    assert programs["migrate"] == ["alembic", "upgrade", "head"]
    for name in (*WORKERS, "beat", "flower"):
        assert programs[name][:3] == ["celery", "-A", "workers.celery_app"], name
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "honcho" not in dockerfile.split("CMD", 1)[1]


def test_workers_consume_the_queues_of_their_procfile_line(compose):
    procfile = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line)
    for name in WORKERS:
        compose_queues = argv(compose["services"][name])[
            argv(compose["services"][name]).index("--queues") + 1
        ]
        assert f"--queues {compose_queues} " in procfile[name], name


def test_a_worker_is_given_longer_than_its_hard_time_limit_to_finish(compose):
    hard_limit = Settings.from_env({}).job_hard_time_limit
    for name in WORKERS:
        grace = seconds(resolved(compose["services"][name]["stop_grace_period"]))
        assert grace > hard_limit, name
    assert seconds(compose["services"]["web"]["stop_grace_period"]) > 30  # gunicorn's graceful timeout


def test_dot_env_reaches_every_app_container_if_there_is_one(compose):
    for name in APP_SERVICES:
        assert compose["services"][name]["env_file"] == [{"path": ".env", "required": False}], name


def test_flower_and_redis_have_no_default_password(compose):
    flower = compose["services"]["flower"]
    with pytest.raises(LookupError, match="FLOWER_BASIC_AUTH is required"):
        resolved(flower["environment"]["FLOWER_BASIC_AUTH"])
    assert all(port.startswith("127.0.0.1:") for port in flower["ports"])
    assert resolved(flower["environment"]["FLOWER_BASIC_AUTH"], FLOWER_BASIC_AUTH="ops:pw") == "ops:pw"

    redis = compose["services"]["redis"]
    command = [resolved(part, REDIS_PASSWORD="s3cret") for part in redis["command"]]
    assert command[command.index("--requirepass") + 1] == "s3cret"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert command[command.index("--appendonly") + 1] == "yes"
    with pytest.raises(LookupError, match="REDIS_PASSWORD is required"):
        resolved(redis["command"][2])
    url = compose["services"]["web"]["environment"]["REDIS_URL"]
    assert resolved(url, REDIS_PASSWORD="s3cret") == "redis://:s3cret@redis:6379/0"


def test_every_image_is_pinned_to_an_exact_version(compose):
    images = [service["image"] for service in compose["services"].values() if "image" in service]
    images.append(re.search(r"^FROM (\S+)", (ROOT / "Dockerfile").read_text(), re.M).group(1))
    for image in images:
        _, _, tag = image.partition(":")
        assert "@sha256:" in image or (tag and tag != "latest" and re.search(r"\d+\.\d+|\d{4}-\d\d", tag)), (
            image
        )
        assert not re.fullmatch(r"\d+", tag), f"{image}: a major version only moves"


def test_health_checks_ask_what_each_service_needs(compose):
    services = compose["services"]
    postgres = services["postgres"]["healthcheck"]["test"][1]
    assert postgres.startswith("pg_isready -h 127.0.0.1 ")  # over TCP, not the socket
    assert "PONG" in services["redis"]["healthcheck"]["test"][1]
    assert "/api/v1/health" in " ".join(services["web"]["healthcheck"]["test"])
    for name in WORKERS:
        check = services[name]["healthcheck"]["test"][1]
        hostname = argv(services[name])[argv(services[name]).index("--hostname") + 1]
        assert check == f'python -m scripts.worker_alive "{hostname.replace("%h", "$$(hostname)")}"', name
