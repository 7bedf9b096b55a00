"""Settings: file, then environment, then flags; invalid combinations are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from maskdpo.server.settings import Role, load_settings


def test_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "maskdpo.toml"
    config.write_text('port = 6000\nhost = "0.0.0.0"\ndefault_judge = "kb"\n[tokens]\nt1 = "operator"\n')
    monkeypatch.setenv("MASKDPO_PORT", "6001")
    settings = load_settings(config, host="127.0.0.1", port=None)
    assert settings.port == 6001  # env beats file
    assert settings.host == "127.0.0.1"  # flag beats file
    assert settings.default_judge == "kb" and settings.tokens == {"t1": Role.OPERATOR}
    assert settings.auth_enabled


@pytest.mark.parametrize(
    "overrides",
    [{"judges": ["nope"]}, {"judges": ["kb"], "default_judge": "heuristic"}, {"tls_cert": Path("c.pem")},
     {"port": 70000}, {"max_batch_items": 0}],
)
def test_invalid(overrides: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        load_settings(None, **overrides)


def test_unknown_file_key_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("prot = 1\n")
    with pytest.raises(ValidationError):
        load_settings(config)
