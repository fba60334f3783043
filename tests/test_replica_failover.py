"""Two `sloplane serve` replicas on one PostgreSQL, failing: the leader killed mid-work, and the database restarted.

1. The leader is SIGKILLed while one notification POST and one S3 export write are in flight (both held by the
   local receiver and S3 proxy: the receiver has kept the event and moto has stored the object, neither answer
   gets back). The other replica takes the leader's lock, dispatches what is left — at once for what was never
   claimed, after the lease (`SLOPLANE_OUTBOX_LEASE`, short here) for what the dead one had claimed — and
   exports from where the bucket says the export is. Every notification arrives; the one POST in flight at the
   kill arrives twice, under the same dedup key: delivery is at least once (`notify.outbox_postgres`), and
   PagerDuty merges a repeat of an open incident's dedup key. Every decision is in the bucket once, one chain.
2. PostgreSQL is stopped (`pg_ctl stop -m fast`) under a steady stream of gates to both replicas and started
   again. Every gate gets an HTTP answer; while the database is away that answer is `error` (`not-recorded`: a
   decision that cannot be recorded is not given); after it returns gates are recorded again, and the log holds
   exactly the decisions whose answers gave them, once each, as one chain. A replica leads again, notifies every
   release recorded, and exports every decision once.

Takeover and recovery times are measured and printed (and recorded as junit properties), never asserted: the
timeouts here are safety limits only. Real parts: PostgreSQL, Prometheus (the sandbox), moto's S3, the
`sloplane serve` command in two processes; the receiver and the S3 proxy are local (`tests/replica_harness.py`).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import boto3
import httpx
import orjson
import psycopg
import pytest

from sloplane.evaluator.export import S3Location, exported_chain_rows, exported_through
from sloplane.evaluator.notify.classify import BREACH_CODES, FROZEN_CODE
from sloplane.evaluator.notify.outbox_postgres import LEASE_ENV, LEASE_SECONDS, lease_from_environment
from sloplane.evaluator.notify.outbox_postgres_schema import DELIVERIES
from sloplane.evaluator.storage import chain
from sloplane.evaluator.storage.postgres import PostgresDecisionLog
from sloplane.sandbox import PrometheusSandbox, aligned_now, http_traffic, incident_day
from tests.conftest import minimal, run_cli
from tests.fake_http import Reply, serve
from tests.replica_harness import (
    HoldingReceiver,
    Replica,
    S3Proxy,
    leader,
    moto_server,
    s3_proxy,
    start_replica,
    until,
    write_tokens,
)

if TYPE_CHECKING:
    from tests.postgres import PostgresCluster

pytest_plugins = ("tests.postgres",)

SLO = "checkout-availability"
PAGERDUTY = "/v2/enqueue"
WEBHOOK = "/hooks/oncall"
LEASE = "2s"
"""The outbox lease the replicas run with: a killed dispatcher's claims come back after this, not a minute."""
SAFETY = 60.0
"""How long any wait may take before the test fails: a limit against hanging, not a speed being tested."""
RECEIVERS = """\
receivers:
  oncall:
    pagerduty: {{routingKey: oncall-key, url: "{base}/v2/enqueue"}}
    webhook: {{url: "{base}/hooks/oncall"}}
defaults: {{deployment: oncall, background: oncall}}
grouping: {{wait: 200ms, window: 15m, minServices: 2}}
retry: {{initial: 50ms, max: 200ms}}
"""
AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "NO_PROXY": "127.0.0.1,localhost",
}


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusSandbox]:
    """A day with an incident that spent the budget: every gate fails with a breach, so every release notifies."""
    traffic = http_traffic(incident_day(), end=aligned_now(), labels={"job": "checkout"})
    with PrometheusSandbox(tmp_path_factory.mktemp("prometheus"), [traffic]) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    with moto_server() as url:
        yield url


