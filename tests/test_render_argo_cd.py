"""Argo CD hooks and sync windows: valid objects, and hook commands that really run against a fake evaluator."""

from __future__ import annotations

import json
import os
import re
import string
import subprocess
import sys
from datetime import timedelta
from typing import Any

import kubernetes_validate
import pytest

from sloplane.core.durations import format_duration
from sloplane.declaration.model import Declaration
from sloplane.interop import load_declarations
from sloplane.render import argo_cd
from sloplane.render.gates import gate_schedule
from sloplane.render.pipelines import PipelineOptions
from tests.conftest import EXAMPLES, ROOT
from tests.fake_http import Reply, Script, serve
from tests.kube import KUBERNETES_VERSION, crd_errors

APPPROJECT_CRD = "argo-cd.appproject-crd.yaml"
REVISION = "f913b6cbf58aa5ae5ca1f8a2b149477aebcbd9d8"
APPLICATION = "checkout-prod"
BUILD_ENV = {"ARGOCD_APP_REVISION": REVISION, "ARGOCD_APP_NAME": APPLICATION}
"""What Argo CD's build environment gives a config management plugin running `envsubst`."""
GATE_TOKEN = "tok_gate-secret"
ADMIN_TOKEN = "tok_admin-secret"
SECRETS = {("sloplane-gate-token", "token"): GATE_TOKEN, ("sloplane-incident-token", "token"): ADMIN_TOKEN}
OPTIONS = PipelineOptions(namespace="payments", applications=("checkout-*",))


@pytest.fixture(scope="module")
def declarations() -> list[Declaration]:
    return load_declarations([EXAMPLES])


QUICK_GATE = {"maxBurnRate": 6, "analysis": {"initialDelay": "1s"}}


def by_name(declarations: list[Declaration], name: str) -> Declaration:
    return next(declaration for declaration in declarations if declaration.name == name)


def with_gate(declaration: Declaration, name: str, gate: dict[str, Any], **spec: Any) -> Declaration:
    """A copy of a declaration under another name, with another gate policy (and spec fields)."""
    data = declaration.model_dump(by_alias=True, mode="json", exclude_none=True)
    data["metadata"]["name"] = name
    data["spec"]["gate"] = gate
    data["spec"].update(spec)
    return Declaration.model_validate(data)


def assert_valid_kubernetes(obj: dict[str, Any]) -> None:
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        pytest.fail(f"{obj['kind']} {obj['metadata']['name']}: {error.message} at {list(error.path)}")


# --- sync windows ---------------------------------------------------------------------------------


def test_example_freezes_become_valid_deny_windows_in_argo_duration_format(declarations: list[Declaration]) -> None:
    patch = argo_cd.sync_windows(declarations, OPTIONS)
    assert crd_errors(patch, APPPROJECT_CRD) == []
    assert patch["metadata"] == {"name": "default", "namespace": "argocd"}
    assert patch["spec"]["syncWindows"] == [
        {
            "kind": "deny",
            "schedule": "0 0 27 11 *",
            "duration": "96h",  # 4d: Go's ParseDuration, which Argo CD uses, knows no days
            "timeZone": "America/New_York",
            "applications": ["checkout-*"],
            "manualSync": False,
            "description": "sloplane freeze black-friday (SLO checkout-availability)",
        }
    ]


def test_the_same_freeze_in_several_slos_is_one_window_and_distinct_ones_are_sorted(
    declarations: list[Declaration],
) -> None:
    checkout = by_name(declarations, "checkout-availability")
    black_friday = {"name": "bf", "schedule": "0 0 27 11 *", "duration": "4d", "timeZone": "America/New_York"}
    fridays = {"name": "fridays", "schedule": "0 15 * * 5", "duration": "90m", "timeZone": "Europe/Berlin"}
    twin = with_gate(checkout, "checkout-latency", {"freezes": [black_friday, fridays]})
    patch = argo_cd.sync_windows([twin, checkout], OPTIONS)
    assert crd_errors(patch, APPPROJECT_CRD) == []
    windows = patch["spec"]["syncWindows"]
    assert [(w["schedule"], w["duration"]) for w in windows] == [("0 0 27 11 *", "96h"), ("0 15 * * 5", "1h30m")]
    assert windows[0]["description"] == "sloplane freeze bf, black-friday (SLO checkout-availability, checkout-latency)"
    assert argo_cd.sync_windows([checkout, twin], OPTIONS) == patch  # order of declarations does not matter


