import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

# Child Pythons (``python -c``, ``python -m glm``) must import the glm this process imported. Without
# this they put their working directory first on sys.path, and CI runs from the repository root, where
# the source tree's glm has no compiled modules (CI installs glm into a virtual environment).
os.environ["PYTHONSAFEPATH"] = "1"


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: tests that take more than ~20 s")


@pytest.fixture(scope="module")
def dask_client():
    """A LocalCluster of two worker processes (one thread each) and its client, per test module."""
    distributed = pytest.importorskip("distributed", reason="Dask is optional: pip install glm[dask]")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as client:
        yield client
