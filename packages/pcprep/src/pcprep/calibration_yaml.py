"""The YAML subset that camera calibration files use, for `pcprep.camera_files` (no pyyaml).

Block mappings by indentation, ``#`` comments, a ``%YAML`` directive (OpenCV writes
``%YAML:1.0``) and ``---``, flow lists and mappings (``[a, b]``, ``{k: v}``) that may span
lines, block lists of scalars (ROS 2's ``ros2 topic echo`` puts ``- 0.1`` at the key's own
indentation), tags such as ``!!opencv-matrix`` (dropped), quoted and plain scalars. Anything
else (anchors, block strings, mappings inside block lists) is a `ValueError` naming the line.
"""

from __future__ import annotations

import json
import re
from typing import NamedTuple

__all__ = ["parse_calibration_yaml"]

_INT = re.compile(r"[-+]?\d+")
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_SPECIAL = {
    ".inf": float("inf"),
    "+.inf": float("inf"),
    "-.inf": float("-inf"),
    ".nan": float("nan"),
}
_WORDS = {"true": True, "false": False, "null": None, "~": None, "": None}


class _Line(NamedTuple):
    number: int
    indent: int
    body: str


def _scalar(text: str) -> object:
    text = text.strip()
    if text[:1] == '"':
        try:
            return json.loads(text)
        except ValueError:
            raise ValueError(f"bad double-quoted string {text}") from None
    if text[:1] == "'":
        if len(text) < 2 or text[-1] != "'":
            raise ValueError(f"bad single-quoted string {text}")
        return text[1:-1].replace("''", "'")
    low = text.lower()
    if low in _WORDS:
        return _WORDS[low]
    if low in _SPECIAL:
        return _SPECIAL[low]
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return text


def _uncomment(raw: str) -> str:
    """``raw`` without its comment: a ``#`` at the start or after a blank, outside quotes."""
    quote = ""
    for i, ch in enumerate(raw):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"" and (i == 0 or raw[i - 1] in " \t[{,:"):
            quote = ch
        elif ch == "#" and (i == 0 or raw[i - 1] in " \t"):
            return raw[:i].rstrip()
    return raw.rstrip()


def _depth(text: str) -> int:
    """Open ``[`` / ``{`` minus closed ones outside quotes: > 0 while a flow value continues."""
    depth, quote = 0, ""
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"" and (i == 0 or text[i - 1] in " \t[{,:"):
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
    return depth


def _flow(text: str, pos: int, stops: str) -> tuple[object, int]:
    """The flow value at ``text[pos:]`` and where it ends (at one of ``stops`` or the end)."""
    pos = _skip(text, pos)
    if pos < len(text) and text[pos] in "[{":
        closing = "]" if text[pos] == "[" else "}"
        out: list | dict = [] if closing == "]" else {}
        pos = _skip(text, pos + 1)
        while pos < len(text) and text[pos] != closing:
            if isinstance(out, list):
                item, pos = _flow(text, pos, ",]")
                out.append(item)
            else:
                key, pos = _flow(text, pos, ":,}")
                value = None
                if pos < len(text) and text[pos] == ":":
                    value, pos = _flow(text, pos + 1, ",}")
                out[str(key)] = value
            if pos < len(text) and text[pos] not in (",", closing):
                raise ValueError(f"unexpected {text[pos]!r} in {text[:60]!r}")
            if pos < len(text) and text[pos] == ",":
                pos = _skip(text, pos + 1)
        if pos >= len(text):
            raise ValueError(f"unclosed {text[:60]!r}")
        return out, _skip(text, pos + 1)
    end = pos
    if end < len(text) and text[end] in "'\"":
        close = text.find(text[end], end + 1)
        end = len(text) if close < 0 else close + 1
    while end < len(text) and text[end] not in stops:
        end += 1
    return _scalar(text[pos:end]), end


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] == " ":
        pos += 1
    return pos


