"""Load run against the mock's query endpoint: requests per second and latency at a given concurrency, loopback.

.venv/bin/python -m bench.mock_load [--concurrency 16] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time

import requests

from mock_server.launcher import start_mock
from offline.samples import encode, portrait


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--max-requests", type=int, default=200_000, help="a bound, so the run always stops")
    args = parser.parse_args()

    mock = start_mock("--qps", "0", "--time-scale", "0.01", "--threads", str(args.concurrency))
    try:
        headers = {"X-API-KEY": mock.api_key}
        created = requests.post(
            f"{mock.url}/api/tasks/visual/idphoto",
            headers=headers,
            files={"image_file": ("p.jpg", encode(portrait(), "JPEG"), "image/jpeg")},
            data={"sync": "1"},
            timeout=30,
        ).json()
        url = f"{mock.url}/api/tasks/visual/idphoto/{created['data']['task_id']}"
        load = Load(url, headers, stop_at=time.monotonic() + args.seconds, max_requests=args.max_requests)
        started = time.monotonic()
        load.run(args.concurrency)
        elapsed = time.monotonic() - started
        latencies = sorted(load.latencies)
        print(
            json.dumps(
                {
                    "endpoint": "GET /api/tasks/visual/idphoto/{task_id}",
                    "concurrency": args.concurrency,
                    "requests": len(latencies),
                    "errors": load.errors,
                    "seconds": round(elapsed, 2),
                    "requests_per_s": round(len(latencies) / elapsed, 1),
                    "latency_ms_p50": round(statistics.median(latencies) * 1000, 2),
                    "latency_ms_p95": round(latencies[int(len(latencies) * 0.95)] * 1000, 2),
                },
                indent=2,
            )
        )
    finally:
        mock.stop()


class Load:
    """Workers polling one task until `stop_at` (or `max_requests` in all): latencies and non-200 answers."""

    def __init__(self, url: str, headers: dict[str, str], *, stop_at: float, max_requests: int) -> None:
        self.url, self.headers, self.stop_at, self.max_requests = url, headers, stop_at, max_requests
        self.latencies: list[float] = []
        self.errors = 0
        self.crashed: list[BaseException] = []
        self._lock = threading.Lock()

    def run(self, concurrency: int) -> None:
        threads = [threading.Thread(target=self._worker) for _ in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if self.crashed:
            raise SystemExit(f"{len(self.crashed)} of {concurrency} workers died; the first: {self.crashed[0]!r}")

    def _worker(self) -> None:
        session = requests.Session()
        local, bad = [], 0
        try:
            while time.monotonic() < self.stop_at and len(self.latencies) + len(local) < self.max_requests:
                started = time.perf_counter()
                response = session.get(self.url, headers=self.headers, timeout=10)
                local.append(time.perf_counter() - started)
                bad += response.status_code != 200
        except Exception as exc:  # a worker that died is reported, not a silently smaller sample
            with self._lock:
                self.crashed.append(exc)
        with self._lock:
            self.latencies.extend(local)
            self.errors += bad


if __name__ == "__main__":
    main()
