"""Login throttling per account+address and per address; 429 with Retry-After, while the
real user logging in from elsewhere is never locked out."""
from conftest import Client, unique_name


def login(c, username, password, address):
    return c.post("/api/auth/login/", json={"username": username, "password": password},
                  headers={"X-Forwarded-For": address})


def throttled_server(make_server):
    # The test client stands behind a "proxy" so it can speak for several addresses.
    return make_server(LOGIN_FAILURES_PER_USER=3, LOGIN_FAILURES_PER_ADDRESS=6,
                       LOGIN_FAILURE_WINDOW="10m", TRUSTED_PROXIES="127.0.0.1")


def test_account_throttled_per_address_but_not_elsewhere(make_server):
    c = Client(throttled_server(make_server))
    user = c.register()
    name, password = user["user"]["username"], user["password"]
    for _ in range(3):
        assert login(c, name, "wrong-guess", "203.0.113.5").status_code == 401
    r = login(c, name, "wrong-guess", "203.0.113.5")
    assert r.status_code == 429
    retry = int(r.headers["Retry-After"])
    assert 0 < retry <= 600
    assert r.json() == {"detail": f"Request was throttled. Expected available in {retry} seconds."}
    # The attacker's address is refused even with the right password...
    assert login(c, name, password, "203.0.113.5").status_code == 429
    # ...while the real user, elsewhere, logs in.
    assert login(c, name, password, "198.51.100.7").status_code == 200
    # Case changes do not dodge the account counter.
    assert login(c, name.upper(), "wrong-guess", "203.0.113.5").status_code == 429


def test_successful_logins_never_count(make_server):
    c = Client(throttled_server(make_server))
    user = c.register()
    for _ in range(10):
        assert login(c, user["user"]["username"], user["password"], "192.0.2.1").status_code == 200


def test_address_throttled_across_usernames(make_server):
    c = Client(throttled_server(make_server))
    victim = c.register()
    for i in range(6):
        assert login(c, unique_name("nobody"), "wrong-guess", "192.0.2.99").status_code == 401
    r = login(c, victim["user"]["username"], victim["password"], "192.0.2.99")
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) > 0
    assert login(c, victim["user"]["username"], victim["password"], "192.0.2.100").status_code == 200


def test_forwarded_for_is_ignored_from_untrusted_peers(make_server):
    s = make_server(LOGIN_FAILURES_PER_USER=2)
    c = Client(s)
    user = c.register()
    name = user["user"]["username"]
    # Without TRUSTED_PROXIES the header is the client's own claim: it cannot spread
    # guesses over invented addresses.
    for address in ("10.0.0.1", "10.0.0.2"):
        assert login(c, name, "wrong-guess", address).status_code == 401
    assert login(c, name, "wrong-guess", "10.0.0.3").status_code == 429


def test_profile_password_check_is_throttled_too(make_server):
    c = Client(throttled_server(make_server))
    user = c.register()
    token = user["access"]
    for _ in range(3):
        r = c.patch("/api/users/me/", token=token, json={"email": "n@example.com", "current_password": "bad-guess"},
                    headers={"X-Forwarded-For": "203.0.113.77"})
        assert r.status_code == 400
    r = c.patch("/api/users/me/", token=token, json={"email": "n@example.com", "current_password": user["password"]},
                headers={"X-Forwarded-For": "203.0.113.77"})
    assert r.status_code == 429
