"""Settings: file, then environment, then flags; invalid combinations are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from maskdpo.server.settings import Role, ServerSettings, load_settings, settings_table


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
     {"port": 70000}, {"max_batch_items": 0}, {"rounds_serving_dtype": "int8"}],
)
def test_invalid(overrides: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        load_settings(None, **overrides)


def test_unknown_file_key_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("prot = 1\n")
    with pytest.raises(ValidationError):
        load_settings(config)


def test_one_judge_is_the_default_and_a_wrong_default_names_the_fix() -> None:
    assert load_settings(None, judges=["kb"]).default_judge == "kb"
    assert load_settings(None, judges=["kb", "heuristic"]).default_judge == "heuristic"
    with pytest.raises(ValidationError, match=r"--judge heuristic\) or pick one of them \(--default-judge kb\)"):
        load_settings(None, judges=["kb"], default_judge="heuristic")


def test_serve_with_the_kb_judge_alone_starts_with_it_as_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """``maskdpo serve --judge kb``: the command line gives settings hosting kb alone, kb the default, with
    the natural-text extractor (the server itself is replaced: no Ray here)."""
    import maskdpo.server.app
    from maskdpo.server.cli import main

    started: list[ServerSettings] = []

    async def serve_forever(settings: ServerSettings, ready_file: str | None) -> None:
        started.append(settings)

    monkeypatch.setattr(maskdpo.server.app, "serve_forever", serve_forever)
    assert main(["--judge", "kb"]) == 0
    [settings] = started
    assert (settings.judges, settings.default_judge, settings.kb_extractor) == (["kb"], "kb", "natural")
    with pytest.raises(ValidationError, match="unknown kb_extractor 'regex'; known: natural, template"):
        load_settings(None, kb_extractor="regex")


def test_every_setting_has_an_environment_variable_and_the_docs_table_is_generated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One settings model: rounds, metrics and model folders are ServerSettings fields like the rest, and
    docs/settings.md is exactly what the class generates."""
    monkeypatch.setenv("MASKDPO_ROUNDS_SAVE_STEPS", "4")
    monkeypatch.setenv("MASKDPO_METRICS_PORT", "9464")
    monkeypatch.setenv("MASKDPO_MODELS_DIR", "/data/models")
    settings = load_settings(None)
    assert (settings.rounds_save_steps, settings.metrics_port, settings.models_dir) == (4, 9464, Path("/data/models"))
    docs = Path(__file__).resolve().parents[3] / "docs" / "settings.md"
    assert docs.read_text() == settings_table(), "regenerate: python -m maskdpo.server.settings > docs/settings.md"
    assert all(info.description for info in ServerSettings.model_fields.values())
