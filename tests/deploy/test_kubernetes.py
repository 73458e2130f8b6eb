"""deploy/kubernetes, checked without a cluster: every built-in resource against the
Kubernetes schemas (kubernetes-validate ships them; no network), KEDA's resources
against the small schema below (its CRDs are not among them), and the properties a
deploy relies on: workers outlast their jobs, one beat, probes, budgets, queues."""

import re
import secrets
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

import celeryconfig
from settings import Settings

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes"
KUBERNETES = "1.30.0"  # the oldest minor still widely run that these manifests target
PLACEHOLDER = "CHANGE-ME"

# The parts of KEDA's CRDs (keda.sh/v1alpha1) the manifests use.
_REDIS_TRIGGER = {
    "type": "object",
    "required": ["type", "metadata", "authenticationRef"],
    "properties": {
        "type": {"const": "redis"},
        "metadata": {
            "type": "object",
            "required": ["address", "listName", "listLength"],
            "properties": {
                "address": {"type": "string"},
                "databaseIndex": {"type": "string"},
                "listName": {"type": "string"},
                "listLength": {"type": "string", "pattern": "^[1-9][0-9]*$"},
            },
            "additionalProperties": False,
        },
        "authenticationRef": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string"}},
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}
KEDA_SCHEMAS = {
    "ScaledObject": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "keda.sh/v1alpha1"},
            "spec": {
                "type": "object",
                "required": ["scaleTargetRef", "triggers"],
                "properties": {
                    "scaleTargetRef": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {"name": {"type": "string"}},
                        "additionalProperties": False,
                    },
                    "minReplicaCount": {"type": "integer", "minimum": 1},
                    "maxReplicaCount": {"type": "integer", "minimum": 1},
                    "cooldownPeriod": {"type": "integer", "minimum": 0},
                    "triggers": {"type": "array", "minItems": 1, "items": _REDIS_TRIGGER},
                },
                "additionalProperties": False,
            },
        },
    },
    "TriggerAuthentication": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "keda.sh/v1alpha1"},
            "spec": {
                "type": "object",
                "required": ["secretTargetRef"],
                "properties": {
                    "secretTargetRef": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["parameter", "name", "key"],
                            "properties": {
                                "parameter": {"type": "string"},
                                "name": {"type": "string"},
                                "key": {"type": "string"},
                            },
                            "additionalProperties": False,
                        },
                    }
                },
                "additionalProperties": False,
            },
        },
    },
}


@pytest.fixture(scope="module")
def kustomization() -> dict:
    return yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())


@pytest.fixture(scope="module")
def resources(kustomization) -> list[dict]:
    return [
        document
        for name in kustomization["resources"]
        for document in yaml.safe_load_all((MANIFESTS / name).read_text())
        if document
    ]


def named(resources: list[dict], kind: str) -> dict[str, dict]:
    return {resource["metadata"]["name"]: resource for resource in resources if resource["kind"] == kind}


def container(deployment: dict) -> dict:
    [only] = deployment["spec"]["template"]["spec"]["containers"]
    return only


def test_the_kustomization_lists_every_manifest_and_pins_the_image(kustomization):
    on_disk = {path.name for path in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == on_disk
    [image] = kustomization["images"]
    assert image["name"] == "conveyor" and image["newTag"] not in ("", "latest")


def test_built_in_resources_match_the_kubernetes_schemas(resources):
    built_in = [resource for resource in resources if resource["kind"] not in KEDA_SCHEMAS]
    assert len(built_in) >= 15
    for resource in built_in:
        kubernetes_validate.validate(resource, KUBERNETES, strict=True)


def test_the_validator_refuses_what_kubernetes_would(resources):
    web = named(resources, "Deployment")["conveyor-web"]
    broken = yaml.safe_load(yaml.safe_dump(web))
    broken["spec"]["template"]["spec"]["terminationGracePeriod"] = 40  # misspelt
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)


def test_keda_resources_match_their_schema_and_name_what_exists(resources):
    keda = [resource for resource in resources if resource["kind"] in KEDA_SCHEMAS]
    for resource in keda:
        jsonschema.validate(resource, KEDA_SCHEMAS[resource["kind"]])
    deployments = named(resources, "Deployment")
    authentications = named(resources, "TriggerAuthentication")
    secret = named(resources, "Secret")["conveyor"]["stringData"]
    scaled = named(resources, "ScaledObject")
    assert set(scaled) == {"conveyor-worker-ai", "conveyor-worker-default"}
    for name, scaled_object in scaled.items():
        target = deployments[scaled_object["spec"]["scaleTargetRef"]["name"]]
        command = container(target)["command"]
        consumed = set(command[command.index("--queues") + 1].split(","))
        lists = {trigger["metadata"]["listName"] for trigger in scaled_object["spec"]["triggers"]}
        assert lists == consumed, name  # scaled on exactly the queues it consumes
        for trigger in scaled_object["spec"]["triggers"]:
            assert trigger["authenticationRef"]["name"] in authentications
    for authentication in authentications.values():
        for ref in authentication["spec"]["secretTargetRef"]:
            assert ref["key"] in secret


