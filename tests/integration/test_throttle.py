"""Login throttling per account+address and per address; 429 with Retry-After, while the
real user logging in from elsewhere is never locked out. Then USER_THROTTLE_RATE, DRF's
per-user throttle of authenticated REST requests."""
import threading
from concurrent.futures import ThreadPoolExecutor

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


def at_once(count, job):
    """`job(i)` for i < count on as many threads, started together."""
    barrier = threading.Barrier(count)

    def run(i):
        barrier.wait(timeout=30)
        return job(i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def test_guesses_at_once_are_checked_no_more_than_the_limit(make_server):
    """Each attempt holds its place in the count while its password is checked: counted only
    after the hash, every guess in flight was checked (150 at once against a limit of 10)."""
    server = throttled_server(make_server)
    c = Client(server)
    user = c.register()
    name = user["user"]["username"]
    codes = at_once(30, lambda i: login(Client(server), name, f"wrong-{i}", "203.0.113.50").status_code)
    assert sorted(codes) == [401] * 3 + [429] * 27, codes
    # The same for the current password of a profile change, from another address.
    token = user["access"]

    def change(i):
        return Client(server).patch("/api/users/me/", token=token,
                                    json={"email": "n@example.com", "current_password": f"bad-{i}"},
                                    headers={"X-Forwarded-For": "203.0.113.51"}).status_code
    codes = at_once(30, change)
    assert sorted(codes) == [400] * 3 + [429] * 27, codes
    # A login that passes gives its place back: the owner, elsewhere, is not locked out.
    for _ in range(5):
        assert login(c, name, user["password"], "198.51.100.9").status_code == 200


def throttled_count(c, kind):
    for line in c.get("/metrics").text.splitlines():
        if line.startswith(f'chatd_throttled_total{{kind="{kind}"}} '):
            return float(line.split()[-1])
    raise AssertionError(f"no chatd_throttled_total for {kind}")


def throttled_detail(retry):
    return {"detail": f"Request was throttled. Expected available in {retry} second{'' if retry == 1 else 's'}."}


# Rates per hour: the tests' requests come back long before a request's worth refills, even
# on a slow machine (a bucket of 5 an hour gains one every 12 minutes).
def test_user_rate_counts_every_authenticated_request_of_one_user(make_server):
    c = Client(make_server(USER_THROTTLE_RATE="5/hour"))
    a, b = c.register(), c.register()  # registration is not an authenticated request
    before = throttled_count(c, "user")
    r = c.post("/api/chats/", token=a["access"], json={"type": "private", "member_ids": [b["user"]["id"]]})
    assert r.status_code == 201, r.text
    chat = r.json()["id"]
    for i in range(3):
        r = c.post("/api/messages/", token=a["access"], json={"chat": chat, "text": f"m{i}"})
        assert r.status_code == 201, r.text
    assert c.get("/api/users/me/", token=a["access"]).status_code == 200  # the fifth
    # The sixth, whatever it asks: refused before its body is read or its object looked up.
    for method, path, body in (("POST", "/api/messages/", {"chat": chat, "text": "one too many"}),
                               ("GET", "/api/chats/999999999/", None),
                               ("POST", "/api/messages/", "not json")):
        r = c.request(method, path, token=a["access"], json=body) if not isinstance(body, str) \
            else c.request(method, path, token=a["access"], data=body,
                           headers={"Content-Type": "application/json"})
        assert r.status_code == 429, (method, path, r.text)
        retry = int(r.headers["Retry-After"])
        assert 0 < retry <= 720
        assert r.json() == throttled_detail(retry)
    assert throttled_count(c, "user") == before + 3
    # Another user is not held back, and the refused send stored nothing.
    r = c.get(f"/api/messages/?chat={chat}", token=b["access"])
    assert r.status_code == 200
    assert sorted(m["text"] for m in r.json()["results"]) == ["m0", "m1", "m2"]
    # The user's other login session shares the user's count.
    other = c.login(a["user"]["username"], a["password"])
    assert c.get("/api/chats/", token=other["access"]).status_code == 429


def test_refused_and_unauthenticated_requests_are_not_counted(make_server):
    c = Client(make_server(USER_THROTTLE_RATE="1/hour"))
    a = c.register()
    assert c.get("/api/users/me/", token=a["access"]).status_code == 200
    for _ in range(10):
        r = c.get("/api/users/me/", token=a["access"])
        assert r.status_code == 429
    # Still the first request's hour: had the refusals counted, ten more hours.
    assert 0 < int(r.headers["Retry-After"]) <= 3600

    # A token whose session was logged out is 401 and counts for no one.
    b = c.register()
    session = c.login(b["user"]["username"], b["password"])
    assert c.post("/api/auth/logout/", json={"refresh": session["refresh"]}).status_code == 205
    for _ in range(5):
        assert c.get("/api/users/me/", token=session["access"]).status_code == 401
    assert c.get("/api/users/me/", token=b["access"]).status_code == 200
    assert c.get("/api/users/me/", token=b["access"]).status_code == 429


def test_without_user_rate_requests_are_not_throttled(make_server):
    c = Client(make_server())
    a = c.register()
    for _ in range(120):
        assert c.get("/api/users/me/", token=a["access"]).status_code == 200