def test_canary_only_freezes_and_slos_not_targeting_argo_cd_get_no_window(declarations: list[Declaration]) -> None:
    checkout = by_name(declarations, "checkout-availability")
    canary_only = {"name": "canary", "schedule": "0 9 * * 1", "duration": "1h", "stages": ["canary"]}
    staged = with_gate(
        checkout,
        "staged",
        {"freezes": [canary_only]},
        stages=[{"name": "canary"}, {"name": "production"}],
    )
    elsewhere = with_gate(checkout, "elsewhere", {"freezes": [canary_only | {"stages": []}]}, targets=["prometheus"])
    archived = with_gate(checkout, "archived", {"freezes": [canary_only | {"stages": []}]}, lifecycle="archived")
    assert argo_cd.sync_windows([staged, elsewhere, archived], OPTIONS)["spec"]["syncWindows"] == []


@pytest.mark.parametrize(
    ("duration", "expected"),
    [(timedelta(days=4), "96h"), (timedelta(minutes=90), "1h30m"), (timedelta(seconds=45), "45s")],
)
def test_go_durations_have_no_days(duration: timedelta, expected: str) -> None:
    assert argo_cd.go_duration(duration) == expected


# --- hook jobs: shape -------------------------------------------------------------------------------


def all_jobs(declarations: list[Declaration]) -> list[dict[str, Any]]:
    webhook = PipelineOptions(incident_webhook_url="https://hooks.example.com/argocd")
    return [
        job
        for declaration in declarations
        for job in (
            argo_cd.postsync_job(declaration, OPTIONS),
            argo_cd.syncfail_job(declaration, OPTIONS),
            argo_cd.syncfail_job(declaration, webhook),
        )
    ]


