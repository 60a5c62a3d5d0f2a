#!/usr/bin/env python3
"""Logins per second against concurrent clients, from the CSV `apppw-bench --csv` writes.

    bench/plot.py THROUGHPUT.csv OUT.svg [TITLE]

Writes a small self-contained SVG (no plotting library needed): one line per passdb of the
throughput table, the x axis logarithmic in the number of clients, and the ideal
`cores x 1/(warm verify)` as a dashed line. `bench/run.sh --plot OUT.svg` runs it.
"""

import csv
import math
import sys
from xml.sax.saxutils import escape

# Which rows to draw, in this order, with their colours and the names in the legend.
SERIES = [
    ("passdb pam + pam_apppw.so", "#1b6ca8", "apppw, passdb pam (gate on)"),
    ("passdb pam + pam_apppw.so, no gate (max_concurrent = 0)", "#7fb2d9", "apppw, passdb pam, no gate"),
    ("checkpassword + apppw-checkpassword", "#c0392b", "apppw, checkpassword (gate on)"),
    ("passwd-file {ARGON2ID}", "#555555", "Dovecot passwd-file {ARGON2ID}"),
]

W, H = 720, 420
LEFT, RIGHT, TOP, BOTTOM = 64, 250, 36, 52


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    rows = list(csv.DictReader(open(sys.argv[1], newline="")))
    title = sys.argv[3] if len(sys.argv) > 3 else "Logins per second through a Dovecot auth socket"
    data = {}
    ideal = None
    for r in rows:
        rate = float(r["logins_per_second"])
        if r["what"] == "ideal":
            ideal = rate
            continue
        data.setdefault(r["what"], []).append((int(r["clients"]), rate))
    drawn = [(name, colour, label, sorted(data[name])) for name, colour, label in SERIES if name in data]
    if not drawn:
        sys.exit("plot.py: no throughput rows to draw")
    clients = sorted({c for *_, pts in drawn for c, _ in pts})
    ymax = max([r for *_, pts in drawn for _, r in pts] + ([ideal] if ideal else []))
    ymax = nice_ceiling(ymax * 1.08)
    xmin, xmax = math.log2(min(clients)), math.log2(max(clients))
    span = (xmax - xmin) or 1.0

    def x(c):
        return LEFT + (math.log2(c) - xmin) / span * (W - LEFT - RIGHT)

    def y(v):
        return TOP + (1 - v / ymax) * (H - TOP - BOTTOM)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{W / 2 - RIGHT / 2:.0f}" y="20" text-anchor="middle" font-size="14">{escape(title)}</text>',
    ]
    for i in range(6):
        v = ymax * i / 5
        out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#e4e4e4"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
    for c in clients:
        out.append(f'<line x1="{x(c):.1f}" x2="{x(c):.1f}" y1="{TOP}" y2="{H - BOTTOM}" stroke="#f0f0f0"/>')
        out.append(f'<text x="{x(c):.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">{c}</text>')
    out.append(f'<text x="{(LEFT + W - RIGHT) / 2:.0f}" y="{H - 14}" text-anchor="middle">concurrent clients</text>')
    out.append(
        f'<text transform="translate(16 {(TOP + H - BOTTOM) / 2:.0f}) rotate(-90)" text-anchor="middle">logins/s</text>'
    )
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{W - LEFT - RIGHT}" height="{H - TOP - BOTTOM}" fill="none" stroke="#999"/>')
    legend = []
    if ideal:
        out.append(
            f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y(ideal):.1f}" y2="{y(ideal):.1f}" '
            'stroke="#2e8b57" stroke-dasharray="6 4"/>'
        )
        legend.append(("#2e8b57", f"cores × 1/(warm verify): {ideal:.0f}/s", True))
    for _, colour, label, pts in drawn:
        path = " ".join(f"{x(c):.1f},{y(r):.1f}" for c, r in pts)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for c, r in pts:
            out.append(f'<circle cx="{x(c):.1f}" cy="{y(r):.1f}" r="3" fill="{colour}"/>')
        legend.append((colour, label, False))
    for i, (colour, label, dashed) in enumerate(legend):
        ly = TOP + 10 + i * 20
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        out.append(f'<line x1="{W - RIGHT + 14}" x2="{W - RIGHT + 38}" y1="{ly}" y2="{ly}" stroke="{colour}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{W - RIGHT + 44}" y="{ly + 4}">{escape(label)}</text>')
    out.append("</svg>")
    with open(sys.argv[2], "w") as f:
        f.write("\n".join(out) + "\n")


def nice_ceiling(v):
    """The next of 1, 2, 2.5, 5 × 10^k at or above v."""
    if v <= 0:
        return 1.0
    k = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if m * k >= v:
            return m * k
    return 10 * k


if __name__ == "__main__":
    main()
