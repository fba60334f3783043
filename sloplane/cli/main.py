"""The `sloplane` command.

Exit codes: 0 success, 1 the declarations have errors (or warnings under --strict), 2 usage errors
and internal faults. Problems are printed as `path:line:column: severity: field: message` on
standard error; no traceback ever reaches the user.

Size: the app itself and the declaration commands (validate, explain, render, preview, the importers) stay
together because they share the loading, diagnostics and progress helpers here; every other command group lives
in its own module and only registers here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.tree import Tree

from sloplane.cli import (
    archive,
    assess,
    comment,
    controls,
    decisions,
    evaluator,
    experiment,
    export,
    feedback,
    govern,
    migrate,
    report,
    rollup,
    serve,
    terraform,
)
from sloplane.cli.common import Consoles
from sloplane.core.durations import format_duration, human_duration
from sloplane.core.fileio import Plan, UnsafeOutputError, plan, write_files
from sloplane.core.serialize import pretty_json_ascii
from sloplane.declaration.debt import DEBT_KIND, ReliabilityDebt
from sloplane.declaration.model import KIND, Declaration
from sloplane.declaration.writer import declaration_data, dump_yaml
from sloplane.interop import LoadResult, load_paths
from sloplane.interop.formats import FOREIGN_FORMATS, by_command
from sloplane.interop.openslo.exporter import EXPORT_VERSIONS, export_openslo
from sloplane.interop.translation import ForeignFormat
from sloplane.render.options import BundleOptions, KubernetesOptions, RenderOptions
from sloplane.render.pipelines import PipelineOptions
from sloplane.semantics.explain import (
    EXPLAINED_ERROR_RATIOS,
    ObjectiveExplanation,
    explain,
)

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_FAULT = 2

APP_SETTINGS: dict[str, Any] = {
    "name": "sloplane",
    "help": "One SLO declaration in; rules, alerts, dashboards, gates and a runtime evaluator out.",
    "no_args_is_help": True,
    "add_completion": False,
    "pretty_exceptions_enable": False,
}
app = typer.Typer(**APP_SETTINGS)
import_app = typer.Typer(help="Read other SLO formats and print sloplane declarations.", no_args_is_help=True)
export_app = typer.Typer(help="Write sloplane declarations in other SLO formats.", no_args_is_help=True)
app.add_typer(import_app, name="import")
app.add_typer(export_app, name="export")

_out = Console(width=None if sys.stdout.isatty() else 160, highlight=False)
_err = Console(stderr=True, width=None if sys.stderr.isatty() else 160, highlight=False)

Paths = Annotated[
    list[Path],
    typer.Argument(help="YAML files or folders (sloplane, OpenSLO, Sloth, Pyrra, slo-generator).", show_default=False),
]
Strict = Annotated[bool, typer.Option("--strict", help="Treat lint warnings as errors.")]
OutDir = Annotated[
    Path | None, typer.Option("--out", help="Write one file per SLO into this folder instead of printing.")
]


def _load(paths: list[Path], strict: bool, only: str | None = None, *, rendering: bool = True) -> LoadResult:
    """Load and report; exits 1 when the input is unusable, so callers only see good declarations.

    `only` names the one foreign format (`sloplane import <command>`) read besides ours. With
    `rendering`, a target no renderer serves is refused; the evaluator renders nothing, so it does not ask.
    """
    renderable = None
    if rendering:
        from sloplane.render.targets import rendered_targets  # deferred: the renderers are slow to import

        renderable = rendered_targets()
    formats = None if only is None else [by_command(only)]
    result = load_paths(paths, renderable=renderable, formats=formats)
    for diagnostic in result.diagnostics:
        style = "red" if diagnostic.severity.value == "error" else "yellow"
        _err.print(diagnostic.render(), style=style, markup=False, soft_wrap=True)
    if result.failed(strict=strict):
        errors, warnings = len(result.errors), len(result.warnings)
        _err.print(f"{errors} error(s), {warnings} warning(s): nothing done", style="bold red", markup=False)
        raise typer.Exit(EXIT_INVALID)
    return result


@app.command()
def validate(paths: Paths, strict: Strict = False) -> None:
    """Check declarations: exit 0 when valid, 1 with every problem listed as path:line:column."""
    result = _load(paths, strict)
    debts = f", {len(result.debts)} reliability debt item(s)" if result.debts else ""
    _out.print(f"{len(result.slos)} SLO(s) valid{debts}, {len(result.warnings)} warning(s)", markup=False)


SCHEMAS = {KIND: (Declaration, "service-level-objective"), DEBT_KIND: (ReliabilityDebt, "reliability-debt")}
"""Each document kind's model and the name of its schema's file."""


@app.command()
def schema(
    kind: Annotated[
        str, typer.Option("--kind", help=f"The document kind: {' or '.join(SCHEMAS)}.", show_default=True)
    ] = KIND,
) -> None:
    """Print the JSON Schema of a document kind (for editors and pre-commit hooks)."""
    if kind not in SCHEMAS:
        raise typer.BadParameter(f"give one of {', '.join(SCHEMAS)}", param_hint="--kind")
    model, name = SCHEMAS[kind]
    document: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://sloplane.dev/schemas/v1alpha1/{name}.json",
        **model.model_json_schema(by_alias=True),
    }
    sys.stdout.write(pretty_json_ascii(document, sort_keys=True))


def _explanation_data(item: ObjectiveExplanation) -> dict[str, Any]:
    def minutes(value: Any) -> float | None:
        return None if value is None else value.total_seconds() / 60

    return {
        "slo": item.slo,
        "stage": item.stage,
        "objective": item.objective,
        "window": item.window,
        "errorBudget": item.error_budget,
        "budgetMinutes": minutes(item.budget_time),
        "alerts": [
            {
                "tier": alert.tier,
                "windows": alert.windows,
                "enabled": alert.enabled,
                "burnRate": alert.factor,
                "errorRatioThreshold": alert.error_ratio_threshold,
                "canFire": alert.can_fire,
                "badMinutesAllowed": minutes(alert.bad_time_allowed),
                "budgetShare": alert.budget_share,
                "detectionMinutes": {f"{ratio:g}": minutes(t) for ratio, t in alert.detection.items()},
                "resetMinutesAfterFullOutage": minutes(alert.reset_after_full_outage),
                "datadog": None
                if alert.datadog is None
                else {
                    "longWindow": format_duration(alert.datadog.long_window),
                    "shortWindow": format_duration(alert.datadog.short_window),
                    "burnRate": alert.datadog.factor,
                    "moved": alert.datadog.moved,
                },
            }
            for alert in item.alerts
        ],
    }


def _explanation_table(item: ObjectiveExplanation) -> Table:
    stage = f" [{item.stage}]" if item.stage else ""
    title = (
        f"{item.slo}{stage}: {item.objective:g}% over {item.window} - budget "
        f"{item.error_budget:.4g} = {human_duration(item.budget_time)} of full outage"
    )
    table = Table(title=escape(title), title_justify="left")
    for column in ("tier", "windows", "burn rate", "error ratio >", "window budget", "budget spent"):
        table.add_column(column, justify="left" if column in ("tier", "windows") else "right")
    for ratio in EXPLAINED_ERROR_RATIOS:
        table.add_column(f"detect {ratio:.0%}", justify="right")
    table.add_column("reset", justify="right")
    for alert in item.alerts:
        if not alert.enabled:
            table.add_row(alert.tier, alert.windows, "off", *[""] * (len(table.columns) - 3))
            continue
        threshold = f"{alert.error_ratio_threshold:.4g}" + ("" if alert.can_fire else " (unreachable)")
        windows = alert.windows
        if alert.datadog is not None and alert.datadog.moved:
            dd = alert.datadog
            moved = f"{format_duration(dd.long_window)}/{format_duration(dd.short_window)} at {dd.factor:g}x"
            windows += f" (Datadog: {moved})"
        table.add_row(
            alert.tier,
            windows,
            f"{alert.factor:g}x",
            threshold,
            human_duration(alert.bad_time_allowed),
            f"{alert.budget_share:.0%}",
            *[human_duration(alert.detection[ratio]) for ratio in EXPLAINED_ERROR_RATIOS],
            human_duration(alert.reset_after_full_outage),
        )
    return table


@app.command(name="explain")
def explain_command(
    paths: Paths,
    output_format: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """For each SLO: the budget, each alert's threshold, detection times for 100%, 10% and 1% errors, reset time.

    Detection assumes a constant error ratio after a clean history; reset is how long the alert keeps
    firing after a long full outage ends.
    """
    if output_format not in ("table", "json"):
        raise typer.BadParameter("use table or json", param_hint="--format")
    result = _load(paths, strict=False)
    explanations = [item for slo in result.slos for item in explain(slo.declaration)]
    if output_format == "json":
        sys.stdout.write(pretty_json_ascii([_explanation_data(item) for item in explanations]))
        return
    for item in explanations:
        _out.print(_explanation_table(item))
        _out.print()


def _emit(documents_by_name: dict[str, list[dict[str, Any]]], out: Path | None) -> None:
    if out is None:
        sys.stdout.write(dump_yaml(d for documents in documents_by_name.values() for d in documents))
        return
    files = {f"{name}.yaml": dump_yaml(documents) for name, documents in documents_by_name.items()}
    changed = _written(lambda: write_files(out, files)).changed
    _err.print(f"wrote {len(changed)} file(s) to {out} ({len(files) - len(changed)} unchanged)", markup=False)


def _written(write: Callable[[], Plan]) -> Plan:
    """Run a write (or plan); a link inside the output folder or an OS error is a message and exit 1."""
    try:
        return write()
    except UnsafeOutputError as error:
        _err.print(f"sloplane: {error}; nothing written", style="red", markup=False, soft_wrap=True)
    except OSError as error:
        where = error.filename or "the output"
        _err.print(f"sloplane: cannot write {where}: {error.strerror or error}", style="red", markup=False)
    raise typer.Exit(EXIT_INVALID)


PROGRESS_THRESHOLD = 50
"""Fleets at least this large get a progress bar while rendering."""


def _render_with_progress(declarations: list[Declaration], options: BundleOptions) -> dict[str, str]:
    from sloplane.render.bundle import active, fleet_files  # deferred: the renderers are slow to import

    rendered = active(declarations)
    if len(rendered) < PROGRESS_THRESHOLD:
        return fleet_files(declarations, options)
    columns = (TextColumn("rendering"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=_err, transient=True) as progress:
        task = progress.add_task("render", total=len(rendered))
        return fleet_files(declarations, options, progress=lambda _: progress.advance(task))


def _summary_table(declarations: list[Declaration], files: dict[str, str]) -> Table:
    from sloplane.render.bundle import active  # deferred: the renderers are slow to import

    table = Table(title="rendered", title_justify="left")
    for column in ("slo", "sli", "objective", "window", "stages", "rules", "alerts", "files"):
        table.add_column(column, justify="right" if column in ("objective", "rules", "alerts", "files") else "left")
    for declaration in active(declarations):
        spec = declaration.spec
        rules_text = files.get(f"prometheus/{declaration.name}.rules.yaml", "")
        stages = ", ".join(stage.name for stage in spec.stages) or "-"
        owned = [path for path in files if f"/{declaration.name}." in path]
        table.add_row(
            declaration.name,
            spec.sli.kind,
            f"{spec.objective:g}%",
            spec.window.describe(),
            stages,
            str(rules_text.count("- record:") + rules_text.count("- alert:")),
            str(rules_text.count("- alert:")),
            str(len(owned)),
        )
    return table


@app.command()
def render(
    paths: Paths,
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("out"),
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 listing files that would change (drift check).")
    ] = False,
    namespace: Annotated[str, typer.Option(help="Namespace of the Kubernetes objects.")] = "monitoring",
    grafana_url: Annotated[str, typer.Option(help="Grafana base URL for dashboard links in alerts.")] = "",
    evaluator_url: Annotated[
        str, typer.Option(help="The evaluator as pipelines reach it (web analysis, hooks, Spinnaker).")
    ] = PipelineOptions.evaluator_url,
    analysis_prometheus_url: Annotated[
        str, typer.Option(help="Prometheus as Argo Rollouts' analysis reaches it.")
    ] = "http://prometheus-operated.monitoring.svc:9090",
    image: Annotated[str, typer.Option(help="The sloplane image hook Jobs run.")] = PipelineOptions.image,
    app_project: Annotated[str, typer.Option(help="Argo CD AppProject for the freeze windows.")] = "default",
    output_format: Annotated[
        str,
        typer.Option(
            "--format", help="files (every target's files) or terraform (DIR/terraform/, a Terraform JSON module)."
        ),
    ] = "files",
    dashboards: Annotated[str, typer.Option(help=terraform.DASHBOARDS_HELP)] = "configmap",
    kubernetes_objects: Annotated[str, typer.Option("--kubernetes", help=terraform.KUBERNETES_HELP)] = "manifest",
    evaluator_storage: Annotated[str, typer.Option(help=terraform.EVALUATOR_STORAGE_HELP)] = "volume",
    evaluator_chain_key: Annotated[bool, typer.Option(help=terraform.EVALUATOR_CHAIN_KEY_HELP)] = False,
    strict: Strict = False,
) -> None:
    """Render rules, alerts, dashboards and pipeline gates (or, with --format terraform, a Terraform module).

    Writes DIR/prometheus/<slo>.rules.yaml and <slo>.test.yaml, DIR/kubernetes/<slo>.prometheusrule.yaml,
    DIR/alertmanager/alertmanager.yaml, DIR/grafana/<slo>.json and DIR/grafana/overview.json;
    DIR/argo/<slo>.analysistemplate.yaml, <slo>.rollout-steps.yaml, <slo>.postsync-job.yaml,
    <slo>.syncfail-job.yaml and appproject-syncwindows.yaml; DIR/spinnaker/<slo>.webhook-stage.json and
    <slo>.canary-config.json (each as the SLO's targets say). Nothing is written unless everything
    rendered; unchanged files are not touched; files of removed SLOs are deleted.
    """
    from sloplane.render.bundle import MANAGED_FOLDERS  # deferred: the renderers are slow to import

    result = _load(paths, strict)
    pipelines = PipelineOptions(evaluator_url=evaluator_url, image=image, app_project=app_project)
    options = BundleOptions(
        render=RenderOptions(grafana_url=grafana_url),
        kubernetes=KubernetesOptions(namespace=namespace),
        pipelines=pipelines,
        analysis_prometheus_url=analysis_prometheus_url,
    )
    chosen = terraform.ModuleChoices(dashboards, kubernetes_objects, evaluator_storage, evaluator_chain_key)
    choices = terraform.check_choices(output_format, chosen)
    owned: tuple[str, ...] = MANAGED_FOLDERS
    if output_format == "terraform":
        files, owned = terraform.module_files(result.declarations, options, choices, _err)
    else:
        files = _render_with_progress(result.declarations, options)
    if check:
        drift = _written(lambda: plan(out, files, owned))
        for path in drift.changed:
            _out.print(f"would write {out / path}", markup=False)
        for path in drift.removed:
            _out.print(f"would remove {out / path}", markup=False)
        if not drift.clean:
            _err.print(f"{len(drift.changed) + len(drift.removed)} file(s) out of date in {out}", markup=False)
            raise typer.Exit(EXIT_INVALID)
        _err.print(f"{out} is up to date ({len(files)} files)", markup=False)
        return
    written = _written(lambda: write_files(out, files, owned))
    _out.print(_summary_table(result.declarations, files))
    _err.print(
        f"{len(written.changed)} file(s) written, {len(written.removed)} removed, "
        f"{len(files) - len(written.changed)} unchanged in {out}",
        markup=False,
    )


@app.command()
def preview(
    project: Annotated[Path, typer.Argument(help="Folder with a Pulumi.yaml (default: here).")] = Path("."),
    diff: Annotated[
        str | None,
        typer.Option(
            "--diff",
            metavar="BASE",
            help="Compare with the program at git revision BASE (a temporary worktree) instead of printing the tree.",
        ),
    ] = None,
    output_format: Annotated[
        str, typer.Option("--format", help="With --diff: text, markdown (one pull-request comment) or json.")
    ] = "text",
    expect_no_changes: Annotated[
        bool, typer.Option("--expect-no-changes", help="With --diff: exit 1 when anything would change.")
    ] = False,
) -> None:
    """Offline: run a Pulumi program under the SDK's mocks and print the resources it would register.

    This is not `pulumi preview`: there is no engine, state, provider or cloud, only the program and
    mocks that record each registration (type, name, parent). Use it in pull requests to see what a
    change to the declarations adds or removes where no Pulumi CLI or credentials are available.
    With --diff BASE the program also runs as it was at BASE, and the difference in what the two
    declare is printed: + create, ~ update (with the changed properties), - delete, +- replace.
    """
    import pulumi  # the Pulumi SDK is slow to import; only this command needs it

    from sloplane.components.preview import run_program  # deferred with Pulumi, for the same reason

    if diff is not None:
        _preview_diff(project, diff, output_format, expect_no_changes)
        return
    if output_format != "text" or expect_no_changes:
        _err.print(
            "sloplane preview: --format and --expect-no-changes compare revisions: give --diff BASE",
            style="red",
            markup=False,
        )
        raise typer.Exit(EXIT_FAULT)
    try:
        result = run_program(project)
    except (FileNotFoundError, pulumi.RunError) as error:
        _err.print(f"sloplane preview: {error}", style="red", markup=False)
        raise typer.Exit(EXIT_INVALID) from None
    tree = Tree(f"stack ({len(result.resources)} resources, mocked)")

    def add(node: Tree, parent: str | None) -> None:
        for resource in result.children(parent):
            via = f"  (provider {resource.provider})" if resource.provider else ""  # Datadog's is always explicit
            add(node.add(f"{resource.type}  {resource.name}{via}", highlight=False), resource.urn)

    add(tree, None)
    _out.print(tree)
    counts = Table(title="resources by type", title_justify="left")
    counts.add_column("type")
    counts.add_column("count", justify="right")
    for resource_type, count in sorted(result.counts().items()):
        counts.add_row(resource_type, str(count))
    _out.print(counts)


def _preview_diff(project: Path, base: str, output_format: str, expect_no_changes: bool) -> None:
    """`preview --diff BASE`: the report on standard output; exit 1 on a change when none was expected,
    2 when the diff cannot be made (no repository, no such revision, a program that fails)."""
    # deferred with Pulumi: the components import the Pulumi SDKs, slow to import
    from sloplane.components.preview_report import ReportFormat, report
    from sloplane.components.preview_revisions import PreviewDiffError, diff_against

    try:
        chosen = ReportFormat(output_format)
    except ValueError:
        _err.print(f"--format: give one of {', '.join(ReportFormat)}", style="red", markup=False)
        raise typer.Exit(EXIT_FAULT) from None
    try:
        compared = diff_against(project, base)
    except (FileNotFoundError, PreviewDiffError) as error:
        _err.print(f"sloplane preview: {error}", style="red", markup=False)
        raise typer.Exit(EXIT_FAULT) from None
    if compared.base_missing:
        _err.print(f"{compared.project} has no Pulumi.yaml at {base}: every resource is new", markup=False)
    sys.stdout.write(report(compared.diff, chosen, compared.heading) + "\n")
    if expect_no_changes and compared.diff.changed:
        _err.print(f"sloplane preview: changes found ({compared.diff.summary()}), none expected", markup=False)
        raise typer.Exit(EXIT_INVALID)


def _import(command: str, paths: list[Path], out: Path | None, strict: bool) -> None:
    result = _load(paths, strict, only=command)
    _emit({slo.name: [declaration_data(slo.declaration)] for slo in result.slos}, out)


def _import_command(found: ForeignFormat) -> Callable[..., None]:
    """`sloplane import <format>`: one command per format the loader knows, all alike."""

    def command(paths: Paths, out: OutDir = None, strict: Strict = False) -> None:
        _import(found.command, paths, out, strict)

    command.__doc__ = f"Read {found.documents}; print sloplane declarations or write them to --out."
    return command


for _format in FOREIGN_FORMATS:
    import_app.command(name=_format.command)(_import_command(_format))


@export_app.command(name="openslo")
def export_openslo_command(
    paths: Paths,
    out: OutDir = None,
    strict: Strict = False,
    version: Annotated[
        str | None,
        typer.Option(
            "--version",
            help="openslo/v1 or openslo.com/v2alpha; default: the version the SLOs were written in, else v1.",
        ),
    ] = None,
) -> None:
    """Write declarations as OpenSLO; what OpenSLO cannot say is kept in sloplane.dev/ annotations."""
    if version is not None and version not in EXPORT_VERSIONS:
        _err.print(f"--version: give one of {', '.join(EXPORT_VERSIONS)}", style="red", markup=False)
        raise typer.Exit(EXIT_INVALID)
    result = _load(paths, strict)
    written_in = {slo.source_format for slo in result.slos}
    chosen = version or (written_in.pop() if len(written_in) == 1 and written_in <= set(EXPORT_VERSIONS) else None)
    _emit(export_openslo(result.declarations, chosen or EXPORT_VERSIONS[0]), out)


def _declarations(paths: list[Path], strict: bool) -> list[Declaration]:
    """The evaluator's and the server's loader (`Consoles.load`): declarations to measure, not to render."""
    return _load(paths, strict, rendering=False).declarations


def _declarations_and_debt(paths: list[Path], strict: bool) -> LoadResult:
    """`Consoles.load_all`: the declarations and the reliability debt register, nothing rendered."""
    return _load(paths, strict, rendering=False)


_consoles = Consoles(_declarations, _out, _err, _declarations_and_debt)
for _commands in (
    evaluator,
    decisions,
    serve,
    controls,
    comment,
    migrate,
    rollup,
    report,
    govern,
    assess,
    experiment,
    archive,
    feedback,
):
    _commands.register(app, _consoles)
export.register(app, _err)


def main() -> None:
    """Entry point: run the app (`evaluate`, `gate`, `burn`: `evaluator.own_app`); a fault is one line and exit 2."""
    try:
        named = sys.argv[1] if len(sys.argv) > 1 else None
        (evaluator.own_app(APP_SETTINGS, _consoles) if named in evaluator.COMMANDS else app)()
    except KeyboardInterrupt:
        _err.print("interrupted", markup=False)
        sys.exit(130)
    except Exception as error:  # the last line of defence: never show a traceback
        _err.print(f"sloplane: internal error: {type(error).__name__}: {error}", style="red", markup=False)
        sys.exit(EXIT_FAULT)


if __name__ == "__main__":  # pragma: no cover
    main()
