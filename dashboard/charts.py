"""Charts drawn on the server as inline SVG: no JavaScript, no CDN, works offline.

Every mark carries `data-label` and `data-value`, so the numbers drawn can be read back.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

PALETTE = ("#635bff", "#0e7c3a", "#b42318", "#8a4b00", "#0b6bcb", "#6b7280")
STATUS_COLOURS = {"created": "#6b7280", "pending": "#8a4b00", "paid": "#0e7c3a", "failed": "#b42318"}


def _f(value: float) -> str:
    return f"{value:.1f}"


def _num(value: Decimal | int) -> str:
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def column_chart(
    points: Sequence[tuple[str, Decimal | int]], *, title: str, colour: str = PALETTE[0], width: int = 640,
    height: int = 200, axis_labels_every: int = 7, value_suffix: str = "",
) -> SafeString:
    """Vertical bars, one per point (e.g. one per day), with the maximum marked on the axis."""
    pad_left, pad_bottom, pad_top = 84, 24, 10
    plot_w, plot_h = width - pad_left - 8, height - pad_bottom - pad_top
    top = max((v for _, v in points), default=0) or 1
    step = plot_w / max(len(points), 1)
    bar_w = max(step * 0.7, 1)
    parts = [
        format_html('<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" aria-label="{}" '
                    'viewBox="0 0 {} {}" width="100%" preserveAspectRatio="xMinYMin meet">', title, width, height),
        format_html("<title>{}</title>", title),
        format_html('<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#d0d5dd"/>', pad_left, pad_top + plot_h,
                    width - 8, pad_top + plot_h),
        format_html('<text x="{}" y="{}" font-size="11" text-anchor="end" fill="#697386">{}{}</text>',
                    pad_left - 6, pad_top + 10, _num(top), value_suffix),
        format_html('<text x="{}" y="{}" font-size="11" text-anchor="end" fill="#697386">0</text>',
                    pad_left - 6, pad_top + plot_h),
    ]
    for i, (label, value) in enumerate(points):
        h = float(value) / float(top) * plot_h if value else 0
        x = pad_left + i * step + (step - bar_w) / 2
        parts.append(format_html(
            '<rect class="bar" x="{}" y="{}" width="{}" height="{}" fill="{}" '
            'data-label="{}" data-value="{}"><title>{}: {}{}</title></rect>',
            _f(x), _f(pad_top + plot_h - h), _f(bar_w), _f(h), colour, label, _num(value), label, _num(value), value_suffix))
        last = len(points) - 1
        # Every n-th day is labelled, and the last one unless it would collide with the one before.
        if (i % axis_labels_every == 0 and last - i >= axis_labels_every // 2) or i == last:
            anchor, tx = ("end", x + bar_w) if i == last else ("middle", x + bar_w / 2)
            parts.append(format_html('<text x="{}" y="{}" font-size="10" text-anchor="{}" fill="#697386">'
                                     '{}</text>', _f(tx), height - 6, anchor, label))
    parts.append(mark_safe("</svg>"))  # noqa: S308 - a constant closing tag
    return mark_safe("".join(parts))  # noqa: S308 - every part above is escaped by format_html


def bar_chart(
    items: Sequence[tuple[str, Decimal | int]], *, title: str, colours: dict[str, str] | None = None,
    width: int = 420, row_height: int = 26, value_suffix: str = "",
) -> SafeString:
    """Horizontal bars, one row per item, with its value written after the bar."""
    label_w, value_w = 130, 60
    plot_w = width - label_w - value_w
    height = max(len(items), 1) * row_height + 8
    top = max((v for _, v in items), default=0) or 1
    parts = [
        format_html('<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" aria-label="{}" '
                    'viewBox="0 0 {} {}" width="100%" preserveAspectRatio="xMinYMin meet">', title, width, height),
        format_html("<title>{}</title>", title),
    ]
    if not items:
        parts.append(format_html('<text x="4" y="18" font-size="12" fill="#697386">{}</text>', "No data yet"))
    for i, (label, value) in enumerate(items):
        y = 4 + i * row_height
        w = float(value) / float(top) * plot_w if value else 0
        colour = (colours or {}).get(label, PALETTE[i % len(PALETTE)])
        parts.append(format_html(
            '<text x="{}" y="{}" font-size="12" text-anchor="end" fill="#1a1f36">{}</text>'
            '<rect class="bar" x="{}" y="{}" width="{}" height="{}" rx="3" fill="{}" '
            'data-label="{}" data-value="{}"><title>{}: {}{}</title></rect>'
            '<text x="{}" y="{}" font-size="12" fill="#697386">{}{}</text>',
            label_w - 8, _f(y + row_height * 0.65), label,
            label_w, y + 3, _f(w), row_height - 8, colour, label, _num(value), label, _num(value), value_suffix,
            _f(label_w + w + 6), _f(y + row_height * 0.65), _num(value), value_suffix))
    parts.append(mark_safe("</svg>"))  # noqa: S308
    return mark_safe("".join(parts))  # noqa: S308


def gauge(percent: Decimal, *, title: str, width: int = 420) -> SafeString:
    """One bar filled to a percentage (the conversion rate)."""
    plot_w = width - 8
    w = float(min(max(percent, Decimal("0")), Decimal("100"))) / 100 * plot_w
    return mark_safe(  # noqa: S308 - escaped by format_html
        format_html(
            '<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" aria-label="{}" viewBox="0 0 {} 40" '
            'width="100%"><title>{}</title><rect x="4" y="8" width="{}" height="18" rx="4" fill="#e3e8ee"/>'
            '<rect class="bar" x="4" y="8" width="{}" height="18" rx="4" fill="#0e7c3a" data-label="conversion" '
            'data-value="{}"><title>{} %</title></rect></svg>',
            title, width, title, plot_w, _f(w), _num(percent), escape(_num(percent)),
        )
    )
