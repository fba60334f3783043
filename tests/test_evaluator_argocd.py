"""The incident deny window against a fake Kubernetes API that applies JSON patches as the API server does."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonpatch
import pytest

from sloplane.evaluator.integrations.argocd import (
    WINDOW_MARKER,
    KubernetesApi,
    Outcome,
    SyncWindowReconciler,
    is_own,
    plan_patch,
)
from sloplane.evaluator.storage.controls import ReleaseControls
from tests.fake_http import Reply, Script, serve
from tests.kube import crd_errors

PROJECT_PATH = "/apis/argoproj.io/v1alpha1/namespaces/argocd/appprojects/payments"
TOKEN = "kube-service-account-token"
T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
NIGHTLY = {"kind": "allow", "schedule": "0 22 * * *", "duration": "1h", "applications": ["*"]}
FREEZE = {
    "kind": "deny",
    "schedule": "0 0 27 11 *",
    "duration": "96h",
    "timeZone": "America/New_York",
    "applications": ["*"],
    "description": "sloplane freeze black-friday (SLO checkout-availability)",
}


def problem(status: int, reason: str) -> Reply:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": status}
    return Reply(status, json.dumps(body).encode(), headers={"Content-Type": "application/json"})


def ok(obj: dict[str, Any]) -> Reply:
    return Reply(200, json.dumps(obj).encode(), headers={"Content-Type": "application/json"})


@dataclass
class FakeKubernetes(Script):
    """One AppProject behind GET and JSON-patch PATCH; a failed `test` op is refused (422) and changes nothing.

    `faults` are answered first, one per request; `before_patch` runs when a PATCH arrives, before it
    is applied: another writer getting in between the reconciler's read and its write.
    """

    project: dict[str, Any] = field(default_factory=dict)
    replies: list[Reply] = field(default_factory=lambda: [Reply()])
    faults: list[Reply] = field(default_factory=list)
    before_patch: Callable[[dict[str, Any]], None] | None = None
    patched: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, method: str, path: str, body: bytes) -> Reply:
        with self.lock:
            headers = self.requests[-1][2]
            if headers.get("Authorization") != f"Bearer {TOKEN}":
                return problem(401, "Unauthorized")
            if path != PROJECT_PATH:
                return problem(404, "NotFound")
            if self.faults:
                return self.faults.pop(0)
            if method == "GET":
                return ok(self.project)
            if method == "PATCH" and headers.get("Content-Type") == "application/json-patch+json":
                return self._patch(json.loads(body))
            return problem(405, "MethodNotAllowed")

    def _patch(self, operations: list[dict[str, Any]]) -> Reply:
        if self.before_patch is not None:
            self.before_patch(self.project)
            self.before_patch = None
        try:
            changed = jsonpatch.apply_patch(self.project, operations)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException):
            return problem(422, "Invalid")
        self.set(changed)
        self.patched.set()
        return ok(self.project)

    def set(self, project: dict[str, Any]) -> None:
        """Store a new version of the project, as any writer's change does."""
        project["metadata"]["resourceVersion"] = str(int(self.project["metadata"]["resourceVersion"]) + 1)
        self.project = project

    def windows(self) -> list[dict[str, Any]]:
        windows: list[dict[str, Any]] = self.project["spec"].get("syncWindows", [])
        return windows

    def patches(self) -> int:
        return sum(1 for method, *_ in self.requests if method == "PATCH")


def appproject(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AppProject",
        "metadata": {"name": "payments", "namespace": "argocd", "resourceVersion": "100"},
        "spec": spec,
    }


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    kube: FakeKubernetes
    controls: ReleaseControls
    clock: Clock
    reconciler: SyncWindowReconciler


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    kube = FakeKubernetes(project=appproject({"sourceRepos": ["*"], "syncWindows": [NIGHTLY, FREEZE]}))
    controls = ReleaseControls(tmp_path / "controls.db")
    clock = Clock()
    with serve(kube) as url:
        reconciler = SyncWindowReconciler(controls, KubernetesApi(url, token=TOKEN), "payments", "argocd", clock=clock)
        yield World(kube, controls, clock, reconciler)
    controls.close()


def open_major(world: World, services: tuple[str, ...] = ("checkout",)) -> str:
    incident = world.controls.open_incident("checkout down", "major", "alice", services=services, at=T0)
    world.clock.now = T0 + timedelta(minutes=1)
    return incident.id


def own_windows(world: World) -> list[dict[str, Any]]:
    return [window for window in world.kube.windows() if is_own(window)]


def test_no_major_incident_leaves_the_project_alone(world: World) -> None:
    world.controls.open_incident("slow search", "minor", "alice", services=["search"], at=T0)
    world.clock.now = T0 + timedelta(minutes=1)
    assert world.reconciler.reconcile_once() is Outcome.UNCHANGED
    assert world.kube.patches() == 0
    assert world.kube.windows() == [NIGHTLY, FREEZE]


def test_a_major_incident_adds_one_valid_deny_window_after_the_others(world: World) -> None:
    incident_id = open_major(world)
    assert world.reconciler.reconcile_once() is Outcome.OPENED
    assert crd_errors(world.kube.project, "argo-cd.appproject-crd.yaml") == []
    nightly, freeze, ours = world.kube.windows()
    assert (nightly, freeze) == (NIGHTLY, FREEZE)
    assert ours["kind"] == "deny" and ours["applications"] == ["*"]
    assert ours["description"].startswith(WINDOW_MARKER) and incident_id in ours["description"]
    assert ours["manualSync"] is True  # automated syncs stop; a person can still ship the fix


