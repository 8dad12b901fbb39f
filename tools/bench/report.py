"""One table for the whole run, and the same figures as JSON under var/bench/."""

from __future__ import annotations

import datetime as dt
import json
import math
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Figure:
    name: str
    value: float | int | str | None
    unit: str = ""
    target: str = ""  # e.g. ">= 0.50"; empty: reported, no target
    ok: bool | None = None  # None: no target, or not measured
    detail: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.target = self.target or ""

    def shown_value(self) -> str:
        value = self.value
        if value is None:
            return "n/a"
        if isinstance(value, float):
            if math.isnan(value):
                return "n/a"
            if abs(value) >= 1000:
                text = f"{value:,.0f}"
            elif abs(value) >= 100:
                text = f"{value:.0f}"
            elif abs(value) >= 10:
                text = f"{value:.1f}"
            else:
                text = f"{value:.2f}"
        elif isinstance(value, int):
            text = f"{value:,}"
        else:
            text = str(value)
        return (
            f"{text} {self.unit}".strip()
            if self.unit and self.unit != "x"
            else (text + ("x" if self.unit == "x" else ""))
        )

    def verdict(self) -> str:
        if not self.target:
            return ""
        return {True: "met", False: "MISSED", None: "n/a"}[self.ok]


@dataclass
class Section:
    key: str  # the --only name
    title: str
    measured: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None

    @property
    def rerun(self) -> str:
        return f"python -m tools.bench --only {self.key}"

    def add(self, *args: Any, **kwargs: Any) -> Figure:
        figure = Figure(*args, **kwargs)
        self.figures.append(figure)
        return figure


def check(value: float, *, at_most: float | None = None, at_least: float | None = None) -> bool | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if at_most is not None and value > at_most:
        return False
    return at_least is None or value >= at_least


def render(sections: list[Section], header: str) -> str:
    width_name = max([len(f.name) for s in sections for f in s.figures] + [40])
    width_value = max([len(f.shown_value()) for s in sections for f in s.figures] + [10])
    width_target = max([len(f.target) for s in sections for f in s.figures] + [8])
    lines = [header, ""]
    rule = "-" * (width_name + width_value + width_target + 14)
    lines.append(f"{'figure':<{width_name}}  {'value':>{width_value}}  {'target':<{width_target}}  result")
    lines.append(rule)
    for index, section in enumerate(sections, start=1):
        lines.append(f"[{index}] {section.title}  ({section.seconds:.0f}s; rerun: {section.rerun})")
        if section.error:
            lines.append(f"    ERROR: {section.error}")
        for figure in section.figures:
            lines.append(
                f"  {figure.name:<{width_name - 2}}  {figure.shown_value():>{width_value}}  "
                f"{figure.target:<{width_target}}  {figure.verdict()}"
            )
        lines.append("")
    lines.append("What each section measured:")
    for index, section in enumerate(sections, start=1):
        lines.append(f"[{index}] {section.measured}")
        for note in section.notes:
            lines.append(f"    - {note}")
    return "\n".join(lines)


def write_json(sections: list[Section], *, out_dir: Path, run: dict[str, Any], table: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    payload = {
        "run": {**run, "finished_at": dt.datetime.now(dt.UTC).isoformat(), "python": platform.python_version()},
        "sections": [
            {
                "key": s.key,
                "title": s.title,
                "measured": s.measured,
                "rerun": s.rerun,
                "seconds": round(s.seconds, 1),
                "error": s.error,
                "notes": s.notes,
                "figures": [
                    {**asdict(f), "value": _jsonable(f.value), "shown": f.shown_value(), "result": f.verdict()}
                    for f in s.figures
                ],
            }
            for s in sections
        ],
        "table": table,
    }
    text = json.dumps(_clean(payload), indent=2, default=_jsonable)
    path = out_dir / f"bench-{stamp}.json"
    path.write_text(text)
    (out_dir / "latest.json").write_text(text)
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return str(value)


def _clean(value: Any) -> Any:
    """NaN is not JSON: null instead, all the way down."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return _jsonable(value)
