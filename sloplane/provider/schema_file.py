"""`make schema`: write the component package's schema to the checked-in file (`provider/schema.json`).

Byte-stable (sorted keys, two-space indent, a final newline) so that a drift test can compare it with
what the plugin serves, and a pull request shows a schema change as a diff.
"""

import json
import sys
from pathlib import Path
from typing import Any

from sloplane.core.fileio import write_files
from sloplane.provider.host import schema


def schema_text(data: dict[str, Any] | None = None) -> str:
    """The schema as the checked-in file holds it."""
    return json.dumps(schema() if data is None else data, indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    """Write the schema to the one path given."""
    if len(argv) != 1:
        print("usage: python -m sloplane.provider.schema_file PATH", file=sys.stderr)
        return 2
    target = Path(argv[0])
    write_files(target.parent, {target.name: schema_text()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
