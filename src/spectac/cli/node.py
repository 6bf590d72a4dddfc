"""``spectac serve``: run spectac as a DICOM node (see docs/serve.md)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import typer

from spectac.cli.common import info, user_errors


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@user_errors
def serve(
    config: Path = typer.Option(..., "--config", "-c", help="The node's TOML configuration (docs/serve.md has an example)."),
) -> None:
    """Run a DICOM node: receive NC series (C-STORE), correct each complete series with the default network, send the AC series to the configured destinations, then the study report.

    Jobs survive a restart (unfinished ones are resumed); every finished step of a job (correction, report) adds a line to audit.jsonl in the work folder. Stop with Ctrl-C or SIGTERM (each worker finishes the step it is running first).
    """
    from spectac.node.config import load_config
    from spectac.node.server import Server, quiet_pynetdicom

    settings = load_config(config)
    quiet_pynetdicom()
    signal.signal(signal.SIGTERM, _interrupt)
    Server(settings, log=info).serve_forever()
