"""Running CI definitions as their runners do, for tests: the GitHub composite action's steps and a
GitLab template's jobs, with no GitHub or GitLab in reach.

The action's `run` steps get their `env:` mapping with `${{ inputs.* }}` and `${{ github.* }}`
resolved, `GITHUB_OUTPUT`, `GITHUB_PATH` and `GITHUB_ACTION_PATH`, and run under `bash -eo
pipefail`; a step's `if:` is evaluated. A GitLab job's variables (with `$CI_*` references expanded)
become the environment of its script lines, run under `sh -e` (dash, so scripts stay POSIX).
`sloplane` comes from the project's venv, first on PATH, so install steps find it and install nothing.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT

ACTION = ROOT / "action.yml"
GITLAB_TEMPLATE = ROOT / "ci" / "gitlab" / "sloplane-gate.gitlab-ci.yml"
GITLAB_PREVIEW_TEMPLATE = ROOT / "ci" / "gitlab" / "sloplane-preview.gitlab-ci.yml"
VENV_BIN = ROOT / ".venv" / "bin"


EXPRESSION = re.compile(r"\$\{\{\s*([^}]+?)\s*\}\}")


def resolve(text: str, context: Mapping[str, str]) -> str:
    """`${{ inputs.x }}` and `${{ github.y }}` as GitHub resolves them; anything else is a test error."""
    return EXPRESSION.sub(lambda match: context[match.group(1)], text)


def read_outputs(path: Path) -> dict[str, str]:
    """`$GITHUB_OUTPUT` as GitHub reads it: `name=value` lines and `name<<DELIMITER` blocks."""
    outputs: dict[str, str] = {}
    lines = iter(path.read_text().splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            block = []
            for inner in lines:
                if inner == delimiter:
                    break
                block.append(inner)
            outputs[name] = "\n".join(block)
        elif line:
            name, value = line.split("=", 1)
            outputs[name] = value
    return outputs


@dataclass(frozen=True)
class ActionRun:
    """What a workflow sees after the action: its exit code, outputs, log and PATH additions."""

    code: int
    outputs: dict[str, str]
    log: str
    added_path: str


GITHUB = {
    "github.sha": "0123456789abcdef0123456789abcdef01234567",
    "github.repository": "acme/checkout",
    "github.run_id": "4242",
    "github.run_attempt": "1",
    "github.token": "ghs_runner_token",
    "github.api_url": "https://api.github.com",
    "github.event.pull_request.number": "",  # empty outside pull_request events, as on GitHub
    "github.event.pull_request.base.sha": "",
}

CONDITION = re.compile(r"^(inputs\.[\w-]+)\s*(==|!=)\s*'([^']*)'$")


def runs(condition: object, context: Mapping[str, str]) -> bool:
    """A step's `if:` as GitHub evaluates the forms action.yml uses: `inputs.x == 'v'` and `!=`, strings
    compared ignoring case (GitHub's rule). Any other form is a test error, not a silent pass."""
    if condition is None:
        return True
    text = str(condition).strip()
    text = text.removeprefix("${{").removesuffix("}}").strip()
    match = CONDITION.match(text)
    assert match, f"an if: this runner cannot evaluate: {condition!r}"
    equal = context[match.group(1)].casefold() == match.group(3).casefold()
    return equal if match.group(2) == "==" else not equal


def base_env(tmp_path: Path) -> dict[str, str]:
    """A runner's environment: PATH with the project's venv first, a home, a temp folder."""
    return {
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "RUNNER_TEMP": str(tmp_path),
    }


def run_action(
    given: Mapping[str, str], tmp_path: Path, github: Mapping[str, str] | None = None, cwd: Path | None = None
) -> ActionRun:
    """Every step of action.yml as GitHub runs a composite action: inputs, env, bash, outputs.

    Each step gets its own `GITHUB_OUTPUT`; lines a step adds to `GITHUB_PATH` go before PATH
    in the steps after it; a step whose `if:` is false is skipped; the first failing step ends the
    action with its exit code. `github` overrides the `github.*` context; `cwd` is the workspace.
    """
    github_context = {**GITHUB, **(github or {})}
    action = yaml.safe_load(ACTION.read_text())
    assert action["runs"]["using"] == "composite"
    unknown = set(given) - set(action["inputs"])
    assert not unknown, f"not inputs of the action: {unknown}"
    context = {f"inputs.{name}": str(spec.get("default", "")) for name, spec in action["inputs"].items()}
    context = {key: resolve(value, github_context) for key, value in context.items()}
    context.update({f"inputs.{name}": value for name, value in given.items()})
    expressions = {**github_context, **context}
    tmp_path.mkdir(parents=True, exist_ok=True)
    files = {name: tmp_path / name for name in ("path", "summary")}
    for file in files.values():
        file.write_text("")
    step_outputs: dict[str, dict[str, str]] = {}
    log, code = [], 0
    for number, step in enumerate(action["runs"]["steps"]):
        if not runs(step.get("if"), expressions):
            continue
        assert step["shell"] == "bash" and "${{" not in step["run"], "inputs must reach scripts through env only"
        env = base_env(tmp_path)
        added = [line for line in files["path"].read_text().splitlines() if line]
        env["PATH"] = os.pathsep.join([*reversed(added), env["PATH"]])
        env.update({key: resolve(str(value), expressions) for key, value in step.get("env", {}).items()})
        output = tmp_path / f"output{number}"
        output.write_text("")
        env.update(
            GITHUB_OUTPUT=str(output),
            GITHUB_PATH=str(files["path"]),
            GITHUB_STEP_SUMMARY=str(files["summary"]),
            GITHUB_ACTION_PATH=str(ROOT),
        )
        script = tmp_path / f"step{number}.sh"
        script.write_text(step["run"])
        completed = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            cwd=cwd,
        )
        log.append(completed.stdout + completed.stderr)
        if "id" in step:
            step_outputs[step["id"]] = read_outputs(output)
        code = completed.returncode
        if code != 0:
            break
    flat = {f"steps.{sid}.outputs.{key}": value for sid, outs in step_outputs.items() for key, value in outs.items()}
    outputs = {
        name: EXPRESSION.sub(lambda m: flat.get(m.group(1), ""), spec["value"])
        for name, spec in action["outputs"].items()
    }
    return ActionRun(code, outputs, "\n".join(log), files["path"].read_text())


