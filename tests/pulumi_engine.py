"""A fake Pulumi engine and resource monitor served over gRPC in the test process, and the sloplane plugin
started exactly as the engine starts it.

Why: no Pulumi CLI can be installed on the development machine, yet other languages reach the components
only through the plugin (`provider/`) over gRPC. The SDK's mocks run the components in-process and skip
everything that matters there: inputs as another language sends them (Struct doubles, secrets, output
values with dependencies), provider references read back through `pulumi:pulumi:getResource`, and errors
as the engine shows them. So the test plays the engine: it serves the `Engine` and `ResourceMonitor`
services (stubs from `pulumi.runtime.proto`), runs `python provider/ <engine address>`, reads the port the
plugin prints, and drives it through `ResourceProvider`. The monitor implements what the SDK's provider
server calls during a `Construct` and refuses anything else (UNIMPLEMENTED), so a new call shows up as a
failure rather than being silently answered.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import (
    engine_pb2,
    engine_pb2_grpc,
    errors_pb2,
    provider_pb2,
    provider_pb2_grpc,
    resource_pb2,
    resource_pb2_grpc,
    status_pb2,
)

# The wire encoding of special values inside a protobuf Struct (pulumi/sdk/go/common/resource/plugin/rpc.go).
SIG = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
OUTPUT_SIG = "d0e6a833031e9bbcd3f4e8bde6ca49a4"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"

PROJECT = "project"
STACK = "stack"
STACK_URN = f"urn:pulumi:{STACK}::{PROJECT}::pulumi:pulumi:Stack::{PROJECT}-{STACK}"
GRPC_OPTIONS = [("grpc.max_receive_message_length", 400 * 1024 * 1024)]
STARTUP_LIMIT = 120.0
"""Seconds the plugin may take to print its port (a guard against a hung start, not a speed check)."""
CALL_LIMIT = 120.0
"""Seconds any one call to the plugin may take before the test gives up on it."""

MONITOR_FEATURES = [
    resource_pb2.RESOURCE_MONITOR_FEATURE_SECRETS,
    resource_pb2.RESOURCE_MONITOR_FEATURE_RESOURCE_REFERENCES,
    resource_pb2.RESOURCE_MONITOR_FEATURE_OUTPUT_VALUES,
    resource_pb2.RESOURCE_MONITOR_FEATURE_ALIAS_SPECS,
    resource_pb2.RESOURCE_MONITOR_FEATURE_DELETED_WITH,
    resource_pb2.RESOURCE_MONITOR_FEATURE_REPLACE_WITH,
]
"""What a real engine supports among the features that only shape requests (transforms, hooks and the
like would need callbacks this monitor does not serve)."""
LEGACY_FEATURES = {"secrets", "resourceReferences", "outputValues", "aliasSpecs", "deletedWith", "replaceWith"}


@dataclass(frozen=True)
class Secret:
    """A value marked secret on the wire."""

    value: Any


@dataclass(frozen=True)
class OutputValue:
    """An output value (what another language sends for an input that depends on other resources)."""

    value: Any = UNKNOWN
    secret: bool = False
    dependencies: tuple[str, ...] = ()


@dataclass(frozen=True)
class ResourceRef:
    """A reference to a resource (a provider passed as an input, for one)."""

    urn: str
    id: str | None = None
    package_version: str = ""


def encode(value: Any) -> Any:
    """Python data -> the JSON shape a Struct holds, special values as their signature objects."""
    if isinstance(value, Secret):
        return {SIG: SECRET_SIG, "value": encode(value.value)}
    if isinstance(value, OutputValue):
        out: dict[str, Any] = {SIG: OUTPUT_SIG, "dependencies": list(value.dependencies)}
        if value.value != UNKNOWN:
            out["value"] = encode(value.value)
        if value.secret:
            out["secret"] = True
        return out
    if isinstance(value, ResourceRef):
        ref = {SIG: RESOURCE_SIG, "urn": value.urn, "packageVersion": value.package_version}
        return ref if value.id is None else {**ref, "id": value.id}
    if isinstance(value, Mapping):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    return value


def to_struct(values: Mapping[str, Any]) -> struct_pb2.Struct:
    """A Struct as another language's SDK sends it: every number becomes a double."""
    found = struct_pb2.Struct()
    found.update(encode(values))
    return found


