"""`sloplane preview --diff BASE`: the pure diff of two recorded states, its reports, and the whole
command in a temporary git repository (the program at a commit and in the working tree)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sloplane.cli.main import app
from sloplane.components.preview_diff import (
    MISSING,
    Change,
    Diff,
    DuplicateUrnError,
    Op,
    Resource,
    Secret,
    diff_states,
    property_changes,
)
from sloplane.components.preview_report import MARKER, NOT_PULUMI_PREVIEW, json_report, markdown_report, text_report
from sloplane.components.preview_revisions import PreviewDiffError, diff_against
from sloplane.declaration.model import Declaration
from sloplane.interop.loader import load_declarations
from sloplane.render import grafana
from sloplane.render.datadog import datadog_requests
from sloplane.render.datadog_dashboards import overview_request
from sloplane.render.prometheus import rule_file
from sloplane.semantics.subjects import Fleet
from tests.conftest import EXAMPLES, minimal

RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
DATADOG_SLO = "datadog:index/serviceLevelObjective:ServiceLevelObjective"
MONITOR = "datadog:index/monitor:Monitor"
DATADOG_DASHBOARD = "datadog:index/dashboardJson:DashboardJson"
DATADOG_PROVIDER = "pulumi:providers:datadog"


def _k8s(name: str, namespace: str = "monitoring", kind: str = "ConfigMap", **inputs: Any) -> Resource:
    api = "v1" if kind == "ConfigMap" else "monitoring.coreos.com/v1"
    resource_type = f"kubernetes:{'core/v1' if kind == 'ConfigMap' else api}:{kind}"
    body = {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": namespace}, **inputs}
    return Resource(f"urn:pulumi:s::p::{resource_type}::{name}", resource_type, name, None, body)


# --- the pure diff ---------------------------------------------------------------------------------


def test_property_changes_name_each_changed_leaf_as_a_pulumi_path() -> None:
    old = {"spec": {"groups": [{"rules": [{"expr": "a"}, {"expr": "b"}]}]}, "data": {"x.json": "1"}, "keep": 1}
    new = {"spec": {"groups": [{"rules": [{"expr": "a"}, {"expr": "c"}, {"expr": "d"}]}]}, "data": {}, "keep": 1}
    changes = list(property_changes(old, new))
    assert changes == [
        Change('data["x.json"]', "1", MISSING),
        Change("spec.groups[0].rules[1].expr", "b", "c"),
        Change("spec.groups[0].rules[2]", MISSING, {"expr": "d"}),
    ]


def test_true_is_not_one_but_one_is_one_point_zero() -> None:
    assert [c.path for c in property_changes({"a": True, "b": 1}, {"a": 1, "b": 1.0})] == ["a"]


def test_a_secret_is_compared_by_digest_and_never_descended_into() -> None:
    same = list(property_changes({"stringData": Secret("d1")}, {"stringData": Secret("d1")}))
    changed = list(property_changes({"stringData": Secret("d1")}, {"stringData": Secret("d2")}))
    assert same == []
    assert [(c.path, c.secret) for c in changed] == [("stringData", True)]


def test_diff_counts_creates_updates_deletes_and_unchanged_like_pulumi() -> None:
    base = [_k8s("kept"), _k8s("gone"), _k8s("edited", data={"a": "1"})]
    head = [_k8s("kept"), _k8s("new"), _k8s("edited", data={"a": "2"})]
    diff = diff_states(base, head)
    assert [(s.op, s.name, s.paths) for s in diff.steps] == [
        (Op.UPDATE, "edited", ["data.a"]),
        (Op.DELETE, "gone", []),
        (Op.CREATE, "new", []),
    ]
    assert diff.summary() == "Resources: + 1 to create ~ 1 to update - 1 to delete 1 unchanged"
    assert diff_states(head, head) == Diff((), 3)
    assert diff_states(head, head).summary() == "Resources: 3 unchanged"


def test_a_kubernetes_object_with_another_namespace_or_name_is_replaced() -> None:
    diff = diff_states([_k8s("cm", namespace="a")], [_k8s("cm", namespace="b")])
    (step,) = diff.steps
    assert step.op is Op.REPLACE and step.replace_because == ("metadata.namespace",)
    assert diff.summary() == "Resources: +- 1 to replace 0 unchanged"


def test_a_kubernetes_object_of_another_kind_is_one_replace_not_a_delete_and_a_create() -> None:
    diff = diff_states([_k8s("obj", kind="ConfigMap")], [_k8s("obj", kind="PrometheusRule")])
    (step,) = diff.steps
    assert step.op is Op.REPLACE and step.type == RULE and step.previous_type == CONFIG_MAP
    assert step.replace_because == ("apiVersion", "kind")


def test_a_component_is_never_replaced_and_a_new_provider_is_a_change() -> None:
    old = Resource("urn:c", "sloplane:index:SloFleet", "fleet", None, {"metadata": {"name": "a"}}, "dd-staging")
    new = Resource("urn:c", "sloplane:index:SloFleet", "fleet", None, {"metadata": {"name": "b"}}, "dd-prod")
    (step,) = diff_states([old], [new]).steps
    assert step.op is Op.UPDATE and step.paths == ["(provider)", "metadata.name"]


def test_one_urn_registered_twice_is_refused() -> None:
    with pytest.raises(DuplicateUrnError, match="twice"):
        diff_states([_k8s("a"), _k8s("a")], [])


# --- the reports -----------------------------------------------------------------------------------


def test_text_shows_the_changed_part_of_a_long_value_and_masks_secrets() -> None:
    long_old = "x" * 300 + " > 0.0144 and " + "y" * 300
    long_new = "x" * 300 + " > 0.072 and " + "y" * 300
    base = [_k8s("rules", data={"expr": long_old}), _k8s("token", data=Secret("d1"))]
    head = [_k8s("rules", data={"expr": long_new}), _k8s("token", data=Secret("d2"))]
    text = text_report(diff_states(base, head), "stack: main -> working tree")
    assert "0.0144" in text and "0.072" in text and f"({len(json.dumps(long_old)):,} characters)" in text
    assert "~ data: [secret] => [secret]" in text
    assert text.splitlines()[-1] == "Resources: ~ 2 to update 0 unchanged"


def test_markdown_is_one_comment_trimmed_to_the_limit_that_says_it_is_not_pulumi_preview() -> None:
    base = [_k8s(f"cm-{i}", data={"v": "1"}) for i in range(300)]
    head = [_k8s(f"cm-{i}", data={"v": "2"}) for i in range(300)]
    diff = diff_states(base, head)
    full = markdown_report(diff, "stack")
    trimmed = markdown_report(diff, "stack", limit=4_000)
    assert full.startswith(MARKER + "\n") and NOT_PULUMI_PREVIEW in full and "trimmed" not in full
    assert len(trimmed) <= 4_000 < len(full)
    assert re.search(r"\.\.\. \d+ more line\(s\) trimmed", trimmed)
    assert trimmed.rstrip().endswith("```\n\n</details>") and "**Resources: ~ 300 to update 0 unchanged**" in trimmed


def test_a_backtick_fence_in_a_value_cannot_close_the_comments_code_block() -> None:
    diff = diff_states([_k8s("a", data={"v": "```"})], [_k8s("a", data={"v": "````"})])
    assert "\n`````diff\n" in markdown_report(diff, "stack")


# --- the command in a git repository ---------------------------------------------------------------

PROGRAM = """\
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