def test_the_window_follows_the_clock_not_the_wall(world: World) -> None:
    world.controls.open_incident("checkout down", "major", "alice", at=T0)
    world.clock.now = T0 - timedelta(hours=1)  # before the incident was opened
    assert world.reconciler.reconcile_once() is Outcome.UNCHANGED
    assert own_windows(world) == []


def test_reconciling_again_changes_nothing(world: World) -> None:
    open_major(world)
    world.reconciler.reconcile_once()
    version = world.kube.project["metadata"]["resourceVersion"]
    assert world.reconciler.reconcile_once() is Outcome.UNCHANGED
    assert world.reconciler.reconcile_once() is Outcome.UNCHANGED
    assert world.kube.patches() == 1
    assert world.kube.project["metadata"]["resourceVersion"] == version


def test_a_second_incident_updates_the_same_window_and_resolving_all_removes_only_it(world: World) -> None:
    first = open_major(world)
    world.reconciler.reconcile_once()
    second = world.controls.open_incident("payments down", "major", "bob", at=T0 + timedelta(minutes=2)).id
    world.clock.now = T0 + timedelta(minutes=3)
    assert world.reconciler.reconcile_once() is Outcome.UPDATED
    (ours,) = own_windows(world)
    assert first in ours["description"] and second in ours["description"]
    world.controls.resolve_incident(first, "alice", at=T0 + timedelta(minutes=4))
    world.controls.resolve_incident(second, "bob", at=T0 + timedelta(minutes=4))
    world.clock.now = T0 + timedelta(minutes=5)
    assert world.reconciler.reconcile_once() is Outcome.CLOSED
    assert world.kube.windows() == [NIGHTLY, FREEZE]


def test_a_project_without_windows_gets_the_list_guarded_by_its_resource_version(world: World) -> None:
    world.kube.project = appproject({"sourceRepos": ["*"]})
    open_major(world)
    assert world.reconciler.reconcile_once() is Outcome.OPENED
    ((_, _, _, body),) = [request for request in world.kube.requests if request[0] == "PATCH"]
    assert json.loads(body)[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "100"}
    assert [is_own(window) for window in world.kube.windows()] == [True]


def test_a_concurrent_edit_is_kept_and_the_window_added_on_the_next_round(world: World) -> None:
    open_major(world)
    extra = {"kind": "deny", "schedule": "0 12 * * *", "duration": "1h", "applications": ["billing"]}

    def someone_edits(project: dict[str, Any]) -> None:
        edited = copy.deepcopy(project)
        edited["spec"]["syncWindows"].insert(0, extra)
        world.kube.set(edited)

    world.kube.before_patch = someone_edits
    assert world.reconciler.reconcile_once() is Outcome.FAILED
    assert world.kube.windows() == [extra, NIGHTLY, FREEZE]
    assert world.reconciler.reconcile_once() is Outcome.OPENED
    assert world.kube.windows()[:3] == [extra, NIGHTLY, FREEZE] and len(own_windows(world)) == 1
    assert world.reconciler.failures == 1


@pytest.mark.parametrize("fault", [problem(409, "Conflict"), problem(500, "InternalError"), Reply(200, b"not json")])
@pytest.mark.parametrize("at", ["get", "patch"])
def test_failures_are_survived_and_retried_next_round(world: World, fault: Reply, at: str) -> None:
    open_major(world)
    world.kube.faults = [ok(world.kube.project), fault] if at == "patch" else [fault]
    assert world.reconciler.reconcile_once() is Outcome.FAILED
    assert own_windows(world) == []
    assert world.reconciler.reconcile_once() is Outcome.OPENED
    assert len(own_windows(world)) == 1 and world.reconciler.failures == 1


def test_an_unreachable_api_is_a_failed_round(tmp_path: Path) -> None:
    controls = ReleaseControls(tmp_path / "controls.db")
    reconciler = SyncWindowReconciler(controls, KubernetesApi("http://127.0.0.1:9", token=TOKEN), "p", "argocd")
    assert reconciler.reconcile_once() is Outcome.FAILED
    controls.close()


def test_the_thread_reconciles_until_stopped(world: World) -> None:
    open_major(world)
    world.reconciler.start()
    try:
        assert world.kube.patched.wait(30), "the thread never patched the project"
    finally:
        world.reconciler.stop()
    assert len(own_windows(world)) == 1


def test_in_cluster_config_reads_the_rotated_token_for_every_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "token").write_text("first\n")
    (tmp_path / "ca.crt").write_text("not used over http")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    api = KubernetesApi.in_cluster(tmp_path)
    assert api.base_url == "https://10.96.0.1:6443" and api.verify == str(tmp_path / "ca.crt")
    script = Script([ok(appproject({}))])
    with serve(script) as url:
        api.base_url = url
        api.get_appproject("argocd", "payments")
        (tmp_path / "token").write_text("second\n")
        api.get_appproject("argocd", "payments")
    assert [headers["Authorization"] for _, _, headers, _ in script.requests] == ["Bearer first", "Bearer second"]


def test_outside_a_cluster_in_cluster_config_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(Exception, match="KUBERNETES_SERVICE_HOST"):
        KubernetesApi.in_cluster()


def test_a_project_without_spec_or_with_a_null_list_gets_one_guarded_add() -> None:
    ours = {"kind": "deny", "description": f"{WINDOW_MARKER} (inc-1)"}
    bare = {"metadata": {"resourceVersion": "7"}}
    assert plan_patch(bare, ours) == [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
        {"op": "add", "path": "/spec", "value": {"syncWindows": [ours]}},
    ]
    null_list = {"metadata": {"resourceVersion": "8"}, "spec": {"syncWindows": None}}
    assert plan_patch(null_list, ours) == [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "8"},
        {"op": "add", "path": "/spec/syncWindows", "value": [ours]},
    ]
    assert plan_patch(null_list, None) is None
