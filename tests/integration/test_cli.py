"""The chatd command line: help, configuration errors by name, migrations, superusers.
Commands that use the database run against the backend under test (conftest.Database)."""
import os
import subprocess
import tempfile

from conftest import (CHATD, SECRET_KEY, Client, Database, Server, assert_no_server_errors,
                      free_port, unique_name)


def chatd(*args, env=None, cwd=None, input=None, timeout=30):
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    base.update(env or {})
    return subprocess.run([CHATD, *args], env=base, cwd=cwd or tempfile.mkdtemp(), input=input,
                          capture_output=True, text=True, timeout=timeout)


def test_help_lists_the_commands():
    r = chatd("--help")
    assert r.returncode == 0
    for command in ("serve", "migrate", "createsuperuser"):
        assert command in r.stdout
    assert chatd("--version").stdout.strip()
    assert chatd("no-such-command").returncode != 0


def test_bad_values_are_reported_by_name():
    r = chatd("serve", env={"SECRET_KEY": SECRET_KEY, "PORT": "eighty", "DEBUG": "sometimes",
                            "DB_PORT": "99999", "ACCESS_TOKEN_LIFETIME": "soon"})
    assert r.returncode == 2
    for name in ("PORT:", "DEBUG:", "DB_PORT:", "ACCESS_TOKEN_LIFETIME:"):
        assert name in r.stderr, r.stderr


def test_debug_off_refuses_weak_or_missing_secret_key():
    for env in ({}, {"SECRET_KEY": "your-secret-key"}, {"DEBUG": "0", "SECRET_KEY": "short"}):
        r = chatd("serve", env=env)
        assert r.returncode == 2, r.stderr
        assert "SECRET_KEY" in r.stderr
        assert "short" not in r.stderr and "your-secret-key" not in r.stderr  # never echoed


def test_debug_on_accepts_a_weak_key_with_a_warning():
    s = Server(DEBUG="1", SECRET_KEY="your-secret-key").start()
    try:
        assert Client(s).register()["access"]
        assert "SECRET_KEY is weak" in s.read_log()
    finally:
        s.stop()


def test_settings_come_from_dotenv_and_the_environment_wins():
    workdir = tempfile.mkdtemp()
    with open(os.path.join(workdir, ".env"), "w") as f:
        f.write(f"SECRET_KEY={SECRET_KEY}\nACCESS_TOKEN_LIFETIME=42\nPORT=not-a-port\n")
    # From .env alone, the bad PORT is reported...
    r = chatd("serve", cwd=workdir)
    assert r.returncode == 2 and "PORT:" in r.stderr
    # ...and the environment overrides it; the other values still come from .env.
    s = Server(workdir=workdir)
    del s.env["SECRET_KEY"]
    s.start()
    try:
        from conftest import jwt_parts
        _, claims = jwt_parts(Client(s).register()["access"])
        assert claims["exp"] - claims["iat"] == 42
    finally:
        s.stop()


def test_a_named_env_file_must_exist_and_may_follow_the_command():
    """A mistyped --env-file is an error, not a silent run on the defaults (a stray
    db.sqlite3 in place of the database the file names); it may come after the command."""
    workdir = tempfile.mkdtemp()
    r = chatd("--env-file", "chatd.env.typo", "migrate", cwd=workdir)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "chatd.env.typo" in r.stderr
    assert not os.path.exists(os.path.join(workdir, "db.sqlite3"))
    with open(os.path.join(workdir, "chatd.env"), "w") as f:
        f.write("SQLITE_PATH=named.sqlite3\n")
    r = chatd("migrate", "--env-file", "chatd.env", cwd=workdir)
    assert r.returncode == 0, r.stderr
    assert os.path.exists(os.path.join(workdir, "named.sqlite3"))
    assert chatd("migrate", cwd=workdir).returncode == 0  # the default .env may be missing


def test_trusted_proxies_must_be_addresses():
    """Proxies are matched by the peer's address as written: a range or a host name would
    trust nobody, so it is refused at start."""
    for value in ("127.0.0.0/8", "localhost", "10.0.0.1, proxy.internal"):
        r = chatd("migrate", env={"TRUSTED_PROXIES": value})
        assert r.returncode == 2, (value, r.stderr)
        assert "TRUSTED_PROXIES:" in r.stderr, r.stderr
    assert chatd("migrate", env={"TRUSTED_PROXIES": "10.0.0.1, ::1"}).returncode == 0