def _s3(endpoint: str) -> Any:
    """A client straight to moto (not through the proxy), for the test's own reads."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=AWS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS["AWS_SECRET_ACCESS_KEY"],
    )


def _gate(client: httpx.Client, replica: Replica, headers: dict[str, str], revision: str) -> dict[str, Any]:
    response = client.post(f"{replica.url}/v1/gates/evaluate", json={"slo": SLO, "revision": revision}, headers=headers)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    assert answer["decision"] == "fail" and answer["decisions"], answer  # the budget is spent: a release breaches
    return answer


def _deliveries(url: str) -> list[tuple[str, str, str, int]]:
    """Every outbox delivery: (channel, dedup key, state, how many times it was claimed)."""
    with psycopg.connect(url, autocommit=True) as connection:
        rows = connection.execute(f"SELECT channel, dedup_key, state, claims FROM {DELIVERIES} ORDER BY id").fetchall()
    return [(str(channel), str(key), str(state), int(claims)) for channel, key, state, claims in rows]


def _claimed(url: str) -> int:
    """Pending deliveries some dispatcher holds a claim on now."""
    with psycopg.connect(url, autocommit=True) as connection:
        row = connection.execute(f"SELECT count(*) FROM {DELIVERIES} WHERE claimed_by IS NOT NULL").fetchone()
    return int(row[0]) if row else 0


def _exported_lines(s3: Any, bucket: str, prefix: str) -> tuple[list[str], list[dict[str, Any]]]:
    """The export's object keys, and every line of every object in key order."""
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    keys = sorted(entry["Key"] for page in pages for entry in page.get("Contents", []))
    lines = [
        orjson.loads(line) for key in keys for line in s3.get_object(Bucket=bucket, Key=key)["Body"].read().splitlines()
    ]
    return keys, lines


def _ranges(keys: list[str]) -> list[tuple[int, int]]:
    """(first seq, last seq) of each export object, from its name `decisions-<first>-<last>.jsonl`."""
    found = []
    for key in keys:
        first, last = key.rsplit("/", 1)[1].removeprefix("decisions-").removesuffix(".jsonl").split("-")
        found.append((int(first), int(last)))
    return found


