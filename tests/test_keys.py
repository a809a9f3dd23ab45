"""rag.keys: API keys with scopes, on real files in tmp_path."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rag.errors import ConfigError, InputError
from rag.keys import RIGHTS, Key, Keys, add_key, list_keys, parse_grants, remove_key

GOOD_HASH = "sha256:" + "ab" * 32


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "keys.json"


def write(path: Path, entries: object) -> None:
    path.write_text(json.dumps({"keys": entries}), encoding="utf-8")


def entry(**fields: object) -> dict[str, object]:
    return {"name": "bot", "hash": GOOD_HASH, "collections": {"hr": ["read"]}} | fields


# --- round trip and authentication ---------------------------------------------------------------

def test_add_load_authenticate(path: Path) -> None:
    hr = add_key(path, "hr-bot", {"hr": ["read"], "policy": ["read", "write"]})
    ops = add_key(path, "ops", {"*": ["admin"]})
    assert hr.startswith("wk_") and len(hr) > 40 and hr != ops
    keys = Keys.load(path)
    assert [k.name for k in keys.keys] == ["hr-bot", "ops"]
    key = keys.authenticate(f"Bearer {hr}")
    assert key is not None and key.name == "hr-bot"
    assert key.collections == {"hr": {"read"}, "policy": {"read", "write"}}
    assert keys.authenticate(f"  bearer   {ops}  ").name == "ops"  # type: ignore[union-attr]
    assert keys.authenticate(f"BEARER {ops}").name == "ops"  # type: ignore[union-attr]


@pytest.mark.parametrize("header", [
    None, "", "Bearer", "Bearer ", "Bearer wk_wrong", "Basic {s}", "{s}", "Token {s}", "Bearer {s}x",
    "Bearer x{s}", "Bearer " + "x" * 10_000, "Bearer \ud800", "Bearer\t{s}",
])
def test_authenticate_rejects(path: Path, header: str | None) -> None:
    secret = add_key(path, "bot", {"hr": ["read"]})
    assert Keys.load(path).authenticate(header.replace("{s}", secret) if header else header) is None


def test_no_keys_authenticates_nobody(path: Path) -> None:
    secret = add_key(path, "bot", {"hr": ["read"]})
    assert remove_key(path, "bot")
    keys = Keys.load(path)
    assert keys.keys == () and keys.authenticate(f"Bearer {secret}") is None
    assert Keys(()).authenticate(f"Bearer {secret}") is None


# --- rights -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("granted", "asked", "allowed"), [
    ("read", "read", True), ("read", "write", False), ("read", "admin", False),
    ("write", "read", True), ("write", "write", True), ("write", "admin", False),
    ("admin", "read", True), ("admin", "write", True), ("admin", "admin", True),
])
def test_implication(granted: str, asked: str, allowed: bool) -> None:
    key = Key("k", {"hr": frozenset({granted})})
    assert key.can(asked, "hr") is allowed
    assert key.can(asked, "policy") is False


def test_star_covers_every_collection_and_adds_to_specific_grants() -> None:
    key = Key("k", {"*": frozenset({"read"}), "hr": frozenset({"write"})})
    assert key.can("read", "made-later") and not key.can("write", "made-later")
    assert key.can("write", "hr") and not key.can("admin", "hr")
    assert not key.is_admin()
    assert Key("ops", {"*": frozenset({"admin"})}).is_admin()
    assert not Key("hr-admin", {"hr": frozenset({"admin"})}).is_admin()


def test_can_rejects_unknown_right() -> None:
    with pytest.raises(InputError, match="unknown right"):
        Key("k", {"hr": frozenset({"read"})}).can("delete", "hr")


def test_readable_keeps_order() -> None:
    key = Key("k", {"policy": frozenset({"write"}), "hr": frozenset({"read"}), "x": frozenset({"admin"})})
    assert key.readable(["x", "default", "hr", "policy", "other"]) == ["x", "hr", "policy"]
    assert Key("all", {"*": frozenset({"read"})}).readable(["b", "a"]) == ["b", "a"]


def test_key_is_immutable() -> None:
    grants = {"hr": {"read"}}
    key = Key("k", grants)  # type: ignore[dict-item]
    grants["hr"].add("admin")
    assert not key.can("admin", "hr")
    with pytest.raises(TypeError):
        key.collections["hr"] = frozenset({"admin"})  # type: ignore[index]


# --- the file -----------------------------------------------------------------------------------

def test_new_file_is_private_and_mode_is_kept(path: Path) -> None:
    add_key(path, "a", {"hr": ["read"]})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o640)
    add_key(path, "b", {"hr": ["read"]})
    remove_key(path, "a")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert [p.name for p in path.parent.iterdir()] == ["keys.json"]  # no temp files left


def test_secret_never_stored_listed_or_in_repr(path: Path) -> None:
    secret = add_key(path, "hr-bot", {"policy": ["write", "read"], "hr": ["read"]})
    text = path.read_text()
    stored = json.loads(text)["keys"][0]
    assert secret not in text and secret[7:20] not in text
    assert stored["prefix"] == secret[:7] and stored["hash"].startswith("sha256:")
    listed = list_keys(path)
    assert listed == [{"name": "hr-bot", "prefix": secret[:7],
                       "collections": {"policy": ["read", "write"], "hr": ["read"]}}]
    digest = stored["hash"].split(":")[1]
    keys = Keys.load(path)
    for shown in (json.dumps(listed), repr(keys), str(keys), repr(keys.keys[0])):
        assert secret not in shown and digest not in shown and digest[:16] not in shown


def test_add_key_rejects_duplicates_and_bad_input(path: Path) -> None:
    add_key(path, "bot", {"hr": ["read"]})
    before = path.read_text()
    with pytest.raises(InputError, match="already exists"):
        add_key(path, "bot", {"hr": ["read"]})
    for name, grants in [("", {"hr": ["read"]}), ("bad name", {"hr": ["read"]}), ("x\ny", {"hr": ["read"]}),
                         ("ok", {}), ("ok", {"HR": ["read"]}), ("ok", {"hr": ["delete"]}),
                         ("ok", {"hr": []}), ("ok", {"hr": "read"}), ("ok", {"a" * 65: ["read"]})]:
        with pytest.raises(InputError):
            add_key(path, name, grants)
    assert path.read_text() == before
    with pytest.raises(InputError, match="does not exist"):
        add_key(path.parent / "missing" / "keys.json", "bot", {"hr": ["read"]})


def test_remove_key(path: Path) -> None:
    assert remove_key(path, "nobody") is False and not path.exists()
    a = add_key(path, "a", {"hr": ["read"]})
    b = add_key(path, "b", {"*": ["admin"]})
    assert remove_key(path, "a") is True
    assert remove_key(path, "a") is False
    keys = Keys.load(path)
    assert keys.authenticate(f"Bearer {a}") is None
    assert keys.authenticate(f"Bearer {b}").name == "b"  # type: ignore[union-attr]
    assert [k["name"] for k in list_keys(path)] == ["b"]


def test_list_keys_without_file(path: Path) -> None:
    assert list_keys(path) == []


def test_load_accepts_hand_written_file(path: Path) -> None:
    write(path, [entry(hash="sha256:" + "AB" * 32), entry(name="ops", hash="sha256:" + "cd" * 32,
                                                          collections={"*": ["admin"], "hr": ["read"]})])
    keys = Keys.load(path)
    assert [k.name for k in keys.keys] == ["bot", "ops"] and keys.keys[1].is_admin()


@pytest.mark.parametrize(("entries", "message"), [
    ([entry(hash="sha256:" + "ab" * 31)], "hash must be"),
    ([entry(hash="md5:" + "ab" * 32)], "hash must be"),
    ([entry(hash="sha256:" + "zz" * 32)], "hash must be"),
    ([entry(hash=None)], "hash must be"),
    ([entry(collections={"hr": ["read", "delete"]})], "bad right 'delete'"),
    ([entry(collections={"hr": []})], "bad right none"),
    ([entry(collections={"hr": "read"})], "must be a list"),
    ([entry(collections={"Bad Name": ["read"]})], "bad collection 'Bad Name'"),
    ([entry(collections={})], "at least one collection"),
    ([entry(collections=["hr"])], "at least one collection"),
    ([entry(secret="wk_x")], "unknown fields"),
    ([entry(prefix=7)], "prefix must be"),
    ([entry(), entry()], "used twice"),
    ([entry(), entry(name="other")], "same secret as key 'bot'"),
])
def test_load_rejects_bad_entry(path: Path, entries: list[dict[str, object]], message: str) -> None:
    write(path, entries)
    with pytest.raises(ConfigError, match=message) as e:
        Keys.load(path)
    shown = str(e.value)
    assert str(path) in shown and "'bot'" in shown
    assert "ab" * 32 not in shown and "ab" * 8 not in shown


@pytest.mark.parametrize(("text", "message"), [
    ("{", "not JSON"), ("[]", "expected"), ('{"keys": {}}', "expected"),
    ('{"keys": [], "x": 1}', "expected"), ('{"keys": [1]}', "key #1 has no valid name"),
    ('{"keys": [{"name": "a b"}]}', "key #1 has no valid name"),
])
def test_load_rejects_bad_file(path: Path, text: str, message: str) -> None:
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as e:
        Keys.load(path)
    assert str(path) in str(e.value)


def test_load_rejects_missing_or_binary_file(path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        Keys.load(path)
    path.write_bytes(b"\xff\xfe{}")
    with pytest.raises(ConfigError, match="cannot be read"):
        Keys.load(path)


def test_writers_refuse_a_broken_file(path: Path) -> None:
    write(path, [entry(collections={"hr": ["root"]})])
    before = path.read_text()
    with pytest.raises(ConfigError):
        add_key(path, "new", {"hr": ["read"]})
    with pytest.raises(ConfigError):
        remove_key(path, "bot")
    assert path.read_text() == before


# --- parse_grants ----------------------------------------------------------------------------------

def test_parse_grants() -> None:
    assert parse_grants(["hr:read", "policy:read,write", " *:admin ", "hr: write"]) == {
        "hr": {"read", "write"}, "policy": {"read", "write"}, "*": {"admin"}}
    assert parse_grants([]) == {}


@pytest.mark.parametrize("spec", ["hr", "hr:", ":read", "hr:read,", "hr:delete", "HR:read", "a b:read",
                                  "hr;read", "hr:read;write"])
def test_parse_grants_rejects(spec: str) -> None:
    with pytest.raises(InputError):
        parse_grants([spec])


def test_parse_grants_rejects_a_bare_string() -> None:
    with pytest.raises(InputError, match="list"):
        parse_grants("hr:read")


# --- properties -----------------------------------------------------------------------------------

NAMES = st.sampled_from(["default", "hr", "policy", "a", "x-1", "z_9"])
GRANTS = st.dictionaries(NAMES | st.just("*"), st.frozensets(st.sampled_from(RIGHTS), min_size=1), max_size=4)


@given(GRANTS, NAMES)
def test_can_is_monotone_and_bounded_by_grants(grants: dict[str, frozenset[str]], collection: str) -> None:
    key = Key("k", grants)
    allowed = [key.can(right, collection) for right in RIGHTS]
    assert allowed == sorted(allowed, reverse=True)  # admin ⇒ write ⇒ read
    held = grants.get(collection, frozenset()) | grants.get("*", frozenset())
    for right in RIGHTS:
        assert key.can(right, collection) == any(RIGHTS.index(h) >= RIGHTS.index(right) for h in held)
    if collection not in grants and "*" not in grants:
        assert not any(allowed)
    assert key.readable([collection]) == ([collection] if allowed[0] else [])
    assert key.is_admin() == ("admin" in grants.get("*", ()))


@given(GRANTS.filter(bool))
def test_parse_grants_round_trips(grants: dict[str, frozenset[str]]) -> None:
    specs = [f"{c}:{','.join(sorted(r))}" for c, r in grants.items()]
    assert parse_grants(specs) == {c: set(r) for c, r in grants.items()}
