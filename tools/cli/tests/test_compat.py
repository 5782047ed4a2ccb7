"""The CLI on every typer the pyproject allows: no PEP 604 unions where Typer reads annotations,
and the typer < 0.16 + click >= 8.2 pair refused in one line before Typer fails on it."""

from __future__ import annotations

import os
import subprocess
import sys
import types
import typing
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from threedsr_cli import compat
from threedsr_cli.app import app


def _leaves(tp: object) -> list[object]:
    args = typing.get_args(tp)
    return [tp] + [leaf for arg in args for leaf in _leaves(arg)]


def _typer_functions() -> list[typing.Callable[..., object]]:
    funcs = [cmd.callback for cmd in app.registered_commands]
    assert app.registered_callback is not None
    funcs.append(app.registered_callback.callback)
    return [f for f in funcs if f is not None]


def test_no_pep604_union_in_typer_parameters() -> None:
    # typer 0.12.0 raises "Type not yet supported: pathlib.Path | None" on these (CI runs it).
    funcs = _typer_functions()
    assert len(funcs) == 8  # the seven commands and the root callback
    for func in funcs:
        hints = typing.get_type_hints(func, include_extras=True)
        for name, hint in hints.items():
            bad = [t for t in _leaves(hint) if isinstance(t, types.UnionType)]
            assert not bad, f"{func.__name__}({name}): {bad[0]} (write Optional[...])"


@pytest.mark.parametrize(
    ("typer_version", "click_version", "broken"),
    [
        ("0.12.0", "8.1.7", False),
        ("0.15.1", "8.1.8", False),
        ("0.12.5", "8.2.0", True),
        ("0.15.4", "8.5.1", True),
        ("0.15.1", "8.2.0rc1", True),  # the release candidate already requires ctx
        ("0.16.0", "8.5.1", False),
        ("0.16.0.dev0", "8.2.1", False),
        ("1.0", "9.0", False),
    ],
)
def test_broken_pair_table(typer_version: str, click_version: str, broken: bool) -> None:
    problem = compat.broken_pair(typer_version, click_version)
    assert (problem is not None) == broken
    if broken:
        assert problem is not None and "\n" not in problem
        assert typer_version in problem and click_version in problem
        assert "'typer>=0.16'" in problem


@given(
    parts=st.lists(st.integers(0, 10**6), min_size=1, max_size=4),
    tag=st.sampled_from(["", "rc1", ".dev0", "a2", "+local.7", ".post1"]),
)
def test_release_reads_the_numeric_part(parts: list[int], tag: str) -> None:
    assert compat.release(".".join(map(str, parts)) + tag) == tuple(parts)


@given(
    typer=st.tuples(st.integers(0, 1), st.integers(0, 40), st.integers(0, 9)),
    click=st.tuples(st.integers(7, 9), st.integers(0, 9), st.integers(0, 9)),
)
def test_broken_exactly_below_typer_016_from_click_82(
    typer: tuple[int, int, int], click: tuple[int, int, int]
) -> None:
    problem = compat.broken_pair(".".join(map(str, typer)), ".".join(map(str, click)))
    assert (problem is not None) == (typer < (0, 16, 0) and click >= (8, 2, 0))


def test_release_refuses_garbage() -> None:
    with pytest.raises(ValueError, match="not a version"):
        compat.release("unknown")


def _fake_versions(monkeypatch: pytest.MonkeyPatch, **versions: str) -> None:
    def fake(name: str) -> str:
        if name not in versions:
            raise compat.PackageNotFoundError(name)
        return versions[name]

    monkeypatch.setattr(compat, "version", fake)


def test_check_exits_2_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_versions(monkeypatch, typer="0.13.1", click="8.5.1")
    with pytest.raises(SystemExit) as info:
        compat.check_typer_click()
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: typer 0.13.1 cannot drive click 8.5.1")


@pytest.mark.parametrize(
    "versions",
    [
        {"typer": "0.16.0", "click": "8.5.1"},
        {"typer": "0.12.0", "click": "8.1.7"},
        {"typer": "0.12.0"},  # click without metadata: nothing to compare
        {"typer": "weird", "click": "8.5.1"},  # unreadable: typer gets its chance
    ],
)
def test_check_passes(monkeypatch: pytest.MonkeyPatch, versions: dict[str, str]) -> None:
    _fake_versions(monkeypatch, **versions)
    compat.check_typer_click()


def _dist_info(site: Path, name: str, ver: str) -> None:
    info = site / f"{name}-{ver}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {ver}\n")


def test_entry_point_refuses_the_pair_before_typer_runs(tmp_path: Path) -> None:
    # The metadata of a broken pair, found first on sys.path: the real typer and click stay
    # importable, only the versions they report change (what an old environment looks like).
    _dist_info(tmp_path, "typer", "0.15.1")
    _dist_info(tmp_path, "click", "8.2.1")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    res = subprocess.run(
        [sys.executable, "-m", "threedsr_cli", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert res.returncode == 2, res.stderr
    assert res.stderr.splitlines() == [
        "error: typer 0.15.1 cannot drive click 8.2.1 (typer < 0.16 needs click < 8.2): "
        "install 'typer>=0.16' or 'click<8.2'"
    ]
    assert res.stdout == ""