def decode(value: Any) -> Any:
    """The JSON shape of a Struct -> Python data, signature objects as `Secret`/`OutputValue`/`ResourceRef`."""
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    sig = value.get(SIG)
    if sig == SECRET_SIG:
        return Secret(decode(value.get("value")))
    if sig == OUTPUT_SIG:
        inner = decode(value["value"]) if "value" in value else UNKNOWN
        deps = tuple(value.get("dependencies", ()))
        return OutputValue(inner, bool(value.get("secret", False)), deps)
    if sig == RESOURCE_SIG:
        return ResourceRef(value["urn"], value.get("id"), value.get("packageVersion", ""))
    if sig is not None:
        raise ValueError(f"unexpected special value {value!r}")
    return {k: decode(v) for k, v in value.items()}


def from_struct(struct: struct_pb2.Struct) -> dict[str, Any]:
    """A Struct's properties as Python data (numbers stay floats, as they travelled)."""
    decoded: dict[str, Any] = decode(json_format.MessageToDict(struct))
    return decoded


def plain(value: Any) -> Any:
    """The value with every secret and known output value unwrapped (to compare with rendered objects)."""
    if isinstance(value, Secret):
        return plain(value.value)
    if isinstance(value, OutputValue):
        return plain(value.value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def secret_paths(value: Any, path: str = "") -> list[str]:
    """Dotted paths of the values marked secret (`data.token`, `items[0]`)."""
    if isinstance(value, Secret) or (isinstance(value, OutputValue) and value.secret):
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in secret_paths(v, f"{path}.{k}" if path else k)]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in secret_paths(v, f"{path}[{i}]")]
    return []


@dataclass(frozen=True)
class Registration:
    """One `RegisterResource` (or `ReadResource`) request as the monitor received it."""

    type: str
    name: str
    urn: str
    parent: str
    custom: bool
    provider: str
    """The explicit provider reference `<provider urn>::<provider id>`, or "" for the default provider."""
    properties: dict[str, Any]
    property_dependencies: dict[str, list[str]]
    dependencies: list[str]
    aliases: list[str] = field(default_factory=list)
    """Each alias as the SDK sent it: a spec's name, or a whole URN."""