from sloplane.components import SloFleet

# Relative paths, as Pulumi runs a program from its project folder: at BASE they must read BASE's files.
SloFleet("team", {"path": "slos", "namespace": Path("namespace.txt").read_text().strip()})
k8s.core.v1.Secret(
    "token",
    metadata={"name": "token", "namespace": "monitoring"},
    string_data={"token": pulumi.Output.secret(Path("token.txt").read_text().strip())},
)
"""

SEARCH = minimal("search-availability").replace("service: checkout", "service: search")


def _git(repo: Path, *args: str) -> str:
    identity = ["-c", "user.name=test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false"]
    done = subprocess.run(["git", "-C", str(repo), *identity, *args], capture_output=True, text=True, check=True)
    return done.stdout


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository whose `stack/` project runs a fleet of two SLOs and a secret; a `broken` branch
    whose program fails."""
    root = tmp_path_factory.mktemp("repo")
    stack = root / "stack"
    (stack / "slos").mkdir(parents=True)
    (stack / "Pulumi.yaml").write_text("name: previewed\nruntime: python\n")
    (stack / "__main__.py").write_text(PROGRAM)
    (stack / "namespace.txt").write_text("monitoring\n")
    (stack / "token.txt").write_text("base-token-value\n")
    (stack / "slos" / "checkout.yaml").write_text(minimal("checkout-availability", 99.9))
    (stack / "slos" / "search.yaml").write_text(SEARCH)
    _git(root, "init", "--quiet", "--initial-branch=main")
    _git(root, "add", ".")
    _git(root, "commit", "--quiet", "-m", "base")
    _git(root, "checkout", "--quiet", "-b", "broken")
    with (stack / "__main__.py").open("a") as program:
        program.write("raise ValueError('the program is broken here')\n")
    _git(root, "commit", "--quiet", "-am", "broken")
    _git(root, "checkout", "--quiet", "main")
    return root


