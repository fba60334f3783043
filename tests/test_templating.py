"""The prose templates: one strict environment, verbatim text outside `.html`, every template rendered by its caller.

The summaries replaced f-strings byte for byte; the properties below compare each template with the
f-string it replaced (kept here as the reference) over arbitrary values, so a wording change is a
deliberate edit of both.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sloplane.core import templating
from sloplane.core.templating import ENVIRONMENT, cached_line, render, render_line, template_names
from sloplane.declaration.model import Declaration
from sloplane.evaluator.history.budget import budget_report
from sloplane.evaluator.history.oncall import OncallOptions, oncall_report
from sloplane.evaluator.history.oncall_files import oncall_html, platform_html
from sloplane.evaluator.history.periods import month
from sloplane.evaluator.history.platform import platform_report
from sloplane.evaluator.history.quarterly import quarterly_report
from sloplane.evaluator.history.quarterly_files import quarterly_html
from sloplane.evaluator.history.report_files import budget_html, sla_html, status_html
from sloplane.evaluator.history.retro_files import retro_html, retro_postmortem_markdown
from sloplane.evaluator.history.sla import SlaInputs, sla_report, slo_zone
from sloplane.evaluator.history.status import status_page
from sloplane.evaluator.notify.classify import Incident, IncidentClass
from sloplane.evaluator.notify.events import SUMMARY_LIMIT, WarRoom, single_notice, war_room_notice
from sloplane.interop import load_declarations
from sloplane.render import argo_cd
from sloplane.render.pipelines import PipelineOptions
from sloplane.render.prometheus import rule_file
from sloplane.semantics.subjects import Fleet
from tests.conftest import EXAMPLES

GOLDEN_REPORTS = Path(__file__).parent / "golden" / "reports"

AWKWARD = "<b>burn</b> & 'budget' \"low\" {{ not_a_value }} {% raw %}"
"""Markup, quotes and template syntax in a value: must reach a summary verbatim."""


def incident(
    *,
    kind: IncidentClass = IncidentClass.DEPLOYMENT,
    service: str = "checkout",
    slo: str = "checkout-availability",
    stage: str | None = "production",
    revision: str | None = "abc123",
    pipeline: str | None = None,
    rollout: str | None = None,
    messages: tuple[str, ...] = ("burn rate 14.2 over 5m",),
) -> Incident:
    reasons = [{"code": "burn-rate", "message": message, "values": {}} for message in messages]
    reasons.append({"code": "gate-window", "message": "context, not a breach", "values": {}})
    return Incident(
        kind=kind,
        service=service,
        slo=slo,
        stage=stage,
        revision=revision,
        pipeline=pipeline,
        rollout=rollout,
        decision_id="d-1",
        outcome="fail",
        decided_at="2025-01-01T00:00:00+00:00",
        burn_rates={"5m": 14.2},
        budget_remaining=0.4,
        reasons=reasons,
    )


def reference_single_summary(incident: Incident) -> str:
    """The f-string `single_notice` used before the template (unclipped)."""
    breaches = "; ".join(reason["message"] for reason in incident.breaches())
    stage = f" ({incident.stage})" if incident.stage else ""
    if incident.kind is IncidentClass.DEPLOYMENT:
        what = f"failed its gate on {incident.release}" if incident.release else "failed its gate"
    else:
        what = "is breaching outside any deployment"
    return f"{incident.service}: SLO {incident.slo}{stage} {what}: {breaches}"


def reference_war_room_summary(room: WarRoom) -> str:
    """The f-string `war_room_notice` used before the template (unclipped)."""
    services = room.services
    return f"War room: {len(services)} services failing on {room.key.replace('/', ' ')}: {', '.join(services)}"


def clipped(text: str) -> str:
    return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 1] + "…"


@pytest.fixture(scope="module")
def declarations() -> list[Declaration]:
    return load_declarations([EXAMPLES])


@pytest.fixture
def extra_templates(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, str]], None]:
    """Templates added beside the package's, rendered through the real environment and `render`."""
    original = ENVIRONMENT.loader
    assert original is not None

    def add(sources: dict[str, str]) -> None:
        monkeypatch.setattr(ENVIRONMENT, "loader", jinja2.ChoiceLoader([jinja2.DictLoader(sources), original]))

    return add


# --- the environment --------------------------------------------------------------------------------------


def test_a_missing_value_is_an_error_not_an_empty_gap() -> None:
    with pytest.raises(jinja2.UndefinedError, match="services"):
        render("notify/war-room-summary.txt", key="revision/r42")
    # Also where the value is only tested, never printed: `{% if stage %}` must not read a missing stage as false.
    with pytest.raises(jinja2.UndefinedError, match="stage"):
        render(
            "notify/incident-summary.txt",
            service="checkout",
            slo="checkout-availability",
            deployment=True,
            release="abc123",
            breaches=["burn"],
        )


