"""Standing rules that span the project."""

import subprocess
import sys


def test_service_does_not_import_torch() -> None:
    code = (
        "import sys, service, service.app, service.manifest\n"
        "assert 'torch' not in sys.modules, 'service imported torch'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