def test_the_outbox_lease_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the failover test relies on to shorten the lease, and what an operator gets for a typo: a message
    naming the variable (`serve` prints it and exits 1)."""
    monkeypatch.delenv(LEASE_ENV, raising=False)
    assert lease_from_environment() == LEASE_SECONDS
    monkeypatch.setenv(LEASE_ENV, "2s")
    assert lease_from_environment() == 2.0
    monkeypatch.setenv(LEASE_ENV, "soon")
    with pytest.raises(ValueError, match=rf"\${LEASE_ENV}: 'soon' is not a duration"):
        lease_from_environment()


@dataclass
class Scene:
    """Two replicas with receivers and an S3 export, the first up leading; the receiver and S3 proxy they use."""

    doomed: Replica
    survivor: Replica
    receiver: HoldingReceiver
    proxy: S3Proxy
    s3: Any
    location: S3Location
    source: str
    url: str
    client: httpx.Client
    headers: dict[str, str]

    def gate(self, replica: Replica, revision: str) -> None:
        _gate(self.client, replica, self.headers, revision)

    def exported(self) -> int:
        """The last seq in the bucket."""
        return exported_through(self.s3, self.location, self.source)


@pytest.fixture
def scene(tmp_path: Path, prometheus: PrometheusSandbox, moto: str, postgres_url: str) -> Iterator[Scene]:
    s3 = _s3(moto)
    bucket = f"audit-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    receiver = HoldingReceiver(replies=[Reply(202, delay=0.02)])
    (tmp_path / "slos.yaml").write_text(minimal(), encoding="utf-8")
    headers = write_tokens(tmp_path)["gate"]
    with serve(receiver) as hooks, s3_proxy(moto) as proxy, ExitStack() as stack, httpx.Client(timeout=60) as client:
        (tmp_path / "receivers.yaml").write_text(RECEIVERS.format(base=hooks), encoding="utf-8")
        options = [
            "--prometheus",
            prometheus.url,
            "--db",
            postgres_url,
            "--receivers",
            str(tmp_path / "receivers.yaml"),
        ]
        options += ["--export-s3", f"s3://{bucket}/audit", "--export-interval", "1s"]
        options += ["--s3-endpoint-url", proxy.url, "--s3-region", "us-east-1"]
        environment = {**AWS, LEASE_ENV: LEASE}
        doomed = start_replica(tmp_path, "doomed", options, environment)
        stack.callback(doomed.stop)
        until(lambda: leader(postgres_url) == doomed.session, SAFETY, "the first replica up leads")
        survivor = start_replica(tmp_path, "survivor", options, environment)
        stack.callback(survivor.stop)
        source = urlsplit(postgres_url).path.strip("/")  # the export's default source: the database's name
        location = S3Location(bucket, "audit")
        yield Scene(doomed, survivor, receiver, proxy, s3, location, source, postgres_url, client, headers)


def test_the_leader_killed_mid_delivery_and_mid_export_is_replaced_and_nothing_is_lost(
    scene: Scene, record_property: Callable[..., None]
) -> None:
    revisions = [f"r{number:03d}" for number in range(25)]
    both = (scene.doomed, scene.survivor)
    receiver, proxy = scene.receiver, scene.proxy
    # Ten releases gated on both replicas, delivered (two channels each) and exported by the leader.
    for number in range(10):
        scene.gate(both[number % 2], revisions[number])
    until(lambda: len(receiver.arrivals) == 20, SAFETY, "the first 20 notifications delivered")
    until(lambda: scene.exported() == 10, SAFETY, "the first 10 decisions exported")

    # Ten more; the next notification POST and the next export write land, but their answers are held.
    receiver.hold_next()
    proxy.hold_next_write()
    for number in range(10, 20):
        scene.gate(both[number % 2], revisions[number])
    until(lambda: receiver.held.is_set() and proxy.held.is_set(), SAFETY, "a POST and an export write in flight")
    stranded = _claimed(scene.url)  # frozen until the kill: the dispatcher waits on the held POST, nobody else leads
    scene.doomed.kill()
    killed_at = time.monotonic()
    receiver.release()  # the answers go to a dead socket now
    proxy.release()
    takeover = until(lambda: leader(scene.url) == scene.survivor.session, SAFETY, "the survivor takes the lock")

    # Five releases gated after the takeover, on the survivor; then wait for everything to arrive.
    for number in range(20, 25):
        scene.gate(scene.survivor, revisions[number])
    expected = {(path, f"sloplane/checkout/{revision}") for revision in revisions for path in (PAGERDUTY, WEBHOOK)}
    until(lambda: set(receiver.counts()) == expected, SAFETY, "every notification delivered")
    until(lambda: {row[2] for row in _deliveries(scene.url)} == {"delivered"}, SAFETY, "the outbox drained")
    until(lambda: scene.exported() == 25, SAFETY, "every decision exported")
    assert leader(scene.url) == scene.survivor.session, "the survivor still leads"

    resumed = min(at for at, _, _ in receiver.arrivals if at > killed_at) - killed_at
    redelivered = max(at for at, path, key in receiver.arrivals if (path, key) == receiver.held_event) - killed_at
    print(
        f"\nleader SIGKILLed: lock taken over after {takeover:.3f} s; first delivery after {resumed:.3f} s; "
        f"the in-flight POST re-sent after {redelivered:.3f} s ({stranded} claim(s) stranded, lease {LEASE}); "
        "leadership interval 1 s"
    )
    record_property("takeover_seconds", round(takeover, 3))
    record_property("redelivery_seconds", round(redelivered, 3))
    _check_notifications(scene, expected, stranded)
    _check_export(scene, 25)


def _check_notifications(scene: Scene, expected: set[tuple[str, str]], stranded: int) -> None:
    """Every notification delivered; exactly one twice — the POST the receiver kept as its sender died — under
    the same dedup key (PagerDuty merges it into the open incident; a webhook receiver sees a repeat)."""
    counts = scene.receiver.counts()
    held = scene.receiver.held_event
    assert set(counts) == expected, "none lost"
    assert held is not None
    assert {event: count for event, count in counts.items() if count != 1} == {held: 2}, counts
    deliveries = _deliveries(scene.url)
    assert len(deliveries) == len(expected), "one delivery per channel and release: no notice enqueued twice"
    claims = {("pagerduty" if path == PAGERDUTY else "webhook", key): 0 for path, key in expected}
    claims.update({(channel, key): count for channel, key, _, count in deliveries})
    reclaimed = {delivery for delivery, count in claims.items() if count > 1}
    assert ("pagerduty" if held[0] == PAGERDUTY else "webhook", held[1]) in reclaimed
    assert len(reclaimed) == stranded, "the dead leader's claims, and only those, were claimed again"


def _check_export(scene: Scene, decisions: int) -> None:
    """The log holds every decision once, one chain; the bucket too, in objects that follow each other — the one
    written while its answer was held among them, and never written again."""
    with PostgresDecisionLog(scene.url) as log:
        recorded = [str(row["id"]) for row in log.chain_rows()]
        report = log.verify()
    assert report.broken is None and report.records == decisions, report
    assert len(set(recorded)) == decisions
    keys, lines = _exported_lines(scene.s3, scene.location.bucket, scene.location.folder(scene.source))
    ranges = _ranges(keys)
    assert [first for first, _ in ranges] == [1] + [last + 1 for _, last in ranges[:-1]], ranges
    assert ranges[-1][1] == decisions
    assert [line["seq"] for line in lines] == list(range(1, decisions + 1))
    assert [line["id"] for line in lines] == recorded
    exported = chain.verify(exported_chain_rows(lines), None)
    assert exported.broken is None and exported.records == decisions and exported.head == report.head
    held = scene.proxy.held_path
    assert held is not None and held.lstrip("/").removeprefix(f"{scene.location.bucket}/") in keys
    assert [status for path, status in scene.proxy.writes if path == held] == [200], "never written again"
    verified = run_cli("decisions", "verify", "--db", scene.url)
    assert verified.code == 0 and f"intact: {decisions} records" in verified.stdout, verified


# -- PostgreSQL restarted under load ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One gate call: which replica, when (monotonic), and its HTTP status and body, or the client's error."""

    replica: int
    started: float
    ended: float
    status: int | None
    body: dict[str, Any] | None
    error: str | None = None

    @property
    def recorded(self) -> list[str]:
        """The ids of the decisions the answer gave, each of which it says was recorded."""
        return [str(decision["id"]) for decision in (self.body or {}).get("decisions", [])]


