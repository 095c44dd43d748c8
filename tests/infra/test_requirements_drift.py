"""functions/requirements.txt (what Cloud Functions installs) must match pyproject's runtime deps.

Fails when a package is in one and not the other, when a line is not an exact pin, or when a pin
does not satisfy pyproject's specifier. Fix with `python scripts/gen_requirements.py`.
"""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"
REQUIREMENTS = ROOT / "functions" / "requirements.txt"


def pyproject_dependencies(path: Path = PYPROJECT) -> dict[str, Requirement]:
    with path.open("rb") as fh:
        dependencies = tomllib.load(fh)["project"]["dependencies"]
    return {canonicalize_name(r.name): r for r in map(Requirement, dependencies)}


def pinned_requirements(text: str) -> dict[str, Requirement]:
    """Parses requirements.txt text; every line must be `name==version`."""
    pins = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        assert not line.startswith("-"), f"line {number}: pip options are not allowed: {line}"
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            raise AssertionError(f"line {number}: not a requirement: {line} ({exc})") from None
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==" and "*" not in specs[0].version, \
            f"line {number}: {req.name} is not pinned to one exact version"
        name = canonicalize_name(req.name)
        assert name not in pins, f"line {number}: {req.name} is listed twice"
        pins[name] = req
    return pins


def drift(dependencies: dict[str, Requirement], pins: dict[str, Requirement]) -> list[str]:
    """Every way the pins disagree with pyproject, as readable lines (empty when in sync)."""
    declared, pinned = set(dependencies), set(pins)
    problems = [f"{n} is in pyproject.toml but not pinned" for n in sorted(declared - pinned)]
    problems += [f"{n} is pinned but not a runtime dependency" for n in sorted(pinned - declared)]
    for name in sorted(declared & pinned):
        version = Version(next(iter(pins[name].specifier)).version)
        specifier = dependencies[name].specifier
        if not specifier.contains(version, prereleases=True):
            problems.append(f"{name}=={version} does not satisfy pyproject's {specifier}")
        if pins[name].extras != dependencies[name].extras:
            problems.append(f"{name}: extras differ from pyproject.toml")
    return problems


def test_requirements_match_pyproject_runtime_dependencies():
    assert REQUIREMENTS.exists(), "functions/requirements.txt is missing"
    problems = drift(pyproject_dependencies(), pinned_requirements(REQUIREMENTS.read_text("utf-8")))
    assert not problems, "requirements drift (run python scripts/gen_requirements.py):\n" + \
        "\n".join(problems)


def test_requirements_file_is_what_the_generator_writes():
    """The file is generated, not hand-edited: re-rendering its own pins reproduces it exactly."""
    script = ROOT / "scripts" / "gen_requirements.py"
    spec = importlib.util.spec_from_file_location("gen_requirements", script)
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    text = REQUIREMENTS.read_text("utf-8")
    versions = {n: next(iter(r.specifier)).version for n, r in pinned_requirements(text).items()}
    assert gen.render(gen.runtime_requirements(PYPROJECT), versions) == text


@pytest.mark.parametrize("text, expected", [
    ("requests==2.31.0\n", "a is in pyproject.toml but not pinned"),
    ("a==1.0\nextra==1.0\n", "extra is pinned but not a runtime dependency"),
    ("a==0.9\n", "a==0.9 does not satisfy pyproject's >=1.0"),
])
def test_drift_is_detected(text, expected):
    dependencies = {"a": Requirement("a>=1.0")}
    assert expected in drift(dependencies, pinned_requirements(text))


@pytest.mark.parametrize("line", ["a>=1.0", "a", "a==1.*", "-r other.txt", "a==1.0,<2"])
def test_loose_or_odd_lines_are_rejected(line):
    with pytest.raises(AssertionError):
        pinned_requirements(line + "\n")
