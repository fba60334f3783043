"""The CI gates run as a CI would run them: the composite action's and the GitLab template's shell.

GitHub and GitLab are not here, so the tests do what their runners do (`tests/ci_runner.py`).
Behind them: a real `sloplane serve` on a real Prometheus holding a day of history that ends in the
future, so "now" always has fresh data: `healthy` passes, `outage` (30 minutes of errors before
now) fails, `quiet` (no series at all) is inconclusive.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from sloplane.evaluator.http.auth import new_token
from sloplane.sandbox import PrometheusSandbox, Segment, aligned_now, free_port, http_traffic
from tests.ci_runner import ACTION, CI, GITHUB, GITLAB_TEMPLATE, job_variables, run_action, run_gitlab_job
from tests.conftest import ROOT
from tests.servers import wait_until_up

AHEAD = timedelta(hours=2)
"""History runs this far past now, so the evaluator's staleness check never sees old data."""
DAY = timedelta(days=1)
RATE = 600.0
BASE = 0.0005


def declaration(name: str, extra: str = "") -> str:
    """An http SLO over a day, on the job of its own name."""
    body = f"service: {name}\nowners: {{team: sre}}\nobjective: 99.9\nwindow: 1d\n"
    body += f"sli: {{http: {{metric: http_requests_total, selector: {{job: {name}}}}}}}\n{extra}"
    header = f"apiVersion: sloplane.dev/v1alpha1\nkind: ServiceLevelObjective\nmetadata: {{name: {name}}}\nspec:\n"
    return header + textwrap.indent(body, "  ")


FLEET = "---\n".join(
    [
        declaration("healthy"),
        declaration("outage"),
        declaration("quiet"),
        declaration("background", "gate: {mode: async}\n"),
        declaration(
            "shop",
            "stages:\n  - {name: canary, selector: {track: canary}}\n"
            "  - {name: production, selector: {track: stable}}\n",
        ),
    ]
)


def history(now: datetime) -> list[Any]:
    """A day before now and `AHEAD` after it: outage errs from 30 minutes ago on; shop's canary errs 5%."""
    start, end = now - DAY, now + AHEAD
    steady = [Segment(end - start, RATE, BASE)]
    outage = [Segment(DAY - timedelta(minutes=30), RATE, BASE), Segment(timedelta(minutes=30) + AHEAD, RATE, 1.0)]
    canary = [Segment(DAY - timedelta(hours=1), 60.0, BASE), Segment(timedelta(hours=1) + AHEAD, 60.0, 0.05)]
    return [
        http_traffic(steady, start=start, labels={"job": "healthy"}),
        http_traffic(outage, start=start, labels={"job": "outage"}),
        http_traffic(steady, start=start, labels={"job": "background"}),
        http_traffic(steady, start=start, labels={"job": "shop", "track": "stable"}),
        http_traffic(canary, start=start, labels={"job": "shop", "track": "canary"}),
    ]