def test_every_hook_job_is_valid_kubernetes_and_hardened(declarations: list[Declaration]) -> None:
    jobs = all_jobs(declarations)
    assert len(jobs) == 3 * len(declarations)
    for job in jobs:
        assert_valid_kubernetes(job)
        pod = job["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}
        assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
        assert len(job["metadata"]["name"]) <= 63


def test_postsync_hook_fails_at_once_and_outlives_the_gate_timeout(declarations: list[Declaration]) -> None:
    for declaration in declarations:
        job = argo_cd.postsync_job(declaration, OPTIONS)
        annotations = job["metadata"]["annotations"]
        assert annotations["argocd.argoproj.io/hook"] == "PostSync"
        assert annotations["argocd.argoproj.io/hook-delete-policy"] == "BeforeHookCreation,HookSucceeded"
        assert job["metadata"]["namespace"] == "payments"
        assert job["spec"]["backoffLimit"] == 0
        timeout = gate_schedule(declaration).timeout.total_seconds()
        assert job["spec"]["activeDeadlineSeconds"] >= timeout + 60
        token = next(
            env for env in job["spec"]["template"]["spec"]["containers"][0]["env"] if env["name"] == "SLOPLANE_TOKEN"
        )
        assert token["valueFrom"] == {"secretKeyRef": {"name": "sloplane-gate-token", "key": "token"}}


def test_syncfail_hook_reports_to_the_evaluator_with_an_admin_token_or_to_the_webhook_without(
    declarations: list[Declaration],
) -> None:
    checkout = by_name(declarations, "checkout-availability")
    to_evaluator = argo_cd.syncfail_job(checkout, OPTIONS)
    to_webhook = argo_cd.syncfail_job(checkout, PipelineOptions(incident_webhook_url="https://hooks.example.com/x"))
    assert to_evaluator["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "SyncFail"
    assert "namespace" not in to_webhook["metadata"]  # None: the application's own namespace
    evaluator_env = {env["name"] for env in to_evaluator["spec"]["template"]["spec"]["containers"][0]["env"]}
    webhook_env = {env["name"] for env in to_webhook["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "SLOPLANE_TOKEN" in evaluator_env and "WEBHOOK_URL" not in evaluator_env
    assert "WEBHOOK_URL" in webhook_env and "SLOPLANE_TOKEN" not in webhook_env


def test_long_slo_names_give_short_stable_distinct_job_names() -> None:
    first, second = argo_cd.job_name("sloplane-syncfail", "a" * 60), argo_cd.job_name("sloplane-syncfail", "a" * 61)
    assert len(first) <= 63 and len(second) <= 63 and first != second
    assert argo_cd.job_name("sloplane-syncfail", "a" * 60) == first
    assert argo_cd.job_name("sloplane-gate", "checkout") == "sloplane-gate-checkout"


# --- hook jobs: run the container as the kubelet would ----------------------------------------------


def pod_environment(job: dict[str, Any]) -> dict[str, str]:
    """The container's environment: build-time `envsubst` on the annotations, then the downward API and secrets."""
    template = job["spec"]["template"]
    annotations = {
        key: string.Template(value).substitute(BUILD_ENV) for key, value in template["metadata"]["annotations"].items()
    }
    resolved: dict[str, str] = {}
    for env in template["spec"]["containers"][0]["env"]:
        source = env.get("valueFrom", {})
        if "fieldRef" in source:
            key = re.fullmatch(r"metadata\.annotations\['(.+)'\]", source["fieldRef"]["fieldPath"])
            assert key is not None, source
            resolved[env["name"]] = annotations[key.group(1)]
        elif "secretKeyRef" in source:
            resolved[env["name"]] = SECRETS[(source["secretKeyRef"]["name"], source["secretKeyRef"]["key"])]
        else:
            resolved[env["name"]] = env["value"]
    return resolved


def run_container(job: dict[str, Any]) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """The container's command with `$(VAR)` expanded as the kubelet does, run here with its environment."""
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = pod_environment(job)
    command = [re.sub(r"\$\((\w+)\)", lambda match: env[match.group(1)], part) for part in container["command"]]
    program = {"sloplane": [sys.executable, "-m", "sloplane"], "python": [sys.executable]}[command[0]]
    environment = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **env}
    completed = subprocess.run(
        [*program, *command[1:]], capture_output=True, text=True, cwd=ROOT, env=environment, timeout=120, check=False
    )
    return completed, env


def decision(outcome: str) -> Reply:
    body = {"decision": outcome, "slo": "checkout-availability", "reasons": [{"message": f"gate says {outcome}"}]}
    return Reply(200, json.dumps(body).encode(), headers={"Content-Type": "application/json"})


@pytest.mark.parametrize(("outcome", "exit_code"), [("pass", 0), ("fail", 1)])
def test_postsync_command_asks_the_evaluator_for_the_synced_revision_and_exits_with_the_verdict(
    declarations: list[Declaration], outcome: str, exit_code: int
) -> None:
    script = Script([decision(outcome)])
    with serve(script) as url:
        # A one-second initial delay: the real one (one analysis window) is what the next test checks.
        quick = with_gate(by_name(declarations, "checkout-availability"), "checkout-availability", QUICK_GATE)
        job = argo_cd.postsync_job(quick, PipelineOptions(evaluator_url=url))
        completed, _ = run_container(job)
    assert completed.returncode == exit_code, completed.stderr
    assert "waiting 1s for the release to take traffic" in completed.stderr
    ((method, path, headers, body),) = script.requests
    assert (method, path) == ("POST", "/v1/gates/evaluate")
    assert headers["Authorization"] == f"Bearer {GATE_TOKEN}"
    request = json.loads(body)
    assert request["slo"] == "checkout-availability"
    assert request["revision"] == REVISION
    assert request["pipeline"] == f"argocd/{APPLICATION}"
    assert GATE_TOKEN not in " ".join(job["spec"]["template"]["spec"]["containers"][0]["command"])


def test_postsync_command_uses_the_gate_schedule_and_only_options_the_cli_has(declarations: list[Declaration]) -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "sloplane", "gate", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
        timeout=120,
        check=True,
    ).stdout
    for declaration in declarations:
        command = argo_cd.gate_command(declaration, OPTIONS, stage="production")
        assert command[:2] == ["sloplane", "gate"]
        for option in (part for part in command if part.startswith("--")):
            assert re.search(rf"{re.escape(option)}\b", help_text), option
        schedule = gate_schedule(declaration)
        timeout = command[command.index("--timeout") + 1]
        poll = command[command.index("--poll") + 1]
        assert (timeout, poll) == (
            format_duration(schedule.timeout),
            format_duration(schedule.interval),
        )
        delay = command[command.index("--initial-delay") + 1]
        assert delay == (format_duration(schedule.initial_delay) if schedule.initial_delay else "0s")
        assert command[command.index("--stage") + 1] == "production"


def test_syncfail_command_opens_a_minor_incident_for_the_service(declarations: list[Declaration]) -> None:
    incident = {
        "id": "inc-1",
        "title": "t",
        "severity": "minor",
        "services": ["checkout"],
        "openedBy": "argocd",
        "openedAt": "2026-11-27T00:00:00+00:00",
        "resolvedAt": None,
        "resolvedBy": None,
        "key": None,
        "source": "manual",
    }
    script = Script([Reply(201, json.dumps(incident).encode(), headers={"Content-Type": "application/json"})])
    with serve(script) as url:
        job = argo_cd.syncfail_job(by_name(declarations, "checkout-availability"), PipelineOptions(evaluator_url=url))
        completed, _ = run_container(job)
    assert completed.returncode == 0, completed.stderr
    ((method, path, headers, body),) = script.requests
    assert (method, path) == ("POST", "/v1/incidents")
    assert headers["Authorization"] == f"Bearer {ADMIN_TOKEN}"
    request = json.loads(body)
    assert request["severity"] == "minor" and request["services"] == ["checkout"]
    assert request["title"] == (
        f"Argo CD sync of {APPLICATION} failed at revision {REVISION} (SLO checkout-availability)"
    )


@pytest.mark.parametrize(("status", "succeeds"), [(204, True), (500, False)])
def test_syncfail_webhook_posts_the_event_and_fails_the_job_when_refused(
    declarations: list[Declaration], status: int, succeeds: bool
) -> None:
    script = Script([Reply(status)])
    with serve(script) as url:
        options = PipelineOptions(incident_webhook_url=f"{url}/argocd")
        completed, _ = run_container(argo_cd.syncfail_job(by_name(declarations, "checkout-availability"), options))
    assert (completed.returncode == 0) is succeeds, completed.stderr
    ((method, path, _, body),) = script.requests
    assert (method, path) == ("POST", "/argocd")
    assert json.loads(body) == {
        "event": "argocd.sync.failed",
        "application": APPLICATION,
        "revision": REVISION,
        "service": "checkout",
        "slo": "checkout-availability",
    }


# --- RBAC ---------------------------------------------------------------------------------------------


def test_evaluator_rbac_may_only_get_and_patch_the_one_project() -> None:
    objects = argo_cd.evaluator_rbac(PipelineOptions(app_project="payments"), "sloplane-evaluator", "observability")
    for obj in objects:
        assert_valid_kubernetes(obj)
        assert obj["metadata"]["namespace"] == "argocd"
    role, binding = objects
    assert role["rules"] == [
        {
            "apiGroups": ["argoproj.io"],
            "resources": ["appprojects"],
            "resourceNames": ["payments"],
            "verbs": ["get", "patch"],
        }
    ]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "sloplane-evaluator", "namespace": "observability"}
    ]
