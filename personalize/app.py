"""``personalize app``: open the Streamlit demo that ships with the package.

The app's files (``Home.py``, ``pages/``, ``showcase.py``) live in the repository's ``apps/`` folder;
a built wheel carries them as ``personalize/_app`` (with the benchmark reports its Benchmarks page
shows as ``personalize/docs``), so an installed package opens the same app. Streamlit is the ``app``
extra: without it the command refuses in one line that names ``pip install personalize[app]``.

>>> home_path().name, home_path().is_file()
('Home.py', True)
>>> streamlit_command(port=8502, headless=True)[1:4]
['-m', 'streamlit', 'run']
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from personalize.errors import require
from personalize.extras import is_installed, missing_message

PACKAGED_APP = Path(__file__).resolve().parent / "_app"
CHECKOUT_APP = Path(__file__).resolve().parents[1] / "apps"


def home_path() -> Path:
    """The app's entry page: the wheel's ``personalize/_app/Home.py``, else a checkout's ``apps/Home.py``."""
    for folder in (PACKAGED_APP, CHECKOUT_APP):
        if (folder / "Home.py").is_file():
            return folder / "Home.py"
    raise FileNotFoundError(f"the demo app is missing from this install (looked in {PACKAGED_APP} and "
                            f"{CHECKOUT_APP}); reinstall personalize")


def streamlit_command(port: int | None = None, address: str | None = None, headless: bool = False) -> list[str]:
    """The ``python -m streamlit run .../Home.py ...`` command line that serves the app."""
    require(port is None or (isinstance(port, int) and 0 < port < 65536), f"--port must be 1-65535, got {port!r}")
    command = [sys.executable, "-m", "streamlit", "run", str(home_path()), "--browser.gatherUsageStats", "false"]
    if port is not None:
        command += ["--server.port", str(port)]
    if address is not None:
        command += ["--server.address", address]
    if headless:
        command += ["--server.headless", "true"]
    return command


def run_app(port: int | None = None, address: str | None = None, headless: bool = False) -> int:
    """Serve the app until interrupted; returns Streamlit's exit status.

    Raises MissingDependencyError (one line, naming ``pip install personalize[app]``) without streamlit.
    """
    from personalize.errors import MissingDependencyError

    if not is_installed("streamlit"):
        raise MissingDependencyError(missing_message("streamlit", extra="app", feature="personalize app"))
    command = streamlit_command(port=port, address=address, headless=headless)
    process = subprocess.Popen(command)
    try:
        return process.wait()
    except KeyboardInterrupt:  # Ctrl-C reaches streamlit too; let it shut down cleanly
        return process.wait()


__all__ = ["home_path", "run_app", "streamlit_command"]
