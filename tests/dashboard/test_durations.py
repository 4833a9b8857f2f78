from __future__ import annotations

import pytest

from live.web.durations import spoken
from live.web.rendering import announcement


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (1209600, "14 days"),
        (1209599, "13 days"),
        (86400, "1 day"),
        (3599, "59 min"),
        (3600, "1 h"),
        (60, "1 min"),
        (59, "59 s"),
        (0, "0 s"),
        (-5, "0 s"),
    ],
)
def test_spoken_says_the_largest_whole_unit(seconds: int, words: str):
    assert spoken(seconds) == words


def test_announcement_says_one_change_with_its_tab_and_several_by_count():
    one = [{"key": "fruit", "text": '"apple" → "pear"', "new": '"pear"'}]
    assert announcement(one, "POST /keys/ (tab x1wq)") == 'fruit set to "pear" by tab x1wq'
    gone = [{"key": "fruit", "text": '"pear" → (deleted)', "new": "(deleted)"}]
    assert announcement(gone, "code") == "fruit deleted by code"
    assert announcement(one + gone, "POST /clear/") == "2 keys changed by POST /clear/"
