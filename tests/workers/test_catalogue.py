"""The model catalogue: the shipped file, prices per lane, and start-up refusing a broken
file with a message that names the file, the model and the field to fix."""

import json
import os
import subprocess
import sys

import pytest

from settings import ConfigError, Settings
from tests.fakes.services import ROOT
from workers import catalogue
from workers.plans import PLANS, allows_model

ENV = {"AI_PROVIDER": "openai", "OPENAI_API_KEY": "test-key"}


def write(tmp_path, data) -> str:
    path = tmp_path / "models.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def start(path: str, **env: str) -> Settings:
    return Settings.from_env({**ENV, "MODEL_CATALOGUE_FILE": path, **env})


def refusal(path: str, **env: str) -> str:
    with pytest.raises(ConfigError) as refused:
        start(path, **env)
    message = str(refused.value)
    assert message.startswith("Conveyor cannot start") and path in message
    return message


def test_the_shipped_catalogue_is_the_old_price_table():
    shipped = catalogue.get_catalogue(Settings.from_env({}))
    assert shipped.names() == ["gpt-4o-mini", "gpt-4o", "gpt-4.1-nano", "gpt-4.1-mini", "gpt-4.1"]
    # $0.15 / $0.60 per million tokens; a dated snapshot is priced as its model.
    assert shipped.cost_micros("gpt-4o-mini-2024-07-18", 1_000_000, 1_000_000) == 750_000
    assert shipped.cost_micros("gpt-4o", 1000, 1000, lane=catalogue.BATCH) == 6250  # half price
    assert shipped.cost_micros("offline", 1000, 1000) == 0  # not a model: nothing to pay


def test_a_lane_a_model_does_not_sell_is_charged_at_standard_and_cached_input_is_cheaper(tmp_path):
    models = catalogue.parse(
        json.dumps(
            {
                "models": {
                    "m": {
                        "prices": {
                            "standard": {"input": 1, "cached_input": 0.25, "output": 2},
                            "flex": {"input": 0.5, "output": 1},
                        }
                    }
                }
            }
        )
    )
    assert models.price("m", lane="batch") == models.price("m")
    assert models.price("m", lane="flex") == catalogue.Prices(500_000, 500_000, 1_000_000)
    # 1000 input tokens of which 800 were cached, 100 output tokens.
    assert models.cost_micros("m", 1000, 100, cached_input_tokens=800) == 200 + 200 + 200


def test_plans_allowed_come_from_the_catalogue():
    settings = Settings.from_env({})
    assert not allows_model(PLANS["free"], "gpt-4o", settings)
    assert allows_model(PLANS["pro"], "gpt-4o", settings)
    assert allows_model(PLANS["free"], "gpt-4o-mini", settings)
    # A self-hosted DEFAULT_MODEL left out of the catalogue is everyone's.
    local = Settings.from_env({"DEFAULT_MODEL": "llama3"})
    assert allows_model(PLANS["free"], "llama3", local)


@pytest.mark.parametrize(
    ("model", "fragment"),
    [
        ({"prices": {"standard": {"input": 1}}}, "model 'm', field 'prices.standard.output': Missing data"),
        (
            {"prices": {"standard": {"input": -1, "output": 1}}},
            "field 'prices.standard.input': Must be greater",
        ),
        (
            {"prices": {"cheap": {}, "standard": {"input": 1, "output": 1}}},
            "field 'prices.cheap': Unknown field",
        ),
        (
            {"prices": {"standard": {"input": 1, "output": 1}}, "plans": ["gold"]},
            "field 'plans': Unknown plan",
        ),
        ({"prices": {"standard": {"input": 1, "output": 1}}, "fallbacks": ["nope"]}, "field 'fallbacks'"),
        ({"prices": {"standard": {"input": 1, "output": 1}}, "provider": "vllm"}, "field 'provider': 'vllm'"),
        ({"prices": {"standard": {"input": 1, "output": 1}}, "context_window": 0}, "field 'context_window'"),
    ],
)
def test_start_up_names_the_model_and_field_to_fix(tmp_path, model, fragment):
    message = refusal(write(tmp_path, {"models": {"m": model}}))
    assert fragment in message, message


def test_start_up_refuses_a_missing_file_or_one_that_is_not_json(tmp_path):
    assert "cannot be read" in refusal(str(tmp_path / "missing.json"))
    assert "it is not JSON" in refusal(write(tmp_path, "{models: }"))


def test_an_endpoint_needs_its_key_variable_set(tmp_path, monkeypatch):
    path = write(
        tmp_path,
        {
            "endpoints": {"local": {"base_url": "http://127.0.0.1:8001/v1", "api_key_env": "LOCAL_LLM_KEY"}},
            "models": {"llama3": {"provider": "local", "prices": {"standard": {"input": 0, "output": 0}}}},
        },
    )
    message = refusal(path)
    assert "endpoint 'local' reads its key from LOCAL_LLM_KEY, which is not set" in message
    monkeypatch.setenv("LOCAL_LLM_KEY", "dummy")  # endpoints' keys are read from the process's environment
    local = catalogue.get_catalogue(start(path))
    assert local.provider_of("llama3") == "local" and local.endpoint("llama3").base_url.endswith(":8001/v1")


@pytest.mark.parametrize(
    "command",
    [
        ["-m", "scripts.preflight"],  # what `make run` checks first
        ["-c", "import wsgi"],  # the web process (gunicorn loads wsgi:app)
        ["-c", "from workers.celery_app import app; app.worker_main(['worker', '--pool', 'solo'])"],
    ],
)
def test_a_process_refuses_to_start_with_a_broken_catalogue(tmp_path, command):
    path = write(tmp_path, {"models": {"gpt-4o": {"prices": {"standard": {"input": 2.5}}}}})
    env = {**os.environ, "MODEL_CATALOGUE_FILE": path}
    done = subprocess.run(
        [sys.executable, *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert f"MODEL_CATALOGUE_FILE ({path}): model 'gpt-4o', field 'prices.standard.output'" in done.stderr