def test_bind_must_be_an_address():
    """A host name or a typo in BIND is a configuration error (exit 2, named), not a
    failure to listen found after start-up (exit 1)."""
    workdir = tempfile.mkdtemp()
    for value in ("localhost", "999.1.1.1", "0.0.0.0:8000"):
        r = chatd("serve", env={"BIND": value, "PORT": str(free_port()), "DEBUG": "1"},
                  cwd=workdir, timeout=30)
        assert r.returncode == 2, (value, r.returncode, r.stderr)
        assert "BIND:" in r.stderr, r.stderr


def test_a_bad_dotenv_line_is_reported():
    workdir = tempfile.mkdtemp()
    with open(os.path.join(workdir, ".env"), "w") as f:
        f.write("this is not a setting\n")
    r = chatd("migrate", cwd=workdir)
    assert r.returncode == 2
    assert "line 1" in r.stderr


def test_migrate_is_idempotent_and_listed():
    db = Database(tempfile.mkdtemp())
    env = db.env
    first = chatd("migrate", env=env)
    assert first.returncode == 0, first.stderr
    assert "Applying 0001_" in first.stdout
    second = chatd("migrate", env=env)
    assert second.returncode == 0
    assert "No migrations to apply" in second.stdout
    listed = chatd("migrate", "--list", env=env)
    assert "[X] 0001_" in listed.stdout
    assert " [ ] " not in listed.stdout, listed.stdout
    assert db.scalar("SELECT count(*) FROM schema_migrations") >= 1
    if db.backend == "sqlite":
        assert db.query("PRAGMA journal_mode")[0][0] == "wal"


def test_unreachable_database_is_a_clear_error():
    # Nothing listens on that port: the command fails with a readable message that says
    # which setting or address is at fault, and does not crash.
    port = free_port()
    r = chatd("migrate", env={"DB_HOST": "127.0.0.1", "DB_PORT": str(port), "DB_NAME": "chat",
                              "DB_USER": "chat", "DB_PASSWORD": "chat"}, timeout=90)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "DB_HOST" in r.stderr or str(port) in r.stderr, r.stderr


def superuser_env(db):
    return {**db.env, "SECRET_KEY": SECRET_KEY}


def assert_superuser(db, username, cost="m=19456,t=2,p=1"):
    rows = db.query("SELECT is_staff, is_superuser, is_active, password_hash FROM users "
                    "WHERE username = ?", username)
    assert len(rows) == 1, rows
    row = rows[0]
    assert row[:3] == (1, 1, 1)
    assert row[3].startswith(f"$argon2id$v=19${cost}$"), row[3]


def test_createsuperuser_from_flags_and_login():
    workdir = tempfile.mkdtemp()
    db = Database(workdir)
    env = superuser_env(db)
    name = unique_name("admin")
    r = chatd("createsuperuser", "--username", name, "--email", "admin@example.com",
              "--password", "admin-pass-1", "--noinput", env=env)
    assert r.returncode == 0, r.stderr
    assert "Superuser created successfully." in r.stdout
    assert_superuser(db, name)
    again = chatd("createsuperuser", "--username", name.upper(), "--email", "a@example.com",
                  "--password", "admin-pass-1", "--noinput", env=env)
    assert again.returncode == 1
    assert "already taken" in again.stderr
    # A fullwidth look-alike is the same name once normalised (NFKC, as Django creates users).
    lookalike = "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() else c for c in name)
    again = chatd("createsuperuser", "--username", lookalike, "--email", "a@example.com",
                  "--password", "admin-pass-1", "--noinput", env=env)
    assert again.returncode == 1 and "already taken" in again.stderr, again.stderr
    other = unique_name("admin")
    r = chatd("createsuperuser", "--username", "ﬁ" + other, "--email", "b@example.com",
              "--password", "admin-pass-1", "--noinput", env=env)
    assert r.returncode == 0, r.stderr
    assert_superuser(db, "fi" + other)
    # More than 150 characters, as typed or once normalised.
    for too_long in ("a" * 151, "ﬃ" * 60):
        r = chatd("createsuperuser", "--username", too_long, "--email", "c@example.com",
                  "--password", "admin-pass-1", "--noinput", env=env)
        assert r.returncode == 1 and "no more than 150 characters" in r.stderr, r.stderr
    s = Server(workdir=workdir, database=db).start()
    try:
        Client(s).login(name, "admin-pass-1")
    finally:
        s.stop()


