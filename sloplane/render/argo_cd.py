"""Argo CD: a PostSync hook that gates a sync on the SLO, a SyncFail hook that reports, freeze windows.

Pure functions, declaration and `PipelineOptions` in, Kubernetes objects (dicts) out.

**Which revision is gated.** Argo CD runs hook Jobs as ordinary manifests: it injects nothing into
their pods. What it does expose is the *build environment* of manifest generation (Helm, Kustomize,
Jsonnet and config management plugins): `$ARGOCD_APP_REVISION` (the resolved commit) and
`$ARGOCD_APP_NAME`, among others (Argo CD user guide, "Build Environment"). The Jobs therefore read
the revision and the application from two pod annotations through the downward API:

    sloplane.dev/revision:    "$ARGOCD_APP_REVISION"
    sloplane.dev/application: "$ARGOCD_APP_NAME"

rendered with those placeholders, which the application's repository has substituted at build
time: a config management plugin running `envsubst`, or a Kustomize application with
`spec.source.kustomize.commonAnnotations` set to the same two keys and values and
`commonAnnotationsEnvsubst: true`, or a Helm chart passing `$ARGOCD_APP_REVISION` as a parameter.
A placeholder nobody substituted reaches the decision log verbatim, so a missing wiring shows up
there instead of as a silently empty revision. The container's own arguments use Kubernetes'
`$(REVISION)` expansion, which no build-time `envsubst` touches.

**Failing the sync.** `sloplane gate --wait` exits non-zero on fail (1), inconclusive after the
timeout (3) or error (2); with `backoffLimit: 0` the Job fails at once and Argo CD marks the sync
failed, which runs the SyncFail hook (and lets Argo Rollouts or a human roll back).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from sloplane.core.durations import format_duration
from sloplane.core.durations import format_go_duration as go_duration
from sloplane.core.names import kubernetes_name
from sloplane.core.templating import cached_line
from sloplane.declaration.model import Declaration, Lifecycle
from sloplane.declaration.policy import RecurringWindow, TargetSystem
from sloplane.render.gates import gate_schedule
from sloplane.render.kubernetes import locked_down_container, locked_down_pod
from sloplane.render.options import BundleOptions
from sloplane.render.pipelines import PipelineOptions
from sloplane.render.registry import Document, Renderer
from sloplane.semantics.subjects import Fleet, FleetLike

"""The image's non-root user (see the Dockerfile)."""
REVISION_ANNOTATION = "sloplane.dev/revision"
APPLICATION_ANNOTATION = "sloplane.dev/application"
REVISION_PLACEHOLDER = "$ARGOCD_APP_REVISION"
APPLICATION_PLACEHOLDER = "$ARGOCD_APP_NAME"
HOOK_DELETE_POLICY = "BeforeHookCreation,HookSucceeded"
"""Successful hook Jobs go away; a failed one stays (with its pod and logs) for whoever debugs the
failed sync, until the next sync replaces it (BeforeHookCreation lets the fixed name be reused)."""
DEADLINE_SLACK = timedelta(minutes=2)
"""Beyond the gate's own timeout: pulling the image, starting Python, and the last request (30s)."""
SYNCFAIL_DEADLINE = timedelta(minutes=5)
INCIDENT_TOKEN_SECRET = "sloplane-incident-token"
"""Opening an incident needs a token with scope `admin` (a gate token gets 403), kept apart from the
gate token so that only applications that report failed syncs hold one."""
RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "50m", "memory": "96Mi"},
    "limits": {"memory": "192Mi"},
}
"""One Python process making a few HTTP calls; no CPU limit, so start-up is not throttled."""
WINDOW_KIND = "deny"

WEBHOOK_SCRIPT_TEMPLATE = "argo_cd/sync-failed-webhook.py.j2"
"""The SyncFail hook's webhook call: standard library only, so it runs from the sloplane image as is.
urlopen raises on a 4xx/5xx answer, so the Job fails and Argo CD shows the report did not arrive."""
INCIDENT_TITLE_TEMPLATE = "argo_cd/sync-failed-incident-title.txt"


def webhook_script() -> str:
    """The Python the SyncFail hook runs (`python -c`) to report to `incident_webhook_url`."""
    return cached_line(WEBHOOK_SCRIPT_TEMPLATE) + "\n"


def job_name(prefix: str, slo: str) -> str:
    """`<prefix>-<slo>`, shortened with a stable hash when longer than a Job name may be."""
    return kubernetes_name(f"{prefix}-{slo}")


def _labels(declaration: Declaration, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "sloplane",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": "sloplane",
        "sloplane.dev/slo": declaration.name,
        "sloplane.dev/service": declaration.spec.service,
    }


