"""Write the Terraform provider schemas the offline Terraform tests serve (tests/data/terraform/).

No provider binary can be downloaded where the tests run, yet Terraform core only needs a provider's
*schema* to validate and plan a module. The CDKTF provider wheels are generated from exactly those
schemas (``terraform providers schema -json``), and each resource's TypeScript source travels inside
the wheel's jsii assembly (in the source map of ``lib/<resource>/index.js``). That source states, for
every attribute, ``// name - computed: X, optional: Y, required: Z``, its getter (hence its type) and,
in ``synthesizeHclAttributes``/``…ToHclTerraform``, whether it is a block, a list, a set or a map.
This script reads those facts back into Terraform's own ``providers schema -json`` layout.

It downloads the two wheels with ``pip download --no-deps`` into a temporary folder (they are never a
dependency of sloplane) and writes one JSON file per provider plus PROVENANCE.md. ``grafana_dashboard``
has no CDKTF wheel at a matching version: it is written from the provider's documentation, below.

What cdktf cannot tell, and is fixed by hand here (each fix says why):
- ``kubernetes_manifest.manifest`` and ``.object`` are cty's dynamic pseudo-type (cdktf shows
  ``map(any)``, which real Terraform refuses for a PrometheusRule's mixed-type values);
  ``.wait_for`` is an object attribute, not a block.
- a nested attribute named ``id`` that is required is never computed as well (cdktf marks every
  ``id`` computed, Terraform then refuses the schema).
- cdktf does not carry a list block's maximum beyond "at most one" nor any minimum beyond "required":
  blocks get ``max_items`` 1 when cdktf made them a single object, ``min_items`` 1 when required.

Run: ``.venv/bin/python tools/extract_terraform_schemas.py [--out tests/data/terraform]``.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "tests" / "data" / "terraform"


@dataclass(frozen=True)
class ProviderSource:
    """One CDKTF wheel: which provider it describes and which of its resources sloplane renders."""

    file_stem: str
    wheel: str
    wheel_version: str
    source: str
    version: str
    resources: dict[str, str]  # terraform type -> folder under lib/


PROVIDERS = (
    ProviderSource(
        file_stem="kubernetes",
        wheel="cdktf-cdktf-provider-kubernetes",
        wheel_version="12.1.1",
        source="hashicorp/kubernetes",
        version="2.38.0",
        resources={"kubernetes_manifest": "manifest"},
    ),
    ProviderSource(
        file_stem="datadog",
        wheel="cdktf-cdktf-provider-datadog",
        wheel_version="12.15.2",
        source="DataDog/datadog",
        version="3.82.0",
        resources={
            "datadog_service_level_objective": "service-level-objective",
            "datadog_monitor": "monitor",
            "datadog_slo_correction": "slo-correction",
            "datadog_downtime_schedule": "downtime-schedule",
            "datadog_dashboard_json": "dashboard-json",
        },
    ),
)

# grafana/grafana's `grafana_dashboard`, from its documentation (registry.terraform.io/providers/grafana/grafana,
# docs/resources/dashboard): config_json required; folder, overwrite, message, org_id optional;
# id, uid, url, version, dashboard_id computed. The provider's own configuration (url, auth, …) is all optional.
GRAFANA_VERSION = "3.x"
GRAFANA_SCHEMA: dict[str, Any] = {
    "format_version": "1.0",
    "provider_source": "grafana/grafana",
    "provider_version": GRAFANA_VERSION,
    "provider": {
        "version": 0,
        "block": {
            "attributes": {
                "url": {"type": "string", "optional": True},
                "auth": {"type": "string", "optional": True, "sensitive": True},
                "org_id": {"type": "number", "optional": True},
                "insecure_skip_verify": {"type": "bool", "optional": True},
                "retries": {"type": "number", "optional": True},
            },
            "block_types": {},
        },
    },
    "resource_schemas": {
        "grafana_dashboard": {
            "version": 1,
            "block": {
                "attributes": {
                    "config_json": {"type": "string", "required": True},
                    "folder": {"type": "string", "optional": True},
                    "overwrite": {"type": "bool", "optional": True},
                    "message": {"type": "string", "optional": True},
                    "org_id": {"type": "string", "optional": True, "computed": True},
                    "id": {"type": "string", "computed": True},
                    "uid": {"type": "string", "computed": True},
                    "url": {"type": "string", "computed": True},
                    "version": {"type": "number", "computed": True},
                    "dashboard_id": {"type": "number", "computed": True},
                },
                "block_types": {},
            },
        }
    },
}

# The fixes cdktf cannot express (see the module docstring). Keyed by resource type, then attribute.
ATTRIBUTE_OVERRIDES: dict[str, dict[str, dict[str, Any]]] = {
    "kubernetes_manifest": {
        "manifest": {"type": "dynamic", "required": True},
        "object": {"type": "dynamic", "optional": True, "computed": True},
        "wait_for": {"type": ["object", {"fields": ["map", "string"]}], "optional": True, "deprecated": True},
    }
}
# Terraform meta-arguments cdktf shows among a provider's own attributes.
PROVIDER_META = {"alias"}

_ENTRY = re.compile(
    r"^  // (?P<name>\w+) - computed: (?P<computed>true|false), optional: (?P<optional>true|false), "
    r"required: (?P<required>true|false)\n(?P<body>.*?)(?=\n  // \w+ - computed:|\Z)",
    re.S | re.M,
)
_CLASS = re.compile(r"^export class (?P<name>\w+) extends cdktf\.(?P<base>\w+) \{\n(?P<body>.*?)^}\n", re.S | re.M)
_COMPLEX = re.compile(
    r'new (?P<cls>\w+?)(?P<kind>OutputReference|List|Map)\(this, "(?P<attr>\w+)"(?:, (?P<set>true|false))?'
)
_HCL_FUNC = re.compile(
    r"^export function (?P<fn>\w+)ToHclTerraform\(.*?^}\n|^  protected synthesizeHclAttributes\(\).*?^  }\n",
    re.S | re.M,
)
_HCL_ATTR = re.compile(
    r"^\s+(?P<name>\w+): \{\n\s+value: .*?,\n\s+isBlock: (?P<block>true|false),\n\s+type: \"(?P<type>\w+)\",\n"
    r"\s+storageClassType: \"(?P<storage>\w+)\",",
    re.M,
)
_SCALARS = {"string": "string", "number": "number", "boolean": "bool", "any": "dynamic"}
_GETTERS = (
    ("getStringMapAttribute", ["map", "string"]),
    ("getNumberMapAttribute", ["map", "number"]),
    ("getBooleanMapAttribute", ["map", "bool"]),
    ("getAnyMapAttribute", ["map", "dynamic"]),
    ("getNumberListAttribute", ["list", "number"]),
    ("getListAttribute", ["list", "string"]),
    ("getStringAttribute", "string"),
    ("getNumberAttribute", "number"),
    ("getBooleanAttribute", "bool"),
)


def resource_source(assembly: tarfile.TarFile, folder: str) -> str:
    """The TypeScript cdktf generated for one resource: kept verbatim in its index.js source map."""
    member = assembly.extractfile(f"package/lib/{folder}/index.js")
    if member is None:
        raise SystemExit(f"no lib/{folder}/index.js in the assembly")
    text = member.read().decode()
    match = re.search(r"sourceMappingURL=data:application/json;base64,(\S+)", text)
    if match is None:
        raise SystemExit(f"lib/{folder}/index.js carries no inline source map")
    return str(json.loads(base64.b64decode(match.group(1)))["sourcesContent"][0])


class ModuleSource:
    """One resource's TypeScript, indexed: classes by name, HCL facts by struct name."""

    def __init__(self, text: str) -> None:
        self.classes = {m.group("name"): (m.group("base"), m.group("body")) for m in _CLASS.finditer(text)}
        self.hcl: dict[str, dict[str, tuple[bool, str, str]]] = {}
        for func in _HCL_FUNC.finditer(text):
            key = func.group("fn") or "<resource>"
            self.hcl[key] = {
                a.group("name"): (a.group("block") == "true", a.group("type"), a.group("storage"))
                for a in _HCL_ATTR.finditer(func.group(0))
            }

    def hcl_for(self, struct: str | None) -> dict[str, tuple[bool, str, str]]:
        """HCL facts of a struct (lowerCamel + ToHclTerraform) or of the resource itself (None)."""
        if struct is None:
            return self.hcl.get("<resource>", {})
        return self.hcl.get(struct[0].lower() + struct[1:], {})

    def block(self, class_name: str, struct: str | None) -> dict[str, Any]:
        """The Terraform block a cdktf class describes: attributes and nested block types."""
        _, body = self.classes[class_name]
        hcl = self.hcl_for(struct)
        attributes: dict[str, Any] = {}
        blocks: dict[str, Any] = {}
        for entry in _ENTRY.finditer(body):
            name = entry.group("name")
            flags = {k: entry.group(k) == "true" for k in ("required", "optional", "computed")}
            if flags["required"]:
                flags["computed"] = False  # a required nested `id` is never computed as well
            complex_ = _COMPLEX.search(entry.group("body"))
            facts = hcl.get(name)
            if complex_ and complex_.group("attr") == name:
                nested_struct = complex_.group("cls")
                inner = self.block(nested_struct + "OutputReference", nested_struct)
                single = complex_.group("kind") == "OutputReference"
                wraps_set = complex_.group("set") == "true"
                if facts is not None and facts[0]:
                    nesting = {"list": "list", "set": "set", "struct": "single", "map": "map"}[facts[1]]
                    block_type: dict[str, Any] = {"nesting_mode": nesting, "block": inner}
                    if nesting in {"list", "set"}:
                        if flags["required"]:
                            block_type["min_items"] = 1
                        if single:
                            block_type["max_items"] = 1
                    blocks[name] = block_type
                else:
                    object_type = ["object", {k: v["type"] for k, v in inner["attributes"].items()}]
                    kind = "object" if single else ("set" if wraps_set else "list")
                    attributes[name] = {"type": object_type if kind == "object" else [kind, object_type], **_on(flags)}
                continue
            if facts is not None and facts[0]:
                # Only a provider's own configuration keeps blocks as plain structs (no OutputReference):
                # its blocks (kubernetes exec, datadog default_tags) are left out; modules configure none.
                continue
            attributes[name] = {"type": scalar_type(name, entry.group("body"), facts), **_on(flags)}
        return {"attributes": attributes, "block_types": blocks}


