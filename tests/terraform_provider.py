"""A schema-only stand-in for a Terraform provider, so that real Terraform core can validate and plan offline.

Terraform core checks a module against each provider's *schema*: attribute names, types, required and
computed flags, block nesting. It asks the provider little else to validate and plan. No provider binary
can be downloaded where the tests run, so this module serves the committed schemas
(`tests/data/terraform/*.json`, written by `tools/extract_terraform_schemas.py`) over the provider
protocol (tfplugin6, the stubs of PyPI `tf`), never touching a network:

- GetProviderSchema from the JSON file; ValidateResourceConfig adds the few checks the real provider
  makes itself on known values (a manifest names its apiVersion, kind and metadata.name; dashboard
  bodies are JSON);
- PlanResourceChange plans a create as the configuration with every unset computed attribute unknown
  (what a real provider does before the API answers), so the planned values *are* the module's values;
- ReadResource returns the state it is given; apply and import are refused: this provider only plans.

Terraform starts it as an executable found through a CLI config's `dev_overrides`
(`tests/terraform_harness.py` writes one small launcher per provider address), and the go-plugin
handshake is done here: one line on stdout naming the unix socket and the server certificate. The
certificate is made once per harness run (`SLOPLANE_TF_PROVIDER_CERT`, a JSON file), so a provider start
imports neither `cryptography` nor generates a key.

Run as ``python tests/terraform_provider.py kubernetes|datadog|grafana``.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from tf.gen import grpc_controller_pb2 as controller_pb
from tf.gen import grpc_controller_pb2_grpc as controller_rpc
from tf.gen import grpc_stdio_pb2_grpc as stdio_rpc
from tf.gen import tfplugin_pb2 as pb
from tf.gen import tfplugin_pb2_grpc as rpc
from tf.types import Unknown
from tf.utils import read_dynamic_value, to_dynamic_value

SCHEMA_DIR = Path(__file__).resolve().parent / "data" / "terraform"
CERT_ENV = "SLOPLANE_TF_PROVIDER_CERT"

# provider name (the launcher's argument and the schema file's stem) -> the address Terraform knows it by
PROVIDERS: dict[str, str] = {
    "kubernetes": "registry.terraform.io/hashicorp/kubernetes",
    "datadog": "registry.terraform.io/datadog/datadog",
    "grafana": "registry.terraform.io/grafana/grafana",
}

_NESTING = {
    "single": pb.Schema.NestedBlock.SINGLE,
    "list": pb.Schema.NestedBlock.LIST,
    "set": pb.Schema.NestedBlock.SET,
    "map": pb.Schema.NestedBlock.MAP,
    "group": pb.Schema.NestedBlock.GROUP,
}

Block = dict[str, Any]


def load_schema(name: str) -> dict[str, Any]:
    """The committed schema file of one provider (Terraform's `providers schema -json` layout)."""
    data: dict[str, Any] = json.loads((SCHEMA_DIR / f"{name}.json").read_text())
    return data


def block_pb(block: Block) -> pb.Schema.Block:
    """A schema block as tfplugin6 carries it: attribute types are cty type JSON, as bytes."""
    attributes = [
        pb.Schema.Attribute(
            name=name,
            type=json.dumps(attr["type"]).encode(),
            required=attr.get("required", False),
            optional=attr.get("optional", False),
            computed=attr.get("computed", False),
            sensitive=attr.get("sensitive", False),
            deprecated=attr.get("deprecated", False),
        )
        for name, attr in sorted(block.get("attributes", {}).items())
    ]
    block_types = [
        pb.Schema.NestedBlock(
            type_name=name,
            block=block_pb(nested["block"]),
            nesting=_NESTING[nested["nesting_mode"]],
            min_items=nested.get("min_items", 0),
            max_items=nested.get("max_items", 0),
        )
        for name, nested in sorted(block.get("block_types", {}).items())
    ]
    return pb.Schema.Block(attributes=attributes, block_types=block_types)


def schema_pb(schema: dict[str, Any]) -> pb.Schema:
    """One resource's (or the provider's) schema message."""
    return pb.Schema(version=schema.get("version", 0), block=block_pb(schema["block"]))


def plan_create(block: Block, proposed: Any) -> Any:
    """The planned new object of a create: the proposal, every computed attribute left unset unknown.

    Terraform proposes the configuration with nulls where nothing was set; a real provider then marks
    what the API will fill in (ids, urls, defaults it computes) as unknown. Values that are themselves
    unknown (they wait on another resource) stay as they are.
    """
    if not isinstance(proposed, dict):
        return proposed
    planned = dict(proposed)
    for name, attr in block.get("attributes", {}).items():
        if attr.get("computed") and planned.get(name) is None:
            planned[name] = Unknown
    for name, nested in block.get("block_types", {}).items():
        value = planned.get(name)
        inner = nested["block"]
        if nested["nesting_mode"] in {"single", "group"}:
            planned[name] = plan_create(inner, value)
        elif nested["nesting_mode"] in {"list", "set"} and isinstance(value, list):
            planned[name] = [plan_create(inner, item) for item in value]
        elif nested["nesting_mode"] == "map" and isinstance(value, dict):
            planned[name] = {key: plan_create(inner, item) for key, item in value.items()}
    return planned


def dynamic_value(value: Any) -> Any:
    """A dynamic-typed attribute arrives as [type JSON, value]; the value alone is what a check reads."""
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], bytes):
        return value[1]
    return value


