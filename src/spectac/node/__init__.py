"""``spectac serve``: spectac as a DICOM node (docs/serve.md).

A C-STORE SCP receives NC series from a PACS or router, each complete series becomes a job in a
persistent queue, a worker corrects it with the default network and sends the AC series back with
C-STORE, and an audit log records every job. Modules: :mod:`.config` (the TOML configuration),
:mod:`.server` (receiving, completing series, the threads), :mod:`.worker` (one job),
:mod:`.scu` (sending). The files are :mod:`spectac.io.node_store`'s.
"""
