"""Progress-line helpers shared by long-running jobs (converters, training)."""
import datetime
import math


def format_duration(seconds):
  """``H:MM:SS`` for a number of seconds; ``?`` when unknown (None, inf, NaN)."""
  if seconds is None or not math.isfinite(seconds):
    return '?'
  return str(datetime.timedelta(seconds=int(round(seconds))))
