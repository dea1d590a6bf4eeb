"""Start / stop / SIGKILL / restart a real `jet` process for the compat tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import kproto

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

READY_DEADLINE_S = float(os.environ.get("JET_READY_DEADLINE", "60"))
STOP_DEADLINE_S = float(os.environ.get("JET_STOP_DEADLINE", "30"))


def jet_bin() -> Path:
    p = Path(os.environ.get("JET_BIN", REPO / "target" / "release" / "jet"))
    if not p.is_absolute():
        p = REPO / p
    return p


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ExternalBroker:
    """A broker we did not start (JET_BOOTSTRAP=host:port); no process control."""

    external = True
    pid = None

    def __init__(self, bootstrap: str):
        self.bootstrap = bootstrap
        host, port = bootstrap.rsplit(":", 1)
        self.host, self.port = host, int(port)

    def log_size(self) -> int:
        return 0

    def log_since(self, offset: int) -> str:
        return "(external broker: no log)"

    def alive(self) -> bool:
        return True


class JetBroker:
    external = False

    def __init__(self, data_dir: Path, log_path: Path, port: int | None = None, extra_args: list[str] | None = None):
        self.bin = jet_bin()
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path)
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.extra_args = list(extra_args or [])
        self.proc: subprocess.Popen | None = None
        self._log = None
        self.starts = 0

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def argv(self) -> list[str]:
        addr = self.bootstrap
        # Any free port for the admin HTTP server, so brokers can run side by side.
        defaults = {"--num-partitions": "1", "--auto-create-topics-enable": "true", "--admin-listen": "127.0.0.1:0"}
        for flag in self.extra_args:
            defaults.pop(flag, None)  # extra_args override the defaults
        argv = [str(self.bin), "--listen", addr, "--advertised-listener", addr, "--data-dir", str(self.data_dir)]
        for k, v in defaults.items():
            argv += [k, v]
        return argv + self.extra_args

    def start(self) -> None:
        if not self.bin.exists():
            raise FileNotFoundError(f"JET_BIN {self.bin} does not exist (build with `cargo build --release`)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self.starts += 1
        self._log.write(f"\n===== jet start #{self.starts}: {' '.join(self.argv())}\n".encode())
        self._log.flush()
        env = dict(os.environ)
        env.setdefault("RUST_BACKTRACE", "1")
        # own process group: kill9() takes down the broker and anything it spawned
        self.proc = subprocess.Popen(self.argv(), stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            kproto.wait_ready(self.host, self.port, READY_DEADLINE_S, alive=self.alive)
        except Exception as e:
            code = self.proc.poll()
            if code is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            raise RuntimeError(f"jet did not become ready ({e}); exit={code}\n--- jet log ---\n{self.log_since(0)}") from e

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit code (callers assert 0)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_DEADLINE_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                self._close_log()
                raise AssertionError(f"jet did not exit within {STOP_DEADLINE_S}s of SIGTERM\n{self.log_since(0)}")
        self._close_log()
        return self.proc.returncode

    def kill9(self) -> None:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self._close_log()

    def kill_and_restart(self) -> None:
        """SIGKILL, then start again on the same data dir and port; waits for readiness."""
        self.kill9()
        self.start()

    def rss_kb(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def _close_log(self) -> None:
        if self._log:
            self._log.close()
            self._log = None

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_since(self, offset: int, limit: int = 20000) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            return "(no log)"
        text = data.decode(errors="replace")
        if len(text) > limit:
            text = f"... ({len(text) - limit} chars cut) ...\n" + text[-limit:]
        return text
