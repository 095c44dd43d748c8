"""cloudbuild.yaml: every step named and pinned, substitutions documented, apply gated by branch.

Read as text (no YAML parser in the dev extras); the file's layout is simple enough for that.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEXT = (ROOT / "cloudbuild.yaml").read_text(encoding="utf-8")
STEPS = TEXT.split("\nsteps:\n", 1)[1]
STEP_BLOCKS = re.split(r"\n(?=  - id: )", "\n" + STEPS)[1:]

PINNED_IMAGES = {
    "python:3.12-slim",
    "hashicorp/terraform:1.11.4",
}
EMULATORS_IMAGE = re.compile(
    r"gcr\.io/google\.com/cloudsdktool/google-cloud-cli:\d+\.\d+\.\d+-emulators")


def steps() -> dict[str, dict[str, str]]:
    found = {}
    for chunk in STEP_BLOCKS:
        step_id = re.search(r"- id: (\S+)", chunk).group(1)
        image = re.search(r"\n    name: (\S+)", chunk)
        assert image, f"step {step_id} has no image"
        assert step_id not in found, f"step id {step_id} is used twice"
        found[step_id] = {"image": image.group(1), "text": chunk}
    return found


def test_every_step_has_an_id_and_a_pinned_image():
    found = steps()
    assert TEXT.count("\n    name: ") == len(found), "a step has no id"
    for step_id, step in found.items():
        image = step["image"]
        assert image in PINNED_IMAGES or EMULATORS_IMAGE.fullmatch(image), \
            f"step {step_id} uses an unpinned or unexpected image {image}"


def test_pipeline_has_the_expected_stages():
    expected = {"lint", "unit-functional-tests", "emulator-integration-tests",
                "requirements-drift", "terraform-fmt", "terraform-init", "terraform-plan",
                "terraform-apply"}
    assert expected <= set(steps()), expected - set(steps())


def test_substitutions_are_documented():
    header = TEXT.split("\nsubstitutions:", 1)[0]
    for name in ("_STATE_BUCKET", "_STATE_PREFIX", "_REGION", "_PIXEL_ID", "_APPLY_BRANCH"):
        assert f"#   {name}" in header, f"{name} is not documented in the header"
    used = set(re.findall(r"\$\{(_[A-Z_]+)\}", STEPS))
    documented = set(re.findall(r"#   (_[A-Z_]+)", header))
    assert used <= documented, f"undocumented substitutions {used - documented}"


def test_init_uses_the_state_bucket_substitution():
    init = steps()["terraform-init"]["text"]
    assert "-backend-config=bucket=${_STATE_BUCKET}" in init


def test_apply_runs_only_on_the_apply_branch_and_only_the_saved_plan():
    found = steps()
    apply = found["terraform-apply"]["text"]
    assert '[ "$BRANCH_NAME" = "${_APPLY_BRANCH}" ]' in apply
    assert "apply -input=false tfplan" in apply
    assert "-auto-approve" not in TEXT
    assert "-out=tfplan" in found["terraform-plan"]["text"]
    for gate in ("lint", "unit-functional-tests", "requirements-drift",
                 "emulator-integration-tests"):
        assert f"      - {gate}" in found["terraform-plan"]["text"], \
            f"the plan does not wait for {gate}"