def _on(flags: dict[str, bool]) -> dict[str, bool]:
    """Only the flags that are set, as `terraform providers schema -json` writes them."""
    return {k: True for k, v in flags.items() if v}


def scalar_type(name: str, body: str, facts: tuple[bool, str, str] | None) -> Any:
    """An attribute's cty type: from its HCL storage class when it has one, else from its getter."""
    if facts is not None:
        _, kind, storage = facts
        element = next((_SCALARS[p] for p in _SCALARS if storage.lower().startswith(p)), None)
        if element is not None:
            if storage in _SCALARS:
                return element
            if kind in {"list", "set", "map"}:
                return [kind, element]
    start = body.find("public get ")
    getter = body[start : body.find("}", start)]
    for call, cty in _GETTERS:
        if call in getter:
            if "Fn.tolist(" in getter and isinstance(cty, list) and cty[0] == "list":
                return ["set", cty[1]]
            return cty
    raise SystemExit(f"cannot tell the type of {name}: {getter[:200]!r}")


def resource_schema(text: str, type_name: str) -> dict[str, Any]:
    """One resource's schema; the resource class is the one extending cdktf.TerraformResource."""
    module = ModuleSource(text)
    resource_class = next(n for n, (base, _) in module.classes.items() if base in {"TerraformResource"})
    block = module.block(resource_class, None)
    for attr, override in ATTRIBUTE_OVERRIDES.get(type_name, {}).items():
        block["block_types"].pop(attr, None)
        block["attributes"][attr] = override
    return {"version": 0, "block": block}


