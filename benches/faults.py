#!/usr/bin/env python3
"""Fault benchmark: request latency while Tollgate reloads, and while Redis misbehaves.

reload   10,000 tenants and 1,000 tenant policy sets. wrk runs twice against one tenant for
         --duration seconds: once untouched, once with a SIGHUP every second. Prints the reload
         times (from the SIGHUP to the log's "configuration reloaded") and wrk's p50, p99 and max
         for both runs.
redis    backend redis, timeout 20ms, breaker 5 failures / 2s cooldown, a plan that falls back
         locally. wrk for --duration seconds with Redis hung before Tollgate first connects
         (SIGSTOP), stopped (killed), and slow (SIGSTOP/SIGCONT, 100 ms of every 200 ms): p50, p99
         and max of each. Then the recovery time: from Redis answering again to Tollgate's breaker
         closing.

Every Tollgate runs one worker pinned to CPU 0; wrk and the upstream (nginx) share CPU 1.
Nothing here is asserted: the figures go to benches/README.md.

Usage: benches/faults.py [--only reload,redis] [--duration 10] [--binary PATH]
(--binary: another build of Tollgate, to measure a before and an after in one run.)
"""

import argparse
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import REPO, free_port, nginx_conf, pinned, to_ms, wait_for  # noqa: E402

TENANTS = 10_000
POLICY_SETS = 1_000


def wrk(port, host, duration, connections=16):
    out = subprocess.run(pinned(1, [
        "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-H", f"Host: {host}",
        f"http://127.0.0.1:{port}/public/x"]), capture_output=True, text=True, check=True).stdout
    p50 = to_ms(*re.search(r"50%\s+([\d.]+)(us|ms|s)", out).groups())
    p99 = to_ms(*re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups())
    worst = to_ms(*re.search(r"Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", out).groups())
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return rps, p50, p99, worst


def deployment(work, upstream, admin, port, extra=""):
    """10,000 tenants, 1,000 with policies of their own; the shipped routes and schema."""
    policies = work / "policies"
    for name in ("schema.cedarschema", "roles.cedar", "guards.cedar"):
        (policies / "tenants").mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "policies" / name, policies / name)
    for i in range(1, POLICY_SETS + 1):
        own = policies / "tenants" / f"t{i:05}"
        own.mkdir(exist_ok=True)
        (own / "own.cedar").write_text(
            f'@id("own-{i}")\npermit (principal in Role::"role-{i}", action == Action::"read", '
            f'resource is Agent) when {{ context.hour >= 0 }};\n')
    tenants = "".join(f"  - {{ id: t{i:05}, plan: bench, status: active }}\n"
                      for i in range(TENANTS))
    (work / "tenants.yaml").write_text("tenants:\n" + tenants)
    shutil.copy(REPO / "benches/plans.yaml", work / "plans.yaml")
    config = work / "tollgate.yaml"
    config.write_text(f"""server: {{ listen: 127.0.0.1:{port}, workers: 1 }}
admin: {{ listen: 127.0.0.1:{admin} }}
upstream: {{ url: http://127.0.0.1:{upstream} }}
log: {{ level: info }}
tenancy: {{ tenants_file: tenants.yaml, plans_file: plans.yaml, base_domains: [app.example.com], reload_interval: 1h }}
authorization: {{ routes_file: {REPO}/config/routes.yaml, policies_dir: policies }}
{extra}""")
    return config


def start(binary, config, port, admin, log):
    """Starts Tollgate and waits until it is ready (its sockets are open before it has loaded
    the 10,000 tenants)."""
    proc = subprocess.Popen(pinned(0, [binary, "serve", "--config", str(config)]),
                            stdout=subprocess.DEVNULL, stderr=log)
    wait_for(port, proc, "tollgate")
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=1).status == 200:
                return proc
        except OSError:
            time.sleep(0.05)
    sys.exit("tollgate did not become ready")


def log_times(path, text):
    """The UTC times of the log lines containing `text`."""
    times = []
    for line in Path(path).read_text(errors="replace").splitlines():
        if text in line:
            stamp = re.match(r"(\S+Z)", re.sub(r"\x1b\[[0-9;]*m", "", line))
            if stamp:
                times.append(datetime.fromisoformat(stamp.group(1).replace("Z", "+00:00")))
    return times


