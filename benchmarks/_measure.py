"""Shared measuring helpers for the benchmark scripts: best-of-N timing and peak resident memory."""
import resource
import threading
import time


def best(fn, repeat):
    """Run ``fn`` ``repeat`` times: (the lowest wall time in s, the last result)."""
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return min(times), result


class PeakRSS:
    """Resident memory of this process sampled every 20 ms while the block runs (ru_maxrss never
    goes down, so it cannot measure one step): ``peak`` in bytes, ``mb`` above the start."""

    def __enter__(self):
        self.base = self._rss()
        self.peak = self.base
        self.stop = False
        self.t = threading.Thread(target=self._watch, daemon=True)
        self.t.start()
        return self

    @staticmethod
    def _rss():
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * resource.getpagesize()

    def _watch(self):
        while not self.stop:
            self.peak = max(self.peak, self._rss())
            time.sleep(0.02)

    def __exit__(self, *a):
        self.stop = True
        self.t.join()

    @property
    def mb(self):
        return (self.peak - self.base) / 1e6
