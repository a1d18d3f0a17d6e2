"""The suite's expensive shared fixtures (transformers' checkpoint writer, the multi-device subprocesses) run once
only if pytest-xdist sends every test of an ``xdist_group`` to one worker; check that it does."""

import pytest


@pytest.mark.xdist_group("grouping_check")
def test_grouped_tests_are_sent_to_one_worker(request, worker_id):
    if worker_id == "master":
        pytest.skip("not run by pytest-xdist")
    assert request.node.nodeid.endswith("@grouping_check"), (
        "pytest-xdist did not group this test (--dist loadgroup): pytest-xdist 3.8 cannot on pytest 9; "
        "install the test extra's pytest (pytest<9)")
