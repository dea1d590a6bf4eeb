"""results.md (medians over repetitions, Jet/Kafka ratios) and chart.png from the rows of a run."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from statistics import median

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

BASELINE = "kafka"
COLORS = {"kafka": "tab:gray", "jet-fsync": "tab:blue", "jet-interval": "tab:orange"}
THROUGHPUT_TESTS = ("produce", "consume", "java-produce", "java-consume-group")
TEST_NAMES = {
    "produce": "produce (rdkafka_performance)",
    "consume": "consume from start (rdkafka_performance, assigned partitions)",
    "java-produce": "produce (ProducerPerformance)",
    "java-consume-group": "consume from start (ConsumerPerformance, consumer group)",
}
CLIENTS = """Clients: rdkafka_performance (librdkafka 2.12.1 defaults: linger.ms 5, no idempotence; payload of random
letters, the same for every record; produce rate taken between 5 % and 95 % of deliveries), ProducerPerformance (kafka-clients 4.1.1 defaults: linger.ms 5, idempotence
on with acks=all), LatencyProbe (kafka-clients 4.1.1, linger.ms 0; records sent on a fixed schedule, latency from
each record's due time to its ack, the first seconds not measured). Throughput runs are unthrottled and their
latency is never reported. MB = 10^6 bytes; CPU is the broker processes' user+system time over the run."""


def describe(row: dict) -> str:
    if row["test"] == "failover":
        return f"{row['kind']:<12} failover after SIGKILL of the leader (RF{row['replication_factor']}, acks=all): " \
               f"{row['failover_s']:.2f} s to the next acknowledged write"
    if row["test"] == "idle":
        return f"{row['kind']:<12} idle with {row['partitions']} more partitions × RF{row['replication_factor']}: " \
               f"{row['cpu_pct_per_broker']:.1f} % of a core per broker over {row['seconds']:g} s"
    where = f"{row['kind']:<12} {row['test']:<13} {row['size']:>5} B acks={row['acks']:<3} p={row['partitions']} " \
            f"{row['compression']:<4}"
    if row["test"] == "probe":
        return f"{where} @{row['rate']}/s: p50 {row['p50_ms']:.2f} p99 {row['p99_ms']:.2f} " \
               f"p99.9 {row['p999_ms']:.2f} ms (achieved {row['achieved_rate']:.0f}/s)"
    return f"{where}: {row['mb_s']:.1f} MB/s {row['msg_s']:.0f} msg/s, {row['cpu_s_per_gb']:.1f} CPU s/GB"


def _key(row: dict) -> tuple:
    return (row["test"], row["size"], row["acks"], row["partitions"], row["compression"], row.get("rate", 0))


def _medians(rows: list[dict], metrics: tuple[str, ...]) -> dict:
    """{(point key, kind): {metric: median over repetitions}}"""
    groups = defaultdict(list)
    for r in rows:
        groups[(_key(r), r["kind"])].append(r)
    return {k: {m: median(r[m] for r in rs) for m in metrics} for k, rs in groups.items()}


def _paired_ratios(rows: list[dict], metrics: tuple[str, ...]) -> dict:
    """{(point key, kind): {metric: median over repetitions of kind ÷ Kafka in that repetition}}.

    Within a repetition the kinds run one point after another, seconds apart; across
    repetitions the machine's speed drifts (on a shared VM the same work can cost twice the
    CPU time for minutes at a time, for every process alike). Pairing each repetition's
    values before taking the median keeps that drift out of the ratio."""
    base = {(_key(r), r["rep"]): r for r in rows if r["kind"] == BASELINE}
    groups = defaultdict(list)
    for r in rows:
        b = base.get((_key(r), r["rep"]))
        if r["kind"] != BASELINE and b is not None:
            groups[(_key(r), r["kind"])].append((r, b))
    return {k: {m: median(r[m] / b[m] for r, b in pairs if b[m]) for m in metrics if any(b[m] for _, b in pairs)}
            for k, pairs in groups.items()}


def _cell_ratio(ratios: dict, key: tuple, kind: str, metric: str) -> float | None:
    return ratios.get((key, kind), {}).get(metric)


def _point_label(key: tuple) -> str:
    test, size, acks, parts, comp, rate = key
    size_s = f"{size // 1024} KiB" if size >= 1024 else f"{size} B"
    return f"{size_s}, acks={acks}, {parts}p, {comp}" + (f", {rate}/s" if rate else "")


def _throughput_table(med: dict, ratios: dict, kinds: list[str], metric: str, fmt: str, title: str) -> list[str]:
    has_base = BASELINE in kinds
    others = [k for k in kinds if k != BASELINE]
    head = ["test", "point"] + ([BASELINE] if has_base else [])
    head += [c for k in others for c in ([k, "× kafka"] if has_base else [k])]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    keys = sorted({k for k, _ in med if k[0] in THROUGHPUT_TESTS}, key=lambda k: (THROUGHPUT_TESTS.index(k[0]), k))
    for key in keys:
        base = med.get((key, BASELINE), {}).get(metric)
        cells = [TEST_NAMES[key[0]], _point_label(key)] + ([fmt.format(base) if base else "–"] if has_base else [])
        for k in others:
            v = med.get((key, k), {}).get(metric)
            r = _cell_ratio(ratios, key, k, metric)
            cells += [fmt.format(v) if v is not None else "–"] + ([f"{r:.2f}×" if r is not None else "–"] if has_base else [])
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def _latency_table(med: dict, ratios: dict, kinds: list[str]) -> list[str]:
    has_base = BASELINE in kinds
    lines = ["### Ack latency at a fixed rate (LatencyProbe, ms: p50 / p99 / p99.9)", "",
             "| point | " + " | ".join(kinds) + (" | p99 × kafka |" if has_base else " |"),
             "|---|" + "---|" * (len(kinds) + has_base)]
    for key in sorted({k for k, _ in med if k[0] == "probe"}):
        cells = [_point_label(key)]
        for k in kinds:
            m = med.get((key, k))
            late = m and m["achieved_rate"] < 0.98 * key[5]
            cells.append(f"{m['p50_ms']:.2f} / {m['p99_ms']:.2f} / {m['p999_ms']:.2f}" + (" (rate not held)" if late else "")
                         if m else "–")
        if has_base:
            cells.append(", ".join(f"{k} {r:.2f}×" if (r := _cell_ratio(ratios, key, k, "p99_ms")) is not None
                                   else f"{k} –" for k in kinds if k != BASELINE))
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def _process_table(rows: list[dict], kinds: list[str]) -> list[str]:
    lines = ["### Process", "", "| | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
    proc = {k: [r for r in rows if r["kind"] == k and r["test"] == "process"] for k in kinds}
    peak = {k: max((r["peak_rss_mb"] for r in rows if r["kind"] == k and "peak_rss_mb" in r), default=0) for k in kinds}

    def row(label: str, cell) -> str:
        return f"| {label} | " + " | ".join(cell(k) for k in kinds) + " |"

    lines.append(row("start-to-ready (ms, median)", lambda k: f"{median(r['ready_ms'] for r in proc[k]):.0f}"))
    lines.append(row("idle RSS (MB, median)", lambda k: f"{median(r['idle_rss_mb'] for r in proc[k]):.1f}"))
    lines.append(row("peak RSS under load (MB, max)", lambda k: f"{peak[k]:.0f}"))
    fail = {k: [r["failover_s"] for r in rows if r["test"] == "failover" and r["kind"] == k] for k in kinds}
    if any(fail.values()):
        lines.append(row("failover: SIGKILL of the leader → next acknowledged write (s, median)",
                         lambda k: f"{median(fail[k]):.2f}" if fail[k] else "–"))
    for n in sorted({r["partitions"] for r in rows if r["test"] == "idle"}):
        idle = {k: [r["cpu_pct_per_broker"] for r in rows if r["test"] == "idle" and r["kind"] == k
                    and r["partitions"] == n] for k in kinds}
        lines.append(row(f"idle CPU with {n:,} partitions (% of a core per broker, median)",
                         lambda k, idle=idle: f"{median(idle[k]):.1f}" if idle[k] else "–"))
    return lines + [""]


# Issue 4's single-broker targets, 1 KiB records, Jet ÷ Kafka in the same run.
THROUGHPUT_TARGETS = (  # (test, acks, label, at least)
    ("produce", "all", "produce acks=all MB/s (rdkafka_performance)", 2.0),
    ("java-produce", "all", "produce acks=all MB/s (ProducerPerformance)", 2.0),
    ("consume", "all", "consume from start MB/s (rdkafka_performance)", 1.5),
    ("java-consume-group", "all", "consume from start MB/s (ConsumerPerformance, group)", 1.5),
)
CPU_TARGET = 0.5  # "well below Kafka's": at most half
FAILOVER_TARGET_S = 2.0  # issue 10: SIGKILL of a leader → next acknowledged write
IDLE_CPU_TARGET_PCT = 5.0  # issue 10: idle, per broker, at 10,000 partitions × RF3


def _mark(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _targets_table(tput: dict, lat: dict, ratios: dict, rows: list[dict], kinds: list[str]) -> list[str]:
    """Each target of issue 4 at every point the run measured it, per Jet durability mode."""
    jets = [k for k in kinds if k != BASELINE]
    if BASELINE not in kinds or not jets:
        return []
    lines = ["### Targets (1 KiB records, uncompressed; Jet ÷ Kafka in this run)", "",
             "| target | point | " + " | ".join(jets) + " |", "|---|---|" + "---|" * len(jets)]

    def ratio_row(label: str, key: tuple, metric: str, ratios: dict, ok) -> None:
        cells = []
        for k in jets:
            r = _cell_ratio(ratios, key, k, metric)
            cells.append(f"{r:.2f}× {_mark(ok(r))}" if r is not None else "–")
        lines.append(f"| {label} | {_point_label(key)} | " + " | ".join(cells) + " |")

    for test, acks, label, least in THROUGHPUT_TARGETS:
        for key in sorted({k for k, _ in tput if k[0] == test and k[1] == 1024 and k[2] == acks and k[4] == "none"}):
            if (key, BASELINE) in tput:
                ratio_row(f"{label} ≥ {least:g}×", key, "mb_s", ratios, lambda r, least=least: r >= least)
    for key in sorted({k for k, _ in lat if k[2] == "all"}):
        if (key, BASELINE) in lat:
            ratio_row("p99 ack latency, acks=all, fixed rate ≤ 0.5×", key, "p99_ms", ratios, lambda r: r <= 0.5)
    for test in ("produce", "consume"):
        for key in sorted({k for k, _ in tput if k[0] == test and k[1] == 1024 and k[2] == "all" and k[4] == "none"}):
            if (key, BASELINE) in tput:
                ratio_row(f"broker CPU s/GB, {test} ≤ {CPU_TARGET}×", key, "cpu_s_per_gb", ratios,
                          lambda r: r <= CPU_TARGET)
    proc = {k: [r for r in rows if r["kind"] == k and r["test"] == "process"] for k in jets}
    for label, metric, limit, unit in (("idle RSS ≤ 30 MB", "idle_rss_mb", 30, "MB"),
                                       ("start-to-ready ≤ 100 ms", "ready_ms", 100, "ms")):
        cells = []
        for k in jets:
            if proc[k]:
                v = median(r[metric] for r in proc[k])
                cells.append(f"{v:.1f} {unit} {_mark(v <= limit)}")
            else:
                cells.append("–")
        lines.append(f"| {label} | median of starts | " + " | ".join(cells) + " |")
    fail = {k: [r["failover_s"] for r in rows if r["test"] == "failover" and r["kind"] == k] for k in kinds}
    if any(fail.values()):
        cells = []
        for k in jets:
            if fail[k]:
                v = median(fail[k])
                ratio = f", {v / median(fail[BASELINE]):.2f}× Kafka's" if fail[BASELINE] else ""
                cells.append(f"{v:.2f} s{ratio} {_mark(v <= FAILOVER_TARGET_S)}")
            else:
                cells.append("–")
        lines.append(f"| failover ≤ {FAILOVER_TARGET_S:g} s (SIGKILL of the leader → next acknowledged write) | "
                     f"1 partition, acks=all | " + " | ".join(cells) + " |")
    for n in sorted({r["partitions"] for r in rows if r["test"] == "idle"}):
        cells = []
        for k in jets:
            idle = [r["cpu_pct_per_broker"] for r in rows if r["test"] == "idle" and r["kind"] == k and r["partitions"] == n]
            cells.append(f"{median(idle):.1f} % {_mark(median(idle) <= IDLE_CPU_TARGET_PCT)}" if idle else "–")
        lines.append(f"| idle CPU ≤ {IDLE_CPU_TARGET_PCT:g} % of a core per broker | {n:,} partitions | "
                     + " | ".join(cells) + " |")
    return lines + [""]


def _chart_value(med: dict, ratios: dict, key: tuple, kind: str, ratio: bool) -> float:
    if not ratio:
        return med.get((key, kind), {}).get("mb_s", 0.0)
    r = _cell_ratio(ratios, key, kind, "mb_s")
    return r if r is not None else float("nan")


def _chart(path: Path, med: dict, ratios: dict, kinds: list[str]) -> None:
    tput = sorted({k for k, _ in med if k[0] in THROUGHPUT_TESTS}, key=lambda k: (THROUGHPUT_TESTS.index(k[0]), k))
    probes = sorted({k for k, _ in med if k[0] == "probe"})
    ratio = BASELINE in kinds and len(kinds) > 1
    shown = [k for k in kinds if k != BASELINE] if ratio else kinds
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(max(8, len(tput) * 0.55), 9), gridspec_kw=dict(height_ratios=[3, 2]))
    width = 0.8 / len(shown)
    for i, kind in enumerate(shown):
        vals = [_chart_value(med, ratios, k, kind, ratio) for k in tput]
        ax1.bar([x + i * width for x in range(len(tput))], vals, width, label=kind, color=COLORS[kind])
    if ratio:
        ax1.axhline(1.0, color="black", linewidth=0.8)
    ax1.set_ylabel("MB/s ÷ Kafka's" if ratio else "MB/s")
    ax1.set_title("Throughput" + (" relative to Apache Kafka (higher is better)" if ratio else ""))
    ax1.set_xticks([x + width * (len(shown) - 1) / 2 for x in range(len(tput))])
    ax1.set_xticklabels([f"{k[0]}\n{_point_label(k)}" for k in tput], rotation=70, ha="right", fontsize=7)
    ax1.legend()
    width = 0.8 / len(kinds)
    for i, kind in enumerate(kinds):
        ax2.bar([x + i * width for x in range(len(probes))], [med.get((k, kind), {}).get("p99_ms", 0) for k in probes],
                width, label=kind, color=COLORS[kind])
    ax2.set_ylabel("p99 ack latency (ms)")
    ax2.set_title("p99 ack latency at a fixed rate (lower is better)")
    ax2.set_xticks([x + width * (len(kinds) - 1) / 2 for x in range(len(probes))])
    ax2.set_xticklabels([_point_label(k) for k in probes], fontsize=8)
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(out: Path, meta: dict, rows: list[dict]) -> None:
    kinds = meta["kinds"]
    tput = _medians([r for r in rows if r["test"] in THROUGHPUT_TESTS], ("mb_s", "msg_s", "cpu_s_per_gb"))
    lat = _medians([r for r in rows if r["test"] == "probe"], ("p50_ms", "p99_ms", "p999_ms", "achieved_rate"))
    ratios = {**_paired_ratios([r for r in rows if r["test"] in THROUGHPUT_TESTS], ("mb_s", "msg_s", "cpu_s_per_gb")),
              **_paired_ratios([r for r in rows if r["test"] == "probe"], ("p99_ms",))}
    m = meta["machine"]
    loads = [r["load1"] for r in rows if "load1" in r]
    lines = [
        f"## Jet vs Apache Kafka ({meta['started']}, preset {meta['preset']}, {meta['reps']} repetition(s), "
        f"{meta['brokers']} broker(s) per cluster, replication factor {meta['replication_factor']})", "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['mem_gib']} GiB, Linux {m['kernel']}, {m['java']}; "
        f"jet at {m['jet_commit']}. Load average (1 min) before the run {meta['load1_before']:.2f}, during it "
        f"median {median(loads):.2f}, max {max(loads):.2f}; the run took {meta['minutes']} min. "
        f"Each produce point writes {meta['produce_mb']:g} MB, after an unmeasured warm-up of "
        f"{meta['warmup_mb']:g} MB per broker start. Values are medians over repetitions; each ratio is the "
        f"median over repetitions of that repetition's Jet ÷ Kafka (the kinds run a point seconds apart, while the "
        f"machine's speed drifts between repetitions).", "",
        "Durability: " + "; ".join(f"**{k}**: {v}" for k, v in meta["durability"].items()) + ".", "",
        CLIENTS.replace("\n", " "), "",
    ]
    lines += _targets_table(tput, lat, ratios, rows, kinds)
    lines += _throughput_table(tput, ratios, kinds, "mb_s", "{:.1f}", "Throughput (MB/s)")
    lines += _throughput_table(tput, ratios, kinds, "msg_s", "{:,.0f}", "Throughput (records/s)")
    lines += _throughput_table(tput, ratios, kinds, "cpu_s_per_gb", "{:.2f}",
                               "Broker CPU seconds per GB moved (lower is better)")
    lines += _latency_table(lat, ratios, kinds)
    lines += _process_table(rows, kinds)
    (out / "results.md").write_text("\n".join(lines))
    _chart(out / "chart.png", {**tput, **lat}, ratios, kinds)