@pytest.fixture
def stack(repo: Path) -> Iterator[Path]:
    """The project folder, given back to each test as committed."""
    yield repo / "stack"
    _git(repo, "checkout", "--quiet", "--", ".")
    _git(repo, "clean", "--quiet", "-fdx")


def _expressions(slos: Path) -> dict[str, str]:
    """The checkout SLO's rule expressions as `sloplane render` writes them, by their path in the
    PrometheusRule: what the diff must find, worked out without it."""
    declarations = load_declarations([slos])
    checkout = next(d for d in declarations if d.name == "checkout-availability")
    groups = rule_file(checkout, Fleet(declarations))["groups"]
    return {
        f"spec.groups[{g}].rules[{r}].expr": rule["expr"]
        for g, group in enumerate(groups)
        for r, rule in enumerate(group["rules"])
    }


def test_changing_one_objective_changes_that_slos_rules_and_dashboard_only(stack: Path, tmp_path: Path) -> None:
    shutil.copytree(stack / "slos", tmp_path / "before")
    (stack / "slos" / "checkout.yaml").write_text(minimal("checkout-availability", 99.5))
    before, after = _expressions(tmp_path / "before"), _expressions(stack / "slos")
    changed_expressions = {path for path in after if before.get(path) != after[path]}
    assert changed_expressions  # the oracle itself sees the change

    compared = diff_against(stack, "HEAD")
    steps = {(s.op, s.type, s.name): s for s in compared.diff.steps}
    rules = steps.pop((Op.UPDATE, RULE, "team-checkout-availability-rules"))
    dashboard = steps.pop((Op.UPDATE, CONFIG_MAP, "team-checkout-availability-dashboard"))
    assert steps == {}  # nothing else, and nothing of search-availability
    assert {p for p in rules.paths if p.endswith(".expr")} == changed_expressions
    # the rest are the alerts' prose and the objective label, which quote the objective
    assert {re.sub(r"\[\d+\]", "[]", p) for p in rules.paths if not p.endswith(".expr")} == {
        "spec.groups[].rules[].annotations.description",
        "spec.groups[].rules[].labels.objective",
    }
    assert dashboard.paths == ['data["checkout-availability.json"]']  # its thresholds and description
    assert compared.diff.summary() == f"Resources: ~ 2 to update {compared.diff.unchanged} unchanged"
    assert compared.heading.startswith("stack: HEAD (") and not compared.base_missing
    assert len(_git(stack.parent, "worktree", "list").splitlines()) == 1  # BASE's checkout is gone

    steps_json = json.loads(json_report(compared.diff))
    assert [(s["op"], s["name"]) for s in steps_json] == [
        ("update", "team-checkout-availability-dashboard"),
        ("update", "team-checkout-availability-rules"),
    ]
    assert steps_json[1]["paths"] == rules.paths and steps_json[1]["type"] == RULE
    comment = markdown_report(compared.diff, compared.heading)
    assert comment.startswith(MARKER) and "<details>" in comment and "not `pulumi preview`" in comment
    assert all(f"~ {path}: " in comment for path in changed_expressions)


def test_renaming_the_namespace_replaces_every_object_in_it(stack: Path) -> None:
    (stack / "namespace.txt").write_text("observability\n")
    diff = diff_against(stack, "HEAD").diff
    assert diff.steps and {s.op for s in diff.steps} == {Op.REPLACE}
    assert {s.replace_because for s in diff.steps} == {("metadata.namespace",)}
    names = {s.name for s in diff.steps}
    assert {"team-checkout-availability-rules", "team-search-availability-rules"} <= names and "token" not in names


def test_a_changed_secret_is_reported_and_never_shown(stack: Path) -> None:
    (stack / "token.txt").write_text("head-token-value\n")
    diff = diff_against(stack, "HEAD").diff
    (step,) = diff.steps
    assert (step.op, step.name, step.paths) == (Op.UPDATE, "token", ["stringData"])
    for text in (text_report(diff, "h"), markdown_report(diff, "h"), json_report(diff)):
        assert "token-value" not in text
    assert "~ stringData: [secret] => [secret]" in text_report(diff, "h")


