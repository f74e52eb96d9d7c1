"""Every refusal a person reads is said in both languages (issue 21, part 6).

The web kernel renders a :class:`jifen.kernel.i18n.Said` in the caller's language
(``Accept-Language``), both when they name neither; a plain string literal or f-string handed to
an HTTP error, a 404 or a domain refusal would be English (or one mixed line) whatever the
caller asked for. This walks the services' and the kernel's source and names every ``raise``
whose message is such a literal, so a new one-language refusal fails here, not in front of an
officer. Exceptions that never reach a person as they are (caught and re-said, or an operator's
start-up error) are listed in ``INTERNAL``."""

from __future__ import annotations

import ast
from pathlib import Path

from jifen.kernel.settings import REPO_ROOT

SOURCES = [REPO_ROOT / "lib/src", *sorted((REPO_ROOT / "services").glob("*/src"))]

# never shown to a caller as raised: programming or start-up errors, event-consumer outcomes
# (dead-letter reasons are for operators), the audit CLI's own one-line bilingual messages,
# the token verifier's reasons (re-said by the 401 with a Chinese gist), and a CLI's one-line
# error (``_fail``: no Accept-Language there, so both languages on the one line)
INTERNAL = {
    "AssertionError", "AttributeError", "KeyError", "RuntimeError", "SystemExit", "TimeoutError",
    "TypeError", "ValueError", "AuditError", "BrokerForgot", "ContractViolation",
    "ImpossibleEvent", "InvalidToken", "KafkaError", "RejectedEvent", "SenderUnavailable",
    "Unsupported", "_fail",
}  # fmt: skip
# the portal draws its own texts (jifen.portal.texts, both languages); its ApiError carries
# what an API already said in the person's language
SKIP_DIRS = {"portal"}
# the message is the second argument: (status, detail) or (reason, detail)
SECOND = {"HTTPException", "Refusal", "AdjustmentRefused"}


def _one_language(node: ast.expr) -> bool:
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str) and node.value != ""
    if isinstance(node, ast.BinOp):
        return _one_language(node.left) or _one_language(node.right)
    return False


def _message(call: ast.Call, name: str) -> list[ast.expr]:
    args = call.args[1:2] if name in SECOND else call.args[:1]
    return [*args, *(k.value for k in call.keywords if k.arg == "detail")]


def one_language_raises(root: Path, base: Path = REPO_ROOT) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        if SKIP_DIRS & set(path.relative_to(base).parts):
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in sorted(
            (n for n in ast.walk(tree) if isinstance(n, ast.Raise)), key=lambda n: n.lineno
        ):
            if not isinstance(node.exc, ast.Call):
                continue
            func = node.exc.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name in INTERNAL:
                continue
            if any(_one_language(m) for m in _message(node.exc, name)):
                found.append(f"{path.relative_to(base)}:{node.lineno} {name}")
    return found


def test_every_refusal_is_said_in_both_languages() -> None:
    found = [f for root in SOURCES for f in one_language_raises(root)]
    assert not found, (
        "said in one language only; wrap the text in jifen.kernel.i18n.Said(zh, en):\n"
        + "\n".join(found)
    )


def test_the_walk_finds_a_one_language_refusal(tmp_path: Path) -> None:
    """The check can fail: an English-only 404 and a domain refusal are named, a Said is not."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "bad.py").write_text(
        "def f(x):\n"
        "    if x:\n"
        "        raise HTTPException(404, f'no job {x}')\n"
        "    raise JobFull('all places are taken', capacity=1)\n"
        "def g(x):\n"
        "    raise NotFound(Said(f'没有岗位 {x}', f'no job {x}'))\n"
    )
    assert one_language_raises(src, tmp_path) == [
        "src/bad.py:3 HTTPException",
        "src/bad.py:4 JobFull",
    ]
