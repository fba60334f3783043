"""What the hosted components tell another language's program when its inputs are wrong: one line, as the
provider protocol's input error, never a Python stack trace (the gRPC path is in test_provider_grpc)."""

from __future__ import annotations

import pulumi
import pytest
from pulumi.errors import InputPropertiesError, InputPropertyError

from sloplane.components.plain import NotPlainError, camel, require_plain
from sloplane.provider.host import user_error
from tests.pulumi_mocks import Recorder


def test_a_run_error_becomes_an_input_error_with_its_message() -> None:
    found = user_error(pulumi.RunError("payments: targets datadog: pass datadog_provider"))
    assert isinstance(found, InputPropertiesError)
    assert found.message == "payments: targets datadog: pass datadog_provider" and found.errors == []


@pulumi.runtime.test
def test_an_output_where_a_plain_value_is_needed_names_the_property_as_the_schema_spells_it(mocks: Recorder) -> None:
    with pytest.raises(NotPlainError) as raised:
        require_plain("SloFleet", {"path": "slos", "rule_labels": {"release": pulumi.Output.from_input("x")}})
    found = user_error(raised.value)
    assert found is not None and found.errors is not None
    assert found.errors[0]["property_path"] == "ruleLabels" and "plain value" in found.errors[0]["reason"]
    require_plain("SloEvaluator", {"tokens": pulumi.Output.secret("t")}, passed_through=("tokens",))


def test_an_input_property_error_keeps_its_path_and_a_real_fault_is_not_the_users() -> None:
    found = user_error(InputPropertyError("declaration", "no such file"))
    assert found is not None and found.errors == [{"property_path": "declaration", "reason": "no such file"}]
    assert user_error(KeyError("bug")) is None
    assert camel("service_account_annotations") == "serviceAccountAnnotations" and camel("path") == "path"