class GateStream:
    """Gates, one after another, from one thread per replica, until stopped; every answer kept.

    A gate's revision is `<replica>-<phase>`: a release polled again and again, as a pipeline waiting on a
    failing gate does, so each replica notifies once per phase (the rest are suppressed as repeats)."""

    def __init__(self, replicas: list[Replica], headers: dict[str, str]) -> None:
        self.answers: list[Answer] = []
        self.phase = "before"
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._drive, args=(index, replica, headers), daemon=True)
            for index, replica in enumerate(replicas)
        ]

    def __enter__(self) -> GateStream:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(SAFETY)

    def _drive(self, index: int, replica: Replica, headers: dict[str, str]) -> None:
        with httpx.Client(timeout=SAFETY) as client:
            while not self._stop.is_set():
                body = {"slo": SLO, "revision": f"replica{index}-{self.phase}"}
                started = time.monotonic()
                try:
                    response = client.post(f"{replica.url}/v1/gates/evaluate", json=body, headers=headers)
                    parsed = response.json() if response.status_code == 200 else None
                    answer = Answer(index, started, time.monotonic(), response.status_code, parsed)
                except (httpx.HTTPError, ValueError) as error:
                    answer = Answer(index, started, time.monotonic(), None, None, f"{type(error).__name__}: {error}")
                with self._lock:
                    self.answers.append(answer)

    def kept(self) -> list[Answer]:
        with self._lock:
            return list(self.answers)

    def each_replica(self, test: Callable[[Answer], bool], at_least: int) -> bool:
        """Whether every replica has given at least `at_least` answers passing `test`."""
        found = Counter(answer.replica for answer in self.kept() if test(answer))
        return all(found[index] >= at_least for index in range(len(self._threads)))


