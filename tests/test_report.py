"""`bulkrt report`: the report model from hand-written ledgers (totals, timeline against the rate
limit, error kinds with examples, bounded memory), the HTML's escaping, and the page as headless
chromium renders it: the DOM it builds and a screenshot that shows the charts."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bulkrt.core.items import Action, ErrorDetail, Status
from bulkrt.core.tiers import WindowLimit
from bulkrt.ledger.counts import StatusTally
from bulkrt.ledger.record import LedgerRecord
from bulkrt.reporting.model import MAX_CHART_CAMPAIGNS, MAX_KINDS, MAX_SLOTS, Report, ReportBuilder
from bulkrt.reporting.page import CAMPAIGN_COLOURS, COLOURS, render_html
from tests.test_mistakes import bulkrt

START = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)
OK = LedgerRecord(
    ts="2026-11-26T01:00:00.000Z", run="run-1", key="k", campaign="spring", account="acct001",
    user_id="1001", tweet_id="20", action=Action.RETWEET, status=Status.OK, retweeted=True,
    preexisting=False, http=200, error=None, attempts=1,
)  # fmt: skip
NOT_FOUND = ErrorDetail(
    "https://api.twitter.com/2/problems/resource-not-found", "Not Found Error",
    "Could not find tweet with id: [900].",
)  # fmt: skip
HOSTILE = "<script>document.title='owned'</script><img src=x onerror=alert(1)>"


def at(seconds: float) -> str:
    return (START + timedelta(seconds=seconds)).isoformat(timespec="milliseconds")[:-6] + "Z"


def campaign_ledger() -> list[LedgerRecord]:
    """Three accounts over 12 s: retweets, one rejected, one error then ok on a second run, and
    the rollback's undos; one account's name and an error's detail try to inject markup."""
    records = [
        replace(OK, ts=at(n * 0.5), key=f"r{n}", account=f"acct00{n % 3 + 1}", tweet_id=str(n))
        for n in range(12)
    ]
    records += [
        replace(OK, ts=at(6.2), key="bad", account="acct002", tweet_id="900",
                status=Status.REJECTED, retweeted=None, http=404, error=NOT_FOUND),
        replace(OK, ts=at(6.4), key="net", account="acct003", status=Status.ERROR,
                retweeted=None, http=None, attempts=5,
                error=ErrorDetail("network", "connection reset", HOSTILE)),
        replace(OK, ts=at(9.0), run="run-2", key="net", account="acct003", attempts=2),
        replace(OK, ts=at(9.1), run="run-2", key="odd", account=HOSTILE, preexisting=True),
    ]  # fmt: skip
    records += [
        replace(OK, ts=at(10 + n * 0.2), run="run-3", key=f"u{n}", campaign="spring-rollback",
                account=f"acct00{n % 3 + 1}", tweet_id=str(n), action=Action.UNDO,
                retweeted=False)
        for n in range(6)
    ]  # fmt: skip
    return records


SHORT_WINDOWS = WindowLimit(5, 3.0)


def build(records: list[LedgerRecord], window: WindowLimit = SHORT_WINDOWS) -> Report:
    """The report of ``records``, with item counts by latest line as `bulkrt status` makes."""
    builder = ReportBuilder()
    latest: dict[str, LedgerRecord] = {}
    for record in records:
        builder.add(record)
        latest[record.key] = record
    tally = StatusTally()
    tally.lines = len(records)
    for r in latest.values():
        tally.add((r.status, r.action, r.account, r.error.kind if r.error else None))
    return builder.build(tally.summary("ledger.jsonl"), window)


