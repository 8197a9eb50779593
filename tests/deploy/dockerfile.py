"""A small Dockerfile parser for the static checks: stages, instructions, exec-form commands."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    args: str  # the rest of the logical line, continuations joined

    def flags(self) -> dict[str, str]:
        """``--name=value`` options before the arguments (COPY --from=..., --chmod=...)."""
        out = {}
        for word in shlex.split(self.args):
            if not word.startswith("--"):
                break
            name, _, value = word[2:].partition("=")
            out[name] = value
        return out

    def words(self) -> list[str]:
        """Arguments after the options: JSON exec form or shell words."""
        text = self.args.strip()
        if text.startswith("["):
            return [str(w) for w in json.loads(text)]
        return [w for w in shlex.split(text) if not w.startswith("--")]


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def env(self) -> dict[str, str]:
        """ENV key=value pairs of this stage (later ones win)."""
        out: dict[str, str] = {}
        for inst in self.all("ENV"):
            for word in shlex.split(inst.args):
                key, sep, value = word.partition("=")
                assert sep, f"use ENV key=value, got {inst.args!r}"
                out[key] = value
        return out


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"no stage {name!r}; stages: {[s.name for s in self.stages]}")


def logical_lines(text: str) -> list[str]:
    """Lines with comments dropped and backslash continuations joined."""
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not current):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        if current.strip():
            lines.append(current.strip())
        current = ""
    if current.strip():
        lines.append(current.strip())
    return lines


def parse(path: Path) -> Dockerfile:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical_lines(path.read_text()):
        keyword, _, args = line.partition(" ")
        inst = Instruction(keyword.upper(), args.strip())
        if inst.keyword == "FROM":
            m = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", inst.args, flags=re.IGNORECASE)
            assert m, f"cannot parse FROM {inst.args!r}"
            base = re.sub(r"\$\{(\w+)\}", lambda g: global_args.get(g.group(1), ""), m.group(1))
            stages.append(Stage(m.group(2) or str(len(stages)), base))
        elif not stages:
            assert inst.keyword == "ARG", f"only ARG may precede FROM, got {line!r}"
            name, _, default = inst.args.partition("=")
            global_args[name] = default
        else:
            stages[-1].instructions.append(inst)
    return Dockerfile(global_args, stages)


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's .dockerignore glob (Go filepath.Match plus ``**``) as a regex."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)


def ignore_rules(path: Path) -> list[tuple[bool, re.Pattern[str]]]:
    """(is_exception, pattern) for each rule of a .dockerignore, in order."""
    rules = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        pattern = line.lstrip("!").strip().strip("/")
        rules.append((exception, _pattern_regex(pattern)))
    return rules


def in_context(rel: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether a file (path relative to the context) reaches the build: the last rule that
    matches the path or one of its parent directories decides, as in Docker."""
    parts = rel.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    included = True
    for exception, regex in rules:
        if any(regex.fullmatch(c) for c in candidates):
            included = exception
    return included
