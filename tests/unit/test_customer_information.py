"""Meta's baseline requirement for matching, exactly as published: an event is refused only
when its customer information is one of these sets or a subset of one (Best Practices -
Conversions API, "Baseline requirements for matching":
https://developers.facebook.com/documentation/ads-commerce/conversions-api/best-practices#baseline-requirements-for-matching).
"""

from itertools import combinations

import pytest

from capi_relay.core.meta_rules import (
    INSUFFICIENT_CUSTOMER_INFORMATION,
    customer_information_problem,
)
from capi_relay.core.model import UserData

PUBLISHED = [
    {"ct", "country", "st", "zp", "ge", "client_user_agent"},
    {"db", "client_user_agent"},
    {"fn", "ge"},
    {"ln", "ge"},
]


def subsets(keys):
    keys = sorted(keys)
    return [frozenset(c) for n in range(len(keys) + 1) for c in combinations(keys, n)]


REFUSED = sorted({s for published in PUBLISHED for s in subsets(published)}, key=sorted)


def test_the_rule_is_the_published_list():
    assert [set(s) for s in INSUFFICIENT_CUSTOMER_INFORMATION] == PUBLISHED


@pytest.mark.parametrize("keys", REFUSED, ids=lambda k: "+".join(sorted(k)) or "nothing")
def test_each_listed_set_and_each_subset_is_refused(keys):
    problem = customer_information_problem(set(keys))
    assert problem and problem.startswith("user_data: insufficient customer information")


@pytest.mark.parametrize("keys", [
    {"client_user_agent", "fn"},
    {"client_user_agent", "fn", "ln"},
    {"client_ip_address", "client_user_agent"},
    {"em"}, {"ph"}, {"external_id"}, {"fbp"}, {"fbc"}, {"client_ip_address"},
    {"fn", "ln"}, {"fn", "ct"}, {"db", "ct"}, {"db", "ge"}, {"fn", "ln", "ge"},
    {"ct", "country", "st", "zp", "ge", "client_user_agent", "db"},
    {"ct", "country", "st", "zp", "ge", "client_user_agent", "fn"},
    {"page_scoped_user_id", "page_id"}, {"ctwa_clid"}, {"madid"}, {"anon_id"},
], ids=lambda k: "+".join(sorted(k)))
def test_sets_beyond_the_list_are_sent(keys):
    assert customer_information_problem(set(keys)) is None


def test_a_user_data_value_is_judged_by_its_keys_and_the_message_names_no_value():
    user = UserData(client_user_agent="Mozilla/5.0", fn=("a" * 64,), ge=("b" * 64,))
    assert customer_information_problem(user) is None  # UA + fn + ge: beyond every set
    refused = UserData(ct=("c" * 64,), client_user_agent="Mozilla/5.0")
    problem = customer_information_problem(refused)
    assert problem and "Mozilla" not in problem and "ccc" not in problem
    assert "client_user_agent" in problem and "ct" in problem
