"""The configuration of ``spectac serve``: a TOML file (docs/serve.md has an example).

Only what a node needs: who it is (AE title, bind address, port), whom it accepts (calling AE
titles), where results go (destinations), where it keeps its files (the work folder), when a series
counts as complete (seconds without a new instance), how to correct (method, weights, how many
worker processes), how to retry a send, and the report (on or off; the stress state of its normal limits). Every value is
checked here, so a bad file fails at start in one line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spectac.correction import DEFAULT_METHOD
from spectac.devices import check_device_name
from spectac.io.node_store import read_toml
from spectac.volume import SpectacError

#: The ``state`` setting: from the series' header (:func:`spectac.io.dicom.series_state`), or fixed.
STATE_CHOICES = ("auto", "stress", "rest")
#: Back-off before each retry of a failed send, in seconds (3 tries in all).
DEFAULT_RETRY_DELAYS = (2.0, 4.0)
#: Worker processes: on 2 cores, two workers with one PyTorch thread each correct a queue much
#: faster than one worker with two threads (benchmarks/bench_serve_workers.py; docs/serve.md).
DEFAULT_WORKERS = 2


@dataclass(frozen=True)
class Destination:
    """A DICOM node the corrected series is sent to (C-STORE)."""

    ae_title: str
    host: str
    port: int
    tls: bool = False

    def label(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


@dataclass(frozen=True)
class TlsConfig:
    """TLS of the listening port (cert and key, PEM) and the CA that destinations' certificates
    are checked against (None: the system's). Off unless ``cert`` is given."""

    cert: Path | None = None
    key: Path | None = None
    ca: Path | None = None


@dataclass(frozen=True)
class ServeConfig:
    ae_title: str
    port: int
    work: Path
    bind: str = "127.0.0.1"
    allowed_calling: tuple[str, ...] = ()
    destinations: tuple[Destination, ...] = ()
    complete_after: float = 5.0
    method: str = DEFAULT_METHOD
    weights: Path | None = None
    device: str = "cpu"  # where the network runs: a --device value (spectac.devices)
    retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS
    worker_paused: bool = False
    workers: int = DEFAULT_WORKERS  # worker processes (each loads the network once)
    tls: TlsConfig = field(default_factory=TlsConfig)
    report: bool = True  # send a study report (Encapsulated PDF and scores SR) with each corrected series
    state: str = "auto"  # the stress state of the report's normal limits: auto (from the series), stress, rest


def _ae_title(value: Any, where: str) -> str:
    text = str(value).strip()
    if not text or len(text) > 16 or not text.isascii() or "\\" in text:
        raise SpectacError(f"{where}: an AE title is 1-16 ASCII characters, not {value!r}")
    return text


def _port(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 65536:
        raise SpectacError(f"{where}: a port is a whole number 1-65535, not {value!r}")
    return value


def _path(value: Any, base: Path) -> Path:
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else base / path


def config_from_dict(raw: dict[str, Any], base: Path = Path(".")) -> ServeConfig:
    """Check and convert a parsed configuration; relative paths are relative to ``base``.

    Raises:
        SpectacError: a missing or invalid value, or an unknown key (a typo must not be ignored).
    """
    known = {"ae_title", "port", "bind", "work", "allowed_calling", "destinations", "complete_after",
             "method", "weights", "device", "retry_delays", "worker_paused", "workers", "tls", "report", "state"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise SpectacError(f"serve config: unknown setting(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    for key in ("ae_title", "port", "work"):
        if key not in raw:
            raise SpectacError(f"serve config: {key} is required")
    destinations = []
    for k, item in enumerate(raw.get("destinations", [])):
        where = f"serve config: destinations[{k}]"
        if not isinstance(item, dict) or not {"ae_title", "host", "port"} <= set(item):
            raise SpectacError(f"{where}: needs ae_title, host and port")
        destinations.append(Destination(_ae_title(item["ae_title"], where), str(item["host"]),
                                        _port(item["port"], where), bool(item.get("tls", False))))
    complete_after = raw.get("complete_after", 5.0)
    if not isinstance(complete_after, int | float) or complete_after <= 0:
        raise SpectacError(f"serve config: complete_after is seconds > 0, not {complete_after!r}")
    delays = raw.get("retry_delays", list(DEFAULT_RETRY_DELAYS))
    if not isinstance(delays, list) or not all(isinstance(d, int | float) and d >= 0 for d in delays):
        raise SpectacError(f"serve config: retry_delays is a list of seconds >= 0, not {delays!r}")
    workers = raw.get("workers", DEFAULT_WORKERS)
    if not isinstance(workers, int) or isinstance(workers, bool) or not 1 <= workers <= 64:
        raise SpectacError(f"serve config: workers is a whole number 1-64, not {workers!r}")
    tls_raw = raw.get("tls", {})
    if not isinstance(tls_raw, dict) or set(tls_raw) - {"cert", "key", "ca"}:
        raise SpectacError("serve config: [tls] takes cert, key and ca (paths)")
    if ("cert" in tls_raw) != ("key" in tls_raw):
        raise SpectacError("serve config: [tls] needs both cert and key")
    tls = TlsConfig(*(_path(tls_raw[k], base) if k in tls_raw else None for k in ("cert", "key", "ca")))
    report = raw.get("report", True)
    if not isinstance(report, bool):
        raise SpectacError(f"serve config: report is true or false, not {report!r}")
    state = raw.get("state", "auto")
    if state not in STATE_CHOICES:
        raise SpectacError(f"serve config: state is {', '.join(STATE_CHOICES)}, not {state!r}")
    return ServeConfig(
        ae_title=_ae_title(raw["ae_title"], "serve config: ae_title"),
        port=_port(raw["port"], "serve config: port"),
        work=_path(raw["work"], base),
        bind=str(raw.get("bind", "127.0.0.1")),
        allowed_calling=tuple(_ae_title(a, "serve config: allowed_calling") for a in raw.get("allowed_calling", [])),
        destinations=tuple(destinations),
        complete_after=float(complete_after),
        method=str(raw.get("method", DEFAULT_METHOD)),
        weights=_path(raw["weights"], base) if "weights" in raw else None,
        device=check_device_name(raw.get("device", "cpu")),
        retry_delays=tuple(float(d) for d in delays),
        worker_paused=bool(raw.get("worker_paused", False)),
        workers=workers,
        tls=tls,
        report=report,
        state=state,
    )


def load_config(path: str | Path) -> ServeConfig:
    """Read and check a TOML configuration; relative paths in it are relative to its folder."""
    path = Path(path)
    return config_from_dict(read_toml(path), path.resolve().parent)