class TestModel:
    def test_totals_accounts_runs_and_errors(self) -> None:
        """Items count by latest line, requests by attempts; each error kind has its first line
        as the example, and the runs are listed in order with their lines."""
        report = build(campaign_ledger())
        assert report.summary.items == 21
        assert report.summary.by_status == {"ok": 20, "rejected": 1, "error": 0, "superseded": 0}
        assert report.requests == 12 + 1 + 5 + 2 + 1 + 6
        assert report.preexisting == 1
        by_name = {row.account: row for row in report.accounts}
        assert (by_name["acct003"].ok, by_name["acct003"].lines, by_name["acct003"].requests) == (
            7, 8, 13,
        )  # fmt: skip
        kinds = {kind.kind: kind for kind in report.errors}
        assert (kinds["resource-not-found"].items, kinds["resource-not-found"].lines) == (1, 1)
        assert kinds["resource-not-found"].example.tweet_id == "900"
        assert (kinds["network"].items, kinds["network"].lines) == (0, 1)  # ok on resume
        assert [(r.run, r.lines) for r in report.runs] == [
            ("run-1", 14), ("run-2", 2), ("run-3", 6),
        ]  # fmt: skip
        assert (report.first, report.last) == (at(0), at(11))

    def test_each_run_names_its_campaigns_and_each_campaign_its_requests(self) -> None:
        """The runs list the campaigns of their lines; the campaigns table counts each
        campaign's lines and requests per action, and they add up to the whole ledger's."""
        report = build(campaign_ledger())
        campaigns = {r.run: r.campaigns for r in report.runs}
        assert campaigns["run-3"] == ("spring-rollback",)
        assert "spring" in campaigns["run-1"]
        rows = {c.campaign: c for c in report.campaigns}
        assert rows["spring-rollback"].undo_requests == 6
        assert rows["spring-rollback"].retweet_requests == 0
        assert sum(c.lines for c in report.campaigns) == report.summary.lines
        assert (
            sum(c.retweet_requests + c.undo_requests for c in report.campaigns) == report.requests
        )
        page = render_html(report, ledger="ledger.jsonl")
        assert '<h2 id="campaigns">Campaigns</h2>' in page and "spring-rollback" in page

    def test_requests_count_when_they_were_sent_not_when_their_item_finished(self) -> None:
        """Five requests sent within one 3-s window whose items finished 10 s later (a slow
        answer) fall in the first window's bars, so no bar exceeds what was really sent."""
        records = [
            replace(OK, key=f"k{n}", tweet_id=str(n), sent=at(n * 0.1), ts=at(10 + n))
            for n in range(5)
        ]
        records.append(replace(OK, key="late", sent=at(11), ts=at(11)))
        report = build(records)
        sent_early = sum(
            b.retweet for b in report.timeline.buckets if b.start < START.timestamp() + 3
        )
        assert sent_early == 5
        assert report.first == at(0)
        line = records[0].to_json()
        assert line.endswith(f',"sent":"{at(0)}"}}')
        assert LedgerRecord.from_json(line) == records[0]

    def test_a_short_run_has_bars_finer_than_a_window(self) -> None:
        """11 s of lines against 5-s windows: 0.1-s bars, no capacity line (windows marked
        instead), and the bars add up to every request."""
        timeline = build(campaign_ledger(), WindowLimit(5, 5.0)).timeline
        assert timeline.width == 0.1 and timeline.capacity is None
        assert sum(b.retweet + b.undo for b in timeline.buckets) == 27
        assert sum(b.undo for b in timeline.buckets) == 6

    def test_a_long_run_has_a_bar_per_window_and_the_limit_to_compare(self) -> None:
        """Lines over 10 windows: one bar per window, and the capacity is limit x accounts."""
        records = [replace(OK, ts=at(n), key=f"k{n}", account=f"a{n % 4}") for n in range(30)]
        timeline = build(records, WindowLimit(5, 3.0)).timeline
        assert timeline.width == 3.0
        assert [b.retweet for b in timeline.buckets] == [3] * 10
        assert timeline.capacity == 5 * 4

    def test_each_bar_stacks_its_campaigns_and_they_add_up_to_it(self) -> None:
        """Every bar's campaign parts add up to its retweets and undos, each campaign's parts to
        its requests in the campaigns table; campaigns beyond MAX_CHART_CAMPAIGNS share one
        part (None) after the others, in the order campaigns first appear."""
        records = campaign_ledger() + [
            replace(OK, ts=at(11 + n * 0.5), key=f"c{n}", campaign=f"extra-{n}")
            for n in range(MAX_CHART_CAMPAIGNS)
        ]
        report = build(records, WindowLimit(5, 3.0))
        timeline = report.timeline
        named = ["spring", "spring-rollback"] + [f"extra-{n}" for n in range(6)]
        assert timeline.campaigns == (*named, None)
        for bucket in timeline.buckets:
            assert sum(p.retweet for p in bucket.campaigns) == bucket.retweet
            assert sum(p.undo for p in bucket.campaigns) == bucket.undo
            order = [timeline.campaigns.index(p.campaign) for p in bucket.campaigns]
            assert order == sorted(order)
        requests = {c.campaign: c.retweet_requests + c.undo_requests for c in report.campaigns}
        drawn: dict[str | None, int] = {}
        for part in (p for b in timeline.buckets for p in b.campaigns):
            drawn[part.campaign] = drawn.get(part.campaign, 0) + part.retweet + part.undo
        assert {name: drawn[name] for name in named} == {name: requests[name] for name in named}
        assert drawn[None] == 2  # extra-6 and extra-7

    def test_memory_stays_bounded_on_a_long_ledger(self) -> None:
        """50,000 lines over 23 days (more seconds than MAX_SLOTS, more error kinds than
        MAX_KINDS) keep at most MAX_SLOTS time slots and MAX_KINDS error kinds, and no request is
        lost from the timeline."""
        builder = ReportBuilder()
        for n in range(50_000):
            error = ErrorDetail(f"kind-{n // 10 % 100}") if n % 10 == 0 else None
            status = Status.ERROR if error else Status.OK
            ts = (START + timedelta(seconds=n * 40)).isoformat()
            builder.add(replace(OK, ts=ts, key=str(n), error=error, status=status))
            assert len(builder.slots) <= MAX_SLOTS
        assert len(builder.kind_lines) == len(builder.examples) == MAX_KINDS
        assert len(builder.campaign_slots) <= MAX_SLOTS
        assert sum(r + u for r, u in builder.slots.values()) == 50_000
        timeline = builder.build(StatusTally().summary("l"), WindowLimit(50, 900.0)).timeline
        assert len(timeline.buckets) <= 121
        assert sum(b.retweet for b in timeline.buckets) == 50_000