def test_createsuperuser_from_django_variables():
    db = Database(tempfile.mkdtemp())
    env = superuser_env(db)
    name = unique_name("envadmin")
    env.update({"DJANGO_SUPERUSER_USERNAME": name, "DJANGO_SUPERUSER_EMAIL": "e@example.com",
                "DJANGO_SUPERUSER_PASSWORD": "env-pass-12"})
    r = chatd("createsuperuser", "--noinput", env=env)
    assert r.returncode == 0, r.stderr
    assert_superuser(db, name)


def test_createsuperuser_reads_django_variables_from_the_env_file():
    """Docker Compose passes the .env file's variables to the original's container, so
    DJANGO_SUPERUSER_* written there reach its createsuperuser: chatd reads them there too,
    the environment winning as it does for every setting."""
    workdir = tempfile.mkdtemp()
    db = Database(workdir)
    env = superuser_env(db)
    name = unique_name("dotenv")
    with open(os.path.join(workdir, ".env"), "w") as f:
        f.write(f"DJANGO_SUPERUSER_USERNAME={name}\n"
                "DJANGO_SUPERUSER_EMAIL=dot@example.com\n"
                "DJANGO_SUPERUSER_PASSWORD=from-the-file-1\n")
    r = chatd("createsuperuser", "--noinput", env=env, cwd=workdir)
    assert r.returncode == 0, r.stderr
    assert_superuser(db, name)
    assert db.query("SELECT email FROM users WHERE username = ?", name) == [("dot@example.com",)]
    # The environment wins over the file.
    other = unique_name("envwins")
    r = chatd("createsuperuser", "--noinput", env={**env, "DJANGO_SUPERUSER_USERNAME": other},
              cwd=workdir)
    assert r.returncode == 0, r.stderr
    assert_superuser(db, other)


def test_createsuperuser_prompts_and_validates():
    db = Database(tempfile.mkdtemp())
    env = superuser_env(db)
    name = unique_name("prompted")
    # A bad username, then a good one; a bad e-mail, then a good one; mismatched passwords,
    # then a numeric one, then a good one.
    answers = "\n".join(["bad name", name, "not-an-email", "p@example.com", "first-pass1",
                         "other-pass1", "12345678", "12345678", "good-pass-1", "good-pass-1"]) + "\n"
    r = chatd("createsuperuser", env=env, input=answers)
    assert r.returncode == 0, r.stderr
    assert "Enter a valid username" in r.stderr
    assert "Enter a valid email address." in r.stderr
    assert "didn't match" in r.stderr
    assert "entirely numeric" in r.stderr
    assert_superuser(db, name)


def test_createsuperuser_noinput_requires_values():
    r = chatd("createsuperuser", "--noinput", env=superuser_env(Database(tempfile.mkdtemp())))
    assert r.returncode == 1
    assert "--username" in r.stderr


def test_createsuperuser_noinput_without_a_password_makes_an_unusable_one():
    """As Django's: --noinput neither asks for a password nor checks one. Without one the
    user gets an unusable password ("!" and 40 random characters), which no login matches."""
    workdir = tempfile.mkdtemp()
    db = Database(workdir)
    env = superuser_env(db)
    name = unique_name("nopass")
    r = chatd("createsuperuser", "--username", name, "--email", "n@example.com", "--noinput",
              env=env)
    assert r.returncode == 0, r.stderr
    (stored,) = db.query("SELECT password_hash FROM users WHERE username = ?", name)[0]
    assert stored.startswith("!") and len(stored) == 41 and stored[1:].isalnum(), stored
    weak = unique_name("weakpass")
    r = chatd("createsuperuser", "--username", weak, "--email", "w@example.com",
              "--password", "123", "--noinput", env=env)
    assert r.returncode == 0, r.stderr
    s = Server(workdir=workdir, database=db).start()
    try:
        c = Client(s)
        for attempt in ("", "!", stored, stored[1:]):
            body = c.login(name, attempt, expect=400 if attempt == "" else 401)
            assert "detail" in body or "password" in body, body
        c.login(weak, "123")
    finally:
        s.stop()


