"""A rule that found nothing to judge says "matched nothing" once, whoever said it first."""

from alignguard.results import matched_nothing


def test_a_reason_without_the_words_gets_them():
    assert matched_nothing("forward returns no key 'z'") == "matched nothing: forward returns no key 'z'"


def test_a_reason_that_already_says_it_is_not_prefixed_again():
    reason = "matched nothing: forward returns no key 'z' (keys: logit)"
    assert matched_nothing(ValueError(reason)) == reason
    assert matched_nothing("module 'enc' is never called in forward: matched nothing").count("matched nothing") == 1