def _check_json(field: str) -> Callable[[dict[str, Any]], list[str]]:
    """The real providers refuse a dashboard body that is not JSON (datadog_dashboard_json, grafana_dashboard)."""

    def check(config: dict[str, Any]) -> list[str]:
        body = config.get(field)
        if not isinstance(body, str):
            return []
        try:
            json.loads(body)
        except ValueError as error:
            return [f'"{field}" is not valid JSON: {error}']
        return []

    return check


def _check_manifest(config: dict[str, Any]) -> list[str]:
    """kubernetes_manifest refuses a manifest without apiVersion, kind or metadata.name (it cannot address it)."""
    manifest = dynamic_value(config.get("manifest"))
    if not isinstance(manifest, dict):
        return []
    metadata = dynamic_value(manifest.get("metadata"))
    problems = [f'the manifest has no "{key}"' for key in ("apiVersion", "kind") if manifest.get(key) in (None, "")]
    if metadata is Unknown:  # an expression over variables, unknown while validating: known when planning
        return problems
    if not isinstance(metadata, dict) or metadata.get("name") in (None, ""):
        problems.append('the manifest has no "metadata.name"')
    return problems


RESOURCE_CHECKS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "kubernetes_manifest": _check_manifest,
    "datadog_dashboard_json": _check_json("dashboard"),
    "grafana_dashboard": _check_json("config_json"),
}


def _error(summary: str, detail: str = "") -> pb.Diagnostic:
    return pb.Diagnostic(severity=pb.Diagnostic.ERROR, summary=summary, detail=detail)


