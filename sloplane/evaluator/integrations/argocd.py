"""The incident deny window: no Argo CD syncs while a major incident is open.

A gate already fails while a major incident is open, but only for applications that run the
PostSync hook, and only after the sync has happened. A deny window in the AppProject stops the
sync itself, for every application the window names, and Argo CD's UI says why. The reconciler
keeps exactly one such window, its own, present while `ReleaseControls` has a major incident open
and absent otherwise; an incident opened through the API, the CLI or the notifier's war room
counts alike, since all land in the same store.

**Which window is ours.** AppProject sync windows have no name (the CRD: kind, schedule, duration,
timeZone, applications, namespaces, clusters, manualSync, andOperator, syncOverrun, description),
so the window is recognised by its `description`, which starts with `WINDOW_MARKER`. Nothing else
of the project is ever changed: other windows keep their content and their order.

**Concurrent edits.** Each change is one JSON patch that first `test`s the window list it was
computed from (or the resourceVersion when the project has no list yet), so if someone edits the
windows in between, the API server refuses the patch instead of losing their edit; the next round
starts from the new list. Every failure (unreachable API, 409, 422, 500) is logged and retried on
the next round: the window is a convenience on top of the gate, which fails on its own.

**Always active.** A window runs from each `schedule` match for `duration`; matching every minute
for an hour keeps it active for as long as it exists, and removing it ends it at once.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import requests

from sloplane.evaluator.contracts import ReleaseControlsStore
from sloplane.evaluator.model import Incident

log = logging.getLogger(__name__)

WINDOW_MARKER = "sloplane: major incident open"
"""Start of our window's description: how the reconciler tells its window from everyone else's."""
ALWAYS_SCHEDULE = "* * * * *"
ALWAYS_DURATION = "1h"
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
JSON_PATCH = "application/json-patch+json"
DEFAULT_INTERVAL = timedelta(seconds=30)

Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


class KubernetesError(Exception):
    """The API server refused or could not be reached; `status` is None when there was no answer."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class KubernetesApi:
    """Just enough of the Kubernetes API for AppProjects, over `requests`.

    `token` is read again for every request when it is a callable: service account tokens are
    projected and rotated by the kubelet, so a token read once at start-up expires.
    """

    base_url: str
    token: str | Callable[[], str] | None = None
    verify: str | bool = True
    """The API server's CA bundle (a path), or True for the system's."""
    timeout: float = 10.0
    session: requests.Session = field(default_factory=requests.Session)

    @classmethod
    def in_cluster(cls, directory: Path = SERVICE_ACCOUNT_DIR) -> KubernetesApi:
        """The API as a pod sees it: `KUBERNETES_SERVICE_HOST/PORT`, the mounted token and CA."""
        host = os.environ.get("KUBERNETES_SERVICE_HOST")
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise KubernetesError("not in a cluster: KUBERNETES_SERVICE_HOST is not set")
        host = f"[{host}]" if ":" in host else host
        token_file = directory / "token"
        return cls(
            f"https://{host}:{port}",
            token=lambda: token_file.read_text().strip(),
            verify=str(directory / "ca.crt"),
        )

    def _path(self, namespace: str, name: str) -> str:
        return f"{self.base_url.rstrip('/')}/apis/argoproj.io/v1alpha1/namespaces/{namespace}/appprojects/{name}"

    def _headers(self) -> dict[str, str]:
        token = self.token() if callable(self.token) else self.token
        return {"Accept": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}

    def _send(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        headers = {**self._headers(), **kwargs.pop("headers", {})}
        try:
            response = self.session.request(
                method, url, headers=headers, timeout=self.timeout, verify=self.verify, **kwargs
            )
        except (requests.RequestException, OSError) as error:
            raise KubernetesError(f"{method} {url}: {type(error).__name__}: {error}") from None
        if response.status_code >= 400:
            raise KubernetesError(
                f"{method} {url}: HTTP {response.status_code}: {response.text[:300]}", response.status_code
            )
        try:
            answer: dict[str, Any] = response.json()
        except ValueError:
            raise KubernetesError(f"{method} {url}: the answer is not JSON", response.status_code) from None
        return answer

    def get_appproject(self, namespace: str, name: str) -> dict[str, Any]:
        """The AppProject as stored."""
        return self._send("GET", self._path(namespace, name))

    def patch_appproject(self, namespace: str, name: str, operations: list[dict[str, Any]]) -> dict[str, Any]:
        """Apply a JSON patch (RFC 6902); the server applies all operations or none."""
        return self._send("PATCH", self._path(namespace, name), json=operations, headers={"Content-Type": JSON_PATCH})


class Outcome(StrEnum):
    """What one round did."""

    UNCHANGED = "unchanged"
    OPENED = "opened"
    UPDATED = "updated"
    CLOSED = "closed"
    FAILED = "failed"


def is_own(window: Any) -> bool:
    """Whether a sync window is the one this reconciler keeps."""
    return isinstance(window, dict) and str(window.get("description", "")).startswith(WINDOW_MARKER)


def incident_window(incidents: Sequence[Incident], applications: Sequence[str], manual_sync: bool) -> dict[str, Any]:
    """Our deny window, naming the incidents (sorted ids: the same incidents give the same window)."""
    ids = ", ".join(sorted(incident.id for incident in incidents))
    return {
        "kind": "deny",
        "schedule": ALWAYS_SCHEDULE,
        "duration": ALWAYS_DURATION,
        "timeZone": "UTC",
        "applications": list(applications),
        "manualSync": manual_sync,
        "description": f"{WINDOW_MARKER} ({ids}); removed when resolved",
    }


def desired_windows(current: list[Any], wanted: dict[str, Any] | None) -> list[Any]:
    """Everyone else's windows as they are, in their order, then ours when wanted."""
    others = [window for window in current if not is_own(window)]
    return [*others, wanted] if wanted is not None else others


def current_windows(project: dict[str, Any]) -> list[Any]:
    """The project's sync windows; none when the list (or the spec) is absent or null."""
    spec = project.get("spec")
    current = spec.get("syncWindows") if isinstance(spec, dict) else None
    return current if isinstance(current, list) else []


def plan_patch(project: dict[str, Any], wanted: dict[str, Any] | None) -> list[dict[str, Any]] | None:
    """The JSON patch that makes the project's windows `desired_windows`, guarded by a `test`; None: nothing to do."""
    spec = project.get("spec")
    current = spec.get("syncWindows") if isinstance(spec, dict) else None
    windows = current_windows(project)
    target = desired_windows(windows, wanted)
    if target == windows:
        return None
    if isinstance(current, list):
        return [
            {"op": "test", "path": "/spec/syncWindows", "value": windows},
            {"op": "replace", "path": "/spec/syncWindows", "value": target},
        ]
    version = project.get("metadata", {}).get("resourceVersion", "")
    guard = {"op": "test", "path": "/metadata/resourceVersion", "value": version}
    if isinstance(spec, dict):
        return [guard, {"op": "add", "path": "/spec/syncWindows", "value": target}]
    return [guard, {"op": "add", "path": "/spec", "value": {"syncWindows": target}}]


def _outcome(before: bool, after: bool) -> Outcome:
    if before and after:
        return Outcome.UPDATED
    return Outcome.OPENED if after else Outcome.CLOSED


class SyncWindowReconciler:
    """Keeps one deny window in an AppProject while a major incident is open; a thread or one round at a time."""

    def __init__(
        self,
        controls: ReleaseControlsStore,
        api: KubernetesApi,
        project: str,
        namespace: str,
        *,
        interval: timedelta = DEFAULT_INTERVAL,
        clock: Clock = _now,
        applications: Sequence[str] = ("*",),
        manual_sync: bool = True,
    ) -> None:
        """`manual_sync` True by default: automated syncs stop, while a person can still sync the fix."""
        self.controls = controls
        self.api = api
        self.project = project
        self.namespace = namespace
        self.interval = interval
        self.applications = tuple(applications)
        self.manual_sync = manual_sync
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failures = 0
        """Rounds that failed (and were retried on the next one)."""

    def wanted(self) -> dict[str, Any] | None:
        """Our window as it should be now, or None while no major incident is open."""
        incidents = self.controls.open_major_incidents(self._clock())
        return incident_window(incidents, self.applications, self.manual_sync) if incidents else None

    def reconcile_once(self) -> Outcome:
        """One round: read the controls and the project, patch when they disagree. Never raises."""
        try:
            wanted = self.wanted()
            project = self.api.get_appproject(self.namespace, self.project)
            operations = plan_patch(project, wanted)
            if operations is None:
                return Outcome.UNCHANGED
            had_window = any(is_own(window) for window in current_windows(project))
            self.api.patch_appproject(self.namespace, self.project, operations)
        except KubernetesError as error:  # expected now and then (conflicts, restarts): one line
            return self._failed("%s", error)
        except Exception:  # anything else (the controls' file, a bug): with its traceback
            return self._failed("unexpected error", exc_info=True)
        outcome = _outcome(had_window, wanted is not None)
        log.info("incident sync window of AppProject %s/%s %s", self.namespace, self.project, outcome.value)
        return outcome

    def _failed(self, message: str, *args: object, exc_info: bool = False) -> Outcome:
        """Count and log a failed round; the next round tries again from a fresh read."""
        self.failures += 1
        prefix = "incident sync window of AppProject %s/%s not reconciled, retrying: "
        log.warning(prefix + message, self.namespace, self.project, *args, exc_info=exc_info)
        return Outcome.FAILED

    def start(self) -> None:
        """Reconcile now and then every `interval`, on a daemon thread, until `stop`."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sloplane-syncwindow", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop after the current round; the window stays as it is (the next start reconciles it)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.reconcile_once()
            self._stop.wait(self.interval.total_seconds())
