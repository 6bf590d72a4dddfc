"""What every command shares: printing (literally, errors as one bounded line), turning bad input
into exit code 2, and the help texts read from the method and network tables."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.text import Text

from spectac.correction.methods import METHODS
from spectac.errors import SpectacError
from spectac.nn.registry import REGISTRY

console = Console(stderr=True)


# ---- help texts read from the tables (torch-free: `spectac --help` loads no network) -----------

#: "nc, chang, chang-iterative, unet-gan3d, ...": every correction method.
METHOD_NAMES = ", ".join(METHODS)
#: Every registered network.
MODEL_NAMES = ", ".join(REGISTRY)


def _network_options_help() -> str:
    """The network options of every model, models with the same options together."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for name, spec in REGISTRY.items():
        groups.setdefault(tuple(spec.defaults), []).append(name)
    return "; ".join(f"{', '.join(names)}: {', '.join(options)}" for options, names in groups.items())


def _models_with(option: str) -> str:
    return ", ".join(name for name, spec in REGISTRY.items() if option in spec.defaults) or "none"


NETWORK_OPTIONS_HELP = _network_options_help()
MODELS_WITH_CHANNELS = _models_with("channels")


#: The longest error line printed; the rest is cut to "...".
MAX_ERROR_CHARS = 500


def one_line(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """``text`` as one printable line of at most ``limit`` characters.

    Newlines and other whitespace collapse to single spaces; other non-printable characters (raw
    bytes of a damaged DICOM value, undecodable file names) are shown as escapes such as \\x00.
    """
    flat = " ".join(str(text).split())
    printable = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in flat)
    return printable if len(printable) <= limit else printable[: limit - 3] + "..."


def print_error(message: str) -> None:
    """The one error line: a bold "error:" and the message, printed literally (never as markup)."""
    console.print(Text.assemble(("error:", "bold red"), " ", one_line(message)), highlight=False, soft_wrap=True)


def _os_error_message(exc: OSError) -> str:
    """An OSError of a command (an unwritable output, a full disk) as "<path>: cannot write (...)"."""
    path = exc.filename2 if exc.filename2 is not None else exc.filename
    reason = exc.strerror or exc.__class__.__name__
    if isinstance(exc, FileNotFoundError) and path is not None and Path(str(path)).parent.is_dir():
        return f"{path}: {reason}"  # a missing input, not an output that cannot be made
    return f"{path}: cannot write ({reason})" if path is not None else f"cannot write ({reason})"


def user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a SpectacError (bad input) into one clear line on stderr and exit code 2.

    An OSError escaping a command (an output that cannot be written: no permission, a parent that
    is a file, a full disk) is reported the same way, as the last line of defence behind the
    up-front checks of :func:`spectac.io.paths.ensure_writable_parent`.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SpectacError as exc:
            print_error(str(exc))
            raise typer.Exit(code=2) from None
        except OSError as exc:
            print_error(_os_error_message(exc))
            raise typer.Exit(code=2) from None
        except KeyboardInterrupt:
            console.print("[bold red]interrupted[/]: finished outputs are kept; run again to resume")
            raise typer.Exit(code=130) from None

    return wrapper


def info(message: str) -> None:
    """Print a message literally: paths and DICOM values may hold [brackets] or :colons:."""
    console.print(Text(str(message)), highlight=False, soft_wrap=True)


def _parse_settings(settings: list[str], flag: str = "--set", lists: bool = False) -> dict[str, Any]:
    """--set key=value pairs; values parsed as JSON when they can be (numbers, true/false, null,
    [lists]); with ``lists`` also comma-separated JSON values as a list (8,16,32 -> [8, 16, 32])."""
    import json

    options: dict[str, Any] = {}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SpectacError(f"{flag} expects key=value, got {item!r}")
        key = key.replace("-", "_")
        if key in options:
            raise SpectacError(f"{flag} {key} given twice")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
            if lists and "," in value:
                try:
                    options[key] = [json.loads(part) for part in value.split(",")]
                except json.JSONDecodeError:
                    pass
    return options
