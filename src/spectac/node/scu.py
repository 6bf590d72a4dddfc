"""Sending a series on: one C-STORE association per destination (pynetdicom)."""

from __future__ import annotations

import ssl
from typing import Any

from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE

from spectac.node.config import Destination, ServeConfig
from spectac.volume import SpectacError

#: Status values of a C-STORE that mean the instance was stored (success; warnings B000, B007, B006).
STORED = {0x0000, 0xB000, 0xB006, 0xB007}


def client_tls(config: ServeConfig, destination: Destination) -> tuple[ssl.SSLContext, str] | None:
    """pynetdicom's ``tls_args`` for a destination that wants TLS (None: plain TCP)."""
    if not destination.tls:
        return None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH,
                                         cafile=str(config.tls.ca) if config.tls.ca else None)
    if config.tls.cert is not None and config.tls.key is not None:
        context.load_cert_chain(str(config.tls.cert), str(config.tls.key))
    return context, destination.host


def send_series(config: ServeConfig, destination: Destination, datasets: list[Any], timeout: float = 30.0) -> None:
    """C-STORE every dataset to ``destination`` in one association.

    Raises:
        SpectacError: the association is refused or lost, or an instance is not stored.
    """
    ae = AE(ae_title=config.ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    for sop_class in sorted({str(ds.SOPClassUID) for ds in datasets}):
        syntaxes = sorted({str(ds.file_meta.TransferSyntaxUID) for ds in datasets if str(ds.SOPClassUID) == sop_class})
        ae.add_requested_context(sop_class, [*syntaxes, *{ExplicitVRLittleEndian, ImplicitVRLittleEndian} - set(syntaxes)])
    assoc = ae.associate(destination.host, destination.port, ae_title=destination.ae_title,
                         tls_args=client_tls(config, destination))
    if not assoc.is_established:
        raise SpectacError(f"{destination.label()}: association refused or unreachable")
    try:
        for ds in datasets:
            status = assoc.send_c_store(ds)
            code = getattr(status, "Status", None)
            if code not in STORED:
                raise SpectacError(f"{destination.label()}: C-STORE of {ds.SOPInstanceUID} failed "
                                   f"(status {'none' if code is None else hex(code)})")
    finally:
        if assoc.is_established:
            assoc.release()
