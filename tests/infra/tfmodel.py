"""Parses infra/*.tf into one plain structure (see load_terraform) for the infra tests."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA_DIR = REPO_ROOT / "infra"


def _unquote(value: str) -> str:
    # python-hcl2 >= 7 keeps the quotes of string literals ('"abc"'); older versions drop them.
    # Normalise to the old form so assertions read the same with either.
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


def _normalise(node: Any) -> Any:
    if isinstance(node, dict):
        return {_unquote(k): _normalise(v) for k, v in node.items() if not k.startswith("__")}
    if isinstance(node, list):
        return [_normalise(v) for v in node]
    if isinstance(node, str):
        return _unquote(node)
    return node


@functools.lru_cache(maxsize=256)
def _parse(text: str) -> dict:
    import io

    return _normalise(hcl2.load(io.StringIO(text)))


def ref(expression: str) -> str:
    """'${google_x.y.id}' -> 'google_x.y.id' (a bare reference), anything else unchanged."""
    if expression.startswith("${") and expression.endswith("}") and expression.count("${") == 1:
        return expression[2:-1].strip()
    return expression


def block(body: dict, name: str) -> dict:
    """The one nested block `name` of a resource body (hcl2 gives blocks as lists)."""
    found = body.get(name)
    assert isinstance(found, list) and len(found) == 1, f"expected exactly one {name} block"
    return found[0]


@dataclass
class Terraform:
    """Every top-level block of a directory's .tf files, keyed by type and name."""

    resources: dict[str, dict[str, dict]]
    data: dict[str, dict[str, dict]]
    variables: dict[str, dict]
    outputs: dict[str, dict]
    locals: dict[str, Any]
    terraform: list[dict]
    providers: dict[str, dict]
    files: dict[str, str]

    def resource(self, rtype: str, name: str) -> dict:
        assert name in self.resources.get(rtype, {}), f"missing resource {rtype}.{name}"
        return self.resources[rtype][name]

    def all_resources(self):
        for rtype, by_name in self.resources.items():
            for name, body in by_name.items():
                yield rtype, name, body


def load_terraform(directory: Path) -> Terraform:
    tf = Terraform({}, {}, {}, {}, {}, [], {}, {})
    for path in sorted(directory.glob("*.tf")):
        text = path.read_text(encoding="utf-8")
        tf.files[path.name] = text
        parsed = _parse(text)
        for kind in ("resource", "data"):
            target = tf.resources if kind == "resource" else tf.data
            for entry in parsed.get(kind, []):
                for rtype, by_name in entry.items():
                    for name, body in by_name.items():
                        bucket = target.setdefault(rtype, {})
                        assert name not in bucket, f"{kind} {rtype}.{name} declared twice"
                        bucket[name] = body
        for kind, target in (("variable", tf.variables), ("output", tf.outputs)):
            for entry in parsed.get(kind, []):
                for name, body in entry.items():
                    assert name not in target, f"{kind} {name} declared twice"
                    target[name] = body
        for entry in parsed.get("locals", []):
            for name, value in entry.items():
                assert name not in tf.locals, f"local {name} declared twice"
                tf.locals[name] = value
        tf.terraform.extend(parsed.get("terraform", []))
        for entry in parsed.get("provider", []):
            tf.providers.update(entry)
    return tf


