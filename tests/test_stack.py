"""The root Pulumi project and its example program, run under the Pulumi SDK's mocks."""

import asyncio
import runpy
from collections.abc import Iterator
from typing import Any

import pulumi
import pytest
import yaml

from tests.conftest import ROOT


class _Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


@pytest.fixture
def pulumi_mocks() -> Iterator[None]:
    """A fresh event loop and mocks per test (the SDK keeps state on both)."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    pulumi.runtime.set_mocks(_Mocks(), project="sloplane-examples", stack="test", preview=False)
    yield
    loop.close()


def test_pulumi_yaml_points_at_the_example_program() -> None:
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["runtime"]["name"] == "python"
    assert (ROOT / project["main"] / "__main__.py").is_file()


@pulumi.runtime.test
def test_example_program_exports_the_fleet(pulumi_mocks: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    exported: dict[str, Any] = {}
    monkeypatch.setattr(pulumi, "export", exported.__setitem__)
    runpy.run_path(str(ROOT / "examples" / "stack" / "__main__.py"), run_name="__main__")

    def check(_: Any) -> None:
        assert exported["slos"] == sorted(exported["objectives"])
        assert len(exported["slos"]) == 6
        assert exported["objectives"]["checkout-availability"] == 99.9

    return pulumi.Output.from_input(exported).apply(check)
