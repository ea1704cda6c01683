"""One visual identity per method (colour + marker + dash), the same in every chart and every report.

Why: with Plotly's 10-colour cycle assigned per chart, two methods shared a colour and one method
changed colour from chart to chart. Here a method's look is a function of its name alone:

- a **family** (a registered generator) takes the colour `COLOURS[i]` and the marker `MARKERS[i]`
  of its position `i` in registry order: `methods.FAMILIES`, then `adapters.ADAPTERS`, then
  entry-point plugins by name (`family_order`, read from those tables: nothing heavy is imported);
- its **samplers**, in the order of its card (`card.samplers`), vary the dash, open/filled markers
  and the shade, so `diffusion/ddim` and `diffusion/ddpm` are told apart on lines and on markers;
- names that are not registered (a user model's label, synthetic results) take the slots after
  the registered ones, in name order among the names being drawn.

Every registered (generator, sampler) gets a distinct identity (`tests/test_report.py` checks it
on the whole registry). Colours are Kelly's contrast set ordered for a white background.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

# Kelly's colours of maximum contrast (pale ones last), plus cyan; black is the 18th.
COLOURS = ("#0067a5", "#be0032", "#008856", "#f38400", "#875692", "#882d17", "#e68fac", "#17becf", "#8db600",
           "#604e97", "#f6a600", "#b3446c", "#654522", "#e25822", "#2b3d26", "#a1caf1", "#c2b280", "#222222",
           "#dcd300", "#f99379")
MARKERS = ("circle", "square", "diamond", "triangle-up", "triangle-down", "cross", "x", "star", "pentagon",
           "hexagon", "triangle-left", "star-diamond")
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
SHADES = (0.0, -0.35, 0.35)  # a sampler's shade: base, darker, lighter (fraction towards black / white)
DEFAULT_SAMPLER = "default"


@dataclass(frozen=True)
class Identity:
    """How one method looks: line colour, marker symbol (may end in "-open"), line dash."""

    colour: str
    marker: str
    dash: str

    def line(self, width: float = 2.0) -> dict:
        return {"color": self.colour, "dash": self.dash, "width": width}

    def marker_style(self, size: float = 8.0) -> dict:
        return {"color": self.colour, "symbol": self.marker, "size": size}


def _shade(colour: str, f: float) -> str:
    """`colour` moved a fraction |f| towards black (f < 0) or white (f > 0)."""
    rgb = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
    target = 255 if f > 0 else 0
    return "#" + "".join(f"{round(c + (target - c) * abs(f)):02x}" for c in rgb)


@functools.cache
def family_order() -> tuple[str, ...]:
    """Registered generator names in registry order (built-in families, adapters, then plugins by name)."""
    from scalebench.adapters import ADAPTERS
    from scalebench.methods import FAMILIES

    first = [f.id for f in FAMILIES] + list(ADAPTERS)
    try:
        from scalebench.generators import GENERATORS

        plugins = sorted(set(GENERATORS.names()) - set(first))
    except Exception:  # noqa: BLE001 — a broken entry point must not stop a report
        plugins = []
    return tuple(first + plugins)


@functools.cache
def sampler_order(generator: str) -> tuple[str, ...]:
    """The samplers of a registered generator in its card's order; () when it has no loadable card.

    Reads the card (importing the family's module), once per process; the report has loaded the
    cards already to build the table."""
    if generator not in family_order():
        return ()
    try:
        from scalebench.generators import GENERATORS

        return tuple(getattr(GENERATORS.get(generator).card, "samplers", ()) or ())
    except (Exception, SystemExit):  # noqa: BLE001 — an uninstalled or broken plugin keeps a fallback look
        return ()


def _style(family: int, sampler: int) -> Identity:
    wrap = family // len(COLOURS)  # past 20 families the marker shifts, so (colour, marker) stays unique
    colour = _shade(COLOURS[family % len(COLOURS)], SHADES[(sampler // 2) % len(SHADES)])
    marker = MARKERS[(family + wrap) % len(MARKERS)] + ("-open" if sampler % 2 else "")
    return Identity(colour, marker, DASHES[sampler % len(DASHES)])


def sampler_key(sampler: object) -> str:
    """The sampler as records and tables name it ("default" when missing)."""
    return DEFAULT_SAMPLER if sampler is None or (isinstance(sampler, float) and pd.isna(sampler)) \
        or sampler == "" else str(sampler)


def identities(pairs: Iterable[tuple[object, object]]) -> dict[tuple[str, str], Identity]:
    """(generator, sampler) → Identity for every pair given; registered ones never depend on the others."""
    keys = sorted({(str(g), sampler_key(s)) for g, s in pairs})
    order = family_order()
    unknown = sorted({g for g, _ in keys if g not in order})
    out = {}
    for g, s in keys:
        fam = order.index(g) if g in order else len(order) + unknown.index(g)
        known = sampler_order(g)
        if s in known:
            j = known.index(s)
        elif s == DEFAULT_SAMPLER:
            j = 0
        else:  # a sampler the card does not list: after the card's, in name order
            extra = sorted({t for h, t in keys if h == g and t not in known and t != DEFAULT_SAMPLER})
            j = len(known) + extra.index(s)
        out[(g, s)] = _style(fam, j)
    return out


def frame_identities(df: pd.DataFrame) -> dict[tuple[str, str], Identity]:
    """Identities of every (generator, sampler) in a tidy results frame (the same for all its charts)."""
    if df.empty or "generator" not in df.columns:
        return {}
    rows = df[df["generator"].notna()]
    return identities(zip(rows["generator"], rows["sampler"] if "sampler" in rows.columns else [None] * len(rows),
                          strict=True))
