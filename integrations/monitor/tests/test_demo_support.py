"""The demos' shared summary: each run's story is checked, and a run that
does not tell it turns the exit status to 1."""

from fastmoments_monitor.demo import RUN_NAMES, print_summary, told_as_designed

DESIGNED = {"healthy": {}, "vanishing": {"vanishing": 3}, "exploding": {"exploding": 1, "dead": 2}}


def test_designed_stories_pass_and_each_broken_one_fails(capsys):
    assert told_as_designed(DESIGNED)
    assert told_as_designed({**DESIGNED, "exploding": {"skipped": 1, "dead": 1}})
    broken = [
        {**DESIGNED, "healthy": {"vanishing": 1}},
        {**DESIGNED, "vanishing": {}},
        {**DESIGNED, "vanishing": {"vanishing": 3, "dead": 1}},
        {**DESIGNED, "exploding": {"exploding": 1}},
        {**DESIGNED, "exploding": {"dead": 2}},
        {**DESIGNED, "exploding": {"exploding": 1, "dead": 2, "vanishing": 1}},
    ]
    for kinds in broken:
        assert not told_as_designed(kinds), kinds
    summary = {n: (k, f"diagnosis of {n}") for n, k in DESIGNED.items()}
    assert print_summary(summary, 1.0, "cpu") == 0
    assert "diagnosis of vanishing" in capsys.readouterr().out
    assert print_summary({**summary, "vanishing": ({}, "")}, 1.0, "cpu") == 1
    # a subset of the runs is not judged
    assert print_summary({"vanishing": ({}, "")}, 1.0, "cpu") == 0
    assert set(RUN_NAMES) == set(DESIGNED)
