"""``python -m benchmarks.dashboard_pages``: how long each dashboard page and API read takes on
a jobs table a million finished rows deep.

On a fresh database: ``--rows`` completed jobs finished over the last day (so the last hour's
chart has ~1/24 of them), 500 failed and 200 cancelled among them, 1,000 pending. Each URL is
requested ``--repeat`` times in process (httpx's ASGI transport: no network, the app's own
queries and rendering only); prints the median and the slowest, in ms, and writes them as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx

from pgqueue import Queue
from pgqueue.bench.harness import fresh_database
from pgqueue.bench.rows import insert_finished_jobs
from pgqueue.dashboard import create_app

RESULTS = Path(__file__).parent / "results"

_SEED = """
UPDATE pgqueue.jobs SET status = 'failed', last_error = 'RuntimeError: boom', errors = '[]'
WHERE id IN (SELECT id FROM pgqueue.jobs ORDER BY random() LIMIT 500);
UPDATE pgqueue.jobs SET status = 'cancelled'
WHERE id IN (SELECT id FROM pgqueue.jobs WHERE status = 'completed' ORDER BY random() LIMIT 200);
INSERT INTO pgqueue.jobs (queue, job_type, payload)
SELECT 'default', 'report', jsonb_build_object('n', g) FROM generate_series(1, 1000) AS g;
"""


def _urls(middle_id: int, failed_id: int) -> list[str]:
    return [
        "/",
        "/jobs",
        f"/jobs?before_id={middle_id}",
        "/jobs?status=failed",
        "/jobs?status=completed",
        "/jobs?status=pending&queue=default",
        "/jobs?job_type=report",
        "/jobs?job_type=absent",  # the worst case: no match, so the whole table is walked
        f"/jobs/{failed_id}",
        "/failed",
        "/queues",
        "/schedules",
        "/api/stats",
        "/api/jobs?status=cancelled",
        f"/api/jobs/{failed_id}",
    ]


async def measure(dsn: str, rows: int, repeat: int) -> dict[str, dict[str, float]]:
    async with fresh_database(dsn) as fresh:
        started = time.perf_counter()
        await insert_finished_jobs(fresh, rows, age=timedelta(0), spread=timedelta(days=1))
        connection = await asyncpg.connect(fresh)
        try:
            await connection.execute(_SEED)
            await connection.execute("VACUUM ANALYZE pgqueue.jobs")
            failed_id = await connection.fetchval(
                "SELECT max(id) FROM pgqueue.jobs WHERE status = 'failed'"
            )
        finally:
            await connection.close()
        print(f"filled {rows:,} rows in {time.perf_counter() - started:.0f} s")
        timings: dict[str, dict[str, float]] = {}
        async with Queue.connect(fresh) as queue:
            transport = httpx.ASGITransport(app=create_app(queue))
            async with httpx.AsyncClient(transport=transport, base_url="http://pages") as client:
                for url in _urls(rows // 2, failed_id):
                    samples = []
                    for _ in range(repeat):
                        begun = time.perf_counter()
                        response = await client.get(url)
                        samples.append((time.perf_counter() - begun) * 1000)
                        response.raise_for_status()
                    timings[url] = {
                        "median_ms": round(statistics.median(samples), 1),
                        "max_ms": round(max(samples), 1),
                    }
                    print(
                        f"{url:40} {timings[url]['median_ms']:8.1f} {timings[url]['max_ms']:8.1f}"
                    )
        return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    print(f"{'url':40} {'median':>8} {'max':>8}  (ms)")
    timings = asyncio.run(measure(args.dsn, args.rows, args.repeat))
    day = datetime.now(UTC).date().isoformat()
    out = RESULTS / f"{day}-dashboard-pages.json"
    record = {"rows": args.rows, "repeat": args.repeat, "host": platform.node(), "pages": timings}
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
