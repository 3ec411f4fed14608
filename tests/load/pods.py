#!/usr/bin/env python3
"""What each service's pod needs, measured: CPU and memory per process.

    cargo build --release --bins
    python3 tests/load/pods.py [--signals 400000]

Runs what a Kubernetes deployment runs, as separate processes on this
machine: a throwaway PostgreSQL cluster (default durability), `retain
migrate` (the Job), and the four release service binaries with the
ConfigMap's configuration (deploy/kustomize/base/retain.toml) and the
environment the Deployments set. It first samples the idle services for
10 s (the baseline), then drives ingestion with `retain-loadgen --target`
(4 clients x 1,000-signal batches, then streams, then 64 clients x 1
signal) and keeps sampling until every consumer is idle again (the bus
drained), and each consumer group's bus backlog once a second. Every 0.5 s it reads each process's CPU time and memory
(proportional set size) from /proc. It prints, per service and for
PostgreSQL: CPU (cores) averaged over the load, the busiest second, and
peak memory, beside the idle baseline; and the loadgen's own report.
docs/DEPLOY.md's sizing comes from this.
"""

import argparse
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RELEASE = ROOT / "target" / "release"
SERVICES = ["retain-ingestion", "retain-metrics", "retain-health", "retain-notification"]
TOKEN = "pods-measure-token"
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


