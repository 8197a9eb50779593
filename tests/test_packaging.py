"""Standing rules that span the project."""

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_service_does_not_import_torch() -> None:
    # Every module of every layer, the express transport and the entry point included.
    code = (
        "import sys, pkgutil, importlib, service\n"
        "for m in pkgutil.walk_packages(service.__path__, 'service.'):\n"
        "    importlib.import_module(m.name)\n"
        "assert 'service.http.express' in sys.modules and 'service.__main__' in sys.modules\n"
        "assert 'torch' not in sys.modules, 'service imported torch'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_wheel_ships_the_web_app(tmp_path: Path) -> None:
    """`pip install .` gets the web app and the vendored docs assets (package data)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
    )
    (wheel,) = tmp_path.glob("aeserve-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    web = REPO / "service" / "web"
    expected = {
        f"service/web/{p.relative_to(web).as_posix()}" for p in web.rglob("*") if p.is_file()
    }
    assert expected and expected <= names, sorted(expected - names)