def provider_schema(text: str) -> dict[str, Any]:
    """The provider's own configuration block, without Terraform's meta-arguments."""
    module = ModuleSource(text)
    provider_class = next(n for n, (base, _) in module.classes.items() if base == "TerraformProvider")
    block = module.block(provider_class, None)
    for meta in PROVIDER_META:
        block["attributes"].pop(meta, None)
    return {"version": 0, "block": block}


def download(provider: ProviderSource, folder: Path) -> Path:
    """The wheel, fetched with pip (never installed: the assembly is read straight from the zip)."""
    spec = f"{provider.wheel}=={provider.wheel_version}"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", str(folder), spec], check=True
    )
    return next(folder.glob(provider.wheel.replace("-", "_") + f"-{provider.wheel_version}-*.whl"))


def extract(provider: ProviderSource, wheel: Path) -> dict[str, Any]:
    """The provider's file: its configuration schema and the resources sloplane renders."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".jsii.tgz"))
        data = archive.read(name)
    with tarfile.open(fileobj=io.BytesIO(data)) as assembly:
        resources = {t: resource_schema(resource_source(assembly, f), t) for t, f in provider.resources.items()}
        provider_block = provider_schema(resource_source(assembly, "provider"))
    return {
        "format_version": "1.0",
        "provider_source": provider.source,
        "provider_version": provider.version,
        "provider": provider_block,
        "resource_schemas": resources,
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Sorted keys and a trailing newline: a re-run that finds nothing new changes no byte."""
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


