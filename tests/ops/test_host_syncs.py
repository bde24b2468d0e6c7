"""The CPU stand-in for torch.cuda.set_sync_debug_mode used by the no-sync tests."""

import torch
from host_syncs import METHODS, record_host_syncs

from unihpr._validate import check_range


def test_records_host_reads_by_unihpr_code_only():
    before = {name: getattr(torch.Tensor, name) for name in METHODS}
    with record_host_syncs() as calls:
        check_range("idx", torch.arange(4), 10)  # reads min/max: one tolist
        bool(torch.tensor(True))  # this test's own read is not unihpr code
        float(torch.tensor(1.0))
    assert [name for name, _ in calls] == ["tolist"]
    assert calls[0][1].endswith(".py:" + calls[0][1].rsplit(":", 1)[1])
    assert "_validate.py" in calls[0][1]
    # everything is restored afterwards
    assert {name: getattr(torch.Tensor, name) for name in METHODS} == before
