"""PostgreSQL URLs read as libpq reads them: what messages hide, and the ports a NetworkPolicy opens.

libpq's user info runs to the first `@` unless a `/` comes first, so a password may hold `?` and `#`
unencoded, where `urllib.parse.urlsplit` would end the authority. Each case is checked against libpq
itself (`psycopg.conninfo.conninfo_to_dict`), and a real role with such a password is refused and
reported without it.
"""

from __future__ import annotations

import pytest
from psycopg.conninfo import conninfo_to_dict

from sloplane.core.postgres_url import split_postgres_url
from sloplane.evaluator.storage.decisions import DecisionLogError
from sloplane.evaluator.storage.postgres import PostgresDecisionLog
from sloplane.evaluator.storage.postgres_conninfo import redacted, target
from sloplane.render.evaluator_settings import postgres_ports
from tests.postgres import PostgresCluster

pytest_plugins = ("tests.postgres",)

CASES = [
    ("postgresql://app:Xy7?pq#Secret@db:5432/gates", "Xy7?pq#Secret"),
    ("postgresql://app:ab?cdef@db/gates?sslmode=require", "ab?cdef"),
    ("postgresql://app:p%40ss%2Fw@h1:5433,h2/gates?port=6000", "p@ss/w"),
    ("postgres://app@db/gates?password=q%3Fz&application_name=x", "q?z"),
    ("postgresql://app:s3cr:et@[::1]:5432/gates", "s3cr:et"),
]


@pytest.mark.parametrize(("url", "password"), CASES)
def test_the_split_agrees_with_libpq_and_the_shown_url_holds_no_password(url: str, password: str) -> None:
    libpq = conninfo_to_dict(url)
    parts = split_postgres_url(url)
    assert libpq["password"] == password
    assert parts.user == libpq["user"]
    assert parts.hosts.replace("[", "").replace("]", "").split(",")[0].split(":")[0] in libpq["host"]
    assert parts.dbname == libpq["dbname"]
    shown = redacted(url)
    assert password not in shown and "Secret" not in shown and "cdef" not in shown
    assert password in target(url).secrets.values
    assert shown.startswith(f"{parts.scheme}://app@")


def test_egress_ports_are_the_ones_libpq_connects_to() -> None:
    assert postgres_ports("postgresql://app:Xy7?pq#Secret@db:6543/gates") == [6543]
    assert postgres_ports("postgresql://app:ab?cdef@db/gates") == [5432]
    assert postgres_ports("postgresql://app:pw@h1:5433,h2/gates") == [5432, 5433]
    assert postgres_ports("postgresql://app:pw@h1/gates?port=6000") == [6000]


def test_a_real_password_with_question_mark_and_hash_is_never_shown(private_postgres_cluster: PostgresCluster) -> None:
    """Written into the URL unencoded, as libpq accepts it: the log works, and once the server is gone its
    messages and `problem()` name the database without any part of the password."""
    cluster = private_postgres_cluster
    password = "Xy7?pq#Secret"
    cluster.execute(f"CREATE ROLE tricky LOGIN SUPERUSER PASSWORD '{password}'")
    database = cluster.create_database()
    url = f"postgresql://tricky:{password}@127.0.0.1:{cluster.port}/{database}"
    with PostgresDecisionLog(url, timeout=1.0) as log:
        assert log.count() == 0
        cluster.stop()
        with pytest.raises(DecisionLogError) as refused:
            log.count()
        problem = log.problem()
        cluster.start()
    for text in (str(refused.value), problem or "", log.where):
        for part in ("Xy7", "pq#", "Secret"):
            assert part not in text, text
    assert log.where == f"postgresql://tricky@127.0.0.1:{cluster.port}/{database}"
