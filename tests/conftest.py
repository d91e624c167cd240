import os

import pytest

# Tests are small; one thread per op keeps the two shared cores responsive and results stable.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True, scope="session")
def _torch_threads():
    import torch

    torch.set_num_threads(1)
    yield
