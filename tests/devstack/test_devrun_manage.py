"""`make manage` reaches a running `make dev` through .dev/run.env, and only while it runs."""

import os
import stat

from dotenv import dotenv_values

from config import devrun


def test_run_env_holds_the_stack_and_the_development_secrets_only(tmp_path):
    env = {
        "DATABASE_ADMIN_URL": "postgresql://postgres@127.0.0.1:5433/postgres",
        "REDIS_URL": "redis://127.0.0.1:6380/0",
        "AWS_S3_ENDPOINT_URL": "http://127.0.0.1:8333",
        "SITE_URL": "http://127.0.0.1:8001",
        "DJANGO_SECRET_KEY": "dev-abc",
        "HOME": "/root",
        "DEVSTACK_RUN_ID": "f00d",
    }
    path = tmp_path / "run.env"
    devrun.write_run_env(env, {"DJANGO_SECRET_KEY"}, path)
    written = dotenv_values(path)
    assert written == {
        **{k: v for k, v in env.items() if k not in ("HOME", "DEVSTACK_RUN_ID")},
        "DEVRUN_PID": str(os.getpid()),
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_manage_refuses_when_make_dev_is_not_running(tmp_path, capsys):
    path = tmp_path / "run.env"
    assert devrun.manage(["check"], path) == 1  # no file: never started
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    path.write_text(f"DEVRUN_PID={dead}\nDJANGO_ENV=development\n")
    assert devrun.manage(["check"], path) == 1  # left behind by a make dev that was killed
    assert "make dev is not running here" in capsys.readouterr().err
