"""Model code runs in a worker process; the CLI accepts a verdict only from one that finished."""

from alignguard.isolation.worker import (isolation_available, mark_fresh_process, prestart, prestarted, reap_workers,
                                         run_isolated, set_deadline)

__all__ = ["isolation_available", "mark_fresh_process", "prestart", "prestarted", "reap_workers", "run_isolated",
           "set_deadline"]
