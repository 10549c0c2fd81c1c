"""The chaos experiment's own judgement: a promotion is only excused when the evidence shows
the verifying read saw our write and the edit came after it."""

from __future__ import annotations

from tools.chaos import verified_before_edit

OURS = {"at": 10.0, "by": "api", "version": "t10", "rotator_version": "v3"}
EDIT = {"at": 11.0, "by": "oob", "version": "t11", "rotator_version": None}


def test_an_edit_after_a_read_that_saw_our_write_is_a_race() -> None:
    assert verified_before_edit([OURS, EDIT], "t10", "v3")


def test_a_read_that_saw_someone_elses_version_is_not_excused() -> None:
    assert not verified_before_edit([OURS, EDIT], "t11", "v3")
    assert not verified_before_edit([OURS, EDIT], None, "v3")


def test_a_read_of_another_rotator_version_or_a_later_write_of_ours_is_not_excused() -> None:
    assert not verified_before_edit([OURS, EDIT], "t10", "v4")
    later_api = {"at": 12.0, "by": "api", "version": "t12", "rotator_version": "v5"}
    assert not verified_before_edit([OURS, EDIT, later_api], "t10", "v3")
