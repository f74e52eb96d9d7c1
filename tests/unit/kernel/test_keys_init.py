"""`jifen keys init`: the keys a deployment needs, made once, private to the service user; the
Kubernetes Secret it prints rebuilds the same folder through the manifests' init container;
a process missing a key is told which, in one line, before it starts."""

from __future__ import annotations

import base64
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from jifen.kernel.auth import AUDIT_KEYS_SUBDIR, TokenVerifier, issue_token, startup_key_problem
from jifen.kernel.cli import app
from jifen.kernel.metrics import SCRAPE_TOKEN_FILE
from jifen.kernel.settings import REPO_ROOT
from jifen.points.audit.keys import audit_keys_dir, current_signer


def init(keys: Path, *extra: str) -> str:
    result = CliRunner().invoke(app, ["keys", "init", "--keys-dir", str(keys), *extra])
    assert result.exit_code == 0, result.output
    return result.output


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_keys_init_makes_every_key_once_private_to_its_owner(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    out = init(keys)
    assert out.count("已生成 made") == 3
    token_kid = (keys / "current").read_text()
    audit_kid = (keys / AUDIT_KEYS_SUBDIR / "current").read_text()
    # where the points service looks for its checkpoint key
    assert audit_keys_dir(keys) == keys / AUDIT_KEYS_SUBDIR
    assert current_signer(keys)[0] == audit_kid
    assert mode(keys) == 0o700
    for d in (keys / "signing", keys / AUDIT_KEYS_SUBDIR / "signing"):
        assert mode(d) == 0o700
        assert [mode(p) for p in d.iterdir()] == [0o600]
    assert mode(keys / SCRAPE_TOKEN_FILE) == 0o600
    assert mode(next((keys / "public").iterdir())) == 0o644
    # run again: everything kept, nothing new
    again = init(keys)
    assert again.count("已有 kept") == 3 and "已生成" not in again
    assert (keys / "current").read_text() == token_kid
    assert (keys / AUDIT_KEYS_SUBDIR / "current").read_text() == audit_kid
    for service in ("tasks", "points", "points-worker", "redeem"):
        assert startup_key_problem(service, keys) is None, service


def test_owner_wants_numbers_and_nothing_is_made_without(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    result = CliRunner().invoke(app, ["keys", "init", "--keys-dir", str(keys), "--owner", "jifen"])
    assert result.exit_code == 2
    assert "UID:GID" in result.output
    assert not keys.exists()


def _init_script() -> str:
    manifest = REPO_ROOT / "deploy" / "k8s" / "points.yaml"
    for doc in yaml.safe_load_all(manifest.read_text()):
        if doc and doc.get("kind") == "Deployment":
            (c,) = [c for c in doc["spec"]["template"]["spec"]["initContainers"]]
            script: str = c["command"][-1]
            return script
    raise AssertionError("no init container")


@pytest.mark.skipif(shutil.which("sh") is None, reason="no POSIX shell")
def test_the_printed_secret_rebuilds_the_same_folder_through_the_init_container(
    tmp_path: Path,
) -> None:
    keys = tmp_path / "keys"
    result = CliRunner().invoke(app, ["keys", "init", "--keys-dir", str(keys), "--k8s-secret"])
    assert result.exit_code == 0, result.output
    manifest = result.stdout[result.stdout.index("apiVersion:") :]
    secret = yaml.safe_load(manifest)
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == "jifen-keys"
    assert secret["metadata"]["namespace"] == "jifen"
    # as Kubernetes mounts a Secret: one file per key
    mounted = tmp_path / "secret"
    mounted.mkdir()
    for name, value in secret["data"].items():
        (mounted / name).write_bytes(base64.b64decode(value))
    rebuilt = tmp_path / "rebuilt"
    rebuilt.mkdir()
    script = _init_script().replace("/secret", str(mounted)).replace("/keys", str(rebuilt))
    subprocess.run(["sh", "-c", script], check=True)
    made = {p.relative_to(keys): p.read_bytes() for p in keys.rglob("*") if p.is_file()}
    got = {p.relative_to(rebuilt): p.read_bytes() for p in rebuilt.rglob("*") if p.is_file()}
    assert got == made
    for private in [*(rebuilt / "signing").iterdir(), rebuilt / SCRAPE_TOKEN_FILE]:
        assert mode(private) == 0o600, private
    assert mode(rebuilt / "signing") == 0o700
    # the rebuilt folder works: tokens made with the original verify, the audit key signs
    token = issue_token(keys, subject="officer-li", role="officer", org="jiangmen-riders")
    assert TokenVerifier(rebuilt).verify(token).subject == "officer-li"
    assert startup_key_problem("points-worker", rebuilt) is None


def test_a_process_missing_a_key_is_told_which_in_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    said = startup_key_problem("tasks", empty)
    assert said is not None and "\n" not in said
    assert said.startswith("jifen tasks: no token signing key in ")
    assert "jifen keys init --keys-dir" in said and "缺少密钥" in said

    keys = tmp_path / "keys"
    init(keys)
    # a provisioned folder that lost its audit key: the points processes refuse to start
    shutil.rmtree(keys / AUDIT_KEYS_SUBDIR / "signing")
    said = startup_key_problem("points-worker", keys)
    assert said is not None and "\n" not in said
    assert "audit checkpoint key" in said and "is missing" in said
    assert startup_key_problem("tasks", keys) is None  # tasks signs no checkpoint
    # not provisioned (`make run`): the points service makes its audit key on first use
    (keys / "provisioned").unlink()
    assert startup_key_problem("points-worker", keys) is None

    unreadable = tmp_path / "unreadable"
    init(unreadable)
    (unreadable / "current").write_text("")
    said = startup_key_problem("redeem", unreadable)
    assert said is not None and "is empty" in said
