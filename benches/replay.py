#!/usr/bin/env python3
"""Replay speed: `tollgate replay` of N decision records (with their completion records, as an
audit file holds them) against the shipped configuration, pinned to one core. Prints records
per second and the peak resident set (flat in the file's size: the file is streamed).

Usage: benches/replay.py [--records 500000] [--binary target/release/tollgate]
"""

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Decisions of the shipped configuration's users: alice (viewer), bob (tenant admin, MFA), carol
# (user and analyst of globex); allowed and refused.
CASES = [
    ("acme", "alice", ["viewer"], False, "GET", "/api/v1/agents/7", "read-agent", "allow", ["viewer-read"]),
    ("acme", "alice", ["viewer"], False, "DELETE", "/api/v1/agents/7", "change-agent", "deny", []),
    # From outside acme's office network: its forbid decides.
    ("acme", "bob", ["tenant_admin"], True, "GET", "/admin/users", "admin", "deny", ["acme-admin-office-network"]),
    ("globex", "carol", ["user", "analyst"], False, "GET", "/api/v1/workflows", "list-workflows", "allow",
     ["analyst-read-analytics", "user-read-execute"]),
]


def records(n):
    for i in range(n):
        tenant, sub, roles, mfa, method, path, route, decision, policies = CASES[i % len(CASES)]
        rid = f"bench-{i}"
        yield json.dumps({
            "v": 1, "type": "decision", "time": "2026-12-03T10:00:00.000000Z", "request_id": rid,
            "tenant": tenant, "route": route, "decision": decision,
            "stage": "forward" if decision == "allow" else "authorize", "policies": policies,
            "http": {"method": method, "path": path}, "client": {"ip": "203.0.113.7"},
            "inputs": {"v": 1, "principal": {"id": sub, "auth": "jwt", "tenant": tenant, "roles": roles,
                                             "scopes": [], "mfa": mfa},
                       "tenant": {"id": tenant}, "request": {"method": method, "path": path,
                                                             "client_ip": "203.0.113.7"}}})
        if decision == "allow":
            yield json.dumps({"v": 1, "type": "completion", "time": "2026-12-03T10:00:00.001000Z",
                              "request_id": rid, "http": {"method": method, "path": path, "status": 200}})


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=500_000)
    parser.add_argument("--binary", default=str(REPO / "target/release/tollgate"))
    args = parser.parse_args()
    if args.binary.endswith("target/release/tollgate"):
        subprocess.run(["cargo", "build", "--release", "--locked", "--quiet", "--bin", "tollgate"],
                       cwd=REPO, check=True)
    with tempfile.TemporaryDirectory() as work:
        audit = Path(work) / "audit.jsonl"
        with audit.open("w") as out:
            for line in records(args.records):
                out.write(line + "\n")
        size = audit.stat().st_size
        started = time.monotonic()
        run = subprocess.run(["taskset", "-c", "0", "/usr/bin/time", "-f", "%M", args.binary, "replay",
                              "--audit", str(audit), "--config", str(REPO / "config/tollgate.yaml")],
                             capture_output=True, text=True)
        elapsed = time.monotonic() - started
        if run.returncode != 0:
            raise SystemExit(f"replay failed ({run.returncode}): {run.stdout}{run.stderr}")
        rss = int(run.stderr.strip().splitlines()[-1])
        print(run.stdout.strip())
        print(f"{args.records} decisions ({size / 1e6:.0f} MB of audit file) in {elapsed:.2f} s: "
              f"{args.records / elapsed:,.0f} decisions/s on one core; peak RSS {rss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
