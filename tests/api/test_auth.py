"""API keys: the keys file, hashing, revocation and the server's key store."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest

from iocscope.api.auth import (
    KeyStore,
    add_key,
    check_name,
    keys_file_lock,
    lock_path,
    read_keys,
    revoke_key,
    split_key,
    write_keys,
)
from iocscope.errors import ConfigError
from tests.api.conftest import ApiEnv


def fixed_clock() -> datetime:
    return datetime(2024, 6, 3, 7, 0, tzinfo=UTC)


def test_add_key_stores_only_a_digest(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    new = add_key(path, "soc", clock=fixed_clock)
    text = path.read_text()
    secret = new.plaintext.split("_", 2)[2]
    assert secret not in text
    assert new.plaintext not in text
    assert new.record.digest in text
    assert new.record.created == "2024-06-03T07:00:00+00:00"


def test_keys_file_mode_is_0600(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    add_key(path, "soc")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_key_has_prefix_id_and_secret(tmp_path: Path) -> None:
    new = add_key(tmp_path / "keys.json", "soc")
    parts = split_key(new.plaintext)
    assert parts is not None
    assert parts[0] == new.record.key_id
    assert len(parts[1]) >= 40


def test_salts_differ_between_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    first = add_key(path, "one").record
    second = add_key(path, "two").record
    assert first.salt != second.salt
    assert first.key_id != second.key_id


@pytest.mark.parametrize(
    "presented",
    ["", "iocs", "iocs__secret", "iocs_id_", "other_id_secret", "plainsecret"],
)
def test_split_key_rejects_bad_shapes(presented: str) -> None:
    assert split_key(presented) is None


@pytest.mark.parametrize(
    ("name", "valid"),
    [("soc", True), ("siem-01.prod_a", True), ("", False), ("a b", False), ("-x", False)],
)
def test_check_name(name: str, valid: bool) -> None:
    if valid:
        assert check_name(name) == name
    else:
        with pytest.raises(ConfigError, match="invalid key name"):
            check_name(name)


def test_duplicate_active_name_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    add_key(path, "soc")
    with pytest.raises(ConfigError) as caught:
        add_key(path, "soc")
    assert str(caught.value) == (
        "an active API key named 'soc' exists: revoke it or pick another name"
    )


def test_revoke_by_name_keeps_the_record(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    new = add_key(path, "soc")
    revoked = revoke_key(path, "soc", clock=fixed_clock)
    records = read_keys(path)
    assert revoked.key_id == new.record.key_id
    assert records[0].revoked == "2024-06-03T07:00:00+00:00"
    assert not records[0].active


def test_revoke_by_id_then_name_is_free_again(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    first = add_key(path, "soc")
    revoke_key(path, first.record.key_id)
    second = add_key(path, "soc")
    assert second.record.key_id != first.record.key_id


def test_revoke_unknown_name_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    with pytest.raises(ConfigError) as caught:
        revoke_key(path, "nobody")
    assert str(caught.value) == (
        f"no active API key named 'nobody' in {path}: see iocscope keys list"
    )


def test_group_readable_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    add_key(path, "soc")
    path.chmod(0o640)
    with pytest.raises(ConfigError) as caught:
        read_keys(path)
    assert str(caught.value) == (
        f"API keys file {path} is open to other users (mode 640): run chmod 600 {path}"
    )


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"not json", "line 1 column 1"),
        (b"[]", "the file has no 'keys' list"),
        (b'{"keys": [1]}', "a key entry is not an object"),
        (b'{"keys": [{"id": "a"}]}', "a key entry lacks name, salt, sha256, created"),
    ],
)
def test_corrupt_file_is_rejected(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "keys.json"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="is not a valid keys file") as caught:
        read_keys(path)
    assert problem in str(caught.value)


def test_missing_file_has_no_keys(tmp_path: Path) -> None:
    assert read_keys(tmp_path / "absent.json") == []


def test_store_accepts_active_key(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    new = add_key(path, "soc")
    store = KeyStore(path)
    record = store.authenticate(new.plaintext)
    assert record is not None
    assert record.name == "soc"


@pytest.mark.parametrize("mangle", ["wrong-secret", "wrong-id", "no-prefix"])
def test_store_rejects_wrong_key(tmp_path: Path, mangle: str) -> None:
    path = tmp_path / "keys.json"
    key = add_key(path, "soc").plaintext
    _, key_id, secret = key.split("_", 2)
    presented = {
        "wrong-secret": f"iocs_{key_id}_{secret[:-1]}x",
        "wrong-id": f"iocs_000000000000_{secret}",
        "no-prefix": secret,
    }[mangle]
    assert KeyStore(path).authenticate(presented) is None


def test_store_sees_revocation_without_restart(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    key = add_key(path, "soc").plaintext
    store = KeyStore(path)
    assert store.authenticate(key) is not None
    revoke_key(path, "soc")
    assert store.authenticate(key) is None


def test_store_sees_new_key_without_restart(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    store = KeyStore(path)
    assert store.active_count == 0
    key = add_key(path, "soc").plaintext
    assert store.authenticate(key) is not None


def test_store_accepts_nothing_from_broken_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "keys.json"
    key = add_key(path, "soc").plaintext
    store = KeyStore(path)
    records = read_keys(path)
    write_keys(path, records)
    with path.open("ab") as stream:
        stream.write(b"garbage")
    with caplog.at_level(logging.ERROR):
        assert store.authenticate(key) is None
    assert "no API key is accepted until the keys file is fixed" in caplog.text


def test_keys_never_reach_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "keys.json"
    with caplog.at_level(logging.DEBUG):
        key = add_key(path, "soc").plaintext
        store = KeyStore(path)
        store.authenticate(key)
        store.authenticate(key + "x")
        revoke_key(path, "soc")
        store.authenticate(key)
    secret = key.split("_", 2)[2]
    assert secret not in caplog.text


def test_written_file_is_versioned_json(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    add_key(path, "soc", rate_per_minute=30)
    document = orjson.loads(path.read_bytes())
    assert document["version"] == 1
    assert document["keys"][0]["rate_per_minute"] == 30
    assert not any(name.startswith(".") for name in os.listdir(tmp_path))


# Each worker process adds COUNT keys named <prefix>-<n> with the real add_key.
ADD_SCRIPT = """
import sys
from pathlib import Path
from iocscope.api.auth import add_key