def test_every_ledger_string_is_escaped() -> None:
    """An account name or error detail holding markup appears as text, never as markup."""
    page = render_html(build(campaign_ledger()), ledger="<ledger>.jsonl")
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;document.title=&#x27;owned&#x27;&lt;/script&gt;" in page
    assert "&lt;ledger&gt;.jsonl" in page
    assert "http://" not in page and "https://" not in page.replace(NOT_FOUND.type, "")


# --- the real CLI, rendered by headless chromium ----------------------------------------------

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; CI has it)"
)


@pytest.fixture
def page(tmp_path: Path) -> Path:
    """`bulkrt report` (the real CLI) on the campaign ledger, with a torn last line."""
    ledger = tmp_path / "ledger.jsonl"
    lines = "".join(r.to_json() + "\n" for r in campaign_ledger())
    ledger.write_text(lines + '{"schema":1,"ts"', encoding="utf-8")
    out = tmp_path / "report.html"
    done = bulkrt(
        "report", str(ledger), "--html", str(out), "--limit", "5", "--window", "3", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "21 items (20 ok, 1 rejected, 0 error), 4 account(s)" in done.stdout
    return out


def chromium(page: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """Headless chromium on ``page``, offline, with a throwaway profile."""
    assert CHROMIUM is not None
    profile = page.parent / "chromium-profile"
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", "--window-size=1200,1600", *args,
         page.as_uri()],
        capture_output=True, check=False, timeout=60,
    )  # fmt: skip