def test_changepassword_asks_twice_checks_and_ends_every_session():
    workdir = tempfile.mkdtemp()
    db = Database(workdir)
    env = superuser_env(db)
    s = Server(workdir=workdir, database=db).start()
    try:
        c = Client(s)
        user = c.register(password="first-pass-1")
        name = user["user"]["username"]
        tokens = c.login(name, "first-pass-1")
        assert c.get("/api/users/me/", token=tokens["access"]).status_code == 200
        # Mismatched, then entirely numeric, then good: the third try.
        answers = "first-try-1\nsecond-try-1\n12345678\n12345678\nnew-pass-12\nnew-pass-12\n"
        r = chatd("changepassword", name.upper(), env=env, cwd=workdir, input=answers)
        assert r.returncode == 0, r.stderr
        assert f"Changing password for user '{name}'" in r.stdout
        assert "Passwords do not match. Please try again." in r.stdout
        assert "entirely numeric" in r.stderr
        assert f"Password changed successfully for user '{name}'" in r.stdout
        c.login(name, "first-pass-1", expect=401)
        c.login(name, "new-pass-12")
        # The sessions open before are over: access and refresh tokens alike.
        assert c.get("/api/users/me/", token=tokens["access"]).status_code == 401
        assert c.post("/api/auth/refresh/", json={"refresh": tokens["refresh"]}).status_code == 401
        # Three failed tries: nothing changes.
        r = chatd("changepassword", name, env=env, cwd=workdir,
                  input="a-pass-123\nb-pass-123\n" * 3)
        assert r.returncode == 1
        assert f"Aborting password change for user '{name}' after 3 attempts" in r.stderr
        c.login(name, "new-pass-12")
        # No such user; input ending early.
        r = chatd("changepassword", unique_name("ghost"), env=env, cwd=workdir, input="")
        assert r.returncode == 1 and "does not exist" in r.stderr, r.stderr
        r = chatd("changepassword", name, env=env, cwd=workdir, input="only-one-1\n")
        assert r.returncode == 1 and "no input" in r.stderr, r.stderr
        r = chatd("changepassword", name, env=env, cwd=workdir, input="\nnew-pass-34\n")
        assert r.returncode == 1 and "CommandError: aborted" in r.stderr, r.stderr
        c.login(name, "new-pass-12")
        # A superuser made without a password gets one this way.
        admin = unique_name("admin")
        r = chatd("createsuperuser", "--username", admin, "--email", "a@example.com",
                  "--noinput", env=env, cwd=workdir)
        assert r.returncode == 0, r.stderr
        r = chatd("changepassword", admin, env=env, cwd=workdir,
                  input="admin-pass-1\nadmin-pass-1\n")
        assert r.returncode == 0, r.stderr
        c.login(admin, "admin-pass-1")
        # At the cost new hashes are made at (PASSWORD_HASH_*), as the server makes them.
        cheap = {**env, "PASSWORD_HASH_MEMORY_KIB": "64", "PASSWORD_HASH_OPS": "1"}
        r = chatd("changepassword", admin, env=cheap, cwd=workdir,
                  input="admin-pass-2\nadmin-pass-2\n")
        assert r.returncode == 0, r.stderr
        assert_superuser(db, admin, cost="m=64,t=1,p=1")
        other = unique_name("cheap")
        r = chatd("createsuperuser", "--username", other, "--email", "c@example.com",
                  "--password", "cheap-pass-1", "--noinput", env=cheap, cwd=workdir)
        assert r.returncode == 0, r.stderr
        assert_superuser(db, other, cost="m=64,t=1,p=1")
        assert_no_server_errors(s)
    finally:
        s.stop()