path, prefix, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
for number in range(count):
    add_key(path, f"{prefix}-{number}")
"""


def test_parallel_adds_keep_every_key(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    workers, count = 4, 15
    processes = [
        subprocess.Popen([sys.executable, "-c", ADD_SCRIPT, str(path), f"w{worker}", str(count)])
        for worker in range(workers)
    ]
    codes = [process.wait(timeout=120) for process in processes]
    names = sorted(record.name for record in read_keys(path))
    assert codes == [0] * workers
    assert names == sorted(f"w{w}-{n}" for w in range(workers) for n in range(count))


def test_lock_file_sits_next_to_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    add_key(path, "soc")
    assert lock_path(path) == tmp_path / "keys.json.lock"
    assert stat.S_IMODE(lock_path(path).stat().st_mode) == 0o600


def test_held_lock_times_out(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    with keys_file_lock(path), pytest.raises(ConfigError) as caught, keys_file_lock(path, 0):
        pass
    assert str(caught.value) == (
        f"another process has held {tmp_path / 'keys.json.lock'} for over 0 s: "
        "wait for the other iocscope keys command to finish, then retry"
    )


def test_lock_is_free_after_block(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    with keys_file_lock(path):
        pass
    with keys_file_lock(path, 0):
        pass
    assert add_key(path, "soc").record.name == "soc"


def test_lock_in_unusable_folder_fails(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("")
    path = tmp_path / "plain" / "keys.json"
    with pytest.raises(ConfigError) as caught, keys_file_lock(path):
        pass
    assert str(caught.value) == (
        f"cannot open the lock file {tmp_path / 'plain' / 'keys.json.lock'}: File exists"
    )


async def test_access_log_omits_query(
    client: httpx.AsyncClient, env: ApiEnv, caplog: pytest.LogCaptureFixture
) -> None:
    secret = env.headers["X-API-Key"]
    with caplog.at_level(logging.INFO, logger="iocscope.api.access"):
        response = await client.get(f"/v1/sources?api_key={secret}")
    lines = [record.getMessage() for record in caplog.records]
    assert response.status_code == 401
    assert any("path=/v1/sources status=401" in line for line in lines)
    assert secret not in caplog.text
