"""Concurrent short transactions through the engines Airflow itself builds.

Run in a child process whose environment configures Airflow (AIRFLOW_HOME,
AIRFLOW__DATABASE__SQL_ALCHEMY_CONN, ..._CONN_ASYNC, ..._CONNECT_ARGS_ASYNC):

    python -m tests.metadata._load sync|async WORKERS TRANSACTIONS

Importing ``airflow`` runs ``settings.initialize()`` -> ``configure_orm()``, which
creates ``settings.engine`` and ``settings.async_engine`` from the configuration
exactly as every Airflow component does; the load goes through those two objects.
Prints one JSON object: the driver, attempts, failures and the distinct errors.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from collections import Counter
from typing import Any

CREATE = "CREATE TABLE IF NOT EXISTS metadata_load_probe (worker int, n int, at timestamptz)"
INSERT = "INSERT INTO metadata_load_probe (worker, n, at) VALUES (:w, :n, now())"
COUNT = "SELECT count(*) FROM metadata_load_probe WHERE worker = :w"


def _error(exc: BaseException) -> str:
    cause = exc.__cause__ or exc
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(cause).__module__}.{type(cause).__name__}: {first}"[:300]


def run_sync(workers: int, transactions: int) -> dict[str, Any]:
    from airflow import settings
    from sqlalchemy import text

    engine = settings.engine
    if engine is None:
        raise SystemExit("Airflow configured no engine")
    with engine.begin() as conn:
        conn.execute(text(CREATE))
    errors: Counter[str] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(workers)

    def work(worker: int) -> None:
        start.wait()
        for n in range(transactions):
            try:
                with engine.begin() as conn:
                    conn.execute(
                        text(INSERT),
                        {"w": worker, "n": n},
                    )
                    conn.execute(text(COUNT), {"w": worker}).scalar_one()
            except Exception as exc:
                with lock:
                    errors[_error(exc)] += 1

    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {
        "driver": engine.dialect.driver,
        "url": engine.url.render_as_string(hide_password=True),
        "attempts": workers * transactions,
        "failures": sum(errors.values()),
        "errors": dict(errors),
        "seconds": round(time.monotonic() - began, 3),
    }


def run_async(workers: int, transactions: int) -> dict[str, Any]:
    from airflow import settings
    from sqlalchemy import text

    engine = settings.async_engine
    session_maker = settings.AsyncSession
    if engine is None or session_maker is None:
        raise SystemExit("Airflow configured no async engine")
    errors: Counter[str] = Counter()

    async def work(worker: int, gate: asyncio.Event) -> None:
        await gate.wait()
        for n in range(transactions):
            try:
                async with session_maker() as session, session.begin():
                    await session.execute(
                        text(INSERT),
                        {"w": 1000 + worker, "n": n},
                    )
                    result = await session.execute(
                        text(COUNT),
                        {"w": 1000 + worker},
                    )
                    result.scalar_one()
            except Exception as exc:
                errors[_error(exc)] += 1

    async def main() -> float:
        async with engine.begin() as conn:
            await conn.execute(text(CREATE))
        gate = asyncio.Event()
        tasks = [asyncio.create_task(work(w, gate)) for w in range(workers)]
        began = time.monotonic()
        gate.set()
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - began
        await engine.dispose()
        return elapsed

    seconds = asyncio.run(main())
    return {
        "driver": engine.dialect.driver,
        "url": engine.url.render_as_string(hide_password=True),
        "attempts": workers * transactions,
        "failures": sum(errors.values()),
        "errors": dict(errors),
        "seconds": round(seconds, 3),
    }


def main(argv: list[str]) -> None:
    mode, workers, transactions = argv[0], int(argv[1]), int(argv[2])
    runner = {"sync": run_sync, "async": run_async}[mode]
    print(json.dumps(runner(workers, transactions)))


if __name__ == "__main__":
    main(sys.argv[1:])