def png_pixels(path: Path) -> set[tuple[int, int, int]]:
    """The distinct RGB colours of an 8-bit RGB or RGBA, non-interlaced PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, width, height, channels = 8, 0, 0, 0
    idat = b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride = zlib.decompress(idat), width * channels
    previous = bytearray(stride)
    colours: set[tuple[int, int, int]] = set()
    for row in range(height):
        start = row * (stride + 1)
        filter_type, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = previous[i], previous[i - channels] if i >= channels else 0
            if filter_type == 1:
                line[i] = (line[i] + left) & 0xFF
            elif filter_type == 2:
                line[i] = (line[i] + up) & 0xFF
            elif filter_type == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif filter_type == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                guess = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + guess) & 0xFF
        colours.update((line[i], line[i + 1], line[i + 2]) for i in range(0, stride, channels * 4))
        previous = line
    return colours


def rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


@needs_chromium
def test_in_the_browser_the_page_shows_totals_tables_charts_and_colours(page: Path) -> None:
    """One headless chromium run on the page gives both its DOM and a screenshot (chromium
    takes most of this test's seconds, and more under load), checked from three sides: the
    totals, tables and charts; the requests chart's campaigns and key; the colours drawn."""
    shot = page.parent / "report.png"
    done = chromium(page, "--dump-dom", f"--screenshot={shot}")
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    dom = done.stdout.decode()
    check_totals_tables_and_charts(dom)
    check_requests_chart_stacks_campaigns_with_a_key(dom)
    check_screenshot_shows_the_charts_in_colour(shot)


def check_totals_tables_and_charts(dom: str) -> None:
    """Chromium's DOM of the page holds the totals, a row per account, the error kinds with
    their example, both charts with their bars and the limit line, and the hostile name
    only as text."""
    assert "<title>bulkrt report:" in dom
    for total in (
        "<b>21</b><span>items (by latest line)</span>",
        "<b>20</b><span>ok</span>",
        "<b>1</b><span>rejected</span>",
        "<b>27</b><span>requests (HTTP ",
        "<b>1</b><span>unreadable lines</span>",
    ):
        assert total in dom
    for account in ("acct001", "acct002", "acct003"):
        assert f"<tr><td>{account}</td>" in dom
    assert "<td>resource-not-found</td>" in dom and "Could not find tweet with id: [900]" in dom
    assert dom.count('class="retweet"') >= 3 and dom.count('class="undo"') >= 1
    # 11 s against 3-s windows: a bar per window and the limit of 4 accounts x 5 to compare
    assert 'id="capacity"' in dom and "limit per endpoint: 20" in dom
    assert 'id="accounts-chart"' in dom
    assert "&lt;script&gt;" in dom and "owned" not in dom.split("<title>")[1].split("</")[0]
    assert "<script" not in dom


def check_requests_chart_stacks_campaigns_with_a_key(dom: str) -> None:
    """In chromium's DOM, the requests chart's key names each campaign with its colour, in
    the order they first appear; each bar part is drawn in its campaign's colour (undos in
    its stripes) and says its campaign; and the parts of each campaign add up to its
    requests in the campaigns table (spring 21 retweets, its rollback 6 undos)."""
    key = dom.split('id="requests-key">', 1)[1].split("</figcaption>", 1)[0]
    legend = re.findall(r'<i style="background:\s*(#\w+);?"></i>([^<]+)</span>', key)
    assert [name for _, name in legend] == ["spring", "spring-rollback"]
    colour = {name: c.lower() for c, name in legend}
    assert colour == {"spring": CAMPAIGN_COLOURS[0], "spring-rollback": CAMPAIGN_COLOURS[1]}
    chart = dom.split('id="requests-chart"', 1)[1].split("</svg>", 1)[0]
    stripes = dict(
        re.findall(r'<pattern id="(undo-\d)".*?<rect width="3"[^>]*fill="(#\w+)"', chart)
    )
    drawn: dict[tuple[str, str], int] = {}
    bars = re.findall(
        r'<rect class="(\w+)" data-campaign="([^"]+)"[^>]*fill="([^"]+)"><title>[^<]*: '
        r"(\d+) \1 ",
        chart,
    )
    assert len(bars) >= 4
    for kind, name, fill, count in bars:
        seen = fill if kind == "retweet" else stripes[fill[5:-1]]
        assert seen == colour[name], (kind, name, fill)
        drawn[name, kind] = drawn.get((name, kind), 0) + int(count)
    assert drawn == {("spring", "retweet"): 21, ("spring-rollback", "undo"): 6}
    table = dom.split('id="campaigns-table"', 1)[1].split("</table>", 1)[0]
    assert re.search(r"<td>spring</td><td[^>]*>\d+</td><td[^>]*>21</td><td[^>]*>0</td>", table)
    assert re.search(
        r"<td>spring-rollback</td><td[^>]*>6</td><td[^>]*>0</td><td[^>]*>6</td>", table
    )


def check_screenshot_shows_the_charts_in_colour(shot: Path) -> None:
    """The screenshot is a real picture: many colours, among them both campaigns' colours
    in the requests chart and the ok and rejected colours of the progress chart."""
    colours = png_pixels(shot)
    assert len(colours) > 20
    for name in ("ok", "rejected"):
        assert rgb(COLOURS[name]) in colours, name
    for colour in CAMPAIGN_COLOURS[:2]:
        assert rgb(colour) in colours, colour