def test_a_missing_value_is_an_error_in_every_template(extra_templates: Callable[[dict[str, str]], None]) -> None:
    extra_templates({"probe.txt": "{{ absent.attribute }}", "probe.html": "{{ absent }}"})
    for name in ("probe.txt", "probe.html"):
        with pytest.raises(jinja2.UndefinedError, match="absent"):
            render(name)


def test_html_templates_autoescape_and_no_other_template_does(
    extra_templates: Callable[[dict[str, str]], None],
) -> None:
    extra_templates({"page.html": "<p>{{ value }}</p>\n", "page.txt": "{{ value }}\n", "page.py.j2": "{{ value }}\n"})
    assert render("page.html", value=AWKWARD) == (
        "<p>&lt;b&gt;burn&lt;/b&gt; &amp; &#39;budget&#39; &#34;low&#34; {{ not_a_value }} {% raw %}</p>\n"
    )
    assert render("page.txt", value=AWKWARD) == AWKWARD + "\n"
    assert render("page.py.j2", value=AWKWARD) == AWKWARD + "\n"
    autoescape = ENVIRONMENT.autoescape
    assert callable(autoescape)
    for name in template_names():
        assert autoescape(name) is name.endswith(".html"), name


def test_a_template_renders_its_final_newline_and_render_line_drops_only_that(
    extra_templates: Callable[[dict[str, str]], None],
) -> None:
    extra_templates({"line.txt": "{{ value }}\n"})
    assert render("line.txt", value="x") == "x\n"
    assert render_line("line.txt", value="x") == "x"
    assert render_line("line.txt", value="x\n") == "x\n"  # a value's own newline is the value's


def test_the_template_name_is_positional_so_a_template_may_take_a_value_called_name(
    extra_templates: Callable[[dict[str, str]], None],
) -> None:
    extra_templates({"named.txt": "{{ name }}\n"})
    assert render_line("named.txt", name="checkout") == "checkout"


@pytest.mark.parametrize("name", template_names())
def test_every_template_file_ends_with_exactly_one_newline(name: str) -> None:
    """`render_line` drops the file's last newline: a file without one would lose a character of prose."""
    assert ENVIRONMENT.loader is not None
    source, _, _ = ENVIRONMENT.loader.get_source(ENVIRONMENT, name)
    assert source.endswith("\n") and not source.endswith("\n\n"), name
    assert source.startswith("{#-"), f"{name}: start with a `{{#- ... -#}}` comment naming the caller and values"


def test_templates_live_in_one_folder_per_area() -> None:
    names = template_names()
    assert names, "no templates found: is sloplane/templates/ shipped?"
    assert all(name.count("/") == 1 for name in names), "templates live in one folder per area (alerts/ is next)"


# --- every template, rendered by its caller ------------------------------------------------------------------


def test_every_template_is_rendered_by_a_real_caller(
    monkeypatch: pytest.MonkeyPatch, declarations: list[Declaration]
) -> None:
    """The callers pass every value their template needs (StrictUndefined would raise otherwise)."""
    rendered: list[str] = []
    cached_line.cache_clear()  # remembered prose from earlier tests would not load its template again
    get_template = ENVIRONMENT.get_template

    def recording(name: str | jinja2.Template, *args: Any, **kwargs: Any) -> jinja2.Template:
        rendered.append(str(name))
        return get_template(name, *args, **kwargs)

    monkeypatch.setattr(ENVIRONMENT, "get_template", recording)
    single_notice(incident())
    single_notice(incident(kind=IncidentClass.BACKGROUND, stage=None, revision=None))
    war_room_notice(WarRoom("revision/r42", (incident(service="cart"), incident(service="search"))))
    checkout = next(declaration for declaration in declarations if declaration.name == "checkout-availability")
    argo_cd.syncfail_job(checkout, PipelineOptions())
    argo_cd.syncfail_job(checkout, PipelineOptions(incident_webhook_url="https://hooks.example.com/argocd"))
    rule_file(checkout, {checkout.name: checkout})
    fleet = Fleet(declarations)
    periods = {name: month("2025-10", slo_zone(fleet[name])) for name in fleet}
    sla_html(sla_report(SlaInputs(fleet, [], periods, datetime(2025, 11, 1, tzinfo=UTC)), "2025-10"))
    status_html(status_page(fleet, [], [], datetime(2025, 11, 1, tzinfo=UTC)))
    at = datetime(2025, 11, 1, tzinfo=UTC)
    budget_html(budget_report(fleet, at, lambda names: []))
    quarterly_html(quarterly_report(fleet, "2025-Q4", at, lambda names, since, until: []))
    oncall_html(oncall_report(fleet, _Quiet(), OncallOptions(at - timedelta(days=1), at), at=at))
    platform_html(platform_report(fleet, _Quiet(), "checkout", since=None, until=at, at=at))
    retro = json.loads((GOLDEN_REPORTS / "retro-deploy-7.json").read_text())  # a retro needs a log of real gates
    retro_html(retro)
    retro_postmortem_markdown(retro)
    assert sorted(set(rendered)) == template_names()


