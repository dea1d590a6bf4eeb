"""Go clients: franz-go (kgo + kadm) and IBM/sarama, pinned in go/go.mod, driven as a subprocess."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import helpers

HERE = Path(__file__).resolve().parent
GO_DIR = HERE / "go"
GO_BIN = HERE / ".cache" / "bin" / "jetcompat-go"


@pytest.fixture(scope="session")
def go_binary():
    newest_src = max(p.stat().st_mtime for p in [*GO_DIR.glob("*.go"), GO_DIR / "go.mod", GO_DIR / "go.sum"])
    if not GO_BIN.exists() or GO_BIN.stat().st_mtime < newest_src:
        # run.sh builds this once per run; build here only when pytest is run on its own
        go = shutil.which("go")
        if go is None:
            pytest.skip("Go client binary not built and go missing (run compat-tests/run.sh)")
        GO_BIN.parent.mkdir(parents=True, exist_ok=True)
        p = helpers.run([go, "-C", str(GO_DIR), "build", "-o", str(GO_BIN), "."], timeout=600)
    return str(GO_BIN)


@pytest.mark.parametrize("scenario", ["franz-produce-consume", "franz-codecs", "kadm-admin", "sarama-produce-consume", "sarama-v3-codecs"])
def test_go_scenario(broker, go_binary, scenario):
    p = helpers.run([go_binary, broker.bootstrap, scenario], timeout=240)
    assert f"OK {scenario}" in p.stdout.decode(), p.stdout.decode()
