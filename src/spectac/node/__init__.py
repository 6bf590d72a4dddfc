"""``spectac serve``: spectac as a DICOM node (docs/serve.md).

A C-STORE SCP receives NC series from a PACS or router, each complete series becomes a job in a
persistent queue, worker processes correct it with the default network and send the AC series back
with C-STORE, then the study report, and an audit log records every step. Modules: :mod:`.config`
(the TOML configuration), :mod:`.server` (receiving, completing series), :mod:`.pool` (the worker
processes), :mod:`.worker` (one job's steps), :mod:`.scu` (sending). The files are
:mod:`spectac.io.node_store`'s.
"""
