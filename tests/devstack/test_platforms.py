"""The launcher's clean-up needs Linux; elsewhere it stops at once and names the alternative."""

import sys

from config.devstack import launcher


def test_launcher_refuses_other_platforms_and_points_to_compose(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(sys, "platform", "darwin")
    state = tmp_path / "state"
    assert launcher.main(["--state", str(state), "--", "true"]) == 1
    assert "docker compose up" in capsys.readouterr().err
    assert not state.exists()  # nothing was started or written