@dataclass
class Monitor(resource_pb2_grpc.ResourceMonitorServicer):
    """The resource monitor of one deployment: URNs as the engine forms them, inputs echoed as outputs, an id
    for every custom resource (empty, that is unknown, during a preview, as for a create)."""

    dry_run: bool
    registrations: list[Registration] = field(default_factory=list)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """RegisterResourceOutputs by URN."""
    invoked: list[str] = field(default_factory=list)
    packages: list[tuple[str, str]] = field(default_factory=list)
    _state: dict[str, tuple[str, struct_pb2.Struct]] = field(default_factory=dict)
    """Every resource this deployment knows (registered or already there) -> (id, outputs)."""
    _types: dict[str, str] = field(default_factory=dict)
    """URN -> its qualified type (parent types joined with `$`), which a child's URN starts with."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def existing_provider(self, package: str, name: str, inputs: Mapping[str, Any] | None = None) -> str:
        """A provider the calling program registered before the Construct; its reference for `providers`."""
        urn = f"urn:pulumi:{STACK}::{PROJECT}::pulumi:providers:{package}::{name}"
        provider_id = f"{name}-id"
        with self._lock:
            self._state[urn] = (provider_id, to_struct(inputs or {}))
        return f"{urn}::{provider_id}"

    def of_type(self, type_: str) -> dict[str, Registration]:
        """Registrations of one type by resource name."""
        return {r.name: r for r in self.registrations if r.type == type_}

    def _register(self, request: Any, custom: bool, properties: struct_pb2.Struct, known_id: str) -> Registration:
        qualified = request.type
        with self._lock:
            if request.parent and request.parent in self._types:
                qualified = f"{self._types[request.parent]}${request.type}"
            urn = f"urn:pulumi:{STACK}::{PROJECT}::{qualified}::{request.name}"
            if urn in self._types:
                raise ValueError(f"Duplicate resource URN '{urn}'; try giving it a unique name")
            self._types[urn] = qualified
            resource_id = known_id or ("" if self.dry_run or not custom else f"{request.name}-id")
            self._state[urn] = (resource_id, properties)
            found = Registration(
                type=request.type,
                name=request.name,
                urn=urn,
                parent=request.parent,
                custom=custom,
                provider=request.provider,
                properties=from_struct(properties),
                property_dependencies={
                    k: list(v.urns) for k, v in getattr(request, "propertyDependencies", {}).items()
                },
                dependencies=list(request.dependencies),
                aliases=[
                    alias.spec.name if alias.WhichOneof("alias") == "spec" else alias.urn
                    for alias in getattr(request, "aliases", [])
                ],
            )
            self.registrations.append(found)
        return found

    def GetDeploymentInfo(self, request: empty_pb2.Empty, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return resource_pb2.DeploymentInfo(supportedFeatures=MONITOR_FEATURES)

    def SupportsFeature(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return resource_pb2.SupportsFeatureResponse(hasSupport=request.id in LEGACY_FEATURES)

    def RegisterResource(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        try:
            found = self._register(request, request.custom, request.object, "")
        except ValueError as error:
            context.abort(grpc.StatusCode.ALREADY_EXISTS, str(error))
        resource_id, state = self._state[found.urn]
        return resource_pb2.RegisterResourceResponse(urn=found.urn, id=resource_id, object=state)

    def ReadResource(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        try:
            found = self._register(request, True, request.properties, request.id)
        except ValueError as error:
            context.abort(grpc.StatusCode.ALREADY_EXISTS, str(error))
        return resource_pb2.ReadResourceResponse(urn=found.urn, properties=request.properties)

    def RegisterResourceOutputs(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        with self._lock:
            self.outputs[request.urn] = from_struct(request.outputs)
        return empty_pb2.Empty()

    def Invoke(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        """Only `pulumi:pulumi:getResource`, which the SDK uses to rehydrate resources (providers) by URN."""
        self.invoked.append(request.tok)
        if request.tok != "pulumi:pulumi:getResource":
            context.abort(grpc.StatusCode.UNIMPLEMENTED, f"no function {request.tok} in this test")
        urn = from_struct(request.args)["urn"]
        with self._lock:
            known = self._state.get(urn)
        if known is None:
            failure = provider_pb2.CheckFailure(property="urn", reason=f"unknown resource {urn}")
            return resource_pb2.ResourceInvokeResponse(failures=[failure])
        found = struct_pb2.Struct()
        found.update({"urn": urn, "id": known[0]})
        found["state"] = known[1]
        return resource_pb2.ResourceInvokeResponse(**{"return": found})

    def RegisterPackage(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        with self._lock:
            self.packages.append((request.name, request.version))
        return resource_pb2.RegisterPackageResponse(ref=f"{request.name}@{request.version}")

    def SignalAndWaitForShutdown(self, request: empty_pb2.Empty, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return empty_pb2.Empty()


@dataclass
class Engine(engine_pb2_grpc.EngineServicer):
    """The engine's side a plugin talks to: its log (messages the user would see) and the root resource."""

    logs: list[tuple[int, str, str]] = field(default_factory=list)
    """(severity, message, urn) of every Log call."""
    root: str = STACK_URN

    def Log(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self.logs.append((request.severity, request.message, request.urn))
        return empty_pb2.Empty()

    def GetRootResource(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return engine_pb2.GetRootResourceResponse(urn=self.root)

    def SetRootResource(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self.root = request.urn
        return engine_pb2.SetRootResourceResponse()

    def RequirePulumiVersion(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return engine_pb2.RequirePulumiVersionResponse()


@contextmanager
def serving(servicer: Engine | Monitor) -> Iterator[str]:
    """The servicer on a free port of 127.0.0.1 (the OS picks it), its address while the block runs."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=GRPC_OPTIONS)
    if isinstance(servicer, Engine):
        engine_pb2_grpc.add_EngineServicer_to_server(servicer, server)
    else:
        resource_pb2_grpc.add_ResourceMonitorServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


@dataclass(frozen=True)
class Deployment:
    """One deployment's monitor and the address a `ConstructRequest` names as its `monitorEndpoint`."""

    monitor: Monitor
    address: str


@contextmanager
def deployment(dry_run: bool) -> Iterator[Deployment]:
    """A fresh monitor for one `pulumi preview` (dry_run) or `pulumi up`, served while the block runs."""
    monitor = Monitor(dry_run=dry_run)
    with serving(monitor) as address:
        yield Deployment(monitor, address)


def input_errors(error: grpc.RpcError) -> list[tuple[str, str]]:
    """(property path, reason) of each input error in a failed call's status details, as the engine reads
    them (the message alone may be empty)."""
    found: list[tuple[str, str]] = []
    for key, value in getattr(error, "trailing_metadata", lambda: ())() or ():
        if key == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                errors = errors_pb2.InputPropertiesError()
                if detail.Unpack(errors):
                    found.extend((e.property_path, e.reason) for e in errors.errors)
    return found


@dataclass
class Plugin:
    """A running plugin process and a `ResourceProvider` client connected to it."""

    process: subprocess.Popen[bytes]
    provider: provider_pb2_grpc.ResourceProviderStub
    stderr: Path

    def construct(
        self,
        monitor_address: str,
        type_: str,
        name: str,
        inputs: Mapping[str, Any],
        *,
        dry_run: bool,
        providers: Mapping[str, str] | None = None,
        input_dependencies: Mapping[str, list[str]] | None = None,
    ) -> provider_pb2.ConstructResponse:
        """`Construct` as the engine sends it for a component declared at the top of a stack."""
        request = provider_pb2.ConstructRequest(
            project=PROJECT,
            stack=STACK,
            organization="organization",
            dryRun=dry_run,
            parallel=16,
            monitorEndpoint=monitor_address,
            type=type_,
            name=name,
            parent=STACK_URN,
            inputs=to_struct(inputs),
            inputDependencies={
                key: provider_pb2.ConstructRequest.PropertyDependencies(urns=urns)
                for key, urns in (input_dependencies or {}).items()
            },
            providers=dict(providers or {}),
            accepts_output_values=True,
        )
        response: provider_pb2.ConstructResponse = self.provider.Construct(request, timeout=CALL_LIMIT)
        return response

    def log(self) -> str:
        """What the plugin wrote to stderr so far (for failure messages)."""
        return self.stderr.read_text(errors="replace")


def _read_port(process: subprocess.Popen[bytes], stderr: Path) -> int:
    """The port the plugin prints as its first line of stdout, as the engine reads it."""
    assert process.stdout is not None
    deadline = time.monotonic() + STARTUP_LIMIT
    line = b""
    fd = process.stdout.fileno()
    os.set_blocking(fd, False)
    while not line.endswith(b"\n"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the plugin printed no port (exit {process.poll()}):\n{stderr.read_text()}")
        try:
            chunk = os.read(fd, 1)
        except BlockingIOError:
            time.sleep(0.02)
            continue
        line += chunk
    os.set_blocking(fd, True)
    return int(line.strip())


def _drain(process: subprocess.Popen[bytes]) -> threading.Thread:
    """Keep reading stdout after the port so the plugin never blocks on a full pipe."""
    assert process.stdout is not None
    stdout = process.stdout
    reader = threading.Thread(target=stdout.read, daemon=True)
    reader.start()
    return reader


@contextmanager
def running_plugin(plugin_dir: Path, engine_address: str, workdir: Path) -> Iterator[Plugin]:
    """`python <plugin dir> <engine address>` in its own process group, killed (with the group) at the end."""
    stderr = workdir / "plugin.stderr"
    with stderr.open("wb") as errors:
        process = subprocess.Popen(
            [sys.executable, str(plugin_dir), engine_address],
            cwd=plugin_dir,
            stdout=subprocess.PIPE,
            stderr=errors,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    reader: threading.Thread | None = None
    try:
        port = _read_port(process, stderr)
        reader = _drain(process)
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=GRPC_OPTIONS) as channel:
            grpc.channel_ready_future(channel).result(timeout=STARTUP_LIMIT)
            yield Plugin(process, provider_pb2_grpc.ResourceProviderStub(channel), stderr)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=CALL_LIMIT)
        if reader is not None:
            reader.join(timeout=CALL_LIMIT)
        if process.stdout is not None:
            process.stdout.close()
