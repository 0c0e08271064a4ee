"""The README's main command, at toy size: records -> training -> evaluation."""
import json
import os
import subprocess
import sys


def test_quickstart_main_command(tmp_path):
  proc = subprocess.run(
      [sys.executable, '-m', 'deeplab_tf.quickstart', '--workdir=%s' % tmp_path,
       '--steps=3', '--batch_size=2', '--num_train=8', '--num_val=4'],
      capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert '[3/3] val mIoU' in proc.stdout
  metrics = json.loads((tmp_path / 'eval' / 'metrics.json').read_text())
  assert metrics['num_images'] == 4 and 0.0 <= metrics['miou'] <= 1.0
  assert len(metrics['iou_per_class']) == 6
  assert os.path.exists(tmp_path / 'train' / 'checkpoint')
  assert any(n.startswith('events.out.tfevents') for n in os.listdir(tmp_path / 'train'))
