"""Prose from templates: the sentences sloplane writes live in `sloplane/templates/`, not in f-strings.

Prose is reviewed as text. A reviewer reads `notify/incident-summary.txt` as the sentence a page will
show, not as f-string fragments spread over conditionals, and a wording change is a diff of that
sentence. YAML and JSON stay data: they are built as dicts and serialized, because a template writing
them would have to get quoting and indentation right by hand.

One environment, so every template behaves the same way:

- `StrictUndefined`: a value the caller did not pass is an error, never an empty gap in a page.
- autoescape for `.html` templates only: summaries, scripts and (later) alert annotations must come
  out verbatim, and HTML-escaping them would put `&#39;` into a PagerDuty summary.
- `keep_trailing_newline`: a template renders byte for byte as its file reads, final newline
  included, so a script template is the script. One-line prose (a summary, a title) is rendered
  with `render_line`, which drops the file's final newline instead of making every file lack one.
- no auto-reload: templates ship inside the package and do not change under a running process, so
  a render does not stat its file again.

Layout: `sloplane/templates/<area>/<name>.<type>`, one folder per area that writes prose
(`notify/`, `argo_cd/`, `alerts/` ...), each file named for what it renders. `.j2` is appended when
the rendered type is source that tools would pick up: a `.py` file under the package would be
linted, type-checked and byte-compiled as a module. Each template starts with a `{#- ... -#}`
comment naming its caller and values; the dashes keep the comment's line out of the output.
"""

from __future__ import annotations

import functools

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

TEMPLATES = "templates"
"""The folder inside the `sloplane` package; shipped in the wheel with the package's other files."""

ENVIRONMENT = Environment(
    loader=PackageLoader("sloplane", TEMPLATES),
    undefined=StrictUndefined,
    autoescape=select_autoescape(["html"]),
    keep_trailing_newline=True,
    auto_reload=False,
)


def render(name: str, /, **values: object) -> str:
    """The template `name` (a path under `sloplane/templates/`, e.g. `argo_cd/sync-failed-webhook.py.j2`).

    `name` is positional-only so that a template may take a value called `name`.
    """
    return ENVIRONMENT.get_template(name).render(**values)


def render_line(name: str, /, **values: object) -> str:
    """A one-line template (a summary, a title) without its file's final newline."""
    return render(name, **values).removesuffix("\n")


@functools.lru_cache(maxsize=4096)
def cached_line(name: str, /, **values: str) -> str:
    """`render_line` for prose written again and again with the same text values, remembered.

    A fleet's alert descriptions repeat for every SLO with the same objective and window, and a
    render costs microseconds that add up over thousands of rules; the values must be hashable text.
    """
    return render_line(name, **values)


def template_names() -> list[str]:
    """Every template in the package, sorted: tests render each one with its caller's values."""
    return sorted(ENVIRONMENT.list_templates())
