"""The deployed archive (functions/) holds exactly what the Cloud Functions import.

A fresh interpreter that sees only functions/ (as Cloud Functions does) imports main.py, builds
every service through the composition root with every optional part switched on, and lists the
capi_relay modules it loaded. Every module file in the archive must be among them: operator
commands, development tools and test fakes live outside functions/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"

_PROBE = r"""
import json, sys
from pathlib import Path
import main
from capi_relay import bootstrap
bootstrap.ingest_service()
bootstrap.gate()
bootstrap.process_service()
bootstrap.pull_service()
root = Path(sys.argv[1]).resolve()
loaded = sorted(
    str(Path(m.__file__).resolve().relative_to(root))
    for m in list(sys.modules.values())
    if getattr(m, "__file__", None) and Path(m.__file__).resolve().is_relative_to(root))
outside = sorted(n for n in sys.modules if n.startswith(("capi_relay_ops", "capi_relay_dev")))
print(json.dumps({"loaded": loaded, "outside": outside}))
"""


def _probe() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("META_")}
    env.update({
        "PYTHONPATH": str(FUNCTIONS),
        "GOOGLE_CLOUD_PROJECT": "archive-check", "PUBSUB_TOPIC": "events",
        "DEAD_LETTER_TOPIC": "dead", "META_PIXEL_ID": "1", "META_ACCESS_TOKEN": "t",
        # the clients connect lazily; these only keep them off real credentials
        "PUBSUB_EMULATOR_HOST": "127.0.0.1:9", "FIRESTORE_EMULATOR_HOST": "127.0.0.1:9",
        "PULL_SUBSCRIPTION": "events-pull",
        "LDU_REGIONS": "us-ca", "REDACT_FIELDS": '{"de": ["client_ip_address"]}',
    })
    result = subprocess.run([sys.executable, "-c", _PROBE, str(FUNCTIONS)], cwd=FUNCTIONS,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_every_module_in_the_archive_is_imported_by_the_functions():
    probe = _probe()
    shipped = {str(p.relative_to(FUNCTIONS)) for p in FUNCTIONS.rglob("*.py")
               if "__pycache__" not in p.parts}
    never_loaded = sorted(shipped - set(probe["loaded"]))
    assert never_loaded == [], f"shipped but never imported by the functions: {never_loaded}"
    assert probe["outside"] == [], "the functions import operator or development tools"


def test_archive_holds_no_development_files():
    others = sorted(str(p.relative_to(FUNCTIONS)) for p in FUNCTIONS.rglob("*")
                    if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".py")
    assert others == ["capi_relay/entrypoints/static/tag.js", "requirements.txt"]
