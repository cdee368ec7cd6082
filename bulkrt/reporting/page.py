"""The campaign report as one self-contained HTML page: inline CSS and inline SVG charts drawn
here, no script, nothing fetched. Every text that comes from the ledger is escaped (`_e`).

The page reads top to bottom: totals, requests over time against the rate limit (stacked by
campaign, undos striped, with a key naming each campaign's colour), per-account progress
(stacked bars), the accounts table, the kinds of error with an example each, the campaigns, the
runs.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from bulkrt import __version__
from bulkrt.reporting.model import AccountRow, Report, Timeline

__all__ = [
    "CAMPAIGN_COLOURS",
    "COLOURS",
    "MAX_CHART_ACCOUNTS",
    "MAX_TABLE_ACCOUNTS",
    "OTHER_CAMPAIGNS",
    "render_html",
]

#: accounts drawn in the progress chart, and listed in the table, at most
MAX_CHART_ACCOUNTS = 40
MAX_TABLE_ACCOUNTS = 1000
COLOURS = {
    "ok": "#2e7d32",
    "rejected": "#f9a825",
    "error": "#c62828",
    "limit": "#d32f2f",
    "grid": "#dddddd",
}
#: the requests chart's colour of each campaign, in the order the campaigns first appear
#: (`bulkrt.reporting.model.MAX_CHART_CAMPAIGNS` of them), and of the later ones together
CAMPAIGN_COLOURS = (
    "#1d9bf0", "#ef6c00", "#8e44ad", "#00897b", "#6d4c41", "#e91e63", "#7cb342", "#546e7a",
)  # fmt: skip
OTHER_CAMPAIGNS = "#9e9e9e"

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; color: #222; margin: 24px auto; max-width: 1100px;
       padding: 0 16px; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; }
.meta { color: #555; margin: 0 0 16px; } code { font-size: 13px; }
.totals { display: flex; flex-wrap: wrap; gap: 10px; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 8px 14px; min-width: 110px; }
.card b { display: block; font-size: 22px; } .card span { color: #555; font-size: 12px; }
.card.ok b { color: #2e7d32; } .card.rejected b { color: #b8860b; }
.card.error b { color: #c62828; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { border-bottom: 1px solid #e5e5e5; padding: 4px 8px; text-align: left;
         vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 0; } figcaption, .note { color: #555; font-size: 12px; margin: 4px 0; }
.key i { display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 10px; }
.key i.striped { background: repeating-linear-gradient(45deg, #555 0 2px, #fff 2px 4px); }
svg text { font: 11px system-ui, sans-serif; fill: #333; }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def render_html(report: Report, *, ledger: str, generated: datetime | None = None) -> str:
    """The whole page for ``report`` of the ledger named ``ledger``."""
    when = (generated or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")
    span = (
        f"first line {_e(report.first)} · last line {_e(report.last)}"
        if report.first
        else "the ledger has no readable line"
    )
    parts = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        f"<title>bulkrt report: {_e(ledger)}</title><style>{_CSS}</style></head><body>",
        "<h1>bulkrt campaign report</h1>",
        f'<p class="meta">ledger <code>{_e(ledger)}</code> · {span} · made {when} '
        f"by bulkrt {_e(__version__)}</p>",
        _totals(report),
        '<h2 id="requests">Requests over time</h2>',
        _requests_chart(report.timeline),
        '<h2 id="progress">Per-account progress</h2>',
        _accounts_chart(report.accounts),
        '<h2 id="accounts">Accounts</h2>',
        _accounts_table(report.accounts),
        '<h2 id="errors">Kinds of error</h2>',
        _errors_table(report),
        '<h2 id="campaigns">Campaigns</h2>',
        _campaigns_table(report),
        '<h2 id="runs">Runs</h2>',
        _runs_table(report),
        "</body></html>\n",
    ]
    return "\n".join(parts)


def _totals(report: Report) -> str:
    status = report.summary.by_status
    cards = [
        ("items", report.summary.items, "items (by latest line)"),
        ("ok", status.get("ok", 0), "ok"),
        ("rejected", status.get("rejected", 0), "rejected"),
        ("error", status.get("error", 0), "error"),
        ("", report.requests, "requests (HTTP attempts)"),
        ("", report.summary.lines, "ledger lines"),
        ("", len(report.accounts), "accounts"),
        ("", report.run_count, "runs"),
        ("", report.preexisting, "retweeted before (preexisting)"),
    ]
    if report.summary.unreadable:
        cards.append(("error", report.summary.unreadable, "unreadable lines"))
    body = "".join(
        f'<div class="card {cls}"><b>{n:,}</b><span>{_e(label)}</span></div>'
        for cls, n, label in cards
    )
    return f'<section class="totals">{body}</section>'


def _clock(epoch: float, fine: bool = False) -> str:
    """``HH:MM:SS`` (UTC), with tenths of a second when ``fine``."""
    text = datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S.%f")
    return text[:10] if fine else text[:8]


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:g} s"
    if seconds < 7200:
        return f"{seconds / 60:g} min"
    return f"{seconds / 3600:g} h"


@dataclass(frozen=True, slots=True)
class _Plot:
    """Where the requests chart draws: pixel geometry and the value scale."""

    width: int = 1000
    height: int = 280
    left: int = 50
    top: int = 16
    bottom: int = 30
    scale_max: float = 1.0

    @property
    def plot_w(self) -> int:
        return self.width - self.left - 10

    @property
    def plot_h(self) -> int:
        return self.height - self.bottom - self.top

    def y(self, value: float) -> float:
        return self.top + self.plot_h - value / self.scale_max * self.plot_h


def _requests_chart(timeline: Timeline) -> str:
    if not timeline.buckets:
        return '<p class="note">No requests to draw.</p>'
    peak = max(b.retweet + b.undo for b in timeline.buckets)
    capacity = timeline.capacity
    scale_max = float(max(peak, 1))
    if capacity is not None and capacity <= peak * 3:
        scale_max = max(scale_max, capacity)
    plot = _Plot(scale_max=scale_max * 1.1)
    out = [
        f'<figure><svg id="requests-chart" width="{plot.width}" height="{plot.height}" '
        f'viewBox="0 0 {plot.width} {plot.height}" role="img" aria-label="requests over time">',
        _stripes(timeline),
        *_grid(plot, scale_max),
        *_window_lines(plot, timeline),
        *_request_bars(plot, timeline),
        *_time_axis(plot, timeline),
    ]
    if capacity is not None and capacity <= plot.scale_max:
        cy = plot.y(capacity)
        out.append(
            f'<line id="capacity" x1="{plot.left}" x2="{plot.width - 10}" y1="{cy:.1f}" '
            f'y2="{cy:.1f}" stroke="{COLOURS["limit"]}" stroke-width="2" '
            f'stroke-dasharray="6,4"/><text x="{plot.width - 12}" y="{cy - 4:.1f}" '
            f'text-anchor="end" fill="{COLOURS["limit"]}">limit per endpoint: {capacity:,.0f}'
            f"</text>"
        )
    out.append("</svg>")
    out.append(_requests_caption(timeline, plot))
    return "".join(out)


def _grid(plot: _Plot, top_value: float) -> list[str]:
    lines = []
    for frac in (0, 0.5, 1):
        value = top_value * frac
        y = plot.y(value)
        lines.append(
            f'<line x1="{plot.left}" x2="{plot.width - 10}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{COLOURS["grid"]}"/><text x="{plot.left - 6}" y="{y + 4:.1f}" '
            f'text-anchor="end">{value:,.0f}</text>'
        )
    return lines


def _window_lines(plot: _Plot, timeline: Timeline) -> list[str]:
    """Where each rate-limit window begins (from the first bar), when bars are finer than one."""
    span = timeline.width * len(timeline.buckets)
    period = timeline.window.period
    if timeline.capacity is not None or span / period > 200:
        return []
    lines = []
    for n in range(math.ceil(span / period)):
        x = plot.left + n * period / span * plot.plot_w
        lines.append(
            f'<line class="window" x1="{x:.1f}" x2="{x:.1f}" y1="{plot.top}" '
            f'y2="{plot.top + plot.plot_h}" stroke="{COLOURS["limit"]}" '
            f'stroke-dasharray="3,3" stroke-opacity="0.7"/>'
        )
    return lines


def _campaign_colour(timeline: Timeline, campaign: str | None) -> tuple[int, str]:
    """The campaign's place in the chart's stack and its colour."""
    index = timeline.campaigns.index(campaign)
    if campaign is None:
        return index, OTHER_CAMPAIGNS
    return index, CAMPAIGN_COLOURS[index % len(CAMPAIGN_COLOURS)]


def _stripes(timeline: Timeline) -> str:
    """One striped fill per campaign, for its undo requests."""
    patterns = []
    for campaign in timeline.campaigns:
        index, colour = _campaign_colour(timeline, campaign)
        patterns.append(
            f'<pattern id="undo-{index}" width="6" height="6" patternUnits="userSpaceOnUse" '
            f'patternTransform="rotate(45)"><rect width="6" height="6" fill="#ffffff"/>'
            f'<rect width="3" height="6" fill="{colour}"/></pattern>'
        )
    return f"<defs>{''.join(patterns)}</defs>"


def _campaign_name(campaign: str | None) -> str:
    return "other campaigns" if campaign is None else campaign


def _request_bars(plot: _Plot, timeline: Timeline) -> list[str]:
    """Each bar stacks its campaigns in the order they first appear: retweets in the campaign's
    colour, undos striped in it."""
    bar_w = plot.plot_w / len(timeline.buckets)
    rects = []
    for i, bucket in enumerate(timeline.buckets):
        x = plot.left + i * bar_w
        when = _clock(bucket.start, timeline.width < 1)
        whole = f"the bar: {bucket.retweet} retweet, {bucket.undo} undo"
        base = float(plot.top + plot.plot_h)
        for part in bucket.campaigns:
            index, colour = _campaign_colour(timeline, part.campaign)
            name = _campaign_name(part.campaign)
            for kind, value in (("retweet", part.retweet), ("undo", part.undo)):
                if value:
                    h = value / plot.scale_max * plot.plot_h
                    base -= h
                    fill = colour if kind == "retweet" else f"url(#undo-{index})"
                    label = f"{when} · {name}: {value} {kind} ({whole})"
                    rects.append(
                        f'<rect class="{kind}" data-campaign="{_e(name)}" x="{x + 0.5:.1f}" '
                        f'y="{base:.1f}" width="{max(bar_w - 1, 0.6):.1f}" height="{h:.1f}" '
                        f'fill="{fill}"><title>{_e(label)}</title></rect>'
                    )
    return rects


def _time_axis(plot: _Plot, timeline: Timeline) -> list[str]:
    """Clock times under bar starts, at most eight of them."""
    count = len(timeline.buckets)
    every = math.ceil(count / 8)
    bar_w = plot.plot_w / count
    return [
        f'<text x="{plot.left + i * bar_w:.1f}" y="{plot.height - 10}" text-anchor="start">'
        f"{_clock(timeline.buckets[i].start, timeline.width < 1)}</text>"
        for i in range(0, count, every)
    ]


def _requests_caption(timeline: Timeline, plot: _Plot) -> str:
    limit, capacity = timeline.window, timeline.capacity
    rule = f"{limit.limit} per {_duration(limit.period)}"
    if capacity is not None:
        note = (
            f"each bar is {_duration(timeline.width)}; the dashed line is what {timeline.accounts} "
            f"account(s) may send to one endpoint in that time ({rule} each)"
        )
        if capacity > plot.scale_max:
            note += f": {capacity:,.0f}, far above the bars"
    else:
        note = (
            f"each bar is {_duration(timeline.width)}; dotted lines mark "
            f"{_duration(limit.period)} rate-limit windows from the first bar ({rule} per "
            f"account and endpoint; {timeline.accounts} account(s): up to "
            f"{limit.limit * timeline.accounts:,} per window and endpoint)"
        )
    key = "".join(
        f'<span class="campaign"><i style="background:{_campaign_colour(timeline, c)[1]}"></i>'
        f"{_e(_campaign_name(c))}</span>"
        for c in timeline.campaigns
    )
    return (
        f'<figcaption><span class="key" id="requests-key">{key}<i class="striped"></i>'
        f"striped: undo</span> · requests (HTTP attempts) per campaign, retweets solid and undos "
        f"striped in the campaign's colour, "
        f"by the time their item's last request was sent (when it finished, on older lines), "
        f"UTC; {note}. Each account's own windows start at "
        f"its first request, so the lines are a guide.</figcaption></figure>"
    )


def _chart_accounts(rows: tuple[AccountRow, ...]) -> list[AccountRow]:
    if len(rows) <= MAX_CHART_ACCOUNTS:
        return list(rows)
    worst = sorted(rows, key=lambda r: (-(r.rejected + r.error), -(r.ok + r.rejected + r.error)))
    return sorted(worst[:MAX_CHART_ACCOUNTS], key=lambda r: r.account)


def _accounts_chart(rows: tuple[AccountRow, ...]) -> str:
    shown = _chart_accounts(rows)
    if not shown:
        return '<p class="note">No accounts to draw.</p>'
    width, row_h, label_w, count_w = 1000, 20, 170, 190
    plot_w = width - label_w - count_w
    most = max(max(r.ok + r.rejected + r.error for r in shown), 1)
    height = row_h * len(shown) + 10
    out = [
        f'<figure><svg id="accounts-chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="per-account progress">'
    ]
    for i, row in enumerate(shown):
        y = 5 + i * row_h
        name = row.account if len(row.account) <= 24 else row.account[:23] + "…"
        out.append(f'<text x="{label_w - 8}" y="{y + 14}" text-anchor="end">{_e(name)}</text>')
        x = float(label_w)
        for kind, value in (("ok", row.ok), ("rejected", row.rejected), ("error", row.error)):
            if value:
                w = value / most * plot_w
                out.append(
                    f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" '
                    f'fill="{COLOURS[kind]}"><title>{_e(row.account)}: {value} {kind}'
                    f"</title></rect>"
                )
                x += w
        out.append(
            f'<text x="{x + 6:.1f}" y="{y + 14}">{row.ok} ok · {row.rejected} rejected · '
            f"{row.error} error</text>"
        )
    out.append("</svg>")
    more = ""
    if len(rows) > len(shown):
        more = (
            f" {len(shown)} of {len(rows)} accounts shown: those with the most rejected or "
            f"error items; the table lists more."
        )
    key = "".join(
        f'<i style="background:{COLOURS[k]}"></i>{k}' for k in ("ok", "rejected", "error")
    )
    out.append(
        f'<figcaption><span class="key">{key}</span> · items by their latest line.{more}'
        f"</figcaption></figure>"
    )
    return "".join(out)


def _table(head: Iterable[tuple[str, bool]], rows: Iterable[Iterable[object]], tid: str) -> str:
    cols = list(head)
    out = [f'<table id="{tid}"><thead><tr>']
    out += [f'<th class="n">{_e(h)}</th>' if n else f"<th>{_e(h)}</th>" for h, n in cols]
    out.append("</tr></thead><tbody>")
    for row in rows:
        cells = [
            f'<td class="n">{v:,}</td>' if n and isinstance(v, int) else f"<td>{_e(v)}</td>"
            for v, (_, n) in zip(row, cols, strict=True)
        ]
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _accounts_table(rows: tuple[AccountRow, ...]) -> str:
    if not rows:
        return '<p class="note">No accounts.</p>'
    head = [("account", False), ("ok", True), ("rejected", True), ("error", True),
            ("lines", True), ("requests", True)]  # fmt: skip
    body = [
        (r.account, r.ok, r.rejected, r.error, r.lines, r.requests)
        for r in rows[:MAX_TABLE_ACCOUNTS]
    ]
    more = ""
    if len(rows) > MAX_TABLE_ACCOUNTS:
        more = (
            f'<p class="note">The first {MAX_TABLE_ACCOUNTS:,} of {len(rows):,} accounts; '
            f"<code>bulkrt status LEDGER --json</code> lists every one.</p>"
        )
    return _table(head, body, "accounts-table") + more


def _errors_table(report: Report) -> str:
    if not report.errors:
        return '<p class="note">No item ended rejected or error.</p>'
    head = [("kind", False), ("items", True), ("lines", True), ("example", False)]
    body = []
    for kind in report.errors:
        ex = kind.example
        error = ex.error
        said = " — ".join(t for t in (error.title, error.detail) if t) if error else ""
        example = (
            f"{ex.account} · Tweet {ex.tweet_id} · {ex.action.value} · {ex.status.value} · "
            f"HTTP {ex.http if ex.http is not None else '-'}"
        )
        body.append((kind.kind, kind.items, kind.lines, f"{example}: {said}"))
    return (
        _table(head, body, "errors-table")
        + '<p class="note">items: items whose latest line has that kind (not ok); lines: every '
        "line with it, including attempts a later run finished.</p>"
    )


def _runs_table(report: Report) -> str:
    if not report.runs:
        return '<p class="note">No runs.</p>'
    head = [("run", False), ("campaigns", False), ("first line", False), ("last line", False),
            ("lines", True)]  # fmt: skip
    body = [(r.run, ", ".join(r.campaigns), r.first, r.last, r.lines) for r in report.runs]
    return _table(head, body, "runs-table")


def _campaigns_table(report: Report) -> str:
    if not report.campaigns:
        return '<p class="note">No campaigns.</p>'
    head = [("campaign", False), ("lines", True), ("retweet requests", True),
            ("undo requests", True), ("first line", False), ("last line", False)]  # fmt: skip
    body = [
        (c.campaign, c.lines, c.retweet_requests, c.undo_requests, c.first, c.last)
        for c in report.campaigns
    ]
    return _table(head, body, "campaigns-table")
