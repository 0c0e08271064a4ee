"""Parameter and multiply-add counts against the original / model-zoo numbers."""
import json
import subprocess
import sys

import pytest


def _stats(*flags):
  proc = subprocess.run([sys.executable, '-m', 'deeplab_tf.model_stats'] + list(flags),
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr
  return json.loads(proc.stdout.strip().splitlines()[-1])


def test_xception_65_decoder_os16():
  s = _stats('--model_variant=xception_65', '--atrous_rates=6', '--atrous_rates=12',
             '--atrous_rates=18', '--output_stride=16', '--decoder_output_stride=4',
             '--crop_size=513,513', '--num_classes=21')
  # Original graph (reference case A): 41,055,413 trainable / 41,258,213 total.
  assert s['trainable_params'] == 41055413 and s['total_params'] == 41258213
  # Model zoo: 54.17B multiply-adds at 513x513 (within 0.5%).
  assert s['multiply_adds'] == pytest.approx(54.17e9, rel=0.005)


def test_mobilenet_v2_os16():
  s = _stats('--model_variant=mobilenet_v2', '--output_stride=16', '--crop_size=513,513')
  assert s['trainable_params'] == 2113557 and s['total_params'] == 2146645
  assert s['multiply_adds'] == pytest.approx(2.75e9, rel=0.005)


def test_resnet_101_beta_params():
  s = _stats('--model_variant=resnet_v1_101_beta', '--atrous_rates=6',
             '--atrous_rates=12', '--atrous_rates=18', '--output_stride=16',
             '--multi_grid=1', '--multi_grid=2', '--multi_grid=4',
             '--noaspp_with_separable_conv', '--crop_size=129,129')
  assert s['trainable_params'] == 58164437 and s['total_params'] == 58273237
