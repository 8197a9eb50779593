"""Standing rules that span the project."""

import subprocess
import sys


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
