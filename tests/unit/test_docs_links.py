"""The repository's docs stand alone (issue 19, acceptance 3): every relative link and every path reference in
README.md and docs/**/*.md names a file or directory of this repository, and no doc points outside it (the shared
design notes a project may have been started from are not part of the repository)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOP_DIRS = ("docs", "tomato", "tests", "tools", "bench", ".ci")

LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
# a path-like token: not preceded by a path character, so `.tomato/secret.key` is not read as `tomato/secret.key`
TOKEN = re.compile(r"(?<![\w./:-])((?:\.\.?/)*[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*/?)")
OUTSIDE = re.compile(r"\.\./shared|/work/|\bAPI\.md\b|\bDESIGN\.md\b|(?<![\w.])~/|file://")


def doc_files(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def _exists(candidate: Path, root: Path) -> bool:
    return _inside(candidate, root) and candidate.exists()


def problems(doc: Path, root: Path = ROOT) -> list[str]:
    """Every broken link, unresolvable path reference or pointer outside the repository in one markdown file."""
    text = doc.read_text(encoding="utf-8")
    where = doc.relative_to(root)
    found: list[str] = []
    for n, line in enumerate(text.splitlines(), 1):
        if (outside := OUTSIDE.search(line)) is not None:
            found.append(f"{where}:{n}: points outside the repository: {outside.group(0)!r}")
        for target in LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                continue  # a URL (https:, mailto:)
            path, _, anchor = target.partition("#")
            path = path.split("?", 1)[0]
            page = doc.parent / path if path else doc
            if path.startswith("/") or not _exists(page, root):
                found.append(f"{where}:{n}: broken link {target!r}")
            elif anchor and page.suffix == ".md" and anchor not in anchors(page):
                found.append(f"{where}:{n}: no heading {anchor!r} in {path or where}")
        for token in TOKEN.findall(line):
            if not _is_reference(token):
                continue
            bare = token.rstrip("/")
            candidates = [doc.parent / bare, root / bare, root / "tomato" / bare]
            if not any(_exists(c, root) for c in candidates):
                found.append(f"{where}:{n}: no such file in the repository: {token!r}")
    return found


def anchors(page: Path) -> set[str]:
    """The heading anchors GitHub renders: lower case, punctuation but `-` and `_` dropped, spaces as `-`."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*#*$", text, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.replace("`", "").lower()).replace(" ", "-") for h in headings}


def _is_reference(token: str) -> bool:
    """A markdown page (`finance.md`), a module path (`core/leases.py`) or anything under a top-level directory of
    the repository (`tests/fixtures/`). Runtime files (`creds.json`, `merchant_key.pem`) and URL paths are not."""
    if token.startswith("../"):
        return True
    if token.endswith(".md"):
        return True
    if token.endswith(".py") and "/" in token:
        return True
    return "/" in token and token.split("/", 1)[0] in TOP_DIRS


def test_every_link_and_path_in_the_docs_names_a_file_of_the_repository() -> None:
    found = [p for doc in doc_files() for p in problems(doc)]
    assert not found, "\n".join(found)


def test_the_check_fails_on_a_broken_link_a_missing_path_and_a_pointer_outside(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "tomato" / "core").mkdir(parents=True)
    (tmp_path / "tomato" / "core" / "leases.py").write_text("")
    (tmp_path / "docs" / "api.md").write_text("# API\n\n## Signing a request\n")
    good = tmp_path / "README.md"
    good.write_text(
        "# Top\n\nSee [the API](docs/api.md#signing-a-request), [site](https://example.com), [here](#top), "
        "docs/api.md, core/leases.py, `tomato/core/`, creds.json and `.tomato/secret.key`.\n"
    )
    assert problems(good, tmp_path) == []
    bad = tmp_path / "docs" / "bad.md"
    bad.write_text(
        "[gone](missing.md)\n"
        "[up](../../etc/passwd)\n"
        "see tests/fixtures/nothing.py\n"
        "as ../shared/API.md says\n"
        "[abs](/docs/api.md)\n"
        "core/nothing.py\n"
        "[no such heading](api.md#signing)\n"
    )
    found = problems(bad, tmp_path)
    assert any("broken link 'missing.md'" in p for p in found)
    assert any("broken link '../../etc/passwd'" in p for p in found)
    assert any("'tests/fixtures/nothing.py'" in p for p in found)
    assert any("points outside the repository" in p and ":4:" in p for p in found)
    assert any("broken link '/docs/api.md'" in p for p in found)
    assert any("'core/nothing.py'" in p for p in found)
    assert any("no heading 'signing' in api.md" in p for p in found)
