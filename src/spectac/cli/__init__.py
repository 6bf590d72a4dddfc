"""The `spectac` command: one thin command per stage, each calling a plain, importable function.

Only this package prints to the terminal. Errors caused by the user's input (SpectacError) are
printed as one line and exit with code 2 (:mod:`spectac.cli.common`). The commands are the table
:data:`COMMANDS`: a new command is a function in one of the modules and a row here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import typer

from spectac.cli import data, methods, node, projections, scores
from spectac.cli.common import info, one_line, user_errors

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="spectac: attenuation-corrected myocardial perfusion SPECT without a CT.",
    pretty_exceptions_enable=False,
)

#: Every command by its name on the command line, in the order ``spectac --help`` lists them.
COMMANDS: dict[str, Callable[..., Any]] = {
    "simulate": data.simulate,
    "phantom": data.phantom_from_ct,
    "predict": methods.predict,
    "evaluate": scores.evaluate,
    "train": methods.train,
    "correct": methods.correct,
    "import": data.import_dicom,
    "export-dicom": data.export_dicom,
    "normals": scores.normals,
    "detect-lv": scores.detect_lv_report,
    "demo": data.demo,
    "quantify": scores.quantify_command,
    "reconstruct": projections.reconstruct_projections,
    "qc": projections.qc,
    "export-projections": projections.export_projections,
    "serve": node.serve,
    "export-model": methods.export_model,
    "import-model": methods.import_model,
}
for _name, _command in COMMANDS.items():
    app.command(_name)(_command)


def main() -> None:
    app()


__all__ = ["COMMANDS", "app", "info", "main", "one_line", "user_errors"]

if __name__ == "__main__":
    sys.exit(main())
