"""Each setting is defined once (config.SETTINGS); parsing, README and infra/ are checked on it.

Fails when a setting exists in the code, the README or infra/ but not in the registry, when a
function setting is not passed (by infra/) to exactly the functions that read it, or when a
Terraform variable's default differs from the code's.
"""

from __future__ import annotations

import re

import pytest
from tfmodel import INFRA_DIR, REPO_ROOT, load_terraform

from capi_relay.config import BY_NAME, SETTINGS, Scope, Settings

README = REPO_ROOT / "README.md"
ENV_LOCALS = {"ingest": "ingest_settings", "process": "processor_settings"}
READER_NAMES = {"ingest": "ingest", "process": "processor", "make dev": "`make dev`",
                "capi-relay replay": "`capi-relay replay`"}


@pytest.fixture(scope="module")
def tf():
    return load_terraform(INFRA_DIR)


def readme_table() -> str:
    """The README's configuration table, rendered from the registry."""
    rows = ["| variable | default | read by | meaning |", "| --- | --- | --- | --- |"]
    for s in SETTINGS:
        shown = "— (required)" if s.required else f"`{s.default}`" if s.default else "none"
        readers = ", ".join(READER_NAMES[r] for r in s.readers)
        if s.scope is Scope.LOCAL:
            readers += " (local only)"
        rows.append(f"| `{s.name}` | {shown} | {readers} | {s.description} |")
    return "\n".join(rows)


class Recording(dict):
    def __init__(self, values):
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)


def test_the_code_reads_exactly_the_function_settings_of_the_registry():
    env = Recording({"GOOGLE_CLOUD_PROJECT": "p", "PUBSUB_TOPIC": "t", "META_PIXEL_ID": "1"})
    Settings.from_env(env)
    deployed = {s.name for s in SETTINGS if s.scope is not Scope.OPERATOR
                and set(s.readers) & set(ENV_LOCALS)}
    assert env.read == deployed


def test_defaults_in_the_dataclass_are_the_registry_defaults():
    parsed = Settings.from_env({"GOOGLE_CLOUD_PROJECT": "p", "PUBSUB_TOPIC": "t",
                                "META_PIXEL_ID": "1"})
    built = Settings(project="p", topic="t", pixel_id="1")
    assert parsed == built


def test_readme_table_is_the_registry():
    text = README.read_text(encoding="utf-8")
    expected = readme_table()
    assert expected in text, "README's configuration table differs; expected:\n" + expected
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", text, flags=re.M))
    assert documented == set(BY_NAME), documented ^ set(BY_NAME)


def test_every_function_setting_is_deployed_to_exactly_its_readers(tf):
    passed = {reader: set(tf.locals[name]) for reader, name in ENV_LOCALS.items()}
    for s in SETTINGS:
        for reader, names in passed.items():
            wanted = s.scope is Scope.FUNCTION and reader in s.readers
            assert (s.name in names) == wanted, \
                f"{s.name}: {'missing from' if wanted else 'should not be in'} {reader}'s env"
    known = set(BY_NAME)
    for reader, names in passed.items():
        assert names <= known, f"infra/ passes {names - known} to {reader}, not in the registry"


def test_each_terraform_variable_exists_is_used_and_has_the_codes_default(tf):
    files = "".join(tf.files.values())
    for s in SETTINGS:
        if s.scope is not Scope.FUNCTION or s.terraform is None:
            continue
        var = tf.variables.get(s.terraform)
        assert var is not None, f"{s.name}: infra/ has no variable {s.terraform}"
        assert var.get("type") and var.get("description"), s.terraform
        assert f"var.{s.terraform}" in files
        if "default" not in var:
            assert s.required or s.default is None, s.name
            continue
        assert _same_default(s, var["default"], tf), \
            f"{s.name}: infra default {var['default']!r} differs from the code's {s.default!r}"
        if s.choices:
            assert "validation" in var, f"{s.terraform} lists no choices"


def _same_default(setting, value, tf) -> bool:
    if setting.name == "MAX_DELIVERY_ATTEMPTS":  # the subscription's policy, two attempts later
        return str(value - 2) == setting.default
    if setting.name == "INGEST_KEYS_SECRET":  # a switch: on means the managed secret is used
        return isinstance(value, bool)
    if setting.name == "META_TOKEN_SECRET":  # the secret's id; the version name is derived
        return isinstance(value, str) and value != ""
    if value in ("", [], {}):
        return setting.default in (None, "{}") or setting.name in ("META_API_VERSION",
                                                                    "META_GRAPH_URL")
    if isinstance(value, bool):
        return str(value).lower() == setting.default
    if isinstance(value, (int, float)):
        return float(value) == float(setting.default)
    return str(value) == setting.default


def test_the_check_notices_a_setting_missing_from_infra(tf):
    tf.locals["processor_settings"].pop("CONSENT_POLICY")
    with pytest.raises(AssertionError, match="CONSENT_POLICY: missing from process"):
        test_every_function_setting_is_deployed_to_exactly_its_readers(tf)