def _metadata(name: str, labels: dict[str, str], options: PipelineOptions, hook: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "labels": labels,
        "annotations": {
            "argocd.argoproj.io/hook": hook,
            "argocd.argoproj.io/hook-delete-policy": HOOK_DELETE_POLICY,
        },
    }
    if options.namespace is not None:
        metadata["namespace"] = options.namespace
    return metadata


def _annotation_env(name: str, annotation: str) -> dict[str, Any]:
    """An env var read from a pod annotation (downward API): see the module docstring for why."""
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{annotation}']"}}}


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _container(name: str, options: PipelineOptions, command: list[str], env: list[dict[str, Any]]) -> dict[str, Any]:
    """A locked-down container; /tmp is the only writable path (HOME points there in the image)."""
    return {
        "name": name,
        "image": options.image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "env": env,
        "resources": {kind: dict(values) for kind, values in RESOURCES.items()},
        "securityContext": locked_down_container(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }


def _job(
    metadata: dict[str, Any], container: dict[str, Any], *, backoff_limit: int, deadline: timedelta
) -> dict[str, Any]:
    """A run-once Job; the pod never talks to the Kubernetes API, so it gets no service account token."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            "backoffLimit": backoff_limit,
            "activeDeadlineSeconds": math.ceil(deadline.total_seconds()),
            "template": {
                "metadata": {
                    "labels": dict(metadata["labels"]),
                    "annotations": {
                        REVISION_ANNOTATION: REVISION_PLACEHOLDER,
                        APPLICATION_ANNOTATION: APPLICATION_PLACEHOLDER,
                    },
                },
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": locked_down_pod(),
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}],
                },
            },
        },
    }


def gate_command(declaration: Declaration, options: PipelineOptions, stage: str | None = None) -> list[str]:
    """`sloplane gate --wait` against the evaluator, as long and as often as every pipeline waits.

    It first waits the schedule's initial delay: right after a sync the new version has had no
    traffic, and a gate asked at once would judge the old one's last minutes.

    The token comes from `$SLOPLANE_TOKEN` (the CLI's env var), never the command line, where
    `ps` and the pod spec would show it.
    """
    schedule = gate_schedule(declaration)
    command = ["sloplane", "gate", "--evaluator", options.evaluator_url, "--slo", declaration.name]
    if stage is not None:
        command += ["--stage", stage]
    return [
        *command,
        "--revision",
        "$(REVISION)",
        "--pipeline",
        "argocd/$(APPLICATION)",
        "--wait",
        "--initial-delay",
        format_duration(schedule.initial_delay) if schedule.initial_delay else "0s",
        "--timeout",
        format_duration(schedule.timeout),
        "--poll",
        format_duration(schedule.interval),
        "--format",
        "json",
    ]


def postsync_job(declaration: Declaration, options: PipelineOptions, *, stage: str | None = None) -> dict[str, Any]:
    """The PostSync hook: the sync succeeds only when the gate passes for the synced revision."""
    labels = _labels(declaration, "gate")
    env = [
        _annotation_env("REVISION", REVISION_ANNOTATION),
        _annotation_env("APPLICATION", APPLICATION_ANNOTATION),
        _secret_env("SLOPLANE_TOKEN", options.token_secret, options.token_key),
    ]
    container = _container("gate", options, gate_command(declaration, options, stage), env)
    deadline = gate_schedule(declaration).timeout + DEADLINE_SLACK
    metadata = _metadata(job_name("sloplane-gate", declaration.name), labels, options, "PostSync")
    return _job(metadata, container, backoff_limit=0, deadline=deadline)


def incident_command(declaration: Declaration, options: PipelineOptions) -> list[str]:
    """`sloplane incident open` for a failed sync: minor, since the gate or a human decides on rollback."""
    title = cached_line(INCIDENT_TITLE_TEMPLATE, slo=declaration.name)
    return [
        "sloplane",
        "incident",
        "open",
        "--evaluator",
        options.evaluator_url,
        "--severity",
        "minor",
        "--service",
        declaration.spec.service,
        "--title",
        title,
        "--format",
        "json",
    ]


def syncfail_job(
    declaration: Declaration,
    options: PipelineOptions,
    *,
    incident_token_secret: str = INCIDENT_TOKEN_SECRET,
) -> dict[str, Any]:
    """The SyncFail hook: report the failed sync to `incident_webhook_url`, else as a minor incident.

    A webhook gets a JSON event (`event`, `application`, `revision`, `service`, `slo`) and needs no
    sloplane token; the evaluator needs an `admin` token (`incident_token_secret`). One retry
    (`backoffLimit: 1`): a lost report is worse than a rare duplicate.
    """
    labels = _labels(declaration, "sync-failure")
    env = [
        _annotation_env("REVISION", REVISION_ANNOTATION),
        _annotation_env("APPLICATION", APPLICATION_ANNOTATION),
        {"name": "SERVICE", "value": declaration.spec.service},
        {"name": "SLO", "value": declaration.name},
    ]
    if options.incident_webhook_url is not None:
        command = ["python", "-c", webhook_script()]
        env.append({"name": "WEBHOOK_URL", "value": options.incident_webhook_url})
    else:
        command = incident_command(declaration, options)
        env.append(_secret_env("SLOPLANE_TOKEN", incident_token_secret, options.token_key))
    container = _container("report", options, command, env)
    metadata = _metadata(job_name("sloplane-syncfail", declaration.name), labels, options, "SyncFail")
    return _job(metadata, container, backoff_limit=1, deadline=SYNCFAIL_DEADLINE)


def _applies_to_production(declaration: Declaration, window: RecurringWindow) -> bool:
    """Argo CD cannot tell stages apart: only freezes that cover the production stage become windows.

    A canary-only freeze would otherwise block every sync of the listed applications.
    """
    production = declaration.spec.production_stage
    return not window.stages or production is None or production.name in window.stages


def _renders_for_argo_cd(declaration: Declaration) -> bool:
    return TargetSystem.ARGO_CD in declaration.spec.targets and declaration.spec.lifecycle is not Lifecycle.ARCHIVED


def sync_window(
    window: RecurringWindow, names: Iterable[str], slos: Iterable[str], options: PipelineOptions
) -> dict[str, Any]:
    """One deny window; `description` names the freezes and the SLOs declaring them, for whoever sees it in the UI."""
    return {
        "kind": WINDOW_KIND,
        "schedule": window.schedule,
        "duration": go_duration(window.duration),
        "timeZone": window.time_zone,
        "applications": list(options.applications),
        "manualSync": False,
        "description": f"sloplane freeze {', '.join(sorted(names))} (SLO {', '.join(sorted(slos))})",
    }


def sync_windows(declarations: Iterable[Declaration], options: PipelineOptions) -> dict[str, Any]:
    """The AppProject patch with one deny window per distinct declared freeze.

    Freezes are the same when schedule, duration and time zone are: several SLOs of one service
    typically declare the same Black Friday freeze, and Argo CD needs it once. Windows are sorted,
    so the patch is byte-stable across runs.
    """
    found: dict[tuple[str, str, str], tuple[RecurringWindow, set[str], set[str]]] = {}
    for declaration in declarations:
        if not _renders_for_argo_cd(declaration):
            continue
        for window in declaration.spec.effective_gate.freezes:
            if not _applies_to_production(declaration, window):
                continue
            key = (window.schedule, go_duration(window.duration), window.time_zone)
            _, names, slos = found.setdefault(key, (window, set(), set()))
            names.add(window.name)
            slos.add(declaration.name)
    windows = [sync_window(window, names, slos, options) for _, (window, names, slos) in sorted(found.items())]
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AppProject",
        "metadata": {"name": options.app_project, "namespace": options.argocd_namespace},
        "spec": {"syncWindows": windows},
    }


def evaluator_rbac(options: PipelineOptions, service_account: str, namespace: str) -> list[dict[str, Any]]:
    """What the evaluator's incident window needs: read and patch one AppProject, nothing else.

    `resourceNames` cannot restrict `list`, `watch` or `create`, and the reconciler needs none of them.
    """
    name = f"sloplane-syncwindows-{namespace}"
    labels = {"app.kubernetes.io/name": "sloplane", "app.kubernetes.io/managed-by": "sloplane"}
    metadata = {"name": name, "namespace": options.argocd_namespace, "labels": labels}
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": metadata,
        "rules": [
            {
                "apiGroups": ["argoproj.io"],
                "resources": ["appprojects"],
                "resourceNames": [options.app_project],
                "verbs": ["get", "patch"],
            }
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": dict(metadata),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}],
    }
    return [role, binding]


def _documents(declaration: Declaration, fleet: FleetLike, options: BundleOptions) -> dict[str, Document]:
    """The PostSync gate Job and the SyncFail report Job."""
    name, pipelines = declaration.name, options.pipelines
    return {
        f"argo/{name}.postsync-job.yaml": ("yaml", postsync_job(declaration, pipelines)),
        f"argo/{name}.syncfail-job.yaml": ("yaml", syncfail_job(declaration, pipelines)),
    }


def _windows_documents(synced: Sequence[Declaration], fleet: Fleet, options: BundleOptions) -> dict[str, Document]:
    """The AppProject's sync windows, when any SLO names Argo CD."""
    if not synced:
        return {}
    return {"argo/appproject-syncwindows.yaml": ("yaml", sync_windows(synced, options.pipelines))}


RENDERER = Renderer(
    TargetSystem.ARGO_CD, folders=("argo",), slo_documents=_documents, fleet_documents=_windows_documents
)
"""No children of its own: the `DeploymentGate` component patches the AppProject."""
