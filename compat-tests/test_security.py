"""Fail closed on security: Jet serves PLAINTEXT only for now.

* `jet --listen SSL://…` (and SASL_SSL, SASL_PLAINTEXT) exits non-zero at once, naming the protocol.
* kcat and confluent-kafka configured for SSL or SASL fail quickly with a clear error, and the
  broker log names what happened ("client spoke TLS to a PLAINTEXT listener"; a SASL attempt
  answered ILLEGAL_SASL_STATE as Kafka's PLAINTEXT listener answers it), never the confusing
  "frame size 369295617 exceeds socket.request.max.bytes" of before.
"""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest

import helpers
from jetproc import free_port, jet_bin

TLS_LINE = "client spoke TLS to a PLAINTEXT listener"
SASL_LINE = "attempted SASL authentication"
# A kcat/librdkafka run must give up within its metadata timeout (5 s) plus slack.
QUICK_S = 20.0


@pytest.mark.parametrize("protocol", ["SSL", "SASL_SSL", "SASL_PLAINTEXT"])
def test_a_secure_listener_refuses_to_start(tmp_path, protocol):
    if not jet_bin().exists():
        pytest.skip("needs the jet binary")
    argv = [str(jet_bin()), "--listen", f"{protocol}://127.0.0.1:{free_port()}", "--data-dir", str(tmp_path / "data")]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError(f"jet {protocol}:// did not exit: it served\n{out.decode(errors='replace')}")
    log = out.decode(errors="replace")
    assert proc.returncode != 0, log
    assert f"security protocol {protocol}" in log and "PLAINTEXT only for now" in log, log
    assert "jet is ready" not in log, log


def _kcat(bootstrap: str, *config: str) -> tuple[subprocess.CompletedProcess, float]:
    kcat = shutil.which("kcat")
    if kcat is None:
        pytest.skip("kcat missing (run compat-tests/run.sh)")
    argv = [kcat, "-b", bootstrap, "-L", "-m", "5"]
    for c in config:
        argv += ["-X", c]
    start = time.monotonic()
    p = helpers.run(argv, timeout=60, check=False)
    return p, time.monotonic() - start


def _log_shows(broker, offset: int, line: str) -> str:
    return helpers.wait_until(lambda: line in broker.log_since(offset) and broker.log_since(offset), 15, f"{line!r} in the broker log")


# The TLS line is rate-limited per peer address (one a minute), so each TLS test has a
# broker of its own.
def test_kcat_ssl_fails_fast_and_the_log_says_tls(fresh_broker):
    jet_process = fresh_broker
    off = jet_process.log_size()
    p, took = _kcat(jet_process.bootstrap, "security.protocol=SSL")
    err = p.stderr.decode(errors="replace")
    assert p.returncode != 0 and took < QUICK_S, (p.returncode, took, err)
    assert "SSL handshake failed" in err, err
    log = _log_shows(jet_process, off, TLS_LINE)
    assert "frame size" not in log, log
    assert "127.0.0.1:" in next(ln for ln in log.splitlines() if TLS_LINE in ln)


def test_kcat_sasl_plaintext_fails_fast_and_the_log_says_sasl(jet_process):
    off = jet_process.log_size()
    p, took = _kcat(
        jet_process.bootstrap, "security.protocol=sasl_plaintext", "sasl.mechanisms=PLAIN", "sasl.username=u", "sasl.password=p"
    )
    err = p.stderr.decode(errors="replace")
    assert p.returncode != 0 and took < QUICK_S, (p.returncode, took, err)
    # librdkafka's text for ILLEGAL_SASL_STATE, as against Kafka's PLAINTEXT listener.
    assert "SASL PLAIN mechanism handshake failed" in err and "Request not valid in current SASL state" in err, err
    log = _log_shows(jet_process, off, SASL_LINE)
    assert "mechanism PLAIN" in log, log


def _confluent_failure(bootstrap: str, **config) -> tuple[list[str], float]:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    errors: list[str] = []
    admin = AdminClient({"bootstrap.servers": bootstrap, "error_cb": lambda e: errors.append(str(e)), **config})
    start = time.monotonic()
    with pytest.raises(KafkaException) as failed:
        admin.list_topics(timeout=5)
    took = time.monotonic() - start
    admin.poll(0.5)  # deliver the error callbacks
    return errors + [str(failed.value)], took


def test_confluent_kafka_ssl_fails_fast_and_the_log_says_tls(fresh_broker):
    jet_process = fresh_broker
    off = jet_process.log_size()
    errors, took = _confluent_failure(jet_process.bootstrap, **{"security.protocol": "SSL"})
    assert took < QUICK_S, took
    assert any("SSL handshake failed" in e for e in errors), errors
    log = _log_shows(jet_process, off, TLS_LINE)
    assert "frame size" not in log, log


def test_confluent_kafka_sasl_scram_fails_fast_and_the_log_says_sasl(jet_process):
    off = jet_process.log_size()
    errors, took = _confluent_failure(
        jet_process.bootstrap,
        **{"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "SCRAM-SHA-256", "sasl.username": "u", "sasl.password": "p"},
    )
    assert took < QUICK_S, took
    assert any("Request not valid in current SASL state" in e for e in errors), errors
    log = _log_shows(jet_process, off, SASL_LINE)
    assert "mechanism SCRAM-SHA-256" in log, log