CI = {
    "CI_COMMIT_SHA": "fedcba9876543210fedcba9876543210fedcba98",
    "CI_PIPELINE_URL": "https://gitlab.example.com/acme/checkout/-/pipelines/77",
}


def job_variables(template: Mapping[str, Any], name: str) -> dict[str, str]:
    """A job's variables after `extends`, as GitLab merges them (the extending job's win)."""
    job = template[name]
    parents = job.get("extends", [])
    merged: dict[str, str] = {}
    for parent in [parents] if isinstance(parents, str) else parents:
        merged.update(job_variables(template, parent))
    merged.update({key: str(value) for key, value in job.get("variables", {}).items()})
    return merged


def job_script(template: Mapping[str, Any], name: str) -> list[str]:
    job = template[name]
    if "script" in job:
        return list(job["script"])
    parent = job["extends"]
    return job_script(template, parent if isinstance(parent, str) else parent[-1])


def expand(value: str, variables: Mapping[str, str]) -> str:
    """`$NAME` and `${NAME}` references in a variable, as GitLab expands them."""
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: variables.get(m.group(1), ""), value)


@dataclass(frozen=True)
class JobRun:
    code: int
    log: str
    dotenv: str
    answer: str


def _text(path: Path) -> str:
    """A file the job may not have written (it failed early): empty then."""
    return path.read_text() if path.exists() else ""


def run_gitlab_job(
    name: str, overrides: Mapping[str, str], folder: Path, template_path: Path = GITLAB_TEMPLATE
) -> JobRun:
    """The job's script lines in one `sh -e` session, in the job's variables (the project's win),
    from `folder` (the checkout): what it writes there (artifacts) stays for the test to read."""
    template = yaml.safe_load(template_path.read_text())
    variables = {**job_variables(template, name), **overrides}
    ci = {**CI, **{key: value for key, value in overrides.items() if key.startswith("CI_")}}
    env = {**base_env(folder), **ci, **{key: expand(value, ci) for key, value in variables.items()}}
    script = folder / "job.sh"
    script.write_text("\n".join(job_script(template, name)) + "\n")
    completed = subprocess.run(
        ["sh", "-e", str(script)], env=env, cwd=folder, capture_output=True, text=True, timeout=300, check=False
    )
    return JobRun(
        completed.returncode,
        completed.stdout + completed.stderr,
        _text(folder / "sloplane-gate.env"),
        _text(folder / "sloplane-gate.json"),
    )