def reload_bench(binary, work, upstream, duration):
    port, admin = free_port(), free_port()
    config = deployment(work, upstream, admin, port)
    log_path = work / "reload.log"
    with open(log_path, "w") as log:
        proc = start(binary, config, port, admin, log)
        try:
            quiet = wrk(port, "t00500.app.example.com", duration)
            sent = []
            runner = subprocess.Popen(pinned(1, [
                "wrk", "-t1", "-c16", f"-d{duration}s", "--latency", "-H",
                "Host: t00500.app.example.com", f"http://127.0.0.1:{port}/public/x"]),
                stdout=subprocess.PIPE, text=True)
            time.sleep(0.5)
            for _ in range(max(1, duration - 2)):
                sent.append(datetime.now(timezone.utc))
                proc.send_signal(signal.SIGHUP)
                time.sleep(1)
            out = runner.communicate()[0]
        finally:
            proc.terminate()
            proc.wait()
    p50 = to_ms(*re.search(r"50%\s+([\d.]+)(us|ms|s)", out).groups())
    p99 = to_ms(*re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups())
    worst = to_ms(*re.search(r"Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", out).groups())
    done = log_times(log_path, "configuration reloaded")
    times = [(d - s).total_seconds() * 1000 for s, d in zip(sent, done)]
    print(f"reload {binary}: {len(done)} reloads, {min(times):.0f}-{max(times):.0f} ms "
          f"(median {sorted(times)[len(times) // 2]:.0f} ms)")
    print(f"  without reloads: p50 {quiet[1]:.2f} ms, p99 {quiet[2]:.2f} ms, max {quiet[3]:.1f} ms")
    print(f"  a reload a second: p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {worst:.1f} ms")


def breaker_open(admin):
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=2).read().decode()
    match = re.search(r"^tollgate_redis_breaker_open (\S+)", text, re.M)
    return match and float(match.group(1)) == 1.0


def redis_bench(binary, work, upstream, duration):
    redis_port = free_port()
    redis_argv = ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                  "--appendonly", "no"]
    limits = (f"limits: {{ backend: redis, redis: {{ url: redis://127.0.0.1:{redis_port}, "
              f"timeout: 20ms, replicas: 2, breaker_failures: 5, breaker_cooldown: 2s }} }}\n")
    host = "t00001.app.example.com"

    def fresh(name):
        port, admin = free_port(), free_port()
        d = work / name
        d.mkdir()
        config = deployment(d, upstream, admin, port, limits)
        return config, port, admin, open(d / "tollgate.log", "w")

    redis = subprocess.Popen(redis_argv, stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    results = {}
    for scenario in ("hung", "stopped", "slow"):
        config, port, admin, log = fresh(scenario)
        if scenario == "hung":
            redis.send_signal(signal.SIGSTOP)
        proc = start(binary, config, port, admin, log)
        pulser = None
        if scenario == "stopped":
            redis.kill()
            redis.wait()
        if scenario == "slow":
            pulser = subprocess.Popen(["sh", "-c", f"while :; do kill -STOP {redis.pid}; sleep 0.1; "
                                                   f"kill -CONT {redis.pid}; sleep 0.1; done"])
        try:
            results[scenario] = wrk(port, host, duration)
        finally:
            if pulser:
                pulser.kill()
                pulser.wait()
                redis.send_signal(signal.SIGCONT)
            if scenario == "hung":
                redis.send_signal(signal.SIGCONT)
            if scenario == "stopped":
                redis = subprocess.Popen(redis_argv, stdout=subprocess.DEVNULL)
                time.sleep(0.5)
            proc.terminate()
            proc.wait()
    for scenario, (rps, p50, p99, worst) in results.items():
        print(f"redis {scenario:8}: {rps:9.0f} req/s  p50 {p50:.2f} ms  p99 {p99:.2f} ms  "
              f"max {worst:.1f} ms")

    # Recovery: Redis stopped long enough for the breaker to open, then started again; the time
    # until a request has closed the breaker (requests keep coming, as under load).
    config, port, admin, log = fresh("recovery")
    proc = start(binary, config, port, admin, log)
    load = subprocess.Popen(pinned(1, ["wrk", "-t1", "-c4", "-d60s", "-H", f"Host: {host}",
                                       f"http://127.0.0.1:{port}/public/x"]),
                            stdout=subprocess.DEVNULL)
    try:
        time.sleep(1)
        redis.kill()
        redis.wait()
        time.sleep(5)
        assert breaker_open(admin), "the breaker did not open"
        redis = subprocess.Popen(redis_argv, stdout=subprocess.DEVNULL)
        started = time.time()
        while breaker_open(admin):
            time.sleep(0.01)
        print(f"redis recovery: {time.time() - started:.2f} s from Redis starting to the breaker "
              f"closing (cooldown 2 s)")
    finally:
        load.kill()
        proc.terminate()
        proc.wait()
        redis.kill()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="reload,redis")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--binary", default=str(REPO / "target/release/tollgate"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tollgate-faults-"))
    upstream = free_port()
    nginx = subprocess.Popen(pinned(1, nginx_conf(work, "upstream", upstream)))
    try:
        wait_for(upstream, nginx, "upstream")
        if "reload" in args.only:
            d = work / "reload"
            d.mkdir()
            reload_bench(args.binary, d, upstream, args.duration)
        if "redis" in args.only:
            d = work / "redis"
            d.mkdir()
            redis_bench(args.binary, d, upstream, args.duration)
    finally:
        nginx.terminate()
        nginx.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
