#!/usr/bin/env python3
"""Propagation of a tenant change across two replicas sharing one redis-server.

Starts redis-server and two Tollgate processes (tenancy.store: redis), then suspends and
resumes one tenant through replica A 100 times; each time, the time from A's answer to the
first request replica B refuses (or serves) accordingly. Prints the median and the maximum.

    python3 benches/propagation.py target/release/tollgate
"""

import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

TOKEN = "bench-admin-token-0123456789"
CHANGES = 100


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise SystemExit(f"nothing listens on {port}")


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/tollgate"
    work = tempfile.mkdtemp(prefix="tollgate-propagation-")
    redis_port = free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    wait_port(redis_port)
    with open(os.path.join(work, "plans.yaml"), "w") as f:
        f.write("plans:\n  basic: { features: [] }\n")
    with open(os.path.join(work, "tenants.yaml"), "w") as f:
        f.write("tenants:\n  - { id: filed, plan: basic, status: active }\n")
    replicas = []
    for name in ("a", "b"):
        proxy, admin = free_port(), free_port()
        config = os.path.join(work, f"{name}.yaml")
        with open(config, "w") as f:
            f.write(
                f"""server: {{ listen: "127.0.0.1:{proxy}" }}
admin: {{ listen: "127.0.0.1:{admin}", token: {TOKEN} }}
upstream: {{ url: "http://127.0.0.1:9" }}
log: {{ level: warn }}
tenancy: {{ tenants_file: tenants.yaml, plans_file: plans.yaml, sources: [header], store: redis }}
limits: {{ backend: memory, redis: {{ url: "redis://127.0.0.1:{redis_port}", prefix: "bench:" }} }}
"""
            )
        process = subprocess.Popen([binary, "serve", "--config", config], stderr=subprocess.DEVNULL)
        wait_port(proxy)
        wait_port(admin)
        replicas.append((process, proxy, admin))
    (_, _, admin_a), (_, proxy_b, _) = replicas[0], replicas[1]
    a = http.client.HTTPConnection("127.0.0.1", admin_a)
    b = http.client.HTTPConnection("127.0.0.1", proxy_b)

    def patch(body):
        a.request("PATCH" if body else "PUT", "/tenants/live", json.dumps(body or {"plan": "basic", "status": "active"}),
                  {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        answer = a.getresponse()
        answer.read()
        assert answer.status in (200, 201), answer.status

    def status_on_b():
        b.request("GET", "/x", headers={"x-tenant-id": "live"})
        answer = b.getresponse()
        answer.read()
        return answer.status

    patch(None)
    while status_on_b() in (404,):
        pass
    times = []
    for i in range(CHANGES):
        suspend = i % 2 == 0
        patch({"status": "suspended" if suspend else "active"})
        done = time.perf_counter()
        while (status_on_b() == 403) != suspend:
            pass
        times.append((time.perf_counter() - done) * 1000)
    print(f"propagation of a suspension or resumption A -> B over {CHANGES} changes: "
          f"median {statistics.median(times):.2f} ms, max {max(times):.2f} ms")
    for process, _, _ in replicas:
        process.terminate()
        process.wait()
    redis.terminate()


if __name__ == "__main__":
    main()
