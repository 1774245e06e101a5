"""Shared fixtures: the three-role test database, personas and raw connection strings.

The test database is bootstrapped exactly as production is: roles and database with the admin
URL, migrations as the owner, and the app connected as the runtime role, which owns nothing.
"""

import os
import uuid
from dataclasses import dataclass

import pytest
from django.conf import settings
from django.core.servers import basehttp
from django.db import connections

from config.dbroles import RolePlan, bootstrap, drop_database, url_for_database
from config.env import database_config, with_credentials

# Processes the tests start (workers, manage.py) say which environment they run in, as settings
# require; pytest itself is recognised by the settings module.
os.environ.setdefault("DJANGO_ENV", "test")

# Concurrency tests open 50 connections to the live server at once; Django's test server
# listens with a backlog of 10, so the kernel would reset some before Django sees a byte.
basehttp.WSGIServer.request_queue_size = 128


@dataclass(frozen=True)
class DbUrls:
    """Connection strings for the test database, one per role."""

    admin: str
    owner: str
    app: str
    dbname: str
    prefix: str


def _test_plan() -> RolePlan:
    base = settings.DATABASES["default"]["NAME"]
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    dbname = f"test_{base}{'_' + worker if worker else ''}"
    return RolePlan.for_database(dbname)


@pytest.fixture(scope="session")
def db_urls() -> DbUrls:
    """Return the role URLs of the test database (valid once ``django_db_setup`` ran)."""
    if not settings.DATABASE_ADMIN_URL:
        pytest.exit(
            "Tests need DATABASE_ADMIN_URL (a superuser or CREATEROLE role): run `make test`.",
            returncode=2,
        )
    plan = _test_plan()
    admin = settings.DATABASE_ADMIN_URL

    def role_url(user: str) -> str:
        return with_credentials(admin, user=user, password="", dbname=plan.dbname)

    return DbUrls(
        admin=url_for_database(admin, plan.dbname),
        owner=role_url(plan.owner),
        app=role_url(plan.app),
        dbname=plan.dbname,
        prefix=plan.prefix,
    )


@pytest.fixture(scope="session")
def django_db_setup(django_db_blocker, db_urls: DbUrls):
    """Bootstrap roles, migrate as the owner, then connect ``default`` as the runtime role."""
    plan = _test_plan()
    with django_db_blocker.unblock():
        drop_database(settings.DATABASE_ADMIN_URL, plan.dbname)
        bootstrap(settings.DATABASE_ADMIN_URL, plan, for_tests=True)
        for alias, url in (("default", db_urls.app), ("owner", db_urls.owner)):
            # The same dict backs settings.DATABASES and the connection handler.
            connections[alias].close()
            connections[alias].settings_dict.update(database_config(url, variable=alias))
        settings.DATABASE_ROLE_PREFIX = plan.prefix

        from django.core.management import call_command

        call_command("migrate", database="owner", verbosity=0, interactive=False)
        connections["owner"].close()
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT current_user")
            (current_user,) = cursor.fetchone()
        assert current_user == plan.app, f"tests must run as the runtime role, not {current_user}"
    yield
    with django_db_blocker.unblock():
        for connection in connections.all():
            connection.close()
        if os.environ.get("KEEP_TEST_DB") != "1":
            drop_database(settings.DATABASE_ADMIN_URL, plan.dbname)


@pytest.fixture
def user_factory(django_user_model):
    """Create verified users with unique emails; ``password`` is always ``pw-<email>``."""
    from allauth.account.models import EmailAddress

    def create(email: str | None = None, *, verified: bool = True, **extra):
        email = email or f"user-{uuid.uuid4().hex[:10]}@example.com"
        user = django_user_model.objects.create_user(email=email, password=f"pw-{email}", **extra)
        EmailAddress.objects.create(user=user, email=email, verified=verified, primary=True)
        return user

    return create


@pytest.fixture
def alice(user_factory):
    """Alice owns things."""
    return user_factory(f"alice-{uuid.uuid4().hex[:8]}@example.com")


@pytest.fixture
def bob(user_factory):
    """Bob is another customer who must never see Alice's things."""
    return user_factory(f"bob-{uuid.uuid4().hex[:8]}@example.com")


@pytest.fixture
def staff(user_factory):
    """A staff superuser for the admin."""
    return user_factory(
        f"staff-{uuid.uuid4().hex[:8]}@example.com", is_staff=True, is_superuser=True
    )


@pytest.fixture
def view_only_staff(user_factory):
    """A staff user holding every ``view_*`` permission and nothing else."""
    from django.contrib.auth.models import Permission

    user = user_factory(f"viewer-{uuid.uuid4().hex[:8]}@example.com", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__startswith="view_"))
    return user


@pytest.fixture
def view_only_client(view_only_staff):
    """A client signed in as ``view_only_staff``."""
    from django.test import Client

    client = Client()
    client.force_login(view_only_staff)
    return client


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def eager_celery():
    """Run queued tasks inline, so a test sees what the real task did (the mail it sent)."""
    from config.celery import app as celery_app

    saved = celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates
    celery_app.conf.update(task_always_eager=True, task_eager_propagates=True)
    yield
    celery_app.conf.update(task_always_eager=saved[0], task_eager_propagates=saved[1])


@pytest.fixture(autouse=True)
def _isolated_cache(settings):
    """Give each test its own cache namespace so rate limits never leak between tests."""
    settings.CACHES = {
        "default": {**settings.CACHES["default"], "KEY_PREFIX": f"t-{uuid.uuid4().hex[:12]}"}
    }


@pytest.fixture
def broker_down():
    """Point Celery's producer at a closed port for the duration of the test."""
    from config.celery import app

    saved = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    app._pool = None
    app.amqp._producer_pool = None
    yield
    app.conf.broker_url = saved
    app._pool = None
    app.amqp._producer_pool = None