class Backlog:
    """Each consumer group's messages waiting on the bus, over time."""

    def __init__(self, psql: list[str]):
        self.psql = psql
        self.samples = []  # (time, {group/topic: messages})

    def sample(self):
        out = subprocess.run(
            [*self.psql, "-Atc", "SELECT consumer_group || '/' || topic, COUNT(*) FROM bus_messages "
                                 "WHERE state <> 2 GROUP BY 1"],
            capture_output=True, text=True).stdout
        counts = dict(line.split("|") for line in out.splitlines() if "|" in line)
        self.samples.append((time.monotonic(), {k: int(v) for k, v in counts.items()}))

    def report(self, start):
        groups = sorted({g for _, c in self.samples for g in c})
        lines = []
        for g in groups:
            series = [(t - start, c.get(g, 0)) for t, c in self.samples]
            peak_t, peak = max(series, key=lambda x: x[1])
            nonzero = [t for t, n in series if n > 0]
            empty = f"{nonzero[-1]:.0f} s" if nonzero else "-"
            marks = " ".join(f"{n}" for t, n in series[:: max(1, len(series) // 12)])
            lines.append(f"{g:<40}{peak:>9}{peak_t:>9.0f} s{empty:>10}   {marks}")
        return lines


def start_postgres(work: Path) -> tuple[str, Path, str, list[str]]:
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    pg = Path(bins[-1]) if bins else Path(shutil.which("initdb")).parent
    data = work / "pg"
    if os.geteuid() == 0:
        shutil.chown(work, "postgres")
    subprocess.run(as_postgres([str(pg / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                                "-E", "UTF8", "--locale=C"]), check=True, capture_output=True)
    port = free_port()
    opts = f"-p {port} -k {work} -c listen_addresses=127.0.0.1 -c max_connections=300 -c shared_buffers=128MB"
    subprocess.run(as_postgres([str(pg / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(work / "pg.log"),
                                "-w", "start"]), check=True, capture_output=True)
    subprocess.run(as_postgres([str(pg / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                                "-c", "CREATE DATABASE retain"]), check=True, capture_output=True)
    psql = as_postgres([str(pg / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "retain"])
    return f"postgres://postgres@127.0.0.1:{port}/retain", data, str(pg / "pg_ctl"), psql


def postgres_pids(data: Path) -> list[int]:
    pids = []
    for stat in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            cmd = Path(stat).read_bytes()
        except OSError:
            continue
        if cmd.startswith(b"postgres") or b"/bin/postgres" in cmd.split(b"\0")[0]:
            pids.append(int(stat.split("/")[2]))
    return pids


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mib(pid: int) -> float:
    """Proportional set size: shared pages (PostgreSQL's shared buffers)
    divided among the processes sharing them, so a sum over processes is
    the memory they use together."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Sampler:
    """CPU cores and memory of a group of processes over time."""

    def __init__(self, pids):
        self.pids = pids
        self.samples = []  # (time, cpu seconds, rss MiB)

    def sample(self):
        cpu = rss = 0.0
        for pid in self.pids():
            try:
                cpu += cpu_seconds(pid)
                rss += rss_mib(pid)
            except (OSError, IndexError):
                pass
        self.samples.append((time.monotonic(), cpu, rss))

    def window(self, start, end):
        s = [x for x in self.samples if start <= x[0] <= end]
        if len(s) < 2:
            return 0.0, 0.0, 0.0
        avg = (s[-1][1] - s[0][1]) / (s[-1][0] - s[0][0])
        busiest = max((b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(s, s[2:] or s[1:]))
        return avg, busiest, max(x[2] for x in s)

    def recent_cores(self, seconds):
        now = time.monotonic()
        s = [x for x in self.samples if x[0] >= now - seconds]
        return (s[-1][1] - s[0][1]) / (s[-1][0] - s[0][0]) if len(s) >= 2 else 1.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--signals", type=int, default=400_000)
    args = parser.parse_args()
    missing = [b for b in ["retain", "retain-loadgen", *SERVICES] if not (RELEASE / b).is_file()]
    if missing:
        print(f"build first: cargo build --release --bins  (missing {', '.join(missing)})")
        return 1
    work = Path(tempfile.mkdtemp(prefix="retain-pods-"))
    url, data, pg_ctl, psql = start_postgres(work)
    backlog = Backlog(psql)
    procs = []
    try:
        tokens = work / "tokens.toml"
        digest = subprocess.run(["sha256sum"], input=TOKEN.encode(), capture_output=True).stdout.split()[0]
        tokens.write_text(f'[[tokens]]\nname = "measure"\ntenant = "acme"\n'
                          f'roles = ["ingest", "read", "admin", "csm"]\nsha256 = "{digest.decode()}"\n')
        env = dict(os.environ,
                   RETAIN_CONFIG=str(ROOT / "deploy/kustomize/base/retain.toml"),
                   RETAIN__DATABASE__URL=url,
                   RETAIN__AUTH__TOKENS_FILE=str(tokens),
                   RETAIN__NOTIFICATION__EMAIL__TRANSPORT="outbox",
                   # Measured without a quota holding mail back.
                   RETAIN__TENANTS__DEFAULT__EMAIL_QUOTA_PER_HOUR="0",
                   RETAIN__TENANTS__DEFAULT__EMAIL_QUOTA_PER_DAY="0",
                   RETAIN__NOTIFICATION__EMAIL__OUTBOX_DIR=str(work / "outbox"))
        subprocess.run([RELEASE / "retain", "migrate"], env=env, check=True, cwd=work, capture_output=True)
        ports = {}
        for name in SERVICES:
            ports[name] = free_port()
            log = open(work / f"{name}.log", "w")
            procs.append(subprocess.Popen([RELEASE / name, "serve"], cwd=work, stdout=log, stderr=log,
                                          env=dict(env, RETAIN__SERVER__LISTEN=f"127.0.0.1:{ports[name]}")))
        samplers = {name: Sampler(lambda p=p: [p.pid]) for name, p in zip(SERVICES, procs)}
        samplers["postgresql"] = Sampler(lambda: postgres_pids(data))

        def tick(seconds):
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                for s in samplers.values():
                    s.sample()
                time.sleep(0.5)

        start = time.monotonic()
        tick(10)
        idle_end = time.monotonic()
        loadgen = subprocess.Popen(
            [RELEASE / "retain-loadgen", "--target", f"http://127.0.0.1:{ports['retain-ingestion']}",
             "--token", TOKEN, "--signals", str(args.signals)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        while loadgen.poll() is None:
            tick(1)
            backlog.sample()
        load_end = time.monotonic()
        # Drained: every consumer below 0.05 cores for 5 s.
        while any(samplers[n].recent_cores(5) > 0.05 for n in SERVICES[1:]) and time.monotonic() - load_end < 600:
            tick(1)
            backlog.sample()
        tick(2)
        drained = time.monotonic()
        print(loadgen.stdout.read())
        print(f"load {load_end - idle_end:.0f} s, consumers drained {drained - load_end:.0f} s after it")
        print(f"{'process':<22}{'idle cores':>11}{'idle MiB':>10}{'avg cores':>11}{'busiest':>9}{'peak MiB':>10}")
        for name, s in samplers.items():
            i_avg, _, i_rss = s.window(start, idle_end)
            avg, busiest, peak = s.window(idle_end, drained)
            print(f"{name:<22}{i_avg:>11.2f}{i_rss:>10.0f}{avg:>11.2f}{busiest:>9.2f}{peak:>10.0f}")
        print(f"machine: {os.cpu_count()} CPUs; memory is the proportional set size (PostgreSQL: summed over its processes)")
        print(f"\nbus backlog from the start of the load (s), each consumer group and topic:")
        print(f"{'group/topic':<40}{'peak':>9}{'at':>11}{'last >0':>10}   messages over time")
        for line in backlog.report(idle_end):
            print(line)
        return 0
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=60)
        subprocess.run(as_postgres([pg_ctl, "-D", str(data), "stop", "-m", "immediate"]), capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
