#!/usr/bin/env bash
# Run the test suite. dciodvfy (Debian dicom3tools) validates the DICOM spectac writes and Orthanc
# (Debian orthanc) is the PACS spectac serve is tested against; they are installed here when missing
# and we are allowed to (root), otherwise those checks are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
if { ! command -v dciodvfy >/dev/null 2>&1 || ! command -v Orthanc >/dev/null 2>&1; } \
    && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dicom3tools orthanc) >/dev/null 2>&1 \
        || echo "note: could not install dicom3tools and orthanc; dciodvfy and spectac serve checks will be skipped"
fi
. .venv/bin/activate
python -m pytest "$@"
