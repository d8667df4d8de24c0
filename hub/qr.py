"""QR codes as inline SVG (black on white, quiet zone included): printed tickets, enrolment links."""
from __future__ import annotations

import segno


def svg(text: str) -> str:
    """`text` (a URL) as an SVG QR code, crisp at any scale, labelled for screen readers."""
    qr = segno.make(text, error="m")
    out = qr.svg_inline(scale=1, border=4, dark="#000", light="#fff", omitsize=True, svgclass="qr", lineclass="qr-line")
    return str(out).replace("<svg ", '<svg shape-rendering="crispEdges" role="img" aria-label="QR" ', 1)