def test_a_new_stack_is_all_creates(stack: Path) -> None:
    shutil.copytree(stack, stack.parent / "new-stack")
    compared = diff_against(stack.parent / "new-stack", "HEAD")
    assert compared.base_missing and compared.diff.steps
    assert {s.op for s in compared.diff.steps} == {Op.CREATE} and compared.diff.unchanged == 0


def test_a_program_failing_at_base_is_one_clean_error(stack: Path) -> None:
    with pytest.raises(PreviewDiffError, match=r"^the stack program failed at broken: ValueError: the program is"):
        diff_against(stack, "broken")


def test_expect_no_changes_exits_0_when_nothing_changes_and_1_when_something_does(stack: Path) -> None:
    runner = CliRunner()
    clean = runner.invoke(app, ["preview", str(stack), "--diff", "HEAD", "--expect-no-changes"])
    assert clean.exit_code == 0, clean.output
    assert clean.stdout.rstrip().endswith("unchanged") and "(no changes)" in clean.stdout
    (stack / "slos" / "search.yaml").write_text(SEARCH.replace("objective: 99.9", "objective: 99"))
    changed = runner.invoke(app, ["preview", str(stack), "--diff", "HEAD", "--expect-no-changes", "--format", "json"])
    assert changed.exit_code == 1
    assert {s["name"] for s in json.loads(changed.stdout)} == {
        "team-search-availability-rules",
        "team-search-availability-dashboard",
    }
    assert "none expected" in changed.stderr