def _restart_under_load(cluster: PostgresCluster, stream: GateStream, url: str) -> tuple[float, float, float]:
    """Steady gating; PostgreSQL stopped until each replica has answered a gate asked after the stop (and at least
    3 s); started again until a replica leads again and each has recorded 3 gates asked after the restart. When it
    stopped and started (monotonic), and how long after the start a replica led again."""
    until(lambda: stream.each_replica(lambda answer: bool(answer.recorded), 5), SAFETY, "steady gating")
    cluster.stop("fast")
    stopped_at = time.monotonic()
    stream.phase = "down"
    until(
        lambda: (
            time.monotonic() - stopped_at >= 3 and stream.each_replica(lambda answer: answer.started > stopped_at, 1)
        ),
        SAFETY,
        "a gate asked and answered on each replica with the database down",
    )
    # taken before `start`: the server accepts connections before `pg_ctl start` returns, so a gate answered in
    # that gap may rightly be recorded; the down window ends when the start begins
    restarted_at = time.monotonic()
    cluster.start()
    stream.phase = "after"
    releader = until(lambda: leader(url) is not None, SAFETY, "a replica leads again", interval=0.05)
    until(
        lambda: stream.each_replica(lambda answer: answer.started > restarted_at and bool(answer.recorded), 3),
        SAFETY,
        "gates recorded again on each replica",
    )
    return stopped_at, restarted_at, releader


