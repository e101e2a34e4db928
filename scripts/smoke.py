#!/usr/bin/env python3
"""The README's demo, exercised the way a reader runs it: start `tollgate demo`, paste every line
of its banner exactly as printed (the exports first, then each command), and check what each
line's comment promises: a leading HTTP status is the answer's status, and every `quoted` text
appears in the output. Then stop the demo with SIGTERM and expect a clean exit.

Usage: scripts/smoke.py BINARY [demo flags...]
"""

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request


def banner_of(demo):
    """The banner's lines, up to the one that ends it."""
    lines = []
    deadline = time.time() + 60
    for line in demo.stdout:
        lines.append(line.rstrip("\n"))
        if "Ctrl-C stops the demo" in line or time.time() > deadline:
            break
    return lines


def commands(lines):
    """(exports, [(command, comment)]): the pasted lines of the banner, as printed."""
    exports, tries, section = [], [], None
    for line in lines:
        if line.startswith("Paste these first"):
            section = "exports"
        elif line.startswith("Then try"):
            section = "tries"
        elif not line.strip():
            section = None if section == "tries" else section
        elif section and line.startswith("  "):
            command, _, comment = line.strip().rpartition("   # ")
            if section == "exports":
                exports.append(command)
            else:
                tries.append((command, comment))
    return exports, tries


def check(output, comment):
    """What is wrong with `output` against the promise of `comment`, or None."""
    status = re.match(r"(\d{3})\b", comment)
    if status:
        heads = re.findall(r"^HTTP/[\d.]+ (\d{3})", output, re.M)
        seen = heads[:1] if heads else output.split()
        if status.group(1) not in seen:
            return f"expected status {status.group(1)}, saw {seen[:60]}"
    for text in re.findall(r"`([^`]+)`", comment):
        if text not in output:
            return f"expected {text!r} in the output"
    if not status and not re.search(r"`[^`]+`", comment):
        return "the comment promises nothing checkable"
    return None


def wait_ready(admin):
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"http://{admin}/readyz", timeout=1) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"smoke: the demo's admin listener {admin} never became ready")


def main():
    binary, flags = os.path.abspath(sys.argv[1]), sys.argv[2:]
    env = dict(os.environ)
    # The demo's own state and token: nothing from the caller's environment.
    for name in ("TOLLGATE_STATE_DIR", "TOLLGATE_ADMIN_TOKEN", "TOLLGATE_ADMIN_LISTEN"):
        env.pop(name, None)
    with tempfile.TemporaryDirectory() as home:
        demo = subprocess.Popen(
            [binary, "demo", *flags], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, env=env, cwd=home,
        )
        try:
            lines = banner_of(demo)
            admin = next(l.split()[1] for l in lines if l.strip().startswith("admin "))
            wait_ready(admin.removeprefix("http://"))
            exports, tries = commands(lines)
            passed, failed = 0, 0
            for command, comment in tries:
                script = "\n".join(exports + [command])
                run = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                                     env=env, cwd=home, timeout=120)
                problem = check(run.stdout, comment)
                if run.returncode != 0 and problem is None:
                    problem = f"exit {run.returncode}: {run.stderr.strip()}"
                if problem:
                    failed += 1
                    print(f"smoke: FAIL {command}\n  # {comment}\n  {problem}\n"
                          f"  stdout: {run.stdout[:2000]}\n  stderr: {run.stderr[:500]}",
                          file=sys.stderr)
                else:
                    passed += 1
            demo.send_signal(signal.SIGTERM)
            code = demo.wait(timeout=60)
            if code != 0:
                failed += 1
                print(f"smoke: FAIL the demo exited with {code} on SIGTERM", file=sys.stderr)
            if len(tries) < 10:
                failed += 1
                print(f"smoke: FAIL only {len(tries)} lines found in the banner", file=sys.stderr)
            print(f"smoke: {passed} passed, {failed} failed")
            sys.exit(1 if failed else 0)
        finally:
            if demo.poll() is None:
                demo.kill()


if __name__ == "__main__":
    main()
