"""Escalation by ownership role (issue 18): routes worked out by hand from the fleet and the receivers file.

Teams: `shop` owns checkout and inventory (dev, ops and product contacts on checkout), `pay` owns payments,
`find` owns search (which declares its own deployment receiver), `ledger` owns ledger (named by no role map).
The receivers file's roles: dev {shop: shop-dev}; ops {shop: shop-ops, pay: pay-ops, default: fallback-ops};
product {shop: shop-pm}; `defaults` send both classes to oncall. Each expectation below is that table read
by hand. Delivery is to the local receiver of `tests/fake_http.py` through a real SQLite outbox.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sloplane.evaluator.model import Decision, GateRequest, Measurement, Outcome, Reason, WindowMeasurement
from sloplane.evaluator.notify import Notifier, ReceiversConfig, ReceiversFileError, classify, load_receivers
from sloplane.evaluator.notify.classify import Incident, incident
from sloplane.evaluator.notify.roles import Exemption, budget_exemption, role_routes
from sloplane.interop.loader import load_declarations
from sloplane.semantics.subjects import Fleet
from tests.fake_http import EventReceiver, serve

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
PD = "/v2/enqueue"

SLO = """\
apiVersion: sloplane.dev/v1alpha1
kind: ServiceLevelObjective
metadata:
  name: {service}-availability
spec:
  service: {service}
  owners: {owners}
  objective: 99.9
  sli:
    http: {{metric: http_requests_total, selector: {{job: {service}}}}}
{extra}"""

SHOP_OWNERS = (
    "{team: shop, dev: {name: Dana Dev, contact: dana@shop.example}, "
    'ops: {name: Shop SRE, contact: "#shop-sre"}, product: {name: Pat PM, contact: pat@shop.example}}'
)
SERVICES = {
    "checkout": (SHOP_OWNERS, "  gate: {dependencies: [payments-availability, inventory-availability]}\n"),
    "payments": ('{team: pay, ops: {name: Pay Ops, contact: "#pay-ops"}}', ""),
    "inventory": ("{team: shop}", ""),
    "search": ("{team: find}", "  alerting:\n    routing: {deployment: search-pager}\n"),
    "ledger": ("{team: ledger}", ""),
}

RECEIVERS = """\
receivers:
  shop-dev: {{webhook: {{url: "{base}/hooks/shop-dev"}}}}
  shop-ops: {{webhook: {{url: "{base}/hooks/shop-ops"}}}}
  shop-pm: {{webhook: {{url: "{base}/hooks/shop-pm"}}}}
  fallback-ops: {{webhook: {{url: "{base}/hooks/fallback-ops"}}}}
  pay-ops: {{pagerduty: {{routingKey: pay-ops-key, url: "{base}/v2/enqueue"}}}}
  oncall: {{pagerduty: {{routingKey: oncall-key, url: "{base}/v2/enqueue"}}}}
  search-pager: {{pagerduty: {{routingKey: search-key, url: "{base}/v2/enqueue"}}}}
defaults: {{deployment: oncall, background: oncall}}
grouping: {{wait: 200ms, window: 15m, minServices: 2}}
retry: {{initial: 50ms, max: 200ms}}
"""
ROLES = """\
roles:
  dev: {teams: {shop: shop-dev}}
  ops: {default: fallback-ops, teams: {shop: shop-ops, pay: pay-ops}}
  product: {teams: {shop: shop-pm}}
