"""API keys for the write endpoints: parsing from the environment and a file, constant-time
lookup over digests only, and the 401/403 answers (serve/auth.py)."""

import pickle
from pathlib import Path

import pytest

from recsys import RecsysError
from serve import auth
from serve.auth import ApiKeys, AuthError, Role, authorize, presented_key

WRITE = "w" * 8 + "-secret-write-key-0001"
READ = "r" * 8 + "-secret-read-key-0002"
FILE_WRITE = "f" * 8 + "-secret-file-key-0003"
FILE_READ = "g" * 8 + "-secret-file-key-0004"


def env_keys(value: str) -> ApiKeys:
    return ApiKeys.from_environment({"RECSYS_API_KEYS": value})


def key_file(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "keys.txt"
    path.write_text(text)
    return {"RECSYS_API_KEYS_FILE": str(path)}


@pytest.fixture
def keys() -> ApiKeys:
    return env_keys(f"{WRITE}:write,{READ}:read")


def refused(keys: ApiKeys, headers: dict[str, str], needed: Role = Role.write,
            **kwargs: object) -> AuthError:
    with pytest.raises(AuthError) as caught:
        authorize(keys, headers, needed, **kwargs)
    return caught.value


def test_environment_entries_roles_default_and_whitespace() -> None:
    keys = env_keys(f"  {WRITE} : write , {READ}:read,,  {FILE_WRITE}  ")
    assert keys.role_of(WRITE) is Role.write
    assert keys.role_of(READ) is Role.read
    assert keys.role_of(FILE_WRITE) is Role.write  # no role: write
    assert repr(keys) == "ApiKeys(read=1, write=2)"


def test_file_with_comments_blank_lines_and_both_forms(tmp_path: Path) -> None:
    text = f"# server keys\n\n{FILE_WRITE} write\n   # indented comment a b c\n{FILE_READ}:read\n"
    keys = ApiKeys.from_environment(key_file(tmp_path, text + f"{WRITE}\n"))
    assert keys.role_of(FILE_WRITE) is Role.write
    assert keys.role_of(FILE_READ) is Role.read
    assert keys.role_of(WRITE) is Role.write
    assert repr(keys) == "ApiKeys(read=1, write=2)"


def test_environment_and_file_are_a_union(tmp_path: Path) -> None:
    environ = {"RECSYS_API_KEYS": f"{WRITE},{READ}:read",
               **key_file(tmp_path, f"{FILE_READ} read\n{WRITE} write\n")}
    keys = ApiKeys.from_environment(environ)
    assert [keys.role_of(k) for k in (WRITE, READ, FILE_READ)] == [Role.write, Role.read,
                                                                     Role.read]
    assert repr(keys) == "ApiKeys(read=2, write=1)"  # the repeated write key counts once


def test_same_key_with_two_roles_is_refused(tmp_path: Path) -> None:
    environ = {"RECSYS_API_KEYS": WRITE, **key_file(tmp_path, f"{WRITE} read\n")}
    with pytest.raises(RecsysError, match="RECSYS_API_KEYS entry 1") as caught:
        ApiKeys.from_environment(environ)
    assert "keys.txt line 1" in str(caught.value) and WRITE not in str(caught.value)


@pytest.mark.parametrize(("entry", "problem"), [
    (f"{WRITE}:admin", "unknown role"),
    (":write", "empty API key"),
    ("short-key:write", "shorter than 16"),
])
def test_malformed_environment_entry_names_it_but_not_the_key(entry: str, problem: str) -> None:
    with pytest.raises(RecsysError) as caught:
        env_keys(f"{READ}:read,{entry}")
    message = str(caught.value)
    assert "RECSYS_API_KEYS entry 2" in message and problem in message
    key = entry.partition(":")[0]
    assert not key or key not in message
    assert READ not in message and "admin" not in message


@pytest.mark.parametrize("line", [f"{WRITE} admin", f"{WRITE} write extra", "tiny-key read",
                                  f"{WRITE}:write read"])
def test_malformed_file_line_names_path_and_line(tmp_path: Path, line: str) -> None:
    environ = key_file(tmp_path, f"# comment\n{READ} read\n{line}\n")
    with pytest.raises(RecsysError, match=r"keys\.txt line 3") as caught:
        ApiKeys.from_environment(environ)
    assert line.split()[0].split(":")[0] not in str(caught.value)


def test_missing_key_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "keys.txt"
    with pytest.raises(RecsysError, match="RECSYS_API_KEYS_FILE") as caught:
        ApiKeys.from_environment({"RECSYS_API_KEYS_FILE": str(missing)})
    assert str(missing) in str(caught.value)


def test_key_file_inside_the_repository_is_refused() -> None:
    inside = Path(auth.__file__).resolve().parents[1] / "keys.txt"
    with pytest.raises(RecsysError, match="inside the repository"):
        ApiKeys.from_environment({"RECSYS_API_KEYS_FILE": str(inside)})


def test_role_of(keys: ApiKeys) -> None:
    assert keys.role_of(WRITE) is Role.write
    assert keys.role_of(READ) is Role.read
    assert keys.role_of(FILE_WRITE) is None
    assert keys.role_of(WRITE + "x") is None
    assert keys.role_of("") is None and keys.role_of(None) is None


def test_role_of_compares_every_digest_in_constant_time(keys: ApiKeys, monkeypatch) -> None:
    calls = []
    real = auth.hmac.compare_digest
    monkeypatch.setattr(auth.hmac, "compare_digest",
                        lambda a, b: calls.append(1) or real(a, b))
    assert keys.role_of(WRITE) is Role.write  # the first stored key: still checks both
    assert len(calls) == 2


def test_presented_key_from_either_header_style() -> None:
    assert presented_key({"Authorization": f"Bearer {WRITE}"}) == WRITE
    assert presented_key({"authorization": f"bEaReR   {WRITE} "}) == WRITE
    assert presented_key({"X-API-Key": f" {READ} "}) == READ
    assert presented_key({"x-api-key": READ}) == READ
    assert presented_key({"Authorization": f"Basic {WRITE}", "X-API-Key": READ}) == READ
    assert presented_key({"Authorization": "Bearer ", "X-Api-Key": ""}) is None
    assert presented_key({}) is None


@pytest.mark.parametrize("headers", [{"Authorization": f"Bearer {WRITE}"},
                                     {"Authorization": f"BEARER {WRITE}"},
                                     {"X-API-Key": WRITE}])
def test_write_key_may_write_and_read(keys: ApiKeys, headers: dict[str, str]) -> None:
    authorize(keys, headers, Role.write, endpoint="POST /v1/items")
    authorize(keys, headers, Role.read, read_needs_key=True)


def test_no_key_is_401_saying_how_to_send_one(keys: ApiKeys) -> None:
    err = refused(keys, {"Authorization": f"Basic {WRITE}"})
    assert err.status == 401
    assert err.message == ("this endpoint needs an API key: send 'Authorization: Bearer <key>' "
                           "or 'X-API-Key: <key>'")


def test_unknown_key_is_401_not_valid_without_echoing_it(keys: ApiKeys) -> None:
    err = refused(keys, {"X-API-Key": FILE_WRITE})
    assert err.status == 401 and "the API key is not valid" in err.message
    assert FILE_WRITE not in err.message and FILE_WRITE not in repr(err)


def test_read_only_key_on_write_endpoint_is_403(keys: ApiKeys) -> None:
    err = refused(keys, {"Authorization": f"Bearer {READ}"}, endpoint="POST /v1/events")
    assert err.status == 403
    assert err.message == "this API key is read-only; POST /v1/events needs a write key"
    authorize(keys, {"Authorization": f"Bearer {READ}"}, Role.read, read_needs_key=True)


def test_no_keys_configured_refuses_writes() -> None:
    empty = ApiKeys.from_environment({})
    assert not empty.configured and repr(empty) == "ApiKeys(read=0, write=0)"
    for headers in ({}, {"X-API-Key": WRITE}):
        err = refused(empty, headers)
        assert err.status == 401 and "no write keys are configured" in err.message
        assert "RECSYS_API_KEYS" in err.message and "RECSYS_API_KEYS_FILE" in err.message
    assert refused(empty, {}, Role.read, read_needs_key=True).status == 401


def test_read_endpoints_are_open_unless_configured(keys: ApiKeys) -> None:
    for some in (keys, ApiKeys.from_environment({})):
        authorize(some, {}, Role.read)
        authorize(some, {"X-API-Key": "not-a-key"}, Role.read)
    assert refused(keys, {}, Role.read, read_needs_key=True).status == 401
    assert refused(keys, {"X-API-Key": FILE_READ}, Role.read, read_needs_key=True).status == 401


def test_object_holds_no_raw_key(keys: ApiKeys, tmp_path: Path) -> None:
    both = ApiKeys.from_environment({"RECSYS_API_KEYS": WRITE,
                                     **key_file(tmp_path, f"{READ} read\n")})
    for some in (keys, both):
        assert some.configured
        for key in (WRITE, READ):
            assert key not in repr(some) and key not in repr(vars(some))
            assert key.encode() not in pickle.dumps(some)
        assert pickle.loads(pickle.dumps(some)).role_of(READ) is Role.read


def test_role_write_implies_read() -> None:
    assert Role.write.allows(Role.read) and Role.write.allows(Role.write)
    assert Role.read.allows(Role.read) and not Role.read.allows(Role.write)