def test_bad_input_is_a_one_line_message_and_exit_2(stack: Path, tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text("name: elsewhere\nruntime: python\n")
    (tmp_path / "__main__.py").write_text("")
    cases = {
        f"'no-such-revision' is not a revision of the repository at {stack.parent}": [
            str(stack),
            "--diff",
            "no-such-revision",
        ],
        "is not in a git repository": [str(tmp_path), "--diff", "HEAD"],
        "--format: give one of text, markdown, json": [str(stack), "--diff", "HEAD", "--format", "yaml"],
        "give --diff BASE": [str(stack), "--expect-no-changes"],
        "Pulumi.yaml": [str(tmp_path / "nowhere"), "--diff", "HEAD"],
    }
    for message, args in cases.items():
        result = CliRunner().invoke(app, ["preview", *args])
        assert result.exit_code == 2 and message in result.stderr, (args, result.output)
        assert len(result.stderr.strip().splitlines()) == 1


# --- the command with Datadog: an explicit provider, its keys secrets -------------------------------

DATADOG_PROGRAM = """\
from pathlib import Path

import pulumi
import pulumi_datadog

from sloplane.components import SloFleet

# The keys as secrets, read where the program runs (a stack would take them from its secret config).
datadog = pulumi_datadog.Provider(
    "dd-prod",
    api_key=pulumi.Output.secret(Path("api-key.txt").read_text().strip()),
    app_key=pulumi.Output.secret(Path("app-key.txt").read_text().strip()),
    api_url="https://api.datadoghq.eu",
)
SloFleet("team", {"path": "slos", "namespace": "monitoring", "datadog_provider": datadog})
"""

KEYS = {"api-key.txt": "dd-api-base-0123456789abcdef", "app-key.txt": "dd-app-base-fedcba9876543210"}
ROTATED = {"api-key.txt": "dd-api-head-aaaabbbbccccdddd", "app-key.txt": "dd-app-head-eeeeffff00001111"}
# The example targets prometheus, grafana and datadog; a gate's minimum budget adds the error-budget monitor.
PAYMENTS = (EXAMPLES / "payments-datadog.yaml").read_text() + "  gate: {minBudgetRemaining: 25}\n"
SEARCH_DATADOG = SEARCH + "  targets: [prometheus, grafana, datadog]\n"
_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")


@pytest.fixture(scope="module")
def datadog_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository whose `stack/` project runs a fleet of two SLOs that target Datadog (payments and
    search) through an explicit `pulumi_datadog.Provider`."""
    root = tmp_path_factory.mktemp("datadog-repo")
    stack = root / "stack"
    (stack / "slos").mkdir(parents=True)
    (stack / "Pulumi.yaml").write_text("name: previewed\nruntime: python\n")
    (stack / "__main__.py").write_text(DATADOG_PROGRAM)
    for file_name, key in KEYS.items():
        (stack / file_name).write_text(key + "\n")
    (stack / "slos" / "payments.yaml").write_text(PAYMENTS)
    (stack / "slos" / "search.yaml").write_text(SEARCH_DATADOG)
    _git(root, "init", "--quiet", "--initial-branch=main")
    _git(root, "add", ".")
    _git(root, "commit", "--quiet", "-m", "base")
    return root


@pytest.fixture
def datadog_stack(datadog_repo: Path) -> Iterator[Path]:
    """The Datadog project folder, given back to each test as committed."""
    yield datadog_repo / "stack"
    _git(datadog_repo, "checkout", "--quiet", "--", ".")
    _git(datadog_repo, "clean", "--quiet", "-fdx")


def _leaves(value: Any, path: str = "") -> dict[str, Any]:
    """Every leaf of a JSON-like tree by its Pulumi property path (`thresholds[0].target`, `data["x.json"]`)."""
    if isinstance(value, dict):
        found: dict[str, Any] = {}
        for key, item in value.items():
            named = (f"{path}.{key}" if path else key) if _IDENTIFIER.fullmatch(key) else f"{path}[{json.dumps(key)}]"
            found.update(_leaves(item, named))
        return found
    if isinstance(value, list):
        return {
            leaf: item
            for index, element in enumerate(value)
            for leaf, item in _leaves(element, f"{path}[{index}]").items()
        }
    return {path: value}


def _changed_leaves(old: dict[str, Any], new: dict[str, Any]) -> set[str]:
    """The leaves whose values differ; both trees must have the same shape (an objective moves numbers
    and words, no rule or request appears or goes)."""
    assert old.keys() == new.keys(), sorted(old.keys() ^ new.keys())
    return {path for path in old if old[path] != new[path]}


def _datadog_inputs(declaration: Declaration) -> dict[tuple[str, str], dict[str, Any]]:
    """The SLO's Datadog resources, (type, name) to the leaves of their inputs, from the request bodies
    `datadog/<slo>.json` holds: the names as the components give them (`<fleet>-<slo>-datadog-slo`,
    `-datadog-monitor-<tier>-<long window>` or `-budget`, `-datadog-dashboard`), a monitor's
    `options.thresholds` as pulumi-datadog's `monitorThresholds`, a dashboard one JSON text."""
    resources: dict[tuple[str, str], dict[str, Any]] = {}
    prefix = f"team-{declaration.name}-datadog"
    for request in datadog_requests(declaration):
        body = request["body"]
        if request["path"] == "/api/v1/slo":
            resources[DATADOG_SLO, f"{prefix}-slo"] = _leaves(body)
        elif request["path"] == "/api/v1/monitor":
            which = request["ref"].removeprefix(f"{declaration.name}/")
            leaves = {re.sub(r"^options\.thresholds\.", "monitorThresholds.", p): v for p, v in _leaves(body).items()}
            resources[MONITOR, f"{prefix}-monitor-{which}"] = leaves
        elif request["path"] == "/api/v1/dashboard":
            resources[DATADOG_DASHBOARD, f"{prefix}-dashboard"] = {"dashboard": body}
        else:  # no exclusions in this fleet: no corrections or downtimes to name
            raise AssertionError(f"unexpected request {request['path']}")
    return resources


def _expected_steps(before: Path, after: Path) -> dict[tuple[str, str, str], set[str]]:
    """What the diff must report, (op, type, name) to changed paths, worked out without it: every SLO's
    rule file, Grafana dashboard and Datadog request bodies, and both overviews, rendered from each
    folder's declarations and compared here."""
    old_all, new_all = load_declarations([before]), load_declarations([after])
    old_fleet, new_fleet = Fleet(old_all), Fleet(new_all)
    assert sorted(d.name for d in old_all) == sorted(d.name for d in new_all)
    expected: dict[tuple[str, str, str], set[str]] = {}
    for old in old_all:
        new = next(d for d in new_all if d.name == old.name)
        rules = _changed_leaves(_leaves(rule_file(old, old_fleet)), _leaves(rule_file(new, new_fleet)))
        if rules:
            expected["update", RULE, f"team-{old.name}-rules"] = {f"spec.{path}" for path in rules}
        if grafana.dashboard(old, old_fleet) != grafana.dashboard(new, new_fleet):
            expected["update", CONFIG_MAP, f"team-{old.name}-dashboard"] = {f'data["{old.name}.json"]'}
        old_datadog, new_datadog = _datadog_inputs(old), _datadog_inputs(new)
        assert old_datadog.keys() == new_datadog.keys()  # no monitor stops or starts being able to fire
        for (kind, name), inputs in old_datadog.items():
            changed = _changed_leaves(inputs, new_datadog[kind, name])
            if changed:
                expected["update", kind, name] = changed
    if grafana.overview(old_all, old_fleet) != grafana.overview(new_all, new_fleet):
        expected["update", CONFIG_MAP, "team-overview"] = {'data["sloplane-overview.json"]'}
    if overview_request(old_all) != overview_request(new_all):
        expected["update", DATADOG_DASHBOARD, "team-datadog-overview"] = {"dashboard"}
    return expected


def _previews(stack: Path) -> dict[str, tuple[str, str]]:
    """`sloplane preview STACK --diff HEAD` in every format: (standard output, all it printed)."""
    printed = {}
    for output_format in ("json", "text", "markdown"):
        result = CliRunner().invoke(app, ["preview", str(stack), "--diff", "HEAD", "--format", output_format])
        assert result.exit_code == 0, result.output
        printed[output_format] = (result.stdout, result.output)
    return printed


def test_changing_a_datadog_slos_objective_changes_its_rules_dashboards_and_slo_only(
    datadog_stack: Path, tmp_path: Path
) -> None:
    shutil.copytree(datadog_stack / "slos", tmp_path / "before")
    assert PAYMENTS.count("objective: 99.95\n") == 1
    (datadog_stack / "slos" / "payments.yaml").write_text(PAYMENTS.replace("objective: 99.95\n", "objective: 99.9\n"))
    expected = _expected_steps(tmp_path / "before", datadog_stack / "slos")

    # The oracle agrees with what one works out by hand: Datadog's SLO has a new target (99.95 -> 99.9)
    # and warning (halfway to 100); burn-rate monitors compare with the factor, which does not depend on
    # the objective, and their names, messages and tags do not quote it; the budget monitor compares with
    # the share of the budget consumed; the dashboard's burn formulas divide by the budget.
    payments = next(d for d in load_declarations([tmp_path / "before"]) if d.name == "payments-availability")
    monitors = {name for kind, name in _datadog_inputs(payments) if kind == MONITOR}
    assert "team-payments-availability-datadog-monitor-budget" in monitors and len(monitors) > 1
    assert not monitors & {name for _, _, name in expected}
    assert expected["update", DATADOG_SLO, "team-payments-availability-datadog-slo"] == {
        "thresholds[0].target",
        "thresholds[0].warning",
    }
    assert expected["update", DATADOG_DASHBOARD, "team-payments-availability-datadog-dashboard"] == {"dashboard"}
    assert any(path.endswith(".expr") for path in expected["update", RULE, "team-payments-availability-rules"])
    assert ("update", CONFIG_MAP, "team-payments-availability-dashboard") in expected
    # Nothing of search; the one fleet-wide object that changes is Grafana's overview, whose objective
    # column shows as many decimals as the fleet's most precise objective needs (99.95 two, 99.9 one).
    assert {name for _, _, name in expected if not name.startswith("team-payments-availability-")} == {"team-overview"}

    printed = _previews(datadog_stack)
    steps = json.loads(printed["json"][0])
    reported = {(s["op"], s["type"], s["name"]): s["paths"] for s in steps}
    assert len(reported) == len(steps) and all(len(set(paths)) == len(paths) for paths in reported.values())
    assert {step: set(paths) for step, paths in reported.items()} == expected
    assert all(s["urn"].endswith(f"::{s['name']}") for s in steps)
    for output_format, (_, shown) in printed.items():
        assert "team-payments-availability-datadog-slo" in shown and "team-search" not in shown, output_format
        assert not any(key in shown for key in KEYS.values()), output_format


def test_rotated_datadog_keys_are_one_provider_update_and_never_shown(datadog_stack: Path) -> None:
    for file_name, key in ROTATED.items():
        (datadog_stack / file_name).write_text(key + "\n")
    printed = _previews(datadog_stack)
    assert [(s["op"], s["type"], s["name"], s["paths"]) for s in json.loads(printed["json"][0])] == [
        ("update", DATADOG_PROVIDER, "dd-prod", ["apiKey", "appKey"])
    ]
    for output_format, (_, shown) in printed.items():
        assert not any(key in shown for key in [*KEYS.values(), *ROTATED.values()]), output_format
    for output_format in ("text", "markdown"):
        shown = printed[output_format][0]
        assert "~ apiKey: [secret] => [secret]" in shown and "~ appKey: [secret] => [secret]" in shown
