"""What every worker process loads at start: the task modules (celeryconfig's `imports`)
and the provider. A library that only some tasks use is loaded by those tasks when they
run; loaded at start it costs every worker process its memory (Stripe's SDK with
requests, boto3), the AI workers included."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# urllib3 is not among them: the provider's own HTTP transport is built on it.
LOADED_WHEN_USED = {"stripe", "requests", "jinja2", "boto3", "botocore", "fpdf", "docx", "PIL"}

START = """
import sys
from workers.celery_app import app
app.loader.import_default_modules()
import workers.providers.openai_provider
print(" ".join(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_a_worker_starts_without_the_libraries_of_tasks_it_may_never_run():
    started = subprocess.run(
        [sys.executable, "-c", START], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    )
    loaded = set(started.stdout.split())
    assert "tasks" in loaded and "openai" in loaded  # it did load the tasks and the provider
    assert loaded & LOADED_WHEN_USED == set()
