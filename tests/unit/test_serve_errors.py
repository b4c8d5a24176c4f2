"""Errors cross the Ray Serve handle as exceptions and become status codes only at the HTTP
edge, as {parameter, message} like the 422s of validation."""

import pickle

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from recsys import RecsysError
from recsys.serving.errors import DuplicateItemError, InvalidInput, UnknownItemError
from serve.http_errors import cause_of, status_and_detail


def ray_wrapped(err: Exception) -> Exception:
    """What a handle raises over Ray's actor-call transport: a RayTaskError that is also an
    instance of the replica's exception class."""
    from ray.exceptions import RayTaskError

    return RayTaskError("Recommender.recommend", "Traceback ...", err).as_instanceof_cause()


def test_an_error_keeps_its_parameter_through_pickling():
    err = pickle.loads(pickle.dumps(UnknownItemError("item_id=5 is not a title", "item_id")))
    assert isinstance(err, UnknownItemError) and err.parameter == "item_id"
    assert str(err) == "item_id=5 is not a title"


@pytest.mark.parametrize("wrap", [lambda e: e, ray_wrapped], ids=["as_raised", "ray_task_error"])
def test_status_and_detail_of_request_path_errors(wrap):
    unknown = wrap(UnknownItemError("item_id=-5 is not a title in the catalog", "item_id"))
    assert isinstance(unknown, RecsysError)  # so the router's RecsysError handler sees it
    assert status_and_detail(unknown) == (422, [
        {"parameter": "item_id", "message": "item_id=-5 is not a title in the catalog"}])
    taken = wrap(DuplicateItemError("item_id [7] already in the catalog", "item_id"))
    assert status_and_detail(taken) == (409, [
        {"parameter": "item_id", "message": "item_id [7] already in the catalog"}])
    assert status_and_detail(wrap(RecsysError("no content source")))[0] == 422
    assert isinstance(cause_of(unknown), UnknownItemError)


def test_the_routers_handler_answers_with_the_status_and_body():
    """The app's own handler, on a route that raises as the handle does."""
    from serve.app import request_path_error

    api = FastAPI()
    api.add_exception_handler(RecsysError, request_path_error)

    @api.get("/unknown")
    async def unknown():
        raise ray_wrapped(UnknownItemError("item_id=3 is not a title", "item_id"))

    @api.get("/taken")
    async def taken():
        raise DuplicateItemError("item_id [3] already in the catalog", "item_id")

    @api.get("/bad")
    async def bad():
        raise InvalidInput("title must be a non-empty string", "title")

    client = TestClient(api)
    res = client.get("/unknown")
    assert res.status_code == 422
    assert res.json() == {"detail": [{"parameter": "item_id",
                                      "message": "item_id=3 is not a title"}]}
    res = client.get("/taken")
    assert res.status_code == 409 and res.json()["detail"][0]["parameter"] == "item_id"
    assert client.get("/bad").json()["detail"][0]["parameter"] == "title"


def test_fastapis_own_422s_have_the_same_shape():
    """A route parameter FastAPI checks itself (``/v1/items/{item_id}/similar?n=0``) used to
    answer FastAPI's default body; every 422 is {parameter, message} now."""
    from typing import Annotated

    from fastapi import Body, Path, Query
    from fastapi.exceptions import RequestValidationError

    from serve.app import route_validation_error

    api = FastAPI()
    api.add_exception_handler(RequestValidationError, route_validation_error)

    @api.get("/items/{item_id}/similar")
    async def similar(item_id: Annotated[int, Path()], n: Annotated[int, Query(ge=1)] = 20):
        return {}

    @api.post("/items")
    async def add(items: Annotated[list[int], Body()]):
        return {}

    client = TestClient(api)
    res = client.get("/items/1/similar", params={"n": 0})
    assert res.status_code == 422
    assert res.json() == {"detail": [{"parameter": "n",
                                      "message": "Input should be greater than or equal to 1"}]}
    assert client.get("/items/x/similar").json()["detail"][0]["parameter"] == "item_id"
    res = client.post("/items", content=b"[1, 2", headers={"content-type": "application/json"})
    assert res.status_code == 422 and res.json()["detail"][0]["parameter"].startswith("items")
