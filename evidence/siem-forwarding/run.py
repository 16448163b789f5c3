"""Gateway and drift events into a SIEM over syslog, detection rules scored, delivery measured.

1. The hardened gateway of `inference-gateway-hardening` (imported, declared as an input) serves a
   digits model on loopback; benign clients and four kinds of attacker talk to it from their own
   127.0.0.x addresses. The gateway writes its structured access log.
2. A forwarder ships every access-log line, and one drift event per production window, as ECS JSON
   inside RFC 5424 syslog over TCP (octet counting) to a receiver this module starts.
3. The Sigma-layout rules in rules.yml run over what the receiver got; alerts are scored against
   the ground truth (which client attacked, which window drifted).
4. A burst from four concurrent senders checks delivery over TCP and over UDP, message by message.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent / "inference-gateway-hardening"))  # the gateway under watch

import numpy as np
from detect import Alert, evaluate, field, load_rules
from drift import SHIFTS, score, windows
from forward import CountingSyslogHandler, ship, syslog_handler
from receiver import Inbox, SyslogReceiver
from servers import (
    ClientPolicy,
    GatewaySettings,
    Served,
    gateway_app,
    key_digest,
    model_app,
)
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits
from traffic import Client, drive_all, roster

from fmbuild.evidence import kit

ECS_REQUIRED = ("@timestamp", "ecs.version", "event.dataset", "message")


def wait_for(inbox: Inbox, transport: str, expected: int, timeout_s: float) -> int:
    """Wait until the receiver has `expected` events or nothing new arrived for a second."""
    deadline = time.monotonic() + timeout_s
    last, still_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = inbox.count(transport)
        if count >= expected:
            return count
        if count != last:
            last, still_since = count, time.monotonic()
        elif time.monotonic() - still_since > 1.0:
            break
        time.sleep(0.05)
    return inbox.count(transport)


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def policy_for(client: Client) -> ClientPolicy:
    budget = {"crawler": 40, "batch": 2_000}.get(client.kind, 1_000)
    return ClientPolicy(client.name, rate_per_s=20, burst=10, row_budget=budget)


def run_traffic(run: kit.Run, clients: list[Client], model: Any, pool: np.ndarray, access_log: Path) -> dict[str, list[int]]:
    settings = GatewaySettings(upstream="", access_log=access_log,
                               clients={key_digest(c.key): policy_for(c) for c in clients if c.key is not None})
    with Served(model_app(model), "model") as upstream:
        settings.upstream = upstream.url
        with Served(gateway_app(settings), "gateway") as gateway:
            run.log("gateway.up", url=gateway.url, clients=len(clients))
            return asyncio.run(drive_all(clients, gateway.url, pool, run.seed, run.pick(full=1.0, smoke=0.3)))


def forward(tcp: CountingSyslogHandler, monitor: CountingSyslogHandler, access_log: Path, drift_events: list[dict[str, Any]]) -> int:
    seq = 0
    for line in access_log.read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        event["event"].update({"kind": "event", "category": ["web"], "type": ["access"]})
        event["observer"] = {"name": "fm-gateway", "type": "api-gateway"}
        ship(tcp, event, epoch(event["@timestamp"]), "gateway access", seq)
        seq += 1
    for event in drift_events:
        ship(monitor, event, event.pop("_epoch"), "input drift window", seq)
        seq += 1
    return seq


def burst(inbox: Inbox, port: int, transport: str, total: int, senders: int) -> dict[str, Any]:
    """`senders` threads, each its own connection, send `total` events as fast as they can."""
    inbox.clear()
    handlers = [syslog_handler(port, transport, f"fm-burst-{i}") for i in range(senders)]
    now = time.time()
    t0 = time.perf_counter()

    def send(i: int) -> None:
        for seq in range(i, total, senders):
            ship(handlers[i], {"event": {"dataset": "burst.test", "kind": "event"}}, now, "burst", seq)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sent = sum(h.sent for h in handlers)
    received = wait_for(inbox, transport, sent, timeout_s=30)
    seconds = time.perf_counter() - t0
    for h in handlers:
        h.close()
    seqs = Counter(field(e, "labels.seq") for e in inbox.take(transport))
    return {"sent": sent, "received": received, "lost": total - len(seqs), "duplicates": sum(c - 1 for c in seqs.values()),
            "send_failures": sum(h.failed for h in handlers), "events_per_s": received / seconds, "bad_frames": inbox.bad_frames}


def score_gateway(alerts: list[Alert], clients: list[Client]) -> dict[str, Any]:
    by_entity: dict[str, set[str]] = {}
    for a in alerts:
        by_entity.setdefault(a.entity, set()).add(a.rule)
    flagged = {c.name: sorted(by_entity.get(c.ip, set()) | by_entity.get(c.name, set())) for c in clients}
    attackers = [c for c in clients if c.malicious]
    benign = [c for c in clients if not c.malicious]
    return {
        "attackers": len(attackers),
        "benign_clients": len(benign),
        "true_positive_rate": sum(bool(flagged[c.name]) for c in attackers) / len(attackers),
        "false_positive_rate": sum(bool(flagged[c.name]) for c in benign) / len(benign),
        "flagged": flagged,
    }


def main() -> None:
    run = kit.start(__file__)
    # Small models on a shared 2-core machine: BLAS threads only fight each other (10x slower fits).
    threadpool_limits(1)
    import random

    rng = random.Random(run.seed)
    digits = load_digits()
    x_train, x_pool, y_train, y_pool = train_test_split(digits.data, digits.target, train_size=900, random_state=run.seed, stratify=digits.target)
    model = LogisticRegression(max_iter=2000).fit(x_train, y_train)
    clients = roster(rng, benign=run.pick(full=12, smoke=6), per_attack=run.pick(full=2, smoke=1))
    access_log = run.artifact("gateway-access.jsonl")
    access_log.write_text("")
    rules = load_rules(HERE / "rules.yml")

    statuses = run_traffic(run, clients, model, x_pool, access_log)
    for c in clients:
        run.log("traffic.client", client=c.name, kind=c.kind, ip=c.ip, requests=len(statuses[c.name]), statuses=dict(Counter(statuses[c.name])))

    monitor_windows = windows(x_pool, y_pool, np.random.default_rng(run.seed), clean=run.pick(full=24, smoke=6), drifted=run.pick(full=24, smoke=4), size=80)
    start = time.time()
    drift_events = []
    for w in monitor_windows:
        s = score(x_train, w.x)
        drift_events.append({"_epoch": start + w.index, "event": {"dataset": "ml.drift", "kind": "metric", "id": f"drift-window-{w.index}"},
                             "service": {"name": "digits-classifier"}, "ml": {"drift": {**s, "window": w.index}}})

    with SyslogReceiver() as receiver:
        tcp = syslog_handler(receiver.tcp_port, "tcp", "fm-gateway")
        monitor = syslog_handler(receiver.tcp_port, "tcp", "fm-model-monitor")
        sent = forward(tcp, monitor, access_log, drift_events)
        received = wait_for(receiver.inbox, "tcp", sent, timeout_s=30)
        events = receiver.inbox.take("tcp")
        tcp.close()
        monitor.close()
        run.metric("pipeline.sent", sent)
        run.metric("pipeline.received", received)
        run.metric("pipeline.lost", sent - len({field(e, "labels.seq") for e in events}))
        run.metric("pipeline.send_failures", tcp.failed + monitor.failed)
        run.metric("ecs.valid_rate", sum(all(field(e, k) is not None or k in e for k in ECS_REQUIRED) for e in events) / max(len(events), 1))
        run.log("siem.sample_event", sample={k: v for k, v in events[0].items() if k != "_syslog"})

        alerts = evaluate(rules, events)
        for a in alerts[:20]:
            run.log("siem.alert", rule=a.rule, entity=a.entity, first_seen=a.first_seen, count=a.count)
        for rule in rules:
            run.metric(f"rules.{rule.id}.alerts", sum(a.rule == rule.id for a in alerts))
        gateway_score = score_gateway([a for a in alerts if a.rule.startswith("fm-siem-gw")], clients)
        flagged = gateway_score.pop("flagged")
        for key, value in gateway_score.items():
            run.metric(f"detection.gateway.{key}", value)
        run.log("detection.gateway", **gateway_score, flagged={k: v for k, v in flagged.items() if v})

        drift_alerted = {a.entity for a in alerts if a.rule == "fm-siem-ml-001"}
        hit = {w.index: f"drift-window-{w.index}" in drift_alerted for w in monitor_windows}
        drifted = [w for w in monitor_windows if w.shift != "none"]
        clean = [w for w in monitor_windows if w.shift == "none"]
        run.metric("detection.drift.windows_drifted", len(drifted))
        run.metric("detection.drift.windows_clean", len(clean))
        run.metric("detection.drift.true_positive_rate", sum(hit[w.index] for w in drifted) / len(drifted))
        run.metric("detection.drift.false_positive_rate", sum(hit[w.index] for w in clean) / len(clean))
        for shift in SHIFTS:
            these = [w for w in drifted if w.shift == shift]
            if these:
                run.metric(f"detection.drift.by_shift.{shift}", sum(hit[w.index] for w in these) / len(these))

        total = run.pick(full=6_000, smoke=800)
        for transport in ("tcp", "udp"):
            result = burst(receiver.inbox, receiver.tcp_port if transport == "tcp" else receiver.udp_port, transport, total, senders=4)
            run.log("delivery.burst", transport=transport, **{k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()})
            for key, value in result.items():
                run.metric(f"burst.{transport}.{key}", value)
    figure(run, clients, flagged, drift_events, monitor_windows, rules)
    run.finish()


def figure(run: kit.Run, clients: list[Client], flagged: dict[str, list[str]], drift_events: list[dict[str, Any]], monitor_windows: list[Any], rules: list[Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [1.1, 1]})
    gw_rules = [r.id for r in rules if r.id.startswith("fm-siem-gw")]
    grid = np.array([[r in flagged[c.name] for r in gw_rules] for c in clients], dtype=float)
    left.imshow(grid.T, cmap="Reds", vmin=0, vmax=1, aspect="auto")
    left.set_xticks(range(len(clients)), [f"{c.name}{' (attacker)' if c.malicious else ''}" for c in clients], rotation=70, ha="right", fontsize=7)
    left.set_yticks(range(len(gw_rules)), gw_rules, fontsize=8)
    left.set_title("Gateway rules: which client each rule flagged")
    shares = [e["ml"]["drift"]["share_features"] for e in drift_events]
    colours = {"none": "#2e86c1", "brightness": "#c0392b", "noise": "#e67e22", "class-prior": "#8e44ad", "dimming": "#16a085"}
    for w, share in zip(monitor_windows, shares):
        right.bar(w.index, share, color=colours[w.shift])
    right.axhline(0.25, color="black", linestyle="--", linewidth=1)
    right.set_xlabel("production window")
    right.set_ylabel("share of features drifted (KS)")
    right.set_title("Drift events and the rule threshold")
    right.legend(handles=[plt.Rectangle((0, 0), 1, 1, color=c) for c in colours.values()], labels=list(colours), fontsize=7)
    run.figure(fig, "siem-detections")


if __name__ == "__main__":
    main()
