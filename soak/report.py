"""The soak's result: a table for the terminal and the same figures as JSON."""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from soak.audit import Audit
from soak.chaos import WORKER_KILLS


def summary(
    audit: Audit, faults: list[dict[str, Any]], chaos_errors: list[str], meta: dict[str, Any]
) -> dict:
    recovery = defaultdict(list)
    for fault in faults:
        recovery[fault["kind"]].append(fault["recovery_seconds"])
    by_kind = Counter(fault["kind"] for fault in faults)
    return {
        **meta,
        "passed": audit.passed and not chaos_errors,
        "faults": dict(by_kind),
        "worker_kills": sum(by_kind[kind] for kind in WORKER_KILLS),
        "recovery_seconds": {
            kind: {
                "median": _round(statistics.median([s for s in seconds if s is not None] or [0])),
                "max": _round(max((s for s in seconds if s is not None), default=0)),
                "not_recovered": sum(s is None for s in seconds),
            }
            for kind, seconds in sorted(recovery.items())
        },
        "counts": audit.counts,
        "findings": audit.findings,
        "chaos_errors": chaos_errors,
        "fault_log": faults,
    }


def write(result: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")


def table(result: dict[str, Any]) -> str:
    counts = result["counts"]
    rows = [
        (
            "load + chaos",
            f"{result['minutes']} min, seed {result['seed']}, {result['users']} users, {result['rate']}/s",
        ),
        ("set-up, load, drain", ", ".join(f"{seconds} s" for seconds in result["seconds"].values())),
        ("faults injected", ", ".join(f"{kind} {n}" for kind, n in sorted(result["faults"].items()))),
        ("worker kills", result["worker_kills"]),
        (
            "exited by themselves, restarted",
            ", ".join(name for name, *_ in result.get("exited_and_restarted", [])) or "none",
        ),
        ("jobs accepted", counts.get("accepted")),
        ("jobs by final state", ", ".join(f"{k} {v}" for k, v in sorted(counts["jobs_by_state"].items()))),
        ("lost", counts.get("lost")),
        ("charged twice", counts.get("charged_twice")),
        ("stuck", counts.get("stuck")),
        ("webhooks wanted / requests", f"{counts.get('webhooks_wanted')} / {counts.get('webhook_requests')}"),
        ("emails sent", counts.get("emails_sent")),
        ("email copies after a killed worker", counts.get("email_copies_after_a_killed_worker")),
        (
            "submit refusals",
            ", ".join(f"{k} {v}" for k, v in sorted(counts["submit_refusals"].items())) or "none",
        ),
    ]
    for name, figures in counts["submit_latency"].items():
        if figures.get("count"):
            shown = f"p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms ({figures['count']} requests)"
        else:
            shown = "no requests"
        rows.append((f"submit latency {name.replace('_', ' ')}", shown))
    for kind, seconds in result["recovery_seconds"].items():
        missed = f", {seconds['not_recovered']} not recovered" if seconds["not_recovered"] else ""
        rows.append(
            (f"recovery after {kind}", f"median {seconds['median']} s, max {seconds['max']} s{missed}")
        )
    rows.append(("audit", "PASSED" if result["passed"] else "FAILED"))
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    for check, examples in result["findings"].items():
        lines.append(f"  {check} ({counts.get(check, len(examples))}): {examples}")
    lines += [f"  chaos error: {error}" for error in result["chaos_errors"]]
    return "\n".join(lines)


def _round(value: float) -> float:
    return round(value, 1)