"""

ALERT = Reason(
    "alert-active", "page 1h burn-rate alert active (14.4x): roll back", {"alert": "page 1h", "burn_rate": 14.4}
)
EXHAUSTED = Reason(
    "budget-exhausted",
    "the error budget is exhausted (-3.0% left)",
    {"budget_remaining": -0.03, "min_budget_remaining_percent": 0.0},
)


def depends(key: str) -> Reason:
    """The `dependency` reason `release.dependency` writes for a dependency subject `key` (`slo` or `slo/stage`)."""
    return Reason(
        "dependency",
        f"dependency '{key}' is burning its budget at 20.0x (page 1h alert): the breach is attributed to it; "
        "inconclusive rather than a rollback",
        {"dependency": key, "alert": "page 1h", "burn_rate": 20.0},
    )


def decision(
    number: int,
    service: str,
    reasons: tuple[Reason, ...],
    *,
    revision: str | None = None,
    outcome: Outcome = Outcome.FAIL,
) -> Decision:
    """Decision `d-<number>` of `<service>-availability` in production; a release when `revision` is given."""
    at = T0 + timedelta(minutes=number)
    slo = f"{service}-availability"
    measurement = Measurement(
        slo=slo,
        stage=None,
        objective=99.9,
        at=at,
        period_start=at - timedelta(days=30),
        windows=(WindowMeasurement(timedelta(hours=1), 0.0144, 14.4, 24000.0, 345.6),),
        budget_remaining=-0.03,
    )
    return Decision(
        id=f"d-{number:06d}",
        decided_at=at,
        request=GateRequest(slo=slo, revision=revision, requested_by="ci"),
        slo=slo,
        stage=None,
        outcome=outcome,
        reasons=reasons,
        measurement=measurement,
        policy={},
        policy_version="v",
        service=service,
    )


def facts(made: Decision) -> Incident:
    kind = classify(made)
    assert kind is not None
    return incident(made, kind)


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    folder = tmp_path / "slos"
    folder.mkdir()
    for service, (owners, extra) in SERVICES.items():
        text = SLO.format(service=service, owners=owners, extra=extra)
        (folder / f"{service}.yaml").write_text(text, encoding="utf-8")
    return Fleet(load_declarations([folder]))


def receivers_file(tmp_path: Path, base: str, *, roles: bool = True) -> Path:
    path = tmp_path / "receivers.yaml"
    path.write_text(RECEIVERS.format(base=base) + (ROLES if roles else ""), encoding="utf-8")
    return path


@pytest.fixture
def config(tmp_path: Path) -> ReceiversConfig:
    return load_receivers(receivers_file(tmp_path, "http://127.0.0.1:9"))


# -- routes, by hand --------------------------------------------------------------------------------

INCONCLUSIVE = Outcome.INCONCLUSIVE
CASES: list[tuple[str, Decision, list[tuple[Any, ...]]]] = [
    (
        "a release's breach goes to the team's dev receiver",
        decision(1, "checkout", (ALERT,), revision="r1"),
        [("shop-dev", "dev", "deployment-attributed", "shop", "checkout", "roles.dev.teams.shop", "checkout/r1")],
    ),
    (
        "a breach without a release goes to the team's ops receiver",
        decision(2, "checkout", (ALERT,)),
        [("shop-ops", "ops", "background", "shop", "checkout", "roles.ops.teams.shop", "checkout/background")],
    ),
    (
        "a breach attributed to a dependency goes to the dependency team's ops, not the consumer's",
        decision(3, "checkout", (ALERT, depends("payments-availability")), outcome=INCONCLUSIVE),
        [
            (
                "pay-ops",
                "ops",
                "dependency",
                "pay",
                "payments",
                "roles.ops.teams.pay",
                "dependency/payments-availability",
            )
        ],
    ),
    (
        "an exhausted budget during a release also goes to the product owner",
        decision(4, "checkout", (EXHAUSTED, ALERT), revision="r1"),
        [
            ("shop-dev", "dev", "deployment-attributed", "shop", "checkout", "roles.dev.teams.shop", "checkout/r1"),
            (
                "shop-pm",
                "product",
                "budget-exhausted",
                "shop",
                "checkout",
                "roles.product.teams.shop",
                "checkout/budget-exhausted",
            ),
        ],
    ),
    (
        "a budget spent while another team's dependency burns: the product owner is told it is exempt",
        decision(5, "checkout", (EXHAUSTED, ALERT, depends("payments-availability/production")), outcome=INCONCLUSIVE),
        [
            (
                "pay-ops",
                "ops",
                "dependency",
                "pay",
                "payments",
                "roles.ops.teams.pay",
                "dependency/payments-availability",
            ),
            (
                "shop-pm",
                "product",
                "budget-spent-by-dependency",
                "shop",
                "checkout",
                "roles.product.teams.shop",
                "checkout/budget-exhausted",
            ),
        ],
    ),
    (
        "a dependency of the same team: no exemption",
        decision(6, "checkout", (EXHAUSTED, ALERT, depends("inventory-availability")), outcome=INCONCLUSIVE),
        [
            (
                "shop-ops",
                "ops",
                "dependency",
                "shop",
                "inventory",
                "roles.ops.teams.shop",
                "dependency/inventory-availability",
            ),
            (
                "shop-pm",
                "product",
                "budget-exhausted",
                "shop",
                "checkout",
                "roles.product.teams.shop",
                "checkout/budget-exhausted",
            ),
        ],
    ),
    (
        "another team's and the same team's dependencies together: both owners told, the freeze stands",
        decision(
            7,
            "checkout",
            (EXHAUSTED, ALERT, depends("payments-availability"), depends("inventory-availability")),
            outcome=INCONCLUSIVE,
        ),
        [
            (
                "pay-ops",
                "ops",
                "dependency",
                "pay",
                "payments",
                "roles.ops.teams.pay",
                "dependency/payments-availability",
            ),
            (
                "shop-ops",
                "ops",
                "dependency",
                "shop",
                "inventory",
                "roles.ops.teams.shop",
                "dependency/inventory-availability",
            ),
            (
                "shop-pm",
                "product",
                "budget-exhausted",
                "shop",
                "checkout",
                "roles.product.teams.shop",
                "checkout/budget-exhausted",
            ),
        ],
    ),
    (
        "a dependency the fleet does not declare: the SLO's own ops",
        decision(8, "checkout", (ALERT, depends("gone-availability")), outcome=INCONCLUSIVE),
        [("shop-ops", "ops", "background", "shop", "checkout", "roles.ops.teams.shop", "checkout/background")],
    ),
    (
        "the SLO's declared routing wins for its dev; a product role nobody names is unrouted",
        decision(9, "search", (EXHAUSTED, ALERT), revision="r2"),
        [
            (
                "search-pager",
                "dev",
                "deployment-attributed",
                "find",
                "search",
                "spec.alerting.routing.deployment",
                "search/r2",
            ),
            (None, "product", "budget-exhausted", "find", "search", None, "search/budget-exhausted"),
        ],
    ),
    (
        "a team no ops map names: the ops role's default",
        decision(10, "ledger", (ALERT,)),
        [("fallback-ops", "ops", "background", "ledger", "ledger", "roles.ops.default", "ledger/background")],
    ),
    (
        "a team no dev map names and no dev default: the file's defaults.deployment, as before",
        decision(11, "ledger", (ALERT,), revision="r3"),
        [("oncall", "dev", "deployment-attributed", "ledger", "ledger", "defaults.deployment", "ledger/r3")],
    ),
]


@pytest.mark.parametrize(("made", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_routes_by_role(fleet: Fleet, config: ReceiversConfig, made: Decision, expected: list[tuple[Any, ...]]) -> None:
    routes = role_routes(facts(made), fleet, config)
    got = [
        (r.receiver, r.role.value, r.rule.value, r.team, r.slo.removesuffix("-availability"), r.via, r.dedup_key)
        for r in routes
    ]
    assert got == [(*row[:6], f"sloplane/{row[6]}") for row in expected]
    assert [r.held for r in routes] == [made.request.revision is not None and r.role.value == "dev" for r in routes]


def test_an_slo_the_fleet_does_not_declare_has_no_role_routes(fleet: Fleet, config: ReceiversConfig) -> None:
    assert role_routes(facts(decision(1, "unknown", (ALERT,))), fleet, config) == []


def test_the_exemption_names_the_dependency_its_team_and_the_freeze(fleet: Fleet) -> None:
    reasons = [r.to_dict() for r in (EXHAUSTED, ALERT, depends("payments-availability/production"))]
    exemption = budget_exemption("checkout-availability", reasons, fleet)
    assert exemption == Exemption("shop", (("payments-availability", "pay"),))
    assert exemption.sentence() == (
        "the budget was spent by the dependency 'payments-availability' of team pay: under the error budget policy "
        "team shop may continue shipping (another team's failure spent the budget); the gate holds releases while "
        "the dependency burns and, once it recovers, keeps failing budget-exhausted until the product owner lets "
        "each release through with a break-glass naming this exemption"
    )


@pytest.mark.parametrize(
    "reasons",
    [
        (ALERT, depends("payments-availability")),  # the budget is not exhausted
        (EXHAUSTED, ALERT),  # nothing attributed to a dependency
        (EXHAUSTED, ALERT, depends("inventory-availability")),  # the same team's dependency
        (EXHAUSTED, depends("payments-availability"), depends("inventory-availability")),  # partly the same team's
        (EXHAUSTED, ALERT, depends("gone-availability")),  # a dependency nobody declares: whose, unknown
    ],
    ids=["not-exhausted", "no-dependency", "same-team", "mixed", "undeclared"],
)
def test_no_exemption_when_this_team_may_have_spent_the_budget(fleet: Fleet, reasons: tuple[Reason, ...]) -> None:
    assert budget_exemption("checkout-availability", [r.to_dict() for r in reasons], fleet) is None


# -- delivered, through the outbox ------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[tuple[EventReceiver, str]]:
    script = EventReceiver()
    with serve(script) as base:
        yield script, base


Make = Callable[..., Notifier]


@pytest.fixture
def make(tmp_path: Path, fleet: Fleet) -> Iterator[Make]:
    """make(base, roles=True) -> a started notifier on a SQLite outbox; all closed afterwards."""
    made: list[Notifier] = []

    def _make(base: str, *, roles: bool = True) -> Notifier:
        config = load_receivers(receivers_file(tmp_path, base, roles=roles))
        notifier = Notifier(fleet, config, tmp_path / f"outbox-{len(made)}.db")
        made.append(notifier)
        notifier.start()
        return notifier

    yield _make
    for notifier in made:
        notifier.close()


def hooks(script: EventReceiver) -> dict[str, list[dict[str, Any]]]:
    """Accepted webhook bodies by receiver (the path's last part)."""
    paths = sorted({path for path, _ in script.accepted if path.startswith("/hooks/")})
    return {path.rsplit("/", 1)[1]: script.events(path) for path in paths}


def details(made: Decision, reasons: tuple[Reason, ...]) -> dict[str, Any]:
    """The incident facts every body carries for `decision(...)` (its measurement as written above)."""
    return {
        "service": made.service,
        "slo": made.slo,
        "stage": None,
        "revision": made.request.revision,
        "pipeline": None,
        "rollout": None,
        "decisionId": made.id,
        "outcome": made.outcome.value,
        "decidedAt": made.decided_at.isoformat(),
        "burnRates": {"1h": 14.4},
        "budgetRemaining": -0.03,
        "reasons": [{"code": r.code, "message": r.message, "values": r.values} for r in reasons],
    }


def test_a_dependency_breach_pages_its_owner_and_tells_the_product_owner_of_the_exemption(
    receiver: tuple[EventReceiver, str], make: Make
) -> None:
    script, base = receiver
    notifier = make(base)
    reasons = (EXHAUSTED, ALERT, depends("payments-availability"))
    made = decision(1, "checkout", reasons, outcome=INCONCLUSIVE)
    notifier.on_decision(made)
    assert notifier.flush(10, include_held=True)

    breaches = "; ".join(r.message for r in reasons)
    dependency_routing = {
        "role": "ops",
        "rule": "dependency",
        "team": "pay",
        "slo": "payments-availability",
        "receiver": "pay-ops",
        "receiverFrom": "roles.ops.teams.pay",
        "owner": {"name": "Pay Ops", "contact": "#pay-ops"},
        "why": "SLO 'checkout-availability' of team shop breaches and the gate attributes it to dependency "
        "'payments-availability' of team pay",
        "exemption": None,
    }
    assert script.events(PD) == [
        {
            "routing_key": "pay-ops-key",
            "event_action": "trigger",
            "dedup_key": "sloplane/dependency/payments-availability",
            "payload": {
                "summary": "[ops · dependency] checkout: SLO checkout-availability is breaching outside any "
                f"deployment: {breaches}",
                "source": "sloplane",
                "severity": "error",
                "timestamp": made.decided_at.isoformat(),
                "component": "checkout",
                "group": "checkout-availability",
                "class": "background",
                "custom_details": {**details(made, reasons), "routing": dependency_routing},
            },
        }
    ]
    exemption_sentence = (
        "the budget was spent by the dependency 'payments-availability' of team pay: under the error budget policy "
        "team shop may continue shipping (another team's failure spent the budget); the gate holds releases while "
        "the dependency burns and, once it recovers, keeps failing budget-exhausted until the product owner lets "
        "each release through with a break-glass naming this exemption"
    )
    product_routing = {
        "role": "product",
        "rule": "budget-spent-by-dependency",
        "team": "shop",
        "slo": "checkout-availability",
        "receiver": "shop-pm",
        "receiverFrom": "roles.product.teams.shop",
        "owner": {"name": "Pat PM", "contact": "pat@shop.example"},
        "why": f"the error budget of SLO 'checkout-availability' is exhausted: {exemption_sentence}",
        "exemption": {
            "team": "shop",
            "dependencies": [{"slo": "payments-availability", "team": "pay"}],
            "policyExempts": True,
            "gateExempts": False,
        },
    }
    assert hooks(script) == {
        "shop-pm": [
            {
                "kind": "sloplane.incident",
                "version": 1,
                "class": "background",
                "dedupKey": "sloplane/checkout/budget-exhausted",
                "summary": "[product · budget-spent-by-dependency] checkout: the error budget of SLO "
                f"'checkout-availability' is exhausted: {exemption_sentence}",
                "severity": "warning",
                "timestamp": made.decided_at.isoformat(),
                "warRoom": None,
                "incidents": [{**details(made, reasons), "routing": product_routing}],
                "links": [],
            }
        ]
    }
    stats = notifier.stats()
    assert (stats["delivered"], stats["unrouted"], stats["dead"]) == (2, 0, 0)


def test_a_release_breach_is_held_for_its_dev_and_the_spent_budget_goes_to_product_at_once(
    receiver: tuple[EventReceiver, str], make: Make
) -> None:
    script, base = receiver
    notifier = make(base)
    reasons = (EXHAUSTED, ALERT)
    made = decision(1, "checkout", reasons, revision="r1")
    notifier.on_decision(made)
    notifier.on_decision(decision(2, "checkout", reasons, revision="r1"))  # the pipeline polls: suppressed
    assert notifier.flush(10, include_held=True)

    got = hooks(script)
    assert sorted(got) == ["shop-dev", "shop-pm"]
    [dev] = got["shop-dev"]
    assert (dev["dedupKey"], dev["class"], dev["severity"]) == ("sloplane/checkout/r1", "deployment", "critical")
    breaches = "; ".join(r.message for r in reasons)
    assert (
        dev["summary"]
        == f"[dev · deployment-attributed] checkout: SLO checkout-availability failed its gate on r1: {breaches}"
    )
    routing = dev["incidents"][0]["routing"]
    assert (routing["role"], routing["rule"], routing["receiverFrom"], routing["owner"]) == (
        "dev",
        "deployment-attributed",
        "roles.dev.teams.shop",
        {"name": "Dana Dev", "contact": "dana@shop.example"},
    )
    [product] = got["shop-pm"]
    assert product["dedupKey"] == "sloplane/checkout/budget-exhausted"
    assert product["summary"] == (
        "[product · budget-exhausted] checkout: the error budget of SLO 'checkout-availability' is exhausted: "
        "the error budget policy's release freeze applies"
    )
    assert product["incidents"][0]["routing"]["exemption"] is None
    # the product notice was enqueued at once, the dev one only after the grouping wait
    assert [path for path, _ in script.accepted] == ["/hooks/shop-pm", "/hooks/shop-dev"]
    assert script.events(PD) == []
    assert notifier.stats()["suppressed"] == 1


def test_a_war_room_under_roles_reaches_each_members_dev_and_says_so(
    receiver: tuple[EventReceiver, str], make: Make
) -> None:
    script, base = receiver
    notifier = make(base)
    notifier.on_decision(decision(1, "checkout", (ALERT,), revision="r9"))
    notifier.on_decision(decision(2, "ledger", (ALERT,), revision="r9"))
    assert notifier.flush(10, include_held=True)

    [page] = script.events(PD)  # ledger's dev: defaults.deployment (oncall)
    [hook] = hooks(script)["shop-dev"]  # checkout's dev
    assert (page["routing_key"], page["dedup_key"], hook["dedupKey"]) == (
        "oncall-key",
        "sloplane/war-room/revision/r9",
        "sloplane/war-room/revision/r9",
    )
    assert page["payload"]["custom_details"]["routing"]["role"] == "dev"
    assert [member["service"] for member in hook["incidents"]] == ["checkout", "ledger"]
    assert {member["routing"]["rule"] for member in hook["incidents"]} == {"deployment-attributed"}
    assert notifier.stats()["warRooms"] == 1


def test_a_role_nobody_receives_is_counted_and_the_rest_still_go(
    receiver: tuple[EventReceiver, str], make: Make
) -> None:
    script, base = receiver
    notifier = make(base)
    notifier.on_decision(decision(1, "search", (EXHAUSTED, ALERT), revision="r2"))
    assert notifier.flush(10, include_held=True)
    assert [(e["routing_key"], e["dedup_key"]) for e in script.events(PD)] == [("search-key", "sloplane/search/r2")]
    assert script.events(PD)[0]["payload"]["custom_details"]["routing"]["receiverFrom"] == (
        "spec.alerting.routing.deployment"
    )
    assert notifier.stats()["unrouted"] == 1


def test_a_file_without_roles_routes_as_before(receiver: tuple[EventReceiver, str], make: Make) -> None:
    """The same decisions as above, the same file without `roles`: by class to `defaults` (oncall), as today."""
    script, base = receiver
    notifier = make(base, roles=False)
    dependency = (EXHAUSTED, ALERT, depends("payments-availability"))
    notifier.on_decision(decision(1, "checkout", dependency, outcome=INCONCLUSIVE))
    notifier.on_decision(decision(2, "checkout", (EXHAUSTED, ALERT), revision="r1"))
    assert notifier.flush(10, include_held=True)

    events = script.events(PD)
    assert [(e["routing_key"], e["dedup_key"], e["payload"]["class"]) for e in events] == [
        ("oncall-key", "sloplane/checkout/background", "background"),
        ("oncall-key", "sloplane/checkout/r1", "deployment"),
    ]
    assert [e["payload"]["summary"] for e in events] == [
        "checkout: SLO checkout-availability is breaching outside any deployment: "
        + "; ".join(r.message for r in dependency),
        f"checkout: SLO checkout-availability failed its gate on r1: {EXHAUSTED.message}; {ALERT.message}",
    ]
    assert all("routing" not in e["payload"]["custom_details"] for e in events)
    assert hooks(script) == {}
    assert notifier.stats()["unrouted"] == 0


# -- the receivers file -----------------------------------------------------------------------------


def test_a_role_for_a_team_no_slo_declares_is_said_at_start(
    tmp_path: Path, fleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    """Every team the file's roles name owns an SLO here; a misspelt one would route nothing, and is said."""
    config = load_receivers(receivers_file(tmp_path, "http://127.0.0.1:9"))
    owners = {fleet[name].spec.owners.team for name in fleet}
    assert config.unowned_teams(owners) == []
    assert config.unowned_teams(owners - {"pay"}) == ["roles.ops.teams.pay"]
    thinned = Fleet([fleet[name] for name in fleet if fleet[name].spec.owners.team != "pay"])
    Notifier(thinned, config, tmp_path / "outbox.db").close()
    assert "roles.ops.teams.pay names a team no SLO declares as its owner" in caplog.text


def test_roles_are_read_from_the_receivers_file(config: ReceiversConfig) -> None:
    assert config.roles is not None
    assert (config.roles.dev.default, config.roles.dev.teams) == (None, {"shop": "shop-dev"})
    assert (config.roles.ops.default, config.roles.ops.teams) == (
        "fallback-ops",
        {"shop": "shop-ops", "pay": "pay-ops"},
    )
    assert config.roles.ops.for_team("ledger") == ("fallback-ops", "default")
    assert config.roles.product.for_team("find") is None


BASE = "receivers:\n  pay-ops: {pagerduty: {routingKey: k}}\n"


@pytest.mark.parametrize(
    ("roles", "expected"),
    [
        (
            "roles:\n  ops: {teams: {pay: pay-opz}}\n",
            "receivers.yaml:4:22: error: roles.ops.teams.pay: unknown receiver 'pay-opz' (did you mean 'pay-ops'?)",
        ),
        (
            "roles:\n  product:\n    default: pm\n",
            "receivers.yaml:5:14: error: roles.product.default: unknown receiver 'pm'",
        ),
        (
            "roles:\n  qa: {default: pay-ops}\n",
            "receivers.yaml:4:3: error: roles.qa: unknown key 'qa' (expected one of: dev, ops, product)",
        ),
        ("roles:\n  ops: {teams: {Pay_Team: pay-ops}}\n", "receivers.yaml:4:17: error: roles.ops.teams.Pay_Team"),
    ],
    ids=["unknown-receiver", "unknown-default", "unknown-role", "bad-team-name"],
)
def test_role_errors_name_the_file_line_and_field(write: Callable[[str, str], Path], roles: str, expected: str) -> None:
    path = write("receivers.yaml", BASE + roles)
    with pytest.raises(ReceiversFileError) as caught:
        load_receivers(path)
    assert expected in str(caught.value)


def test_a_notifier_refuses_roles_naming_unknown_receivers(fleet: Fleet, tmp_path: Path) -> None:
    config = ReceiversConfig.model_validate(
        {"receivers": {"x": {"webhook": {"url": "http://x"}}}, "roles": {"dev": {"default": "y"}}}
    )
    with pytest.raises(ReceiversFileError) as caught:
        Notifier(fleet, config, tmp_path / "outbox.db")
    assert str(caught.value).splitlines() == [
        "SLO 'search-availability': spec.alerting.routing.deployment: unknown receiver 'search-pager' "
        "(known receivers: x)",
        "roles.dev.default: unknown receiver 'y'",
    ]
