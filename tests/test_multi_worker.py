"""MultiWorkerMirroredStrategy: two local worker processes (TF_CONFIG on 127.0.0.1).

The workers train 3 steps as a job that is stopped after step 1 (on the
chief's request alone) and resumed from the chief's checkpoint; they must
agree on the weights throughout, match one device on the same global batch,
and only the chief may leave checkpoints and summaries in train_logdir.

Why the one-device comparison is on step 1 and relative to the update: with a
33x33 crop the deepest feature maps are 3x3, so each BatchNorm normalises 36
values per channel and a ReLU6 input within rounding of 0 (there are a few in
every step) takes its mask from the summation order. One device and two
replicas round differently, so their step-1 gradients differ by up to ~1% in
norm (measured over random inits: 6e-5 to 1.1e-2; the same holds for
MirroredStrategy), and later steps amplify that. A real distribution error
(unsummed or doubly divided gradients, unsynchronised BatchNorm) is an O(1)
difference, and an unsynchronised BatchNorm also changes the loss itself.
"""
import glob
import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf import checkpoints
from deeplab_tf.models import build_model
from test_trainer import OPTIONS

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, '_multi_worker_worker.py')
TIMEOUT_S = 300
STEPS = 3


def _free_ports(n):
  socks = []
  try:
    for _ in range(n):
      s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
      s.bind(('127.0.0.1', 0))
      socks.append(s)
    return [s.getsockname()[1] for s in socks]
  finally:
    for s in socks:
      s.close()


def _run_all(commands, log_dir):
  """Starts every (name, argv, env) at once, waits for all, kills all on failure."""
  procs = {}
  try:
    for name, argv, env in commands:
      log = open(log_dir / ('%s.log' % name), 'w')
      procs[name] = (subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                      env=env), log)
    for proc, _ in procs.values():
      proc.wait(timeout=TIMEOUT_S)
  finally:
    for proc, log in procs.values():
      if proc.poll() is None:
        proc.kill()
        proc.wait()
      log.close()
  facts = {}
  for name, (proc, _) in procs.items():
    text = (log_dir / ('%s.log' % name)).read_text()
    assert proc.returncode == 0, '%s failed:\n%s' % (name, text[-4000:])
    facts[name] = json.loads(text.split('FACTS ')[1].splitlines()[0])
  return facts


def _named_weights(out, name, step):
  return dict(np.load(out / ('%s_step%d.npz' % (name, step))))


def _weights(out, name, step):
  data = _named_weights(out, name, step)
  return [data[k] for k in sorted(data)]


def _assert_same(a, b, atol):
  assert len(a) == len(b)
  for i, (x, y) in enumerate(zip(a, b)):
    np.testing.assert_allclose(x, y, rtol=0, atol=atol, err_msg='weight %d' % i)


@pytest.mark.slow
def test_two_workers_agree_follow_the_first_replica_and_only_chief_writes(
    tmp_path):
  keras.utils.set_random_seed(0)  # a fixed initial model
  init = tmp_path / 'init' / 'model.ckpt'
  checkpoints.save_tf1_checkpoint(build_model(OPTIONS), str(init))
  out = tmp_path / 'out'
  out.mkdir()
  logdir = tmp_path / 'train'  # shared by the workers, as on a shared filesystem
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2',
             PYTHONPATH=HERE + os.pathsep + os.environ.get('PYTHONPATH', ''))
  env.pop('TF_CONFIG', None)
  cluster = {'worker': ['127.0.0.1:%d' % p for p in _free_ports(2)]}
  commands = [('single', [sys.executable, SCRIPT, 'single',
                          str(tmp_path / 'single'), str(init), str(out)], env)]
  for index in range(2):
    tf_config = {'cluster': cluster, 'task': {'type': 'worker', 'index': index}}
    commands.append(('worker%d' % index,
                     [sys.executable, SCRIPT, 'worker', str(logdir), str(init),
                      str(out)],
                     dict(env, TF_CONFIG=json.dumps(tf_config))))
  facts = _run_all(commands, tmp_path)
  chief, other, single = facts['worker0'], facts['worker1'], facts['single']

  # Two replicas, worker 0 the chief. The chief's stop request stopped both
  # after step 1 (the other worker did not hang in step 2), the other
  # worker's write directory was deleted after its save, both resumed from
  # the chief's checkpoint in train_logdir and finished.
  assert (chief['chief'], other['chief']) == (True, False)
  assert chief['replicas'] == other['replicas'] == 2 and single['replicas'] == 1
  assert chief['phase1_step'] == other['phase1_step'] == 1
  assert chief['worker_tmp_after_phase1'] == other['worker_tmp_after_phase1'] == []
  for f in (chief, other):
    assert f['resume'] == 'resumed from %s at step 1' % (logdir / 'model.ckpt-1'), f
    assert f['step'] == STEPS
  assert single['step'] == 1

  # The workers hold the same weights (trained ones and BN moving statistics)
  # after each phase, and training went on after the resume.
  for step in (1, STEPS):
    _assert_same(_weights(out, 'worker0', step), _weights(out, 'worker1', step),
                 atol=1e-6)
  assert chief['loss1'] == other['loss1']
  assert chief['loss_last'] == other['loss_last']
  moved = max(np.abs(a - b).max() for a, b in zip(
      _weights(out, 'worker0', 1), _weights(out, 'worker0', STEPS)))
  assert moved > 1e-3

  # BatchNorm as the original's clones: the moving statistics after step 1
  # are those of one device on worker 0's half batch (the first replica's),
  # on both workers.
  start = _named_weights(out, 'single', 0)
  single_1 = _named_weights(out, 'single', 1)
  worker_1 = _named_weights(out, 'worker1', 1)
  statistics = [k for k in start if k.endswith(('moving_mean',
                                                'moving_variance'))]
  assert len(statistics) > 50
  for key in statistics:
    update = np.abs(single_1[key] - start[key]).max()
    np.testing.assert_allclose(worker_1[key], single_1[key],
                               atol=1e-6 + 1e-4 * update, err_msg=key)
  assert max(np.abs(single_1[k] - start[k]).max() for k in statistics) > 1e-3

  # Only the chief wrote: checkpoints at the top of train_logdir, no worker
  # directory left, every event file from the chief's process.
  assert checkpoints.find_checkpoint(str(logdir)).endswith('ckpt-%d' % STEPS)
  names = sorted(os.listdir(logdir))
  assert 'checkpoint' in names and 'model_options.json' in names
  assert not [n for n in names if os.path.isdir(logdir / n)], names
  assert {n.rsplit('.', 1)[0] for n in names if n.startswith('model.ckpt-')} == {
      'model.ckpt-1', 'model.ckpt-%d' % STEPS}
  events = glob.glob(str(logdir / 'events.out.tfevents.*'))
  assert events, names
  tags = set()
  for event_file in events:
    assert '.%d.' % chief['pid'] in os.path.basename(event_file), event_file
    for event in tf.compat.v1.train.summary_iterator(event_file):
      tags.update(v.tag for v in event.summary.value)
  assert {'total_loss', 'learning_rate', 'pixel_accuracy'} <= tags