@dataclass(frozen=True)
class Served:
    """A running `sloplane serve`: where, with which token, and the declarations it serves."""

    url: str
    token: str
    declarations: Path
    prometheus: str

    def decisions(self, slo: str, revision: str) -> list[dict[str, Any]]:
        """The evaluator's recorded decisions for one SLO and revision, newest first."""
        answer = requests.get(
            f"{self.url}/v1/decisions",
            params={"slo": slo, "revision": revision},
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        found: list[dict[str, Any]] = answer.json()
        return found


def serve(folder: Path) -> Iterator[Served]:
    """A Prometheus sandbox with `history` and `sloplane serve` on it, as the subprocess users start."""
    (folder / "fleet.yaml").write_text(FLEET)
    token, entry = new_token("ci", ["gate"])
    (folder / "tokens.yaml").write_text(yaml.safe_dump({"tokens": [entry.to_dict()]}))
    with PrometheusSandbox(folder / "prometheus", history(aligned_now())) as prometheus:
        port = free_port()
        command = [sys.executable, "-m", "sloplane", "serve", str(folder / "fleet.yaml")]
        command += ["--prometheus", prometheus.url, "--tokens", str(folder / "tokens.yaml")]
        command += ["--port", str(port), "--db", str(folder / "served.db")]
        server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(f"{url}/healthz", server)
            yield Served(url, token, folder / "fleet.yaml", prometheus.url)
        finally:
            server.terminate()
            server.wait(timeout=10)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from serve(tmp_path_factory.mktemp("served"))


# --- the GitHub composite action -----------------------------------------------------------------


def evaluator_inputs(served: Served, **extra: str) -> dict[str, str]:
    return {"evaluator-url": served.url, "token": served.token, "timeout": "1m", "poll": "1s", **extra}


def test_a_healthy_slo_passes_the_blocking_action_and_sets_its_outputs(served: Served, tmp_path: Path) -> None:
    run = run_action(evaluator_inputs(served, slo="healthy"), tmp_path)
    assert run.code == 0, run.log
    assert run.outputs["decision"] == "pass"
    assert yaml.safe_load(run.outputs["json"])["decision"] == "pass"
    assert '"decision": "pass"' in run.log, "the answer is printed to the log"
    assert run.added_path == "", "sloplane was on PATH, so nothing was installed"
    (recorded,) = served.decisions("healthy", GITHUB["github.sha"])
    assert recorded["request"]["pipeline"] == "acme/checkout/actions/runs/4242/attempts/1"


def test_an_outage_fails_the_blocking_action_with_exit_1(served: Served, tmp_path: Path) -> None:
    run = run_action(evaluator_inputs(served, slo="outage"), tmp_path)
    assert run.code == 1, run.log
    assert run.outputs["decision"] == "fail"
    assert "::error title=sloplane gate::decision fail (exit 1)" in run.log


def test_an_outage_in_async_mode_is_recorded_and_the_action_goes_on(served: Served, tmp_path: Path) -> None:
    run = run_action(evaluator_inputs(served, slo="outage", mode="async", revision="async-r1"), tmp_path)
    assert run.code == 0, run.log
    assert run.outputs["decision"] == "fail"
    assert [recorded["decision"] for recorded in served.decisions("outage", "async-r1")] == ["fail"]


def test_the_action_decides_locally_against_prometheus(served: Served, tmp_path: Path) -> None:
    given = {"declarations": str(served.declarations), "prometheus-url": served.prometheus, "service": "outage"}
    run = run_action({**given, "timeout": "1m", "poll": "1s"}, tmp_path)
    assert run.code == 1, run.log
    assert run.outputs["decision"] == "fail"
    assert (tmp_path / "sloplane-decisions.db").exists(), "the local decision is recorded in the runner's temp"


def test_inputs_never_become_shell_code(served: Served, tmp_path: Path) -> None:
    hostile = f'$(touch {tmp_path}/pwned)"; touch {tmp_path}/pwned2; echo "'
    run = run_action(evaluator_inputs(served, slo="healthy", pipeline=hostile, revision="inject-r1"), tmp_path)
    assert run.code == 0, run.log
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()
    (recorded,) = served.decisions("healthy", "inject-r1")
    assert recorded["request"]["pipeline"] == hostile


def test_an_unknown_mode_is_an_error_exit(served: Served, tmp_path: Path) -> None:
    run = run_action(evaluator_inputs(served, slo="healthy", mode="sometimes"), tmp_path)
    assert run.code == 2
    assert "mode must be blocking, async or preview" in run.log


def test_a_gate_with_nowhere_to_ask_is_an_error_exit(tmp_path: Path) -> None:
    run = run_action({"slo": "healthy"}, tmp_path)
    assert run.code == 2
    assert "give evaluator-url or prometheus-url" in run.log
    job = run_gitlab_job(".sloplane-gate", {"SLOPLANE_SLO": "healthy"}, tmp_path)
    assert job.code == 2
    assert "set SLOPLANE_EVALUATOR_URL or SLOPLANE_PROMETHEUS_URL" in job.log


def test_a_gate_that_cannot_decide_is_an_error_output(tmp_path: Path) -> None:
    run = run_action({"slo": "healthy", "evaluator-url": f"http://127.0.0.1:{free_port()}", "mode": "async"}, tmp_path)
    assert run.code == 2, run.log
    assert run.outputs["decision"] == "error"


# --- the GitLab template ---------------------------------------------------------------------------


def gitlab_overrides(served: Served, **extra: str) -> dict[str, str]:
    return {
        "SLOPLANE_EVALUATOR_URL": served.url,
        "SLOPLANE_TOKEN": served.token,
        "SLOPLANE_TIMEOUT": "1m",
        "SLOPLANE_POLL": "1s",
        **extra,
    }


def test_the_gitlab_template_only_defines_hidden_jobs() -> None:
    template = yaml.safe_load(GITLAB_TEMPLATE.read_text())
    assert all(name.startswith(".") for name in template), "including the template must add no jobs"
    examples = [name for name, job in template.items() if job.get("extends") == ".sloplane-gate"]
    assert {job_variables(template, name)["SLOPLANE_MODE"] for name in examples} == {"blocking", "async"}


def test_the_gitlab_blocking_example_passes_a_healthy_slo(served: Served, tmp_path: Path) -> None:
    overrides = gitlab_overrides(served, SLOPLANE_SLO="healthy", SLOPLANE_STAGE="")
    run = run_gitlab_job(".example-sloplane-gate-blocking", overrides, tmp_path)
    assert run.code == 0, run.log
    assert run.dotenv == "SLOPLANE_DECISION=pass\n"
    assert yaml.safe_load(run.answer)["decision"] == "pass"
    (recorded,) = served.decisions("healthy", CI["CI_COMMIT_SHA"])
    assert recorded["request"]["pipeline"] == CI["CI_PIPELINE_URL"]


def test_the_gitlab_template_fails_an_outage(served: Served, tmp_path: Path) -> None:
    run = run_gitlab_job(".sloplane-gate", gitlab_overrides(served, SLOPLANE_SLO="outage"), tmp_path)
    assert run.code == 1, run.log
    assert run.dotenv == "SLOPLANE_DECISION=fail\n"


def test_the_gitlab_async_example_records_an_outage_and_goes_on(served: Served, tmp_path: Path) -> None:
    overrides = gitlab_overrides(served, SLOPLANE_SERVICE="outage", SLOPLANE_REVISION="gitlab-async")
    run = run_gitlab_job(".example-sloplane-gate-async", overrides, tmp_path)
    assert run.code == 0, run.log
    assert run.dotenv == "SLOPLANE_DECISION=fail\n"
    assert [recorded["decision"] for recorded in served.decisions("outage", "gitlab-async")] == ["fail"]


def test_the_gitlab_template_decides_locally_with_declarations(served: Served, tmp_path: Path) -> None:
    overrides = {
        "SLOPLANE_DECLARATIONS": str(served.declarations),
        "SLOPLANE_PROMETHEUS_URL": served.prometheus,
        "SLOPLANE_SLO": "healthy",
    }
    run = run_gitlab_job(".sloplane-gate", overrides, tmp_path)
    assert run.code == 0, run.log
    assert run.dotenv == "SLOPLANE_DECISION=pass\n"


# --- the examples ----------------------------------------------------------------------------------


def test_the_github_example_gives_the_action_only_its_inputs() -> None:
    inputs = set(yaml.safe_load(ACTION.read_text())["inputs"])
    workflow = yaml.safe_load((ROOT / "examples" / "ci" / "github-workflow.yml").read_text())
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    gates = [step for step in steps if str(step.get("uses", "")).startswith("sloplane/sloplane@")]
    assert len(gates) == 3
    assert all(set(step["with"]) <= inputs for step in gates), [set(step["with"]) - inputs for step in gates]
    assert {step["with"].get("mode", "blocking") for step in gates} == {"blocking", "async"}
    assert all("secrets." in step["with"]["token"] for step in gates if "token" in step["with"])


def test_the_gitlab_example_extends_the_template_with_its_variables() -> None:
    template = yaml.safe_load(GITLAB_TEMPLATE.read_text())
    known = set(template[".sloplane-gate"]["variables"])
    pipeline = yaml.safe_load((ROOT / "examples" / "ci" / "gitlab-ci.yml").read_text())
    assert pipeline["include"][0]["remote"].endswith("/ci/gitlab/sloplane-gate.gitlab-ci.yml")
    gates = {
        name: job for name, job in pipeline.items() if isinstance(job, dict) and job.get("extends") == ".sloplane-gate"
    }
    assert {job["variables"].get("SLOPLANE_MODE", "blocking") for job in gates.values()} == {"blocking", "async"}
    assert all(set(job["variables"]) <= known for job in gates.values())
    assert set(pipeline["variables"]) <= known
    assert all(job["stage"] in pipeline["stages"] for job in gates.values())
