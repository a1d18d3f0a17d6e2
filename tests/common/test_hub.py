"""Hub resolution against a hand-made cache in huggingface_hub's layout; no test touches the network.

Every test runs offline (HF_HUB_OFFLINE=1, set after huggingface_hub was imported, which hub.py must honour)
or with local_files_only=True.
"""

import pytest
from huggingface_hub import constants

from rosettazoo.common import hub
from tests.common.hub_cache import make_cache

OTHER_COMMIT = "fedcba9876543210fedcba9876543210fedcba98"


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # No test may fall back to the user's real cache.
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "unused-hf-home"))


def test_arguments_are_the_contract():
    assert hub.HUB_ARGUMENTS == ("revision", "cache_dir", "local_files_only", "token")


def test_local_folder_is_used_directly(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert hub.resolve_file(tmp_path, "config.json") == str(tmp_path / "config.json")
    assert hub.resolve_optional_file(str(tmp_path), "config.json") == str(tmp_path / "config.json")
    assert hub.resolve_optional_file(tmp_path, "model.safetensors") is None


def test_local_folder_without_the_file_names_both(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        hub.resolve_file(tmp_path, "model.safetensors")
    assert str(tmp_path) in str(err.value) and "model.safetensors" in str(err.value)


def test_a_file_instead_of_a_folder_is_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(NotADirectoryError, match="pass the folder"):
        hub.resolve_file(tmp_path / "config.json", "config.json")


def test_missing_path_that_is_no_hub_id(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a local folder nor a valid hub id"):
        hub.resolve_file(str(tmp_path / "no" / "such" / "folder"), "config.json")


def test_cache_dir_argument(tmp_path):
    snapshot = make_cache(tmp_path / "cache")
    path = hub.resolve_file("org/tiny", "config.json", cache_dir=tmp_path / "cache")
    assert path == str(snapshot / "config.json")


def test_hf_hub_cache_set_after_import(tmp_path, monkeypatch):
    snapshot = make_cache(tmp_path / "cache")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    assert hub.cache_folder() == str(tmp_path / "cache")
    assert hub.resolve_file("org/tiny", "config.json") == str(snapshot / "config.json")


def test_hf_home_set_after_import(tmp_path, monkeypatch):
    snapshot = make_cache(tmp_path / "home" / "hub")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert hub.resolve_file("org/tiny", "config.json") == str(snapshot / "config.json")


def test_cache_dir_argument_wins_over_environment(tmp_path, monkeypatch):
    make_cache(tmp_path / "env-cache", files={"config.json": '{"from": "env"}'})
    snapshot = make_cache(tmp_path / "arg-cache", files={"config.json": '{"from": "arg"}'})
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "env-cache"))
    assert hub.resolve_file("org/tiny", "config.json", cache_dir=tmp_path / "arg-cache") == str(snapshot / "config.json")


def test_revisions(tmp_path):
    cache = tmp_path / "cache"
    main = make_cache(cache, files={"config.json": "main"})
    tagged = make_cache(cache, files={"config.json": "v1"}, commit=OTHER_COMMIT, ref="v1")
    assert hub.resolve_file("org/tiny", "config.json", cache_dir=cache) == str(main / "config.json")
    assert hub.resolve_file("org/tiny", "config.json", cache_dir=cache, revision="v1") == str(tagged / "config.json")
    by_commit = hub.resolve_file("org/tiny", "config.json", cache_dir=cache, revision=OTHER_COMMIT)
    assert by_commit == str(tagged / "config.json")
    with pytest.raises(FileNotFoundError, match="at revision v2"):
        hub.resolve_file("org/tiny", "config.json", cache_dir=cache, revision="v2")


def test_offline_and_not_cached_says_how_to_fix(tmp_path):
    make_cache(tmp_path / "cache")
    for repo_id, filename in (("org/tiny", "model.safetensors"), ("org/unknown", "config.json")):
        with pytest.raises(FileNotFoundError) as err:
            hub.resolve_file(repo_id, filename, cache_dir=tmp_path / "cache")
        message = str(err.value)
        assert repo_id in message and filename in message
        assert "HF_HUB_OFFLINE" in message and "while online" in message and "local folder" in message


def test_optional_file_offline_and_not_cached_is_none(tmp_path):
    make_cache(tmp_path / "cache")
    assert hub.resolve_optional_file("org/tiny", "model.safetensors", cache_dir=tmp_path / "cache") is None


def test_local_files_only_without_offline_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    assert not hub.is_offline()
    assert hub.is_offline(local_files_only=True)
    snapshot = make_cache(tmp_path / "cache")
    found = hub.resolve_file("org/tiny", "config.json", cache_dir=tmp_path / "cache", local_files_only=True)
    assert found == str(snapshot / "config.json")
    with pytest.raises(FileNotFoundError, match="local_files_only"):
        hub.resolve_file("org/tiny", "model.safetensors", cache_dir=tmp_path / "cache", local_files_only=True)


@pytest.mark.parametrize("value", ["1", "true", "ON", "yes"])
def test_offline_environment_read_at_call_time(monkeypatch, value):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    assert hub.is_offline()
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert not hub.is_offline()