class SchemaOnlyProvider(rpc.ProviderServicer):
    """The provider protocol answered from a schema file: enough for `validate` and `plan`, nothing more."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.schema = load_schema(name)
        self.resources: dict[str, Block] = {
            type_name: schema["block"] for type_name, schema in self.schema["resource_schemas"].items()
        }
        self._schema_response = pb.GetProviderSchema.Response(
            provider=schema_pb(self.schema["provider"]),
            provider_meta=pb.Schema(block=pb.Schema.Block()),
            resource_schemas={t: schema_pb(s) for t, s in self.schema["resource_schemas"].items()},
        )

    def GetMetadata(self, request: Any, context: Any) -> pb.GetMetadata.Response:  # noqa: N802
        return pb.GetMetadata.Response(
            server_capabilities=pb.ServerCapabilities(plan_destroy=True),
            resources=[pb.GetMetadata.ResourceMetadata(type_name=t) for t in sorted(self.resources)],
        )

    def GetProviderSchema(self, request: Any, context: Any) -> pb.GetProviderSchema.Response:  # noqa: N802
        return self._schema_response

    def ValidateProviderConfig(self, request: Any, context: Any) -> pb.ValidateProviderConfig.Response:  # noqa: N802
        return pb.ValidateProviderConfig.Response()

    def ConfigureProvider(self, request: Any, context: Any) -> pb.ConfigureProvider.Response:  # noqa: N802
        return pb.ConfigureProvider.Response()

    def ValidateResourceConfig(self, request: Any, context: Any) -> pb.ValidateResourceConfig.Response:  # noqa: N802
        check = RESOURCE_CHECKS.get(request.type_name)
        config = read_dynamic_value(request.config)
        if check is None or not isinstance(config, dict):
            return pb.ValidateResourceConfig.Response()
        problems = check(config)
        return pb.ValidateResourceConfig.Response(
            diagnostics=[_error(f"Invalid {request.type_name}", problem) for problem in problems]
        )

    def ValidateDataResourceConfig(self, request: Any, context: Any) -> pb.ValidateDataResourceConfig.Response:  # noqa: N802
        return pb.ValidateDataResourceConfig.Response(
            diagnostics=[_error("No data sources", f"the stand-in {self.name} provider serves resources only")]
        )

    def UpgradeResourceState(self, request: Any, context: Any) -> pb.UpgradeResourceState.Response:  # noqa: N802
        return pb.UpgradeResourceState.Response(upgraded_state=pb.DynamicValue(json=request.raw_state.json))

    def ReadResource(self, request: Any, context: Any) -> pb.ReadResource.Response:  # noqa: N802
        return pb.ReadResource.Response(new_state=request.current_state, private=request.private)

    def PlanResourceChange(self, request: Any, context: Any) -> pb.PlanResourceChange.Response:  # noqa: N802
        block = self.resources[request.type_name]
        prior = read_dynamic_value(request.prior_state)
        if prior is not None:  # an update or a destroy: Terraform's proposal already carries the prior values
            return pb.PlanResourceChange.Response(planned_state=request.proposed_new_state)
        proposed = read_dynamic_value(request.proposed_new_state)
        return pb.PlanResourceChange.Response(planned_state=to_dynamic_value(plan_create(block, proposed)))

    def ApplyResourceChange(self, request: Any, context: Any) -> pb.ApplyResourceChange.Response:  # noqa: N802
        return pb.ApplyResourceChange.Response(
            diagnostics=[_error("Apply refused", f"the stand-in {self.name} provider only validates and plans")]
        )

    def ImportResourceState(self, request: Any, context: Any) -> pb.ImportResourceState.Response:  # noqa: N802
        return pb.ImportResourceState.Response(
            diagnostics=[_error("Import refused", f"the stand-in {self.name} provider only validates and plans")]
        )

    def StopProvider(self, request: Any, context: Any) -> pb.StopProvider.Response:  # noqa: N802
        return pb.StopProvider.Response()


class _Controller(controller_rpc.GRPCControllerServicer):
    """go-plugin's controller: Terraform asks a provider to shut down through it when it is done."""

    def __init__(self, stopped: threading.Event) -> None:
        self.stopped = stopped

    def Shutdown(self, request: Any, context: Any) -> controller_pb.Empty:  # noqa: N802
        self.stopped.set()
        return controller_pb.Empty()


class _Stdio(stdio_rpc.GRPCStdioServicer):
    """go-plugin streams a plugin's stdout/stderr through this; the stand-in writes nothing worth streaming."""

    def StreamStdio(self, request: Any, context: Any) -> Iterator[Any]:  # noqa: N802
        return iter(())


def _certificate() -> tuple[bytes, bytes, bytes]:
    """The key, certificate (PEM) and certificate (DER) the harness made for this run."""
    path = os.environ.get(CERT_ENV)
    if not path:
        raise SystemExit(f"{CERT_ENV} is not set: start this provider through tests/terraform_harness.py")
    data = json.loads(Path(path).read_text())
    return data["key_pem"].encode(), data["cert_pem"].encode(), base64.b64decode(data["cert_der"])


def serve(name: str) -> None:
    """Serve one provider over a unix socket until Terraform shuts it down (the go-plugin handshake)."""
    if os.environ.get("TF_PLUGIN_MAGIC_COOKIE") is None:
        raise SystemExit("This is a Terraform provider plugin: Terraform starts it, not a person.")
    key_pem, cert_pem, cert_der = _certificate()
    stopped = threading.Event()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    rpc.add_ProviderServicer_to_server(SchemaOnlyProvider(name), server)
    controller_rpc.add_GRPCControllerServicer_to_server(_Controller(stopped), server)
    stdio_rpc.add_GRPCStdioServicer_to_server(_Stdio(), server)
    with tempfile.TemporaryDirectory(prefix="tfprovider-") as folder:
        socket = f"{folder}/plugin.sock"
        server.add_secure_port(f"unix://{socket}", grpc.ssl_server_credentials([(key_pem, cert_pem)]))
        server.start()
        certificate = base64.b64encode(cert_der).decode().rstrip("=")
        # core protocol | app protocol (tfplugin6) | network | address | protocol | server certificate
        print(f"1|6|unix|{socket}|grpc|{certificate}", flush=True)
        stopped.wait()
        server.stop(grace=0.2).wait()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the launchers: the one argument is the provider's name."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in PROVIDERS:
        raise SystemExit(f"usage: terraform_provider.py {{{'|'.join(PROVIDERS)}}}")
    serve(args[0])


if __name__ == "__main__":
    main()
