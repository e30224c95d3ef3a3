"""Background work: a thread pool that keeps a reference to every job until it ends."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

logger = logging.getLogger(__name__)


class JobPool:
    def __init__(self, workers: int = 8, name: str = "slackbot-job") -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._futures: set[Future[None]] = set()

    def submit(self, job: Callable[[], None], name: str) -> Future[None]:
        """Run `job` in the background; failures are logged, never raised into Slack handlers."""
        future = self._executor.submit(self._guarded, job, name)
        with self._lock:
            self._futures.add(future)
        future.add_done_callback(self._forget)
        return future

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every job submitted so far has ended; False on timeout."""
        with self._lock:
            pending = set(self._futures)
        _, not_done = wait(pending, timeout=timeout)
        return not not_done

    def shutdown(self, wait_for_jobs: bool = True) -> None:
        self._executor.shutdown(wait=wait_for_jobs, cancel_futures=not wait_for_jobs)

    def _forget(self, future: Future[None]) -> None:
        with self._lock:
            self._futures.discard(future)

    @staticmethod
    def _guarded(job: Callable[[], None], name: str) -> None:
        try:
            job()
        except Exception:
            logger.exception("background job %s failed", name)