def _value(text: str, number: int) -> object:
    try:
        if text[:1] in "&*|>":
            raise ValueError(f"unsupported YAML value {text!r}")
        if text[:1] in "[{":
            value, end = _flow(text, 0, "")
            if end != len(text):
                raise ValueError(f"unexpected {text[end:]!r} after a flow value")
            return value
        return _scalar(text)
    except ValueError as exc:
        raise ValueError(f"line {number}: {exc}") from None


def _lines(text: str) -> list[_Line]:
    """The document's content lines (the first document only), flow values joined onto one."""
    lines: list[_Line] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _uncomment(raw)
        body = line.strip()
        if not body:
            continue
        if lines and _depth(lines[-1].body) > 0:
            lines[-1] = lines[-1]._replace(body=f"{lines[-1].body} {body}")
            continue
        if body in ("---", "...") or body.startswith(("--- ", "%")):
            if lines and not body.startswith("%"):
                break  # a message dump's end, or a second document: the first is the one
            continue
        if "\t" in line[: len(line) - len(line.lstrip())]:
            raise ValueError(f"line {number}: tab indentation is not YAML")
        lines.append(_Line(number, len(line) - len(line.lstrip(" ")), body))
    if lines and _depth(lines[-1].body) > 0:
        raise ValueError(f"line {lines[-1].number}: unclosed flow value")
    return lines


def _block(lines: list[_Line], i: int, indent: int) -> tuple[object, int]:
    """The block list or mapping whose lines start at ``lines[i]`` with ``indent``."""
    if lines[i].body == "-" or lines[i].body.startswith("- "):
        items = []
        while i < len(lines) and lines[i].indent == indent and lines[i].body[:2].strip() == "-":
            item = lines[i].body[1:].strip()
            if not item or re.match(r"[^'\"\[{]*:( |$)", item):
                raise ValueError(f"line {lines[i].number}: only scalars are read in block lists")
            items.append(_value(item, lines[i].number))
            i += 1
        return items, i
    mapping: dict = {}
    while i < len(lines) and lines[i].indent >= indent:
        line = lines[i]
        if line.indent > indent:
            raise ValueError(f"line {line.number}: inconsistent indentation")
        key, sep, rest = line.body.partition(":")
        if not sep or not key.strip() or (rest and rest[0] != " ") or key[:1] in "-[{":
            raise ValueError(f"line {line.number}: unsupported YAML {line.body!r}")
        rest = rest.strip()
        if rest.startswith("!"):
            rest = rest.partition(" ")[2].strip()  # the tag names a type, the content is as usual
        i += 1
        nested = i < len(lines) and (
            lines[i].indent > indent
            or (lines[i].indent == indent and lines[i].body[:2].strip() == "-")
        )
        if rest and nested and lines[i].indent > indent:
            raise ValueError(f"line {lines[i].number}: inconsistent indentation")
        if rest:
            mapping[str(_scalar(key))] = _value(rest, line.number)
        elif nested:
            mapping[str(_scalar(key))], i = _block(lines, i, lines[i].indent)
        else:
            mapping[str(_scalar(key))] = None
    return mapping, i


def parse_calibration_yaml(text: str) -> object:
    """Parse a calibration file's YAML (the subset above) into dicts, lists and scalars.

    Example:
        >>> parse_calibration_yaml("%YAML:1.0\\n---\\nK: !!opencv-matrix\\n  data: [ 1., 2,\\n    3 ]\\nd:\\n- 0.5\\n")
        {'K': {'data': [1.0, 2, 3]}, 'd': [0.5]}
    """
    lines = _lines(text)
    if not lines:
        return None
    if lines[0].indent != 0:
        raise ValueError(f"line {lines[0].number}: the document must start at column 0")
    if len(lines) == 1 and ":" not in lines[0].body:
        return _value(lines[0].body, lines[0].number)
    value, i = _block(lines, 0, 0)
    if i < len(lines):
        raise ValueError(f"line {lines[i].number}: unsupported YAML {lines[i].body!r}")
    return value
