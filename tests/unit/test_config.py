import pytest

from aiservice.config import ConfigError, Settings, parse_duration, redact_url, variables

URL = "postgresql://svc:s3cret@db.example:5432/aiservice"


def test_defaults_follow_the_contract():
    s = Settings.from_env({"DATABASE_URL": URL})
    assert (s.http_host, s.http_port, s.migrate_on_start) == ("0.0.0.0", 8080, True)
    assert s.llm_model == "qwen2.5-14b"
    assert s.llm_timeout == 300
    assert s.worker_poll_interval == 2
    assert s.worker_claim_limit == 4
    assert s.worker_id  # the hostname


@pytest.mark.parametrize("text,seconds", [("500ms", 0.5), ("2s", 2), ("5m", 300), ("1h", 3600),
                                          ("1d", 86400), ("1.5s", 1.5), ("30", 30)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5 minutes", "-1s", "1w", "s", "ms5"])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_missing_database_url_is_one_clear_line():
    with pytest.raises(ConfigError, match="^DATABASE_URL is not set"):
        Settings.from_env({})


@pytest.mark.parametrize("var,value", [
    ("HTTP_PORT", "eighty"), ("HTTP_PORT", "70000"), ("MIGRATE_ON_START", "maybe"),
    ("LLM_TIMEOUT", "forever"), ("WORKER_POLL_INTERVAL", "0s"), ("WORKER_CLAIM_LIMIT", "0"),
    ("LLM_BASE_URL", "ftp://x"), ("WHISPERX_URL", "not a url"), ("DATABASE_URL", "mysql://x/y"),
])
def test_a_bad_value_names_its_variable(var, value):
    env = {"DATABASE_URL": URL, var: value}
    with pytest.raises(ConfigError, match=f"^{var}: "):
        Settings.from_env(env)


def test_values_are_parsed():
    s = Settings.from_env({"DATABASE_URL": URL, "HTTP_PORT": "9000", "MIGRATE_ON_START": "false",
                           "LLM_TIMEOUT": "90s", "WORKER_POLL_INTERVAL": "500ms",
                           "LLM_BASE_URL": "http://127.0.0.1:8000/v1/", "WORKER_ID": "gpu-1"})
    assert (s.http_port, s.migrate_on_start, s.llm_timeout, s.worker_poll_interval) == (9000, False, 90, 0.5)
    assert s.llm_base_url == "http://127.0.0.1:8000/v1"
    assert s.worker_id == "gpu-1"


def test_secrets_never_show():
    s = Settings.from_env({"DATABASE_URL": URL, "LLM_API_KEY": "sk-topsecret"})
    assert "s3cret" not in repr(s) and "sk-topsecret" not in repr(s)
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"DATABASE_URL": "mysql://u:pw-secret@h/db"})
    assert "pw-secret" not in str(info.value)


def test_redact_url_drops_user_info_and_query():
    assert redact_url("https://user:pw@host:8443/v1?key=abc#x") == "https://host:8443/v1"
    assert redact_url(URL) == "postgresql://db.example:5432/aiservice"
    assert redact_url("host=db port=5432 password=pw user=u dbname=a") == "host=db port=5432 dbname=a"


def test_every_contract_variable_is_read():
    for var in ("HTTP_HOST", "HTTP_PORT", "DATABASE_URL", "MIGRATE_ON_START", "LLM_BASE_URL",
                "LLM_API_KEY", "LLM_MODEL", "LLM_TIMEOUT", "WHISPERX_URL", "WORKER_ID",
                "WORKER_POLL_INTERVAL", "WORKER_CLAIM_LIMIT"):
        assert var in variables()