def test_postgres_restarted_under_load_answers_every_gate_and_records_each_decision_once(
    tmp_path: Path,
    prometheus: PrometheusSandbox,
    moto: str,
    private_postgres_cluster: PostgresCluster,
    record_property: Callable[..., None],
) -> None:
    cluster = private_postgres_cluster
    database = cluster.create_database()
    url = cluster.url(database)
    s3 = _s3(moto)
    bucket = f"audit-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    location = S3Location(bucket, "audit")
    receiver = HoldingReceiver()
    (tmp_path / "slos.yaml").write_text(minimal(), encoding="utf-8")
    headers = write_tokens(tmp_path)["gate"]
    with ExitStack() as stack:
        hooks = stack.enter_context(serve(receiver))
        (tmp_path / "receivers.yaml").write_text(RECEIVERS.format(base=hooks), encoding="utf-8")
        options = ["--prometheus", prometheus.url, "--db", url, "--receivers", str(tmp_path / "receivers.yaml")]
        options += ["--export-s3", f"s3://{bucket}/audit", "--export-interval", "1s", "--s3-endpoint-url", moto]
        replicas = []
        for name in ("first", "second"):
            replica = start_replica(tmp_path, name, [*options, "--s3-region", "us-east-1"], {**AWS, LEASE_ENV: LEASE})
            stack.callback(replica.stop)
            replicas.append(replica)
        with GateStream(replicas, headers) as stream:
            stopped_at, restarted_at, releader = _restart_under_load(cluster, stream, url)
        answers = stream.kept()
        assert leader(url) in {replica.session for replica in replicas}
        with PostgresDecisionLog(url) as log:
            rows = list(log.chain_rows())
            report = log.verify()
        until(lambda: exported_through(s3, location, database) == len(rows), SAFETY, "the export caught up")
        keys = {f"sloplane/checkout/{row['revision']}" for row in rows if _notifies(row)}
        until(
            lambda: {key for _, key in receiver.counts()} == keys,
            SAFETY,
            lambda: (
                f"every release notified: missing {sorted(keys - {key for _, key in receiver.counts()})}\n"
                + "\n".join(replica.output() for replica in replicas)
            ),
        )
        _, lines = _exported_lines(s3, bucket, location.folder(database))

    _check_answers(answers, stopped_at, restarted_at)
    # The log: exactly the decisions the answers gave, once each, one contiguous chain; the bucket the same.
    given = [decision_id for answer in answers for decision_id in answer.recorded]
    assert len(given) == len(set(given)), "an answer gave a decision another answer gave"
    ids = [str(row["id"]) for row in rows]
    assert sorted(ids) == sorted(given), "every record was given in an answer, and every given decision recorded"
    assert [row["seq"] for row in rows] == list(range(1, len(rows) + 1))
    assert report.broken is None and report.records == len(rows), report
    assert [line["id"] for line in lines] == ids, "exported once each, in order"
    exported = chain.verify(exported_chain_rows(lines), None)
    assert exported.broken is None and exported.head == report.head
    # Notifications: every release recorded was notified on both channels (at least once: a POST accepted just
    # as PostgreSQL went away, its mark lost, would be sent again under the same dedup key).
    assert {path for path, _ in receiver.counts()} == {PAGERDUTY, WEBHOOK}
    assert len(receiver.counts()) == 2 * len(keys)

    first_recorded = min(answer.ended for answer in answers if answer.started > restarted_at and answer.recorded)
    down = [answer for answer in answers if stopped_at < answer.started and answer.ended < restarted_at]
    slowest_down = max(answer.ended - answer.started for answer in down)
    print(
        f"\nPostgreSQL down {restarted_at - stopped_at:.1f} s: {len(down)} gate(s) asked and answered `error` "
        f"meanwhile (slowest {slowest_down:.2f} s); first decision recorded {first_recorded - restarted_at:.2f} s "
        f"after the restart, a leader again after {releader:.2f} s; {len(rows)} decisions recorded "
        f"of {len(answers)} gates; {sum(receiver.counts().values())} notifications for {len(keys)} releases"
    )
    record_property("postgres_down_slowest_answer_seconds", round(slowest_down, 3))
    record_property("postgres_recovery_seconds", round(first_recorded - restarted_at, 3))


def _notifies(row: dict[str, Any]) -> bool:
    """Whether a recorded decision is an incident (`notify.classify`): every gate here fails on a spent budget,
    but one decided while the freezes could not be read (the database going away), and recorded once it was back,
    also says `frozen` — and a fail a freeze explains notifies nobody."""
    record = orjson.loads(row["record"])
    codes = {reason["code"] for reason in record["reasons"]}
    return record["decision"] == "fail" and bool(codes & BREACH_CODES) and FROZEN_CODE not in codes


def _check_answers(answers: list[Answer], stopped_at: float, restarted_at: float) -> None:
    """Every gate got an HTTP answer (200: nothing refused, reset or left hanging); those asked and answered while
    the database was down are `error`, saying the decision could not be recorded so is not given."""
    failed = [answer for answer in answers if answer.status != 200 or answer.body is None]
    assert not failed, failed[:5]
    down = [answer for answer in answers if stopped_at < answer.started and answer.ended < restarted_at]
    assert down, "no gate was asked and answered entirely while the database was down"
    for answer in down:
        assert answer.body is not None
        codes = [reason["code"] for reason in answer.body["reasons"]]
        assert (answer.body["decision"], answer.recorded, codes) == ("error", [], ["not-recorded"]), answer.body
