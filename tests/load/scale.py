#!/usr/bin/env python3
"""Horizontal scaling, measured: 1, 2 and 4 replicas of one service.

    cargo build --release --bins
    python3 tests/load/scale.py [--services ingestion,metrics,health,notification]
                                [--replicas 1,2,4] [--signals 100000]

Each round runs, on a fresh throwaway PostgreSQL cluster (default
durability), `retain migrate` and the release binaries as separate
processes with the ConfigMap's configuration, as tests/load/pods.py does,
with N replicas of the service under test and one of each service it
needs. Platform teams scale each service on its own; this is what that buys
on this machine.

- ingestion: N replicas (and one of each consumer) take `retain-loadgen
  --target URL1,URL2,...` with 8 clients spread over the replicas in turn,
  as a client balancing over a headless Service does. Reported: signals/s
  and p99 of 1,000-signal batches.
- metrics, health, notification: first the signals go in with no
  consumer running, then each upstream consumer runs until its backlog is
  empty (metrics, then health), so the service under test finds the same
  backlog at every N; then its N replicas start together and the round
  times them from their first acknowledgement until their consumer
  group's backlog is empty (polled every 50 ms).
  Reported: bus messages consumed/s (notification: and tasks created).

Each row also shows the CPU seconds the service's replicas spent
together and the cores PostgreSQL used meanwhile: on a machine this size
they name the bottleneck (the database at ~2 cores is the bound).

Fairness: each replica's share of the CPU time the service spent. Work
done once: ingestion's rows must be exactly the signals sent at every N;
for the consumers the round shows what they produced (rows and messages
downstream) beside the first replica count's, and fails on any dead
letter. (Tasks and emails carry ids derived from their trigger, so a
message handled twice could not create a second one; the bus's
exactly-once delivery under concurrent replicas is tested in
crates/bus/tests/bus.rs.)
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
import shutil
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pods  # noqa: E402  (the cluster, process sampling and tokens live there)

RELEASE = pods.RELEASE
ORDER = ["ingestion", "metrics", "health", "notification"]
# What each consumer needs running upstream for its backlog to fill.
UPSTREAM = {"metrics": [], "health": ["metrics"], "notification": ["metrics", "health"]}
# What a round produced, compared across replica counts.
OUTCOME = {
    "ingestion": ["SELECT COUNT(*) FROM signals", "SELECT COUNT(*) FROM signal_ids"],
    "metrics": ["SELECT COUNT(*) FROM account_metrics",
                "SELECT COUNT(*) FROM bus_messages WHERE topic = 'account.metrics' AND consumer_group = 'health'"],
    "health": ["SELECT COUNT(*) FROM health_scores", "SELECT COUNT(*) FROM health_band_changes"],
    "notification": ["SELECT COUNT(*) FROM notification_tasks", "SELECT COUNT(*) FROM notification_messages"],
}


def psql_value(psql, sql):
    out = subprocess.run([*psql, "-Atc", sql], capture_output=True, text=True, check=True).stdout.strip()
    return int(out or 0)


def backlog(psql, group):
    return psql_value(psql, f"SELECT COUNT(*) FROM bus_messages WHERE consumer_group = '{group}' AND state <> 2")


def dead(psql):
    return psql_value(psql, "SELECT COUNT(*) FROM bus_messages WHERE state = 2")


class Round:
    """One cluster and the processes started on it."""

    def __init__(self):
        self.work = Path(tempfile.mkdtemp(prefix="retain-scale-"))
        self.url, self.data, self.pg_ctl, self.psql = pods.start_postgres(self.work)
        tokens = self.work / "tokens.toml"
        digest = subprocess.run(["sha256sum"], input=pods.TOKEN.encode(), capture_output=True).stdout.split()[0]
        tokens.write_text(f'[[tokens]]\nname = "measure"\ntenant = "acme"\n'
                          f'roles = ["ingest", "read", "admin", "csm"]\nsha256 = "{digest.decode()}"\n')
        self.env = dict(os.environ,
                        RETAIN_CONFIG=str(pods.ROOT / "deploy/kustomize/base/retain.toml"),
                        RETAIN__DATABASE__URL=self.url,
                        RETAIN__AUTH__TOKENS_FILE=str(tokens),
                        # Measure the services, not the per-tenant limiter.
                        RETAIN__INGESTION__TENANT_SIGNALS_PER_SECOND="0",
                        RETAIN__NOTIFICATION__EMAIL__TRANSPORT="outbox",
                        # Measured without a quota holding mail back.
                        RETAIN__TENANTS__DEFAULT__EMAIL_QUOTA_PER_HOUR="0",
                        RETAIN__TENANTS__DEFAULT__EMAIL_QUOTA_PER_DAY="0",
                        RETAIN__NOTIFICATION__EMAIL__OUTBOX_DIR=str(self.work / "outbox"))
        subprocess.run([RELEASE / "retain", "migrate"], env=self.env, check=True, cwd=self.work,
                       capture_output=True)
        self.procs = {}  # service -> [(Popen, url)]

    def start(self, service, replicas=1):
        for i in range(replicas):
            port = pods.free_port()
            log = open(self.work / f"{service}-{len(self.procs.get(service, []))}.log", "w")
            p = subprocess.Popen([RELEASE / f"retain-{service}", "serve"], cwd=self.work, stdout=log,
                                 stderr=log, env=dict(self.env, RETAIN__SERVER__LISTEN=f"127.0.0.1:{port}"))
            self.procs.setdefault(service, []).append((p, f"http://127.0.0.1:{port}"))
        return [p for p, _ in self.procs[service][-replicas:]]

    def load(self, signals, clients=8):
        """retain-loadgen over every ingestion replica (it waits until each
        reports SERVING); its report."""
        urls = ",".join(u for _, u in self.procs["ingestion"])
        out = subprocess.run(
            [RELEASE / "retain-loadgen", "--target", urls, "--token", pods.TOKEN, "--signals", str(signals),
             "--clients", str(clients), "--small-signals", "640"],
            capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"loadgen failed:\n{out.stdout}\n{out.stderr}")
        return out.stdout

    def wait_drained(self, groups, limit=900, poll=0.5):
        end = time.monotonic() + limit
        while any(backlog(self.psql, g) for g in groups):
            if time.monotonic() > end:
                raise SystemExit(f"{groups} did not drain within {limit} s")
            time.sleep(poll)

    def close(self):
        for procs in self.procs.values():
            for p, _ in procs:
                p.terminate()
        for procs in self.procs.values():
            for p, _ in procs:
                p.wait(timeout=60)
        subprocess.run(pods.as_postgres([self.pg_ctl, "-D", str(self.data), "stop", "-m", "immediate"]),
                       capture_output=True)
        shutil.rmtree(self.work, ignore_errors=True)


def postgres_cpu(r):
    total = 0.0
    for pid in pods.postgres_pids(r.data):
        try:
            total += pods.cpu_seconds(pid)
        except (OSError, IndexError):
            pass
    return total


def shares(pids, before):
    spent = [pods.cpu_seconds(p) - before[p] for p in pids]
    total = sum(spent) or 1.0
    return spent, " / ".join(f"{100 * s / total:.0f}%" for s in spent)


def run_ingestion(r, n, signals):
    for s in ORDER[1:]:
        r.start(s)
    pids = [p.pid for p in r.start("ingestion", n)]
    before = {p: pods.cpu_seconds(p) for p in pids}
    pg, t0 = postgres_cpu(r), time.monotonic()
    report = r.load(signals)
    pg_cores = (postgres_cpu(r) - pg) / (time.monotonic() - t0)
    line = next(l for l in report.splitlines() if "IngestSignals 8 clients" in l).split()
    rate, p99 = float(line[-6]), line[-3]
    spent, fair = shares(pids, before)
    return f"{rate:>10,.0f} signals/s, p99 {p99} ms", fair, sum(spent), pg_cores


def run_consumer(r, service, n, signals):
    group = service
    # The same backlog at every N: the signals go in with no consumer
    # running (metrics then finds one folded message per account), and
    # each upstream consumer drains before the next starts.
    r.start("ingestion")
    r.load(signals)
    for s in UPSTREAM[service]:
        r.start(s)
        r.wait_drained([s])
    queued = backlog(r.psql, group)
    tasks_before = psql_value(r.psql, "SELECT COUNT(*) FROM notification_tasks")
    procs = r.start(service, n)
    pids = [p.pid for p in procs]
    before = {p: 0.0 for p in pids}
    # Timed from the first acknowledgement (the replicas' start-up is not
    # the consumer's speed) to the empty backlog, polled every 50 ms.
    while (left := backlog(r.psql, group)) == queued:
        time.sleep(0.05)
    pg, t0 = postgres_cpu(r), time.monotonic()
    r.wait_drained([group], poll=0.05)
    elapsed = time.monotonic() - t0
    pg_cores = (postgres_cpu(r) - pg) / elapsed
    spent, fair = shares(pids, before)
    what = f"{left / elapsed:>10,.0f} messages/s ({left} in {elapsed:.1f} s)"
    if service == "notification":
        tasks = psql_value(r.psql, "SELECT COUNT(*) FROM notification_tasks") - tasks_before
        what += f", {tasks / elapsed:,.0f} tasks/s"
    return what, fair, sum(spent), pg_cores


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", default=",".join(ORDER))
    parser.add_argument("--replicas", default="1,2,4")
    parser.add_argument("--signals", type=int, default=100_000)
    args = parser.parse_args()
    missing = [b for b in ["retain", "retain-loadgen", *pods.SERVICES] if not (RELEASE / b).is_file()]
    if missing:
        print(f"build first: cargo build --release --bins  (missing {', '.join(missing)})")
        return 1
    services = args.services.split(",")
    unknown = [s for s in services if s not in ORDER]
    if unknown:
        print(f"--services: unknown {', '.join(unknown)} (choose from {', '.join(ORDER)})")
        return 2
    counts = [int(n) for n in args.replicas.split(",")]
    print(f"{args.signals} signals per round; {os.cpu_count()} CPUs shared by PostgreSQL, every replica and the load")
    print(f"{'service':<14}{'replicas':>9}  {'throughput':<58}{'CPU share per replica':<26}{'service CPU s':>14}{'PG cores':>9}  outcome")
    failed = False
    for service in services:
        outcomes = {}
        for n in counts:
            r = Round()
            try:
                if service == "ingestion":
                    what, fair, cpu, pg = run_ingestion(r, n, args.signals)
                else:
                    what, fair, cpu, pg = run_consumer(r, service, n, args.signals)
                outcome = tuple(psql_value(r.psql, q) for q in OUTCOME[service])
                letters = dead(r.psql)
            finally:
                r.close()
            outcomes[n] = outcome
            first = outcomes[counts[0]]
            same = "same as the first count" if outcome == first else "vs the first count: " + ", ".join(
                f"{b - a:+d}" for a, b in zip(first, outcome))
            # Ingestion's outcome is exact (every signal once); a consumer's
            # depends on how group commit packed the calls into messages
            # and on the order messages of different topics meet, so it is
            # shown, and only dead letters fail the round.
            failed |= letters > 0 or (service == "ingestion" and outcome != first)
            print(f"{service:<14}{n:>9}  {what:<58}{fair:<26}{cpu:>14.1f}{pg:>9.2f}  {outcome} {same}, {letters} dead")
            sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
