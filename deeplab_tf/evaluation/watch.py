"""Waiting for checkpoints: the continuous mode of the original eval.py and vis.py.

The original loops over ``checkpoints_iterator(checkpoint_dir,
min_interval_secs=eval_interval_secs)``: every new checkpoint is evaluated
once, at most one evaluation starts per interval, and
``max_number_of_evaluations`` (0 = forever) ends the loop. We add one way
out the original lacks: the trainer writes ``training_done.json`` (final
step and checkpoint) when it reaches ``training_number_of_steps``, and the
loop ends once that checkpoint has been evaluated, so an evaluator started
beside a training run stops on its own.
"""
import time
from typing import Callable, Iterator, Optional

import tensorflow as tf

from deeplab_tf.checkpoints.folders import checkpoint_step
from deeplab_tf.checkpoints.folders import find_checkpoint
from deeplab_tf.checkpoints.folders import read_training_done

def checkpoints_to_evaluate(checkpoint_dir, interval_secs=300,
                            max_evaluations=0, timeout_secs=None,
                            sleep: Callable[[float], None] = time.sleep,
                            log: Optional[Callable[[str], None]] = None
                            ) -> Iterator[str]:
  """Yields each new checkpoint prefix of ``checkpoint_dir`` once, oldest first.

  Args:
    checkpoint_dir: a train_logdir (or a checkpoint prefix: yielded once).
    interval_secs: at least this long between two yields (the original
      ``eval_interval_secs``); also the polling period.
    max_evaluations: stop after this many (0: no limit).
    timeout_secs: stop when no new checkpoint appeared for this long.
    sleep / log: injectable for tests and progress lines.

  The loop also ends after yielding the checkpoint that ``training_done.json``
  names (or one at a later step).
  """
  if not tf.io.gfile.isdir(checkpoint_dir):
    yield find_checkpoint(checkpoint_dir)
    return
  done_count = 0
  last_yield = None
  last_seen = None
  waited_since = time.time()
  while True:
    latest = tf.train.latest_checkpoint(checkpoint_dir)
    done = read_training_done(checkpoint_dir)
    if latest and latest != last_seen:
      if last_yield is not None:
        wait = interval_secs - (time.time() - last_yield)
        if wait > 0:
          sleep(wait)
          latest = tf.train.latest_checkpoint(checkpoint_dir) or latest
          done = read_training_done(checkpoint_dir)
      last_seen, last_yield = latest, time.time()
      yield latest
      done_count += 1
      waited_since = time.time()
      if max_evaluations and done_count >= max_evaluations:
        return
      step = checkpoint_step(latest)
      if done and (latest == done.get('checkpoint') or (
          step is not None and step >= done.get('step', float('inf')))):
        if log:
          log('training finished at step %s: evaluated its last checkpoint.'
              % done.get('step'))
        return
      continue
    if done and last_seen is not None:
      # Finished, and the final checkpoint was already evaluated.
      return
    if timeout_secs is not None and time.time() - waited_since > timeout_secs:
      if log:
        log('no new checkpoint in %s for %.0f s: stopping.'
            % (checkpoint_dir, timeout_secs))
      return
    if log:
      log('waiting for a new checkpoint in %s' % checkpoint_dir)
    sleep(max(1.0, min(interval_secs, 60.0)))
