"""The request contract refuses bad input with a message naming the parameter."""

import pytest
from pydantic import ValidationError

from serve.http_errors import validation_messages
from serve.schemas import NEW_TITLES, RecommendationQuery, RecommendationResponse


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


def test_new_titles_are_checked_and_errors_name_the_field():
    ok = NEW_TITLES.validate_python([{"item_id": 7, "title": "A Film", "genres": ["Drama"]}])
    assert ok[0].model_dump() == {"item_id": 7, "title": "A Film", "year": None,
                                  "genres": ["Drama"], "tags": [], "maturity_rating": None,
                                  "regions": []}
    for body, parameter in [
        ([{"item_id": 7}], "items[0].title"),
        ([{"item_id": 7, "title": "ok"}, {"item_id": 8, "title": " "}], "items[1].title"),
        ([{"item_id": "x", "title": "ok"}], "items[0].item_id"),
        ([{"item_id": 7, "title": "ok", "maturity_rating": "XXX"}], "items[0].maturity_rating"),
        ([{"item_id": 7, "title": "ok", "colour": "red"}], "items[0].colour"),
        ([], "items"),
        ({"item_id": 7, "title": "not in a list"}, "items"),
    ]:
        with pytest.raises(ValidationError) as err:
            NEW_TITLES.validate_python(body)
        assert [m["parameter"] for m in validation_messages(err.value, root="items")] == [
            parameter], body


def test_query_errors_still_name_the_bare_parameter():
    with pytest.raises(ValidationError) as err:
        RecommendationQuery(user_id=1, n=0)
    assert validation_messages(err.value) == [
        {"parameter": "n", "message": "Input should be greater than or equal to 1"}]


# One id contract at every edge: non-negative int64, anything else a 422 naming the field.
ID_BOUNDARIES = [  # (value as a client sends it in a query or path, accepted?)
    (str(2**63 - 1), True), (str(2**63), False), ("-1", False), ("5.0", False), ("1e3", False),
    ("5", True), (str(99999999999999999999998), False),
]


@pytest.mark.parametrize(("text", "ok"), ID_BOUNDARIES)
@pytest.mark.parametrize("field", ["user_id", "item_id", "exclude"])
def test_query_ids_are_non_negative_int64_text(field, text, ok):
    from pydantic import ValidationError

    from serve.http_errors import validation_messages
    from serve.schemas import RecommendationQuery

    params = {"user_id": "1", field: [text] if field == "exclude" else text}
    if ok:
        RecommendationQuery(**params)
        return
    with pytest.raises(ValidationError) as err:
        RecommendationQuery(**params)
    want = "exclude[0]" if field == "exclude" else field
    assert [m["parameter"] for m in validation_messages(err.value)] == [want]


@pytest.mark.parametrize(("value", "ok"), [
    (2**63 - 1, True), (2**63, False), (-1, False), (5.0, False), ("5", False), (True, False),
    (99999999999999999999998, False), (0, True),
])
def test_new_title_ids_are_json_integers_in_int64(value, ok):
    """The bug this closes: 99999999999999999999998 and 2**64 were accepted and stored as
    int64's minimum (a wrap), two titles with one id."""
    from pydantic import ValidationError

    from serve.http_errors import validation_messages
    from serve.schemas import NEW_TITLES

    body = [{"item_id": value, "title": "A title"}]
    if ok:
        assert NEW_TITLES.validate_python(body)[0].item_id == value
        return
    with pytest.raises(ValidationError) as err:
        NEW_TITLES.validate_python(body)
    assert [m["parameter"] for m in validation_messages(err.value, root="items")] == [
        "items[0].item_id"]
