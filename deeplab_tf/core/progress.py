"""The one progress line of every long job: count, rate and ETA.

Converters, evaluation, visualisation and training all report the same three
facts while they run: how much is done (of how much), how fast, and how long
the rest will take. The wording lives here once so that a user reads one format
everywhere and a fix to the ETA rule (say, for a zero rate) reaches every job.
Callers append what only they know (a shard number, a loss).
"""
import datetime
import math
import time
from typing import Callable, Optional


def format_duration(seconds: Optional[float]) -> str:
  """``H:MM:SS`` for a number of seconds; ``?`` when unknown (None, inf, NaN)."""
  if seconds is None or not math.isfinite(seconds) or seconds < 0:
    return '?'
  return str(datetime.timedelta(seconds=int(round(seconds))))


def rate(done: float, seconds: float) -> float:
  """Units per second; 0 before any time has passed."""
  return done / seconds if seconds > 0 else 0.0


def eta_seconds(remaining: float, units_per_second: float) -> Optional[float]:
  """Seconds left at the current rate; None when the rate says nothing."""
  if units_per_second <= 0 or not math.isfinite(units_per_second):
    return None
  return max(remaining, 0) / units_per_second


def progress_line(done: int, total: Optional[int], seconds: float,
                  unit: str = 'images', final: bool = False) -> str:
  """The line itself.

  ``12/60 images (3.00 images/s), ETA 0:00:16`` while running,
  ``60/60 images (3.00 images/s) in 0:00:20`` when ``final``, and
  ``5 images (2.50 images/s)`` when the total is unknown (no ETA).

  Args:
    done: units finished.
    total: units expected, or None / 0 when unknown.
    seconds: time since the job started.
    unit: what is counted (plural), also used in the rate.
    final: the job has ended: report the elapsed time instead of an ETA.
  """
  speed = rate(done, seconds)
  count = '%d/%d' % (done, total) if total else '%d' % done
  text = '%s %s (%.2f %s/s)' % (count, unit, speed, unit)
  if final:
    return '%s in %s' % (text, format_duration(seconds))
  if not total:
    return text
  return '%s, ETA %s' % (text, format_duration(eta_seconds(total - done,
                                                            speed)))


class ProgressLog:
  """Emits ``progress_line`` at most every ``every_secs`` seconds.

  ``update(done)`` is cheap enough to call per item; the clock is injectable
  so tests can drive it.
  """

  def __init__(self, log: Callable[[str], None], total: Optional[int],
               every_secs: float = 10.0, unit: str = 'images',
               prefix: str = '', clock: Callable[[], float] = time.time):
    self._log = log
    self._clock = clock
    self.total = total
    self.every_secs = every_secs
    self.unit = unit
    self.prefix = prefix
    self.start = clock()
    self._last = self.start

  def elapsed(self) -> float:
    return self._clock() - self.start

  def line(self, done: int, final: bool = False) -> str:
    return self.prefix + progress_line(done, self.total, self.elapsed(),
                                       self.unit, final)

  def update(self, done: int, suffix: str = '') -> bool:
    """Logs a line when ``every_secs`` has passed; returns whether it did."""
    now = self._clock()
    if now - self._last < self.every_secs:
      return False
    self._last = now
    self._log(self.line(done) + suffix)
    return True

  def finish(self, done: int, suffix: str = '') -> None:
    self._log(self.line(done, final=True) + suffix)