class _Quiet:
    """Prometheus where no alert fires, and a decision log with nothing in it: the reports' empty callers."""

    name = "prometheus"

    def query(self, expression: str, at: datetime) -> list[Any]:
        return []

    def query_range(self, expression: str, start: datetime, end: datetime, step: timedelta) -> list[Any]:
        return []

    def healthy(self) -> tuple[bool, str]:
        return True, "ok"

    def iter_with_seq(self, after_seq: int = 0, *, batch_size: int = 500) -> Iterator[tuple[int, dict[str, Any]]]:
        return iter(())


# --- the summaries: what the f-strings said ------------------------------------------------------------------


def test_single_notice_summaries() -> None:
    assert single_notice(incident(messages=("burn rate 14.2 over 5m", "budget 3% left"))).summary == (
        "checkout: SLO checkout-availability (production) failed its gate on abc123: burn rate 14.2 over 5m; "
        "budget 3% left"
    )
    assert single_notice(incident(stage=None, revision=None, pipeline="deploy/42")).summary == (
        "checkout: SLO checkout-availability failed its gate on deploy/42: burn rate 14.2 over 5m"
    )
    assert single_notice(incident(revision=None)).summary == (
        "checkout: SLO checkout-availability (production) failed its gate: burn rate 14.2 over 5m"
    )
    assert single_notice(incident(kind=IncidentClass.BACKGROUND, messages=(AWKWARD,))).summary == (
        f"checkout: SLO checkout-availability (production) is breaching outside any deployment: {AWKWARD}"
    )


def test_war_room_summary() -> None:
    room = WarRoom("pipeline/deploy/42", tuple(incident(service=name) for name in ("search", "cart", "search")))
    assert war_room_notice(room).summary == "War room: 2 services failing on pipeline deploy 42: cart, search"


TEXT = st.text(st.characters(codec="utf-8"), max_size=40)
OPTIONAL = st.none() | TEXT

INCIDENTS = st.builds(
    incident,
    kind=st.sampled_from(IncidentClass),
    service=TEXT,
    slo=TEXT,
    stage=OPTIONAL,
    revision=OPTIONAL,
    pipeline=OPTIONAL,
    rollout=OPTIONAL,
    messages=st.lists(TEXT | st.just(AWKWARD), max_size=4).map(tuple) | st.just(("x" * 1100,)),
)


@given(facts=INCIDENTS)
def test_the_incident_summary_says_what_the_f_string_said(facts: Incident) -> None:
    assert single_notice(facts).summary == clipped(reference_single_summary(facts))


@given(key=TEXT, services=st.lists(TEXT, min_size=1, max_size=5))
def test_the_war_room_summary_says_what_the_f_string_said(key: str, services: list[str]) -> None:
    room = WarRoom(key, tuple(incident(service=service) for service in services))
    assert war_room_notice(room).summary == clipped(reference_war_room_summary(room))


# --- the Argo CD hook ----------------------------------------------------------------------------------------


def test_the_syncfail_incident_title(declarations: list[Declaration]) -> None:
    checkout = next(declaration for declaration in declarations if declaration.name == "checkout-availability")
    command = argo_cd.incident_command(checkout, PipelineOptions())
    assert command[command.index("--title") + 1] == (
        "Argo CD sync of $(APPLICATION) failed at revision $(REVISION) (SLO checkout-availability)"
    )


def test_the_webhook_script_is_the_script_with_no_template_left_in_it(declarations: list[Declaration]) -> None:
    checkout = next(declaration for declaration in declarations if declaration.name == "checkout-availability")
    job = argo_cd.syncfail_job(checkout, PipelineOptions(incident_webhook_url="https://hooks.example.com/argocd"))
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[:2] == ["python", "-c"]
    script = command[2]
    assert script == argo_cd.webhook_script()
    assert script.startswith("import json, os, sys, urllib.request\n")  # the header comment left nothing behind
    assert script.endswith('print(response.status, response.read(2000).decode(errors="replace"))\n')
    assert "{#" not in script and "#}" not in script
    compile(script, "<syncfail-webhook>", "exec")  # it runs in tests/test_render_argo_cd.py


def test_templates_are_loaded_from_the_package() -> None:
    loader = ENVIRONMENT.loader
    assert isinstance(loader, jinja2.PackageLoader)
    assert loader.package_path == templating.TEMPLATES
