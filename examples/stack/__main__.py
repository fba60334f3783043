"""The example stack: for now it loads and checks the example fleet and exports what it found.

The next milestone replaces this with `SloFleet(...)`, which registers the Prometheus rules and
dashboards as component resources. `pulumi preview` runs it; so does `sloplane preview` offline.
"""

from pathlib import Path

import pulumi

from sloplane.spec import load_declarations

EXAMPLES = Path(__file__).resolve().parent.parent / "slos"

declarations = load_declarations([EXAMPLES], strict=True)
pulumi.export("slos", sorted(declaration.name for declaration in declarations))
pulumi.export(
    "objectives",
    {declaration.name: declaration.spec.objective for declaration in declarations},
)
