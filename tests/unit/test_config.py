"""Settings: defaults, then the environment, then explicit arguments."""

from picwish_visual import ClientSettings, config


def test_defaults():
    s = ClientSettings.from_env({})
    assert s.base_url == "https://techhk.aoscdn.com"
    assert (s.connect_timeout_s, s.read_timeout_s, s.result_hosts, s.allow_http_results) == (5.0, 30.0, (), False)


def test_environment_then_overrides():
    env = {
        config.ENV_BASE_URL: "http://127.0.0.1:9",
        config.ENV_READ_TIMEOUT: "7.5",
        config.ENV_RESULT_HOSTS: " Res.Test , 127.0.0.1:9 ",
        config.ENV_ALLOW_HTTP_RESULTS: "true",
    }
    s = ClientSettings.from_env(env, read_timeout_s=3.0)
    assert s.base_url == "http://127.0.0.1:9"
    assert s.read_timeout_s == 3.0
    assert s.result_hosts == ("res.test", "127.0.0.1:9")
    assert s.allow_http_results is True
