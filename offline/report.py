"""The run's report: `report.html`, a gallery with input, masks and results side by side and, per upload, its
outcome, timings, API calls and the failure's documented meaning; plus the plain-text summary table."""

from __future__ import annotations

import html
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote

from .jobs import Job

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")

STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;background:#f6f7f9;color:#1d2330}
h1{margin:0 0 4px} .sub{color:#5b6475;margin-bottom:18px}
.card{background:#fff;border-radius:10px;padding:14px 16px;margin:0 0 14px;box-shadow:0 1px 3px #0002}
.head{display:flex;gap:12px;align-items:baseline;flex-wrap:wrap}
.ok{color:#0a7d33;font-weight:600} .bad{color:#b3261e;font-weight:600}
.key{font-family:ui-monospace,monospace;color:#5b6475;font-size:13px}
.row{display:flex;gap:14px;flex-wrap:wrap;margin-top:10px}
figure{margin:0;text-align:center;font-size:12px;color:#5b6475}
figure img{max-width:190px;max-height:190px;border:1px solid #ddd;border-radius:6px;
  background:repeating-conic-gradient(#eee 0 25%,#fff 0 50%) 50%/16px 16px;display:block}
table.facts{border-collapse:collapse;font-size:13px;margin-top:8px} .facts td{padding:2px 10px 2px 0}
table.sum{border-collapse:collapse;background:#fff} .sum td,.sum th{padding:4px 10px;border-bottom:1px solid #eee;
  text-align:left;font-size:14px}
"""


def _rel(path: str) -> str:
    return quote(path)


def _figure(src: str, caption: str) -> str:
    if src.lower().endswith(IMAGE_SUFFIXES):
        body = f'<img src="{_rel(src)}" alt="{html.escape(caption)}">'
    else:
        body = f'<a href="{_rel(src)}">{html.escape(Path(src).name)}</a>'
    return f"<figure>{body}<figcaption>{html.escape(caption)}</figcaption></figure>"


def _facts(job: Job) -> list[tuple[str, str]]:
    r = job.record
    facts = [("outcome", job.outcome or "none"), ("expected", job.expect or "any")]
    if job.seconds is not None:
        facts.append(("upload → record", f"{job.seconds:.1f} s"))
    if job.kind == "result":
        facts += [
            ("task", f"{r.get('durations_s', {}).get('task')} s (API clock)"),
            ("API calls", f"{r.get('api_calls')} ({r.get('polls')} polls, {r.get('throttled')} × 429)"),
            ("options", ", ".join(f"{k}={v}" for k, v in (r.get("options") or {}).items()) or "defaults"),
            ("task id", str(r.get("task_id"))),
        ]
    elif job.kind == "failed":
        code = r.get("state") if r.get("state") is not None else r.get("status")
        facts += [
            ("reason", str(r.get("reason"))),
            ("code", "none" if code is None else str(code)),
            ("meaning", str(r.get("meaning"))),
            ("message", str(r.get("message"))),
            ("API calls", str(r.get("api_calls") or 0)),
        ]
    return facts


def write_html(jobs: Iterable[Job], out: Path, title: str) -> Path:
    cards = []
    for job in jobs:
        good = job.as_expected
        figures = [_figure(f"inputs/{job.key}", "input")]
        figures += [_figure(f"inputs/{k}", "retain mask" if ".retain." in k else "mask") for k in job.extra_keys]
        for name, key in sorted((job.record.get("outputs") or {}).items()):
            figures.append(_figure(key, name))
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in _facts(job))
        cards.append(
            f'<div class="card"><div class="head"><span class="{"ok" if good else "bad"}">'
            f"{'✓' if good else '✗'} {html.escape(job.title)}</span>"
            f'<span class="key">{html.escape(job.key)}</span></div>'
            f'<div class="row">{"".join(figures)}</div><table class="facts">{rows}</table></div>'
        )
    summary = "".join(
        f"<tr><td>{'✓' if j.as_expected else '✗'}</td><td>{html.escape(j.operation)}</td>"
        f"<td>{html.escape(j.title)}</td><td>{html.escape(j.outcome or 'none')}</td></tr>"
        for j in jobs
    )
    jobs = list(jobs)
    passed = sum(j.as_expected for j in jobs)
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f'<div class="sub">{passed} of {len(jobs)} uploads ended as expected.</div>'
        f'<table class="sum"><tr><th></th><th>operation</th><th>upload</th><th>outcome</th></tr>{summary}</table>'
        f"<h2>Uploads</h2>{''.join(cards)}</body></html>"
    )
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def summary_table(jobs: list[Job]) -> str:
    header = f"{'':2}{'operation':<22}{'upload':<44}{'outcome':<28}{'calls':>5}{'secs':>7}"
    lines = [header, "-" * len(header)]
    for job in jobs:
        calls = job.record.get("api_calls") or 0
        secs = f"{job.seconds:.1f}" if job.seconds is not None else "-"
        mark = "✓" if job.as_expected else "✗"
        lines.append(
            f"{mark} {job.operation:<22}{job.key[9:][:43]:<44}{(job.outcome or 'none')[:27]:<28}{calls:>5}{secs:>7}"
        )
    passed = sum(j.as_expected for j in jobs)
    lines.append(f"{passed} of {len(jobs)} uploads ended as expected")
    return "\n".join(lines)
