"""Test-session settings: one intra-op thread per test process (every test file relies on this).

The suite runs under pytest-xdist with one worker per core; more threads per worker oversubscribe the
cores, and OpenMP's spin-waiting then makes small models many times slower.
"""

import torch

torch.set_num_threads(1)
