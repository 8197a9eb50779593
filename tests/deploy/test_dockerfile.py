"""Static checks of the Dockerfile and .dockerignore (no Docker engine runs here)."""

from __future__ import annotations

import re
import subprocess
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from service.settings import Settings
from tests.deploy.conftest import ROOT
from tests.deploy.dockerfile import Dockerfile, Stage, ignore_rules, in_context, parse

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return parse(ROOT / "Dockerfile")


@pytest.fixture(scope="module")
def runtime(dockerfile: Dockerfile) -> Stage:
    return dockerfile.stage("runtime")


def context_files() -> list[str]:
    """Files of the repository (tracked, plus the model repository) as the build context."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    rules = ignore_rules(ROOT / ".dockerignore")
    return [f for f in out if (ROOT / f).is_file() and in_context(f, rules)]


def stage_sources(stage: Stage) -> list[str]:
    """Context paths a stage copies (COPY/ADD without --from)."""
    sources = []
    for inst in stage.all("COPY") + stage.all("ADD"):
        if "from" in inst.flags():
            continue
        sources.extend(inst.words()[:-1])
    return sources


def test_stages_and_default_target(dockerfile: Dockerfile) -> None:
    names = [s.name for s in dockerfile.stages]
    assert {"build", "train", "runtime"} <= set(names)
    # `docker build .` without --target builds the last stage: it must be the lean runtime.
    assert names[-1] == "runtime"
    assert dockerfile.stage("runtime").base == dockerfile.stage("build").base


def test_runtime_image_has_no_torch_training_tests_or_compilers(
    dockerfile: Dockerfile, runtime: Stage
) -> None:
    build = dockerfile.stage("build")
    for stage in (build, runtime):
        for inst in stage.all("RUN"):
            assert "torch" not in inst.args and "[train" not in inst.args, inst.args
            assert not re.search(r"\b(gcc|g\+\+|build-essential)\b", inst.args), inst.args
    # The runtime stage installs no system package; the build stage only binutils (`strip`),
    # which stays in the build stage.
    assert not any("apt-get" in i.args for i in runtime.all("RUN"))
    for inst in build.all("RUN"):
        for packages in re.findall(r"apt-get install ((?:--?[\w-]+ |[\w.+-]+ ?)+)", inst.args):
            assert [w for w in packages.split() if not w.startswith("-")] == ["binutils"], inst.args
        for src in stage_sources(stage):
            assert not src.rstrip("/").startswith(("training", "tests", "scripts")), src
    # The runtime stage takes only the build stage's venv (no sources, no pip).
    froms = {i.flags()["from"] for i in runtime.all("COPY") if "from" in i.flags()}
    assert froms == {"build"}
    installs = [i.args for i in build.all("RUN") if "pip install" in i.args]
    assert installs and all(re.search(r"pip install \.(\s|$)", a) for a in installs), installs


def test_runtime_dependencies_exclude_torch() -> None:
    """`pip install .` (no extras) pulls no torch: walk the installed requirement closure."""
    declared = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    seen: set[str] = set()
    todo = [r for r in declared if r.marker is None or r.marker.evaluate({"extra": ""})]
    while todo:
        req = todo.pop()
        name = req.name.lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        for extra in req.extras or {""}:
            for text in metadata.requires(req.name) or []:
                sub = Requirement(text)
                if sub.marker is None or sub.marker.evaluate({"extra": extra}):
                    todo.append(sub)
    assert "fastapi" in seen and "onnxruntime" in seen  # the walk did reach the runtime deps
    assert "torch" not in seen, sorted(seen)


def test_train_stage_installs_the_pinned_cpu_torch(dockerfile: Dockerfile) -> None:
    train = dockerfile.stage("train")
    pin = next(r for r in PYPROJECT["project"]["optional-dependencies"]["train"] if "torch" in r)
    runs = " ".join(i.args for i in train.all("RUN"))
    assert pin.replace(" ", "") in runs.replace(" ", ""), (pin, runs)
    args = {a.args.split("=", 1)[0]: a.args for a in train.all("ARG")}
    assert "--index-url" in runs and "/whl/cpu" in args["TORCH_INDEX_URL"]
    # Or a local directory with the CPU wheel (scripts/image.sh mounts one with podman); either
    # way the build fails unless the torch it installed is the CPU build.
    assert args["TORCH_WHEELS"] == "TORCH_WHEELS=" and "--find-links ${TORCH_WHEELS}" in runs
    assert "torch.version.cuda is None" in runs
    assert "'.[train]'" in runs
    assert {"service/", "training/"} <= set(stage_sources(train))


def test_runtime_runs_as_non_root(runtime: Stage) -> None:
    user = runtime.last("USER")
    assert user is not None, "runtime stage has no USER"
    name = user.args.split(":")[0]
    assert name not in ("root", "0")
    created = " ".join(i.args for i in runtime.all("RUN"))
    assert re.search(rf"useradd\b.*--uid {re.escape(name)}\b", created), created
    # USER comes after every RUN, so nothing in the image runs as root at run time.
    kinds = [i.keyword for i in runtime.instructions]
    assert kinds.index("USER") > max(i for i, k in enumerate(kinds) if k == "RUN")


def test_healthcheck_runs_the_shipped_script_against_readyz(runtime: Stage) -> None:
    health = runtime.last("HEALTHCHECK")
    assert health is not None
    m = re.search(r"CMD\s+(\[.*\])", health.args)
    assert m, health.args
    command = parse_exec(m.group(1))
    script = command[-1]
    # The script is copied into the image from the repository...
    copied = {i.words()[-1]: i.words()[0] for i in runtime.all("COPY") if "from" not in i.flags()}
    assert script in copied, (script, copied)
    source = ROOT / copied[script]
    assert source.is_file()
    # ...and asks /readyz (a test in test_entrypoint.py runs it against the real service).
    assert "/readyz" in source.read_text()
    for option in ("--interval", "--timeout", "--start-period", "--retries"):
        assert option in health.args


def parse_exec(text: str) -> list[str]:
    import json

    return [str(w) for w in json.loads(text)]


def test_entrypoint_is_the_shipped_script(runtime: Stage) -> None:
    entry = runtime.last("ENTRYPOINT")
    assert entry is not None and entry.args.startswith("["), "use the exec form"
    target = entry.words()[0]
    copied = {i.words()[-1]: i.words()[0] for i in runtime.all("COPY") if "from" not in i.flags()}
    assert copied.get(target) == "docker/entrypoint.sh"
    assert runtime.last("CMD") is None  # settings come from AESERVE_* variables


def test_port_and_settings_come_from_aeserve_variables(runtime: Stage) -> None:
    env = runtime.env()
    expose = runtime.last("EXPOSE")
    grpc = str(Settings.model_fields["grpc_port"].default)
    assert expose is not None and expose.args.split() == [env["AESERVE_PORT"], grpc]
    assert env["AESERVE_PORT"] == "8000" and grpc == "8001"
    assert env["AESERVE_HOST"] == "0.0.0.0"
    assert "AESERVE_WORKERS" in env
    fields = {f"AESERVE_{name.upper()}" for name in Settings.model_fields}
    unknown = {k for k in env if k.startswith("AESERVE_")} - fields
    assert not unknown, f"ENV sets variables the service does not read: {unknown}"
    # The model repository is copied to where AESERVE_MODEL_DIR points.
    copies = {i.words()[0].rstrip("/"): i.words()[-1].rstrip("/") for i in runtime.all("COPY")}
    assert copies.get("models") == env["AESERVE_MODEL_DIR"]


def test_every_copied_path_is_in_the_build_context(dockerfile: Dockerfile) -> None:
    files = context_files()
    for stage in dockerfile.stages:
        for src in stage_sources(stage):
            src = src.rstrip("/")
            if src == "models":  # may hold no committed file yet; it must not be ignored
                assert in_context("models/x/model.json", ignore_rules(ROOT / ".dockerignore"))
                continue
            assert (ROOT / src).exists(), f"{stage.name}: COPY {src}: no such path"
            assert any(f == src or f.startswith(src + "/") for f in files), (
                f"{stage.name}: COPY {src} is excluded by .dockerignore"
            )


def test_dockerignore_keeps_the_context_small() -> None:
    files = context_files()
    rules = ignore_rules(ROOT / ".dockerignore")
    for unwanted in (
        ".git/HEAD",
        ".venv/bin/python",
        "data/mnist/train-images-idx3-ubyte.gz",
        "tests/test_packaging.py",
        "service/__pycache__/app.cpython-311.pyc",
        "aeserve.egg-info/PKG-INFO",
        ".mypy_cache/x.json",
    ):
        assert not in_context(unwanted, rules), unwanted
    assert not any(f.startswith("tests/") for f in files)
    code = sum((ROOT / f).stat().st_size for f in files if not f.startswith("models/"))
    assert code < 2 * 1024 * 1024, f"build context without models/ is {code} bytes"


def test_dockerignore_matcher_follows_docker_rules(tmp_path: Path) -> None:
    ignore = tmp_path / ".dockerignore"
    ignore.write_text("*\n!service/\n**/__pycache__\n!keep/*.txt\n")
    rules = ignore_rules(ignore)
    assert in_context("service/http/app.py", rules)
    assert not in_context("service/__pycache__/app.pyc", rules)
    assert not in_context("tests/x.py", rules)
    assert in_context("keep/a.txt", rules) and not in_context("keep/a.bin", rules)
