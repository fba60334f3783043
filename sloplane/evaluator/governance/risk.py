"""Fleet risk (`sloplane govern risk`, issue 18): per service and fleet-wide, how much of what matters is in trouble
right now, weighted by tier, in bands with advice — each band and each piece of advice with the rule and the inputs
that produced it, nothing behind a score.

States of an SLO (its production subject, measured now as the gate measures it), worst first:

- `exhausted`: the period's budget remaining ≤ 0;
- `at-risk`: a page- or ticket-tier burn-rate alert would be firing (`firing_alerts`, what the status page's
  `slo_state` calls a partial or major outage or degraded performance with an alert; asked directly because a
  composite has a period error ratio but no period events, which `slo_state` takes for no data), or less than 25%
  of the budget is left (`AT_RISK_BELOW`; 25% itself is not at risk). An SLO under maintenance (an excluded span
  covers `at`, as on the status page) is judged on its budget only: its alerts are muted;
- `no-data`: no measurement, a backend error, or no budget figure (no period error ratio: nothing is known);
- `healthy`: none of those.

`exhausted` outranks `at-risk` (a spent budget is a freeze, a burning one a warning) and both outrank `no-data`:
a known problem is worse than an unknown one, which is counted apart rather than guessed at.

Parts: an SLO with declared dependencies (`gate.dependencies`) or a composite (`sli.composite.components`) takes the
worst of its own state and its parts' — transitively (a part's parts count), each part being the subject the
reference names (its production subject unless a stage is named). `own` is the SLO's own state, `via` the part whose
state it took (the nearest one on a tie; null when its own state is the worst). A reference to an SLO that is not
declared or archived names nothing measured and is left out; cycles of dependencies end where they close.

Score: Σ weight of SLOs at risk or exhausted ÷ Σ weight of SLOs with data (the state after parts), weights by tier
as the quarterly review's (`TIER_WEIGHTS`: critical 8, high 4, medium 2, low 1). SLOs without data are left out of
the score, as the quarterly review leaves them out, and shown beside it as `noData` (their weight ÷ all the
weight): a blind SLO neither lowers the risk by counting as safe nor raises it by counting as broken. Per service
(`spec.service`) and fleet-wide (every SLO not archived).

Bands (`BANDS`, lower bounds included): low below 0.1; elevated from 0.1 (a tenth of the weight at risk: a low
SLO beside a critical one, 1 ÷ 9); high from 0.25; severe from 0.5 (half of what matters is burning or spent). A
service whose SLOs all lack data has no score and the band `unknown`.

Advice (`RULES`), each with `rule`, `message` and `inputs`:

- `canary-only` (service band elevated or worse): release the service only through canaries (no direct or full
  rollouts) until its band is low again. Inputs: band, score, the threshold, the SLOs at risk or exhausted.
- `policy-freeze` (an SLO of the service whose *own* budget is exhausted and whose gate has
  `freezeOnBudgetExhausted`, the default): the policy freezes the service's releases (the gate already refuses
  them; break-glass still works). Not for an SLO exhausted only through a part (the freeze belongs to the part's
  service: the Workbook lets a team keep shipping when another team's failure spent the budget), nor when the
  policy turns the freeze off (the inputs of `canary-only` still name the SLO).
- `restore-data` (an SLO of the service without data): the risk cannot be judged for it; fix its SLI first.
- `fleet-freeze-is-human` (fleet band severe): a fleet-wide freeze is never advised automatically; the advice says
  it is a human decision and gives the inputs (score, states by weight, services by band, exhausted SLOs).

The JSON (the dict returned):

    {"kind": "risk", "at": ISO, "weights": {tier: weight}, "atRiskBelow": 0.25,
     "bands": [{"band", "from"}],                                   lowest first
     "services": [{"service", "band", "score", "noData",
                   "weight": {"exhausted", "atRisk", "noData", "healthy", "total"},
                   "slos": [{"slo", "tier", "state", "own", "via", "weight", "why", "budgetRemaining",
                             "alert", "parts": [{"slo", "stage", "relation", "state"}]}],   by SLO name
                   "advice": [{"rule", "message", "inputs"}]}],     `RULES` order; services by name
     "fleet": {"band", "score", "noData", "weight": {...}, "advice": [...]}}

`state`, `own` are one of `STATES`; `via` the part's key (`slo` or `slo/stage`) or null; `alert` the loudest
firing burn-rate alert in words, or null; `budgetRemaining` and `alert` are the SLO's own (its parts' are in
their own entries); `parts` the SLO's direct parts, `relation` `dependency` or `component`.

The gauge `serve` exports in `/metrics` (issue 18's "exported as a metric") is not built here.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sloplane.core.budget import Tier
from sloplane.declaration.model import Criticality, Declaration, Lifecycle
from sloplane.evaluator.deciding.context import firing_alerts
from sloplane.evaluator.history.quarterly import TIER_WEIGHTS
from sloplane.evaluator.model import Measurement
from sloplane.semantics.subjects import Fleet, production_subject

HEALTHY, NO_DATA, AT_RISK, EXHAUSTED = "healthy", "no-data", "at-risk", "exhausted"
STATES = (HEALTHY, NO_DATA, AT_RISK, EXHAUSTED)
"""Least severe first: what `worst` ranks by."""
RISKY = (AT_RISK, EXHAUSTED)
AT_RISK_BELOW = 0.25
"""Budget remaining below this share is at risk (a quarter of the period's budget left)."""
BANDS = (("low", 0.0), ("elevated", 0.1), ("high", 0.25), ("severe", 0.5))
"""Each band and the score it starts at (included)."""
UNKNOWN = "unknown"
CANARY_ONLY, POLICY_FREEZE, RESTORE_DATA, FLEET_FREEZE_IS_HUMAN = (
    "canary-only",
    "policy-freeze",
    "restore-data",
    "fleet-freeze-is-human",
)
RULES = (CANARY_ONLY, POLICY_FREEZE, RESTORE_DATA, FLEET_FREEZE_IS_HUMAN)

Key = tuple[str, str | None]
"""A subject: SLO name and stage (None: the SLO unstaged)."""


@dataclass(frozen=True)
class Own:
    """A subject's own state, and the words behind it."""

    state: str
    why: str
    alert: str | None
    budget_remaining: float | None


def own_state(declaration: Declaration, measurement: Measurement | None, at: datetime) -> Own:
    """One subject's own state from its measurement (see the module's docstring)."""
    if measurement is None or measurement.error is not None or measurement.budget_remaining is None:
        why = "no data" if measurement is None or measurement.error is None else f"no data: {measurement.error}"
        return Own(NO_DATA, why, None, None)
    remaining = measurement.budget_remaining
    left = f"{remaining:.1%} of the budget left"
    excluded = next((e for e in measurement.exclusions if e.start <= at < e.end), None)
    firing = [] if excluded else firing_alerts(declaration, measurement, Tier.PAGE)
    firing = firing or ([] if excluded else firing_alerts(declaration, measurement, Tier.TICKET))
    alert = None if not firing else f"{firing[0][0]} firing at {firing[0][1]:.1f}× the budget rate"
    if remaining <= 0:
        return Own(EXHAUSTED, f"budget exhausted ({left})", alert, remaining)
    if alert is not None:
        return Own(AT_RISK, f"{alert} ({left})", alert, remaining)
    if remaining < AT_RISK_BELOW:
        return Own(AT_RISK, f"{left}, below {AT_RISK_BELOW:.0%}", None, remaining)
    if excluded is not None:
        return Own(HEALTHY, f"{left}; alerts muted by {excluded.kind} {excluded.name}", None, remaining)
    return Own(HEALTHY, left, None, remaining)


def worst(states: Iterable[str]) -> str:
    return max(states, key=STATES.index, default=HEALTHY)


def band(score: float | None) -> str:
    """The band a score falls in (`unknown` without a score)."""
    if score is None:
        return UNKNOWN
    return [name for name, start in BANDS if score >= start][-1]


def parts(declaration: Declaration) -> list[tuple[Key, str]]:
    """The subjects an SLO takes states from: its dependencies and its composite's components, declared order."""
    spec = declaration.spec
    found = [((ref.slo, ref.stage), "dependency") for ref in spec.effective_gate.dependencies]
    if spec.sli.composite is not None:
        found += [((ref.slo, ref.stage), "component") for ref in spec.sli.composite.components]
    return found


def _key_text(key: Key) -> str:
    return key[0] if key[1] is None else f"{key[0]}/{key[1]}"


class _States:
    """Own states of every measured subject, read once, and each SLO's state after its parts."""

    def __init__(self, fleet: Fleet, measurements: Sequence[Measurement], at: datetime) -> None:
        self.fleet = fleet
        self.at = at
        self.by_key = {(m.slo, m.stage): m for m in measurements}
        self.own: dict[Key, Own | None] = {}

    def resolve(self, key: Key) -> Key | None:
        """The subject a reference names (production when no stage), None when nothing measured is named."""
        declaration = self.fleet.get(key[0])
        if declaration is None or declaration.spec.lifecycle is Lifecycle.ARCHIVED:
            return None
        if key[1] is None:
            return (key[0], production_subject(declaration).stage)
        if declaration.spec.stage(key[1]) is None:
            return None
        return key

    def of(self, key: Key) -> Own:
        if key not in self.own:
            self.own[key] = own_state(self.fleet[key[0]], self.by_key.get(key), self.at)
        found = self.own[key]
        assert found is not None
        return found

    def effective(self, declaration: Declaration) -> tuple[str, Key | None, str | None]:
        """The worst state over the SLO and every part reachable from it: (state, the part, its words)."""
        start = (declaration.name, production_subject(declaration).stage)
        state, via, why = self.of(start).state, None, None
        seen = {start, (declaration.name, None)}
        queue = deque(parts(declaration))
        while queue:
            reference, _ = queue.popleft()
            key = self.resolve(reference)
            if key is None or key in seen or key[0] == declaration.name:
                continue
            seen.add(key)
            own = self.of(key)
            if STATES.index(own.state) > STATES.index(state):
                state, via, why = own.state, key, own.why
            queue.extend(parts(self.fleet[key[0]]))
        return state, via, why


def _slo_entry(states: _States, declaration: Declaration) -> dict[str, Any]:
    own = states.of((declaration.name, production_subject(declaration).stage))
    state, via, via_why = states.effective(declaration)
    why = own.why if via is None else f"{_key_text(via)} is {state}: {via_why} (own: {own.state}, {own.why})"
    direct = []
    for reference, relation in parts(declaration):
        key = states.resolve(reference)
        direct.append(
            {
                "slo": reference[0],
                "stage": reference[1],
                "relation": relation,
                "state": None if key is None else states.of(key).state,
            }
        )
    tier = declaration.spec.tier.value
    return {
        "slo": declaration.name,
        "tier": tier,
        "state": state,
        "own": own.state,
        "via": None if via is None else _key_text(via),
        "weight": TIER_WEIGHTS[tier],
        "why": why,
        "budgetRemaining": own.budget_remaining,
        "alert": own.alert,
        "parts": direct,
    }


def weigh(slos: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Score, band, no-data share and the weights they come from (see the module's docstring)."""
    weight = {
        "exhausted": sum(s["weight"] for s in slos if s["state"] == EXHAUSTED),
        "atRisk": sum(s["weight"] for s in slos if s["state"] == AT_RISK),
        "noData": sum(s["weight"] for s in slos if s["state"] == NO_DATA),
        "healthy": sum(s["weight"] for s in slos if s["state"] == HEALTHY),
        "total": sum(s["weight"] for s in slos),
    }
    seen = weight["total"] - weight["noData"]
    score = (weight["exhausted"] + weight["atRisk"]) / seen if seen else None
    no_data = weight["noData"] / weight["total"] if weight["total"] else None
    return {"band": band(score), "score": score, "noData": no_data, "weight": weight}


def _threshold(name: str) -> float:
    return dict(BANDS)[name]


def service_advice(
    service: str, weighed: Mapping[str, Any], slos: Sequence[Mapping[str, Any]], fleet: Fleet
) -> list[dict[str, Any]]:
    """The advice for one service, in `RULES` order (see the module's docstring)."""
    advice: list[dict[str, Any]] = []
    risky = [s for s in slos if s["state"] in RISKY]
    if weighed["band"] not in (UNKNOWN, "low"):
        advice.append(
            {
                "rule": CANARY_ONLY,
                "message": f"release {service} through canaries only until its band is low again: "
                f"{weighed['score']:.0%} of its weight with data is at risk or exhausted ({weighed['band']})",
                "inputs": {
                    "band": weighed["band"],
                    "score": weighed["score"],
                    "from": _threshold("elevated"),
                    "weight": weighed["weight"],
                    "slos": [
                        {"slo": s["slo"], "state": s["state"], "via": s["via"], "weight": s["weight"]} for s in risky
                    ],
                },
            }
        )
    spent = [s for s in slos if s["own"] == EXHAUSTED]
    freezing = [s for s in spent if fleet[s["slo"]].spec.effective_gate.freeze_on_budget_exhausted]
    if freezing:
        names = ", ".join(s["slo"] for s in freezing)
        advice.append(
            {
                "rule": POLICY_FREEZE,
                "message": f"the policy freezes the releases of {service}: {names} spent its budget "
                "(gate.freezeOnBudgetExhausted; only break-glass passes)",
                "inputs": {
                    "slos": [{"slo": s["slo"], "budgetRemaining": s["budgetRemaining"]} for s in freezing],
                    "policy": "freezeOnBudgetExhausted",
                    "notFreezing": [s["slo"] for s in spent if s not in freezing],
                },
            }
        )
    blind = [s for s in slos if s["state"] == NO_DATA]
    if blind:
        advice.append(
            {
                "rule": RESTORE_DATA,
                "message": f"no data for {', '.join(s['slo'] for s in blind)}: its risk cannot be judged; "
                "fix the SLI's data before trusting this band",
                "inputs": {
                    "slos": [{"slo": s["slo"], "via": s["via"], "why": s["why"]} for s in blind],
                    "noData": weighed["noData"],
                },
            }
        )
    return advice


def fleet_advice(
    weighed: Mapping[str, Any], services: Sequence[Mapping[str, Any]], slos: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The fleet's advice: at severe, that a fleet-wide freeze is for people to decide, with the inputs."""
    if weighed["band"] != "severe":
        return []
    by_band = {name: [s["service"] for s in services if s["band"] == name] for name, _ in (*BANDS, (UNKNOWN, 0))}
    return [
        {
            "rule": FLEET_FREEZE_IS_HUMAN,
            "message": f"{weighed['score']:.0%} of the fleet's weight with data is at risk or exhausted (severe): "
            "a fleet-wide freeze is a human decision, not advised automatically",
            "inputs": {
                "band": weighed["band"],
                "score": weighed["score"],
                "from": _threshold("severe"),
                "weight": weighed["weight"],
                "servicesByBand": by_band,
                "exhausted": [s["slo"] for s in slos if s["state"] == EXHAUSTED],
            },
        }
    ]


def risk_report(fleet: Fleet, measurements: Sequence[Measurement], at: datetime) -> dict[str, Any]:
    """Fleet risk at `at` from the measurements taken then (`Evaluator.evaluate(at)`: every subject of every SLO not
    archived; a subject without one has no data). See the module's docstring for the rules and the JSON."""
    states = _States(fleet, measurements, at)
    declarations = [fleet[name] for name in sorted(fleet) if fleet[name].spec.lifecycle is not Lifecycle.ARCHIVED]
    by_service: dict[str, list[dict[str, Any]]] = {}
    for declaration in declarations:
        by_service.setdefault(declaration.spec.service, []).append(_slo_entry(states, declaration))
    services = []
    for service, slos in sorted(by_service.items()):
        weighed = weigh(slos)
        advice = service_advice(service, weighed, slos, fleet)
        services.append({"service": service, **weighed, "slos": slos, "advice": advice})
    every = [slo for slos in by_service.values() for slo in slos]
    fleet_weighed = weigh(every)
    return {
        "kind": "risk",
        "at": at.isoformat(),
        "weights": {tier.value: TIER_WEIGHTS[tier.value] for tier in Criticality},
        "atRiskBelow": AT_RISK_BELOW,
        "bands": [{"band": name, "from": start} for name, start in BANDS],
        "services": services,
        "fleet": {**fleet_weighed, "advice": fleet_advice(fleet_weighed, services, every)},
    }
