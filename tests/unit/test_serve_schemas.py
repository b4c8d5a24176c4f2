"""The request contract refuses bad input with a message naming the parameter."""

import pytest
from pydantic import ValidationError

from serve.schemas import RecommendationQuery, RecommendationResponse


def error_text(**params) -> str:
    with pytest.raises(ValidationError) as err:
        RecommendationQuery(**params)
    return str(err.value)


def test_valid_queries_per_surface():
    assert RecommendationQuery(user_id=1).n == 20
    assert RecommendationQuery(user_id=1, surface="search", query="space").query == "space"
    assert RecommendationQuery(user_id=1, surface="post_play", item_id=5, n=100).n == 100
    assert RecommendationQuery(user_id=1, max_maturity="PG-13", region="US").region == "US"


@pytest.mark.parametrize(("params", "names"), [
    ({"surface": "kids"}, "surface"),
    ({"n": 0}, "n"),
    ({"n": 101}, "n"),
    ({"surface": "search"}, "query is required when surface=search"),
    ({"surface": "search", "query": "  "}, "query is required when surface=search"),
    ({"surface": "post_play"}, "item_id is required when surface=post_play"),
    ({"max_maturity": "X"}, "max_maturity"),
    ({"colour": "red"}, "colour"),
])
def test_bad_queries_name_the_parameter(params, names):
    assert names in error_text(user_id=1, **params)


def test_response_has_a_request_id_and_version():
    a = RecommendationResponse(surface="home", user_id=1, items=[], version="v1")
    b = RecommendationResponse(surface="home", user_id=1, items=[], version="v1")
    assert a.request_id != b.request_id and a.degraded == []