def test_workers_cover_every_queue_once_and_outlast_their_jobs(resources):
    config = named(resources, "ConfigMap")["conveyor"]["data"]
    hard_limit = int(config["JOB_HARD_TIME_LIMIT"])
    assert hard_limit >= Settings.from_env({}).job_hard_time_limit
    consumed = []
    for name, deployment in named(resources, "Deployment").items():
        command = container(deployment)["command"]
        if command[:4] != ["celery", "-A", "workers.celery_app", "worker"]:
            continue
        consumed.extend(command[command.index("--queues") + 1].split(","))
        assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > hard_limit, name
        probe = " ".join(container(deployment)["livenessProbe"]["exec"]["command"])
        assert "scripts.worker_alive" in probe, name
    assert sorted(consumed) == sorted(celeryconfig.QUEUES)


def test_one_beat_replaced_by_recreate(resources):
    beat = named(resources, "Deployment")["conveyor-beat"]
    assert beat["spec"]["replicas"] == 1 and beat["spec"]["strategy"]["type"] == "Recreate"
    assert container(beat)["command"][3] == "beat"


def test_the_web_is_probed_on_health_scaled_by_cpu_and_served(resources):
    web = named(resources, "Deployment")["conveyor-web"]
    probes = container(web)
    assert probes["readinessProbe"]["httpGet"]["path"] == "/api/v1/health"
    assert probes["livenessProbe"]["httpGet"]["path"] == "/api/v1/health"
    assert named(resources, "HorizontalPodAutoscaler")["conveyor-web"]["spec"]["scaleTargetRef"]["name"] == (
        "conveyor-web"
    )
    selector = named(resources, "Service")["conveyor-web"]["spec"]["selector"]
    assert selector.items() <= web["spec"]["template"]["metadata"]["labels"].items()


def test_flower_keeps_its_history_on_a_claimed_volume(resources):
    flower = named(resources, "Deployment")["conveyor-flower"]
    [volume] = flower["spec"]["template"]["spec"]["volumes"]
    assert volume["persistentVolumeClaim"]["claimName"] in named(resources, "PersistentVolumeClaim")
    mount = container(flower)["volumeMounts"][0]["mountPath"]
    assert f"--db={mount}/flower.db" in container(flower)["command"]


def test_migrations_run_as_a_job_and_disruption_budgets_cover_web_and_workers(resources):
    job = named(resources, "Job")["conveyor-migrate"]
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["alembic", "upgrade", "head"]
    deployments = named(resources, "Deployment")
    budgeted = set()
    for budget in named(resources, "PodDisruptionBudget").values():
        labels = budget["spec"]["selector"]["matchLabels"]
        matches = [
            name
            for name, deployment in deployments.items()
            if labels.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(matches) == 1, budget["metadata"]["name"]
        budgeted.update(matches)
    assert {
        "conveyor-web",
        "conveyor-worker-ai",
        "conveyor-worker-default",
        "conveyor-worker-maintenance",
    } <= (budgeted)


def test_the_example_secret_holds_no_real_value_and_the_config_is_fit_for_production(resources):
    secret = named(resources, "Secret")["conveyor"]["stringData"]
    config = named(resources, "ConfigMap")["conveyor"]["data"]
    assert all(PLACEHOLDER in value for value in secret.values())
    with pytest.raises(Exception, match="SECRET_KEY must be set"):
        Settings.from_env({**config, **secret})  # the placeholders themselves are refused
    filled = {name: value.replace(PLACEHOLDER, secrets.token_urlsafe(40)) for name, value in secret.items()}
    filled["FLOWER_BASIC_AUTH"] = "ops:" + secrets.token_urlsafe(16)
    settings = Settings.from_env({**config, **filled})
    assert settings.is_production and settings.trusted_proxy_hops == 1
    assert settings.flower_users()


def test_every_variable_a_command_names_is_set(resources):
    config = named(resources, "ConfigMap")["conveyor"]["data"]
    secret = named(resources, "Secret")["conveyor"]["stringData"]
    for name, deployment in named(resources, "Deployment").items():
        own = {variable["name"] for variable in container(deployment).get("env", [])}
        for part in container(deployment)["command"]:
            for variable in re.findall(r"\$\((\w+)\)", part):
                assert variable in config or variable in secret or variable in own, (name, variable)
