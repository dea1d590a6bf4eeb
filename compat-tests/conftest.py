"""Fixtures for the Jet Kafka-compatibility harness.

* `broker` (one per test module): a real `jet` process on a free loopback port
  with a fresh data dir, or the external broker named by JET_BOOTSTRAP=host:port.
  Stopped with SIGTERM at module end; exit code 0 is asserted.
* `fresh_broker` (per test): a jet process of its own (restart tests);
  skipped on an external broker.
* `jet_process`: `broker`, but skips on an external broker (tests that need
  the pid / SIGKILL).
* `group_broker` (per module) / `fresh_group_broker` (per test): the same, but jet is started
  with GROUP_ARGS (Kafka's group.initial.rebalance.delay.ms=0, as kafka-ref/ runs Kafka) so
  the first join of a group is not held back 3 s; an external broker is used as is.
* `topic`: factory that creates a uniquely named topic through the admin API.
* `java_main`, `go_binary`, `kafkajs_main`: argv prefixes of the Java, Go and kafkajs client
  programs (built/installed when missing or stale; run.sh does that once per run).
On a test failure the broker log written during that test is printed.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import helpers  # noqa: E402
from jetproc import ExternalBroker, JetBroker  # noqa: E402

EXTERNAL = os.environ.get("JET_BOOTSTRAP")
HERE = Path(__file__).resolve().parent
JAVA_DIR = HERE / "java"
GO_DIR = HERE / "go"
JS_DIR = HERE / "js"
GO_BIN = HERE / ".cache" / "bin" / "jetcompat-go"


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


GROUP_ARGS = ["--set", "group.initial.rebalance.delay.ms=0"]


def _start(tmp: Path, name: str, extra_args: list[str] | None = None) -> JetBroker:
    b = JetBroker(data_dir=tmp / "data", log_path=tmp / f"{name}.log", extra_args=extra_args)
    b.start()
    return b


def _stop_and_check(b: JetBroker) -> None:
    if not b.alive():
        code = b.proc.returncode if b.proc else None
        raise AssertionError(f"jet was no longer running at teardown (exit {code})\n--- jet log ---\n{b.log_since(0)}")
    code = b.stop()
    assert code == 0, f"jet exited {code} on SIGTERM (expected 0)\n--- jet log ---\n{b.log_since(0)}"


def _module_broker(tmp_path_factory, request, extra_args: list[str] | None = None):
    if EXTERNAL:
        yield ExternalBroker(EXTERNAL)
        return
    tmp = tmp_path_factory.mktemp("jet-" + request.module.__name__.rsplit(".", 1)[-1])
    b = _start(tmp, "jet", extra_args)
    yield b
    _stop_and_check(b)


@pytest.fixture(scope="module")
def broker(tmp_path_factory, request):
    yield from _module_broker(tmp_path_factory, request)


@pytest.fixture(scope="module")
def group_broker(tmp_path_factory, request):
    yield from _module_broker(tmp_path_factory, request, GROUP_ARGS)


@pytest.fixture
def jet_process(broker):
    if broker.external:
        pytest.skip("needs a jet process we started (JET_BOOTSTRAP is set)")
    return broker


def _fresh_broker(tmp_path, extra_args: list[str] | None = None):
    if EXTERNAL:
        pytest.skip("needs a jet process we started (JET_BOOTSTRAP is set)")
    b = _start(tmp_path, "jet-fresh", extra_args)
    yield b
    _stop_and_check(b)


@pytest.fixture
def fresh_broker(tmp_path):
    yield from _fresh_broker(tmp_path)


@pytest.fixture
def fresh_group_broker(tmp_path):
    yield from _fresh_broker(tmp_path, GROUP_ARGS)


@pytest.fixture
def broker_with(tmp_path, request):
    """broker_with(*extra_args) -> a started jet with extra command-line flags (stopped at test end)."""
    if EXTERNAL:
        pytest.skip("needs a jet process we started (JET_BOOTSTRAP is set)")
    started = []

    def make(*extra_args: str) -> JetBroker:
        d = tmp_path / f"b{len(started)}"
        d.mkdir()
        b = JetBroker(data_dir=d / "data", log_path=d / "jet.log", extra_args=list(extra_args))
        started.append(b)
        b.start()
        return b

    yield make
    rep = getattr(request.node, "rep_call", None)
    for b in started:
        if rep is not None and rep.failed:
            print(f"\n--- jet log ({' '.join(b.extra_args)}) ---\n{b.log_since(0)}")
        _stop_and_check(b)


@pytest.fixture(autouse=True)
def _broker_log_on_failure(request):
    """Print what the broker logged during a failing test."""
    brokers = [request.getfixturevalue(n) for n in ("broker", "fresh_broker", "group_broker", "fresh_group_broker") if n in request.fixturenames]
    marks = [(b, b.log_size()) for b in brokers]
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        for b, off in marks:
            if not b.external:
                print(f"\n--- jet log during {request.node.name} (pid {b.pid}, {b.bootstrap}) ---")
                print(b.log_since(off))


@pytest.fixture
def topic(broker):
    """topic(partitions=1, configs=None, prefix=...) -> name of a freshly created topic."""

    def make(partitions: int = 1, configs: dict | None = None, prefix: str = "t") -> str:
        name = helpers.unique_topic(prefix)
        helpers.create_topic(broker.bootstrap, name, partitions, configs)
        return name

    return make


def _stale(target: Path, sources: list[Path]) -> bool:
    return not target.exists() or target.stat().st_mtime < max(p.stat().st_mtime for p in sources)


@pytest.fixture(scope="session")
def java_main() -> list[str]:
    classes, lib = JAVA_DIR / "target" / "classes", JAVA_DIR / "target" / "lib"
    if _stale(classes / "jet" / "compat" / "Main.class", [*JAVA_DIR.glob("src/**/*.java"), JAVA_DIR / "pom.xml"]) or not lib.is_dir():
        mvn = shutil.which("mvn")
        if mvn is None:
            pytest.skip("Java client not built and mvn missing (run compat-tests/run.sh)")
        helpers.run([mvn, "-q", "-B", "-f", str(JAVA_DIR / "pom.xml"), "package", "-DskipTests"], timeout=600)
    return ["java", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", f"{classes}{os.pathsep}{lib}/*", "jet.compat.Main"]


@pytest.fixture(scope="session")
def go_binary() -> list[str]:
    if _stale(GO_BIN, [*GO_DIR.glob("*.go"), GO_DIR / "go.mod", GO_DIR / "go.sum"]):
        go = shutil.which("go")
        if go is None:
            pytest.skip("Go client binary not built and go missing (run compat-tests/run.sh)")
        GO_BIN.parent.mkdir(parents=True, exist_ok=True)
        helpers.run([go, "-C", str(GO_DIR), "build", "-o", str(GO_BIN), "."], timeout=600)
    return [str(GO_BIN)]


@pytest.fixture(scope="session")
def kafkajs_main() -> list[str]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node missing (run compat-tests/run.sh)")
    lock = json.loads((JS_DIR / "package-lock.json").read_text())
    want = lock["packages"]["node_modules/kafkajs"]["version"]
    installed = JS_DIR / "node_modules" / "kafkajs" / "package.json"
    if not installed.exists() or json.loads(installed.read_text())["version"] != want:
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("kafkajs not installed and npm missing (run compat-tests/run.sh)")
        helpers.run([npm, "ci", "--prefix", str(JS_DIR), "--no-audit", "--no-fund"], timeout=600)
    return [node, str(JS_DIR / "main.js")]