PROVENANCE = """# Terraform provider schemas (test data)

Served by the schema-only stand-in providers (`tests/terraform_provider.py`) so that real Terraform core
validates and plans generated modules offline. Written by `tools/extract_terraform_schemas.py` on {date};
re-run it to refresh, and review the diff like code.

| file | provider | version | source |
|---|---|---|---|
| `kubernetes.json` | `hashicorp/kubernetes` | 2.38.0 | PyPI `cdktf-cdktf-provider-kubernetes==12.1.1` |
| `datadog.json` | `DataDog/datadog` | 3.82.0 | PyPI `cdktf-cdktf-provider-datadog==12.15.2` |
| `grafana.json` | `grafana/grafana` | {grafana} | hand-written from the provider's documentation |

How: `pip download --no-deps` the CDKTF wheel (deprecated, never a dependency), open its jsii assembly
(`_jsii/*.jsii.tgz`), take each resource's generated TypeScript from the source map of
`lib/<resource>/index.js` and read, per attribute, cdktf's `// name - computed, optional, required`
comment, its getter (the type) and its `synthesizeHclAttributes` entry (block or attribute; list, set,
map or single). The layout is Terraform's own `terraform providers schema -json`.

Resources: `kubernetes_manifest`; `datadog_service_level_objective`, `datadog_monitor`,
`datadog_slo_correction`, `datadog_downtime_schedule`, `datadog_dashboard_json`; `grafana_dashboard`;
and each provider's own configuration block.

Fixed by hand (cdktf cannot say it):
- `kubernetes_manifest.manifest` and `.object` are the dynamic pseudo-type (`"dynamic"`), not
  `map(any)`: real Terraform would refuse a PrometheusRule (strings, lists and objects in one map);
  `.wait_for` is an object attribute.
- A required nested `id` is not also computed.
- A provider's own configuration keeps its attributes only, not its blocks (kubernetes `exec`,
  datadog `default_tags`): the generated module configures no provider.
- Blocks carry `max_items: 1` only where cdktf made them one object, `min_items: 1` only where
  required; other limits (and defaults, enums, conflicts) are not in cdktf's output and are not
  checked by the stand-in.
"""


def main(argv: list[str] | None = None) -> int:
    """Download, extract, write; print what was written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for provider in PROVIDERS:
            data = extract(provider, download(provider, Path(tmp)))
            write_json(out / f"{provider.file_stem}.json", data)
            print(f"{provider.file_stem}.json: {', '.join(sorted(data['resource_schemas']))}")
    write_json(out / "grafana.json", GRAFANA_SCHEMA)
    print("grafana.json: grafana_dashboard")
    date = datetime.datetime.now(datetime.UTC).date().isoformat()
    (out / "PROVENANCE.md").write_text(PROVENANCE.format(date=date, grafana=GRAFANA_VERSION))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
