"""`make audit-deps`: pip-audit over the locked requirements (uv.lock, every member, dev group).

Fails on a known vulnerability. When the advisory database cannot be reached, or answers for
none of the packages (a registry mirror without PyPI's JSON API, as on the project's build
machines), it says so plainly and exits 0: an audit that could not run is reported, not
passed off as "no known vulnerabilities", and it does not break CI that has no network.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        req = Path(tmp) / "requirements.txt"
        subprocess.run(
            [
                str(ROOT / ".tools/bin/uv"),
                "export",
                "--frozen",
                "--all-packages",
                "--no-hashes",
                "--no-emit-workspace",
                "--no-header",
                "--group",
                "dev",
                "--quiet",
                "--output-file",
                str(req),
            ],
            cwd=ROOT,
            check=True,
        )
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip_audit",
                "-r",
                str(req),
                "--no-deps",
                "--disable-pip",
                "--progress-spinner",
                "off",
                "-f",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
    try:
        report = json.loads(run.stdout)
    except ValueError:
        last = (run.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"audit-deps: NOT AUDITED: pip-audit could not reach its advisory database ({last})")
        return 0
    deps = report.get("dependencies", [])
    skipped = [d for d in deps if d.get("skip_reason")]
    vulnerable = [d for d in deps if d.get("vulns")]
    for d in vulnerable:
        for v in d["vulns"]:
            fixed = ", ".join(v.get("fix_versions", [])) or "no fix yet"
            print(f"audit-deps: {d['name']} {d.get('version')}: {v['id']} (fixed in {fixed})")
    audited = len(deps) - len(skipped)
    if vulnerable:
        print(f"audit-deps: {len(vulnerable)} vulnerable package(s) of {audited} audited")
        return 1
    if audited == 0:
        print(
            f"audit-deps: NOT AUDITED: the advisory database answered for none of the "
            f"{len(deps)} locked packages ({skipped[0]['skip_reason'] if skipped else 'empty'})"
        )
        return 0
    note = f"; {len(skipped)} could not be audited" if skipped else ""
    print(f"audit-deps: no known vulnerabilities in {audited} locked packages{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
