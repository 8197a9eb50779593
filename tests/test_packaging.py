"""Standing rules that span the project."""

import subprocess
import sys


def test_service_does_not_import_torch() -> None:
    code = "import sys, service, service.manifest; assert 'torch' not in sys.modules, 'torch loaded'"
    subprocess.run([sys.executable, "-c", code], check=True)
