#!/usr/bin/env bash
# The study report of `spectac correct --report` on a simulated study, as a browser and a PDF viewer
# show it: docs/images/report_html.png (headless Chromium screenshot of the HTML page) and
# docs/images/report_pdf.png (the PDF page rendered by pdftoppm from poppler-utils), each reduced
# to a 256-colour PNG under 300 KB. Run from the repository root:
#   bash scripts/screenshot_report.sh [WORK_FOLDER]
# Needs: chromium (Debian: apt-get install chromium) and pdftoppm (apt-get install poppler-utils);
# without one of them that image is skipped with a message. PY: the python with spectac installed.
set -eu
PY=${PY:-python}
work=${1:-$(mktemp -d)}
images=docs/images
mkdir -p "$work" "$images"
export SPECTAC_PROGRESS=0

# A simulated patient with a perfusion defect (seed 11, patient P001: RCA ischaemia), exported as a
# clinic's DICOM, so the report names a patient and takes the sex from PatientSex.
[ -d "$work/data" ] || "$PY" -m spectac.cli simulate -o "$work/data" --patients 2 --seed 11 --defect-probability 1 --workers 1
[ -d "$work/export" ] || "$PY" -m spectac.cli export-dicom --data "$work/data" --out "$work/export"
rm -rf "$work/ac" "$work/ac.report.html" "$work/ac.report.pdf"
"$PY" -m spectac.cli correct "$work/export/nc/P001_stress" -o "$work/ac" --report --state stress

shrink() {  # a PNG to 256 colours, at most $2 pixels wide
  "$PY" - "$1" "$2" <<'EOF'
import sys
from PIL import Image
path, width = sys.argv[1], int(sys.argv[2])
image = Image.open(path).convert("RGB")
if image.width > width:
    image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
image.quantize(256, method=Image.Quantize.FASTOCTREE).save(path, optimize=True)
EOF
}

if command -v chromium >/dev/null 2>&1; then
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1200,1640 \
    --screenshot="$PWD/$images/report_html.png" "file://$(cd "$work" && pwd)/ac.report.html" 2>/dev/null
  shrink "$images/report_html.png" 1200
else
  echo "chromium not found: no screenshot of the HTML report (apt-get install chromium)"
fi
if command -v pdftoppm >/dev/null 2>&1; then
  pdftoppm -r 110 -png -singlefile "$work/ac.report.pdf" "$images/report_pdf"
  shrink "$images/report_pdf.png" 1286
else
  echo "pdftoppm not found: no image of the PDF report (apt-get install poppler-utils)"
fi
ls -l "$images"/report_*.png
