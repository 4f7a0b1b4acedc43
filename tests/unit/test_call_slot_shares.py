"""How the Zoho call slots are split among the processes sharing them (``call_slots._share``)."""
from __future__ import annotations

import pytest

from syncbridge.adapters.db.call_slots import _share


@pytest.mark.parametrize(("limit", "members", "busy", "shares"), [
    (10, [1], set(), [10]),
    (10, [1, 2], set(), [5, 5]),
    (10, [1, 2, 3], set(), [4, 3, 3]),
    (10, [1, 2], {1}, [9, 1]),
    (10, [1, 2], {2}, [1, 9]),
    (10, [1, 2, 3], {1, 3}, [5, 1, 4]),
    (10, [1, 2, 3], {1, 2, 3}, [4, 3, 3]),
    (4, [1, 2, 3, 4, 5], {1}, [1, 1, 1, 1, 0]),    # more members than slots: all split, the last waits
    (2, [1, 2], {1}, [1, 1]),
])
def test_shares_sum_to_the_limit_and_idle_members_keep_one(limit, members, busy, shares):
    got = [_share(limit, members, busy, pid) for pid in members]
    assert got == shares
    assert sum(got) == limit
