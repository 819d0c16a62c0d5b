"""Authentication exactly as API.md: register, login, refresh, logout, JWT claims, and
forged tokens refused."""
import http.client
import json
import resource
import time
import uuid

import pytest

from conftest import (SECRET_KEY, Client, b64url, jwt_parts, sign_jwt, unique_name)
from test_openapi import create_superuser


def test_register_returns_user_and_tokens(client):
    name = unique_name()
    r = client.post("/api/auth/register/",
                    json={"username": name, "email": f"{name}@example.com", "password": "pa55word!"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"user", "access", "refresh"}
    assert set(body["user"]) == {"id", "username", "email"}
    assert body["user"]["username"] == name
    assert body["user"]["email"] == f"{name}@example.com"
    assert isinstance(body["user"]["id"], int) and body["user"]["id"] > 0
    # The user is logged in: the access token works at once.
    me = client.get("/api/users/me/", token=body["access"])
    assert me.status_code == 200 and me.json()["id"] == body["user"]["id"]


def test_tokens_carry_simplejwt_claims(client):
    body = client.register()
    for kind in ("access", "refresh"):
        header, claims = jwt_parts(body[kind])
        assert header["alg"] == "HS256"
        assert header.get("typ") == "JWT"
        assert claims["token_type"] == kind
        assert claims["user_id"] == body["user"]["id"]
        assert len(claims["jti"]) == 32
        assert claims["iat"] <= time.time() + 1
    _, access = jwt_parts(body["access"])
    _, refresh = jwt_parts(body["refresh"])
    assert access["exp"] - access["iat"] == 300          # SimpleJWT default: 5 minutes
    assert refresh["exp"] - refresh["iat"] == 86400      # and 1 day
    assert access["jti"] != refresh["jti"]


def test_token_lifetimes_are_settings(make_server):
    c = Client(make_server(ACCESS_TOKEN_LIFETIME="10m", REFRESH_TOKEN_LIFETIME="2d"))
    body = c.register()
    _, access = jwt_parts(body["access"])
    _, refresh = jwt_parts(body["refresh"])
    assert access["exp"] - access["iat"] == 600
    assert refresh["exp"] - refresh["iat"] == 2 * 86400


def test_usernames_are_unique_regardless_of_case(client):
    name = unique_name("Case")
    client.register(name)
    for variant in (name, name.lower(), name.upper()):
        r = client.post("/api/auth/register/",
                        json={"username": variant, "email": "x@example.com", "password": "pa55word!"})
        assert r.status_code == 400, r.text
        assert r.json() == {"username": ["A user with that username already exists."]}


def test_cyrillic_usernames_are_unique_regardless_of_case(client):
    name = "Аня" + unique_name("")
    client.register(name, email="anya@example.com")
    r = client.post("/api/auth/register/",
                    json={"username": name.lower(), "email": "x@example.com", "password": "pa55word!"})
    assert r.status_code == 400
    assert r.json() == {"username": ["A user with that username already exists."]}


def test_usernames_are_one_when_their_upper_cases_are(client):
    """Names compare as Django's `iexact` compares them (UPPER on both sides): a Greek
    word's final sigma is the sigma its capital is, and a dotless i is an i."""
    tag = unique_name("")
    for taken, other in (("ΟΔΥΣΣΕΥΣ" + tag, "οδυσσευς" + tag), ("kır" + tag, "KIR" + tag)):
        client.register(taken, email="a@example.com")
        r = client.post("/api/auth/register/",
                        json={"username": other, "email": "x@example.com", "password": "pa55word!"})
        assert (r.status_code, r.json()) == \
            (400, {"username": ["A user with that username already exists."]}), other
        for spelling in (taken, other, taken.lower(), other.upper()):
            assert "access" in client.login(spelling, "correct-horse-1"), spelling
    # Found by a search in any of its spellings.
    me = client.register()
    found = client.get(f"/api/users/?search=οδυσσευς{tag}", token=me["access"]).json()
    assert [u["username"] for u in found["results"]] == ["ΟΔΥΣΣΕΥΣ" + tag], found


def fullwidth(text):
    """The fullwidth look-alike of ASCII letters and digits (U+FF01 onwards)."""
    return "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() else c for c in text)


def test_usernames_are_normalised_to_nfkc_as_django_creates_users(client):
    """Django's create_user stores NFKC of the name: a fullwidth look-alike of a name is that
    name (taken, here: 400, where Django's database would fail), a new one is stored in its
    normal form, and login takes the stored name, as Django's ModelBackend does."""
    taken = unique_name("nf")
    client.register(taken)
    r = client.post("/api/auth/register/",
                    json={"username": fullwidth(taken), "email": "x@example.com", "password": "pa55word!"})
    assert (r.status_code, r.json()) == (400, {"username": ["A user with that username already exists."]}), r.text

    name = unique_name("nf")
    r = client.post("/api/auth/register/",
                    json={"username": fullwidth(name) + "ﬁ", "email": "x@example.com", "password": "pa55word!"})
    assert r.status_code == 201, r.text
    assert r.json()["user"]["username"] == name + "fi", r.text
    assert client.post("/api/auth/login/", json={"username": name + "fi", "password": "pa55word!"}).status_code == 200
    r = client.post("/api/auth/login/", json={"username": fullwidth(name) + "ﬁ", "password": "pa55word!"})
    assert r.status_code == 401, r.text
    # The password may equal neither the name as typed nor the name as stored.
    plain = unique_name("nf")
    r = client.post("/api/auth/register/",
                    json={"username": fullwidth(plain), "email": "x@example.com", "password": plain})
    assert (r.status_code, r.json()) == (400, {"password": ["The password is too similar to the username."]})
    # A name whose normal form breaks the rules: refused, with the rule's message.
    r = client.post("/api/auth/register/",
                    json={"username": unique_name("")[:8] + "\ufdfa", "email": "x@example.com",
                          "password": "pa55word!"})
    assert r.status_code == 400 and list(r.json()) == ["username"], r.text
    r = client.post("/api/auth/register/",
                    json={"username": "ﬃ" * 75, "email": "x@example.com", "password": "pa55word!"})
    assert (r.status_code, r.json()) == (400, {"username": ["Ensure this field has no more than 150 characters."]})


@pytest.mark.parametrize("make,ok", [
    (lambda t: "a", True),
    (lambda t: t + "x" * (150 - len(t)), True),
    (lambda t: t + "x" * (151 - len(t)), False),
    (lambda t: t + "user.name+tag@-_", True),
    (lambda t: t + " space", False),
    (lambda t: t + ";", False),
    (lambda t: "Ёжик" + t, True),
    (lambda t: t + "😀", False),
    (lambda t: t + "/", False),
    # Django's \w: letters and anything with a numeric value (Tamil number ten, Bengali
    # currency numerator one), not combining marks.
    (lambda t: t + "\u0bf0\u09f4", True),
    (lambda t: t + "a\u0301", False),
])
def test_username_rules(client, make, ok):
    name = make(unique_name("")[:8])
    r = client.post("/api/auth/register/",
                    json={"username": name, "email": "ok@example.com", "password": "pa55word!"})
    if ok:
        assert r.status_code == 201, r.text
        assert r.json()["user"]["username"] == name
    else:
        assert r.status_code == 400, r.text
        assert list(r.json()) == ["username"]
        assert r.json()["username"][0] in (
            "Ensure this field has no more than 150 characters.",
            "Enter a valid username. This value may contain only letters, numbers, "
            "and @/./+/-/_ characters.")


@pytest.mark.parametrize("email,ok", [
    ("ann@example.com", True), ("a.b+c@sub.example.org", True), ("юзер@пример.рф", False),
    ("user@пример.рф", True), ("no-at-sign", False), ("two@@example.com", False),
    ("user@localhost", True), ("user@LOCALHOST", False), ("user@example", False), ("user@.com", False),
    ("user@example.c", False), ("", False), (" spaced@example.com ", True),
    # Django's grammar: no limit on the local part, a space in quotes only escaped, and an
    # address literal that Python's ipaddress reads.
    ("x" * 65 + "@example.com", True), ('"a\\ b"@example.com', True), ('"a b"@example.com', False),
    ("user@[10.0.0.1]", True), ("user@[::1]", True), ("user@[1.2.3.999]", False),
    ("user@[01.2.3.4]", False),
])
def test_email_rules(client, email, ok):
    r = client.post("/api/auth/register/",
                    json={"username": unique_name(), "email": email, "password": "pa55word!"})
    if ok:
        assert r.status_code == 201, r.text
        assert r.json()["user"]["email"] == email.strip()
    else:
        assert r.status_code == 400, r.text
        assert list(r.json()) == ["email"]
        assert r.json()["email"][0] in ("Enter a valid email address.", "This field may not be blank.")


def test_password_rules(client):
    name = unique_name()

    def attempt(password):
        return client.post("/api/auth/register/",
                           json={"username": name, "email": "p@example.com", "password": password})

    r = attempt("short1")
    assert r.status_code == 400
    assert r.json() == {"password": ["This password is too short. It must contain at least 8 characters."]}
    r = attempt("12345678")
    assert r.json() == {"password": ["This password is entirely numeric."]}
    r = attempt("1234")
    assert r.json() == {"password": ["This password is too short. It must contain at least 8 characters.",
                                     "This password is entirely numeric."]}
    r = attempt(name.upper())
    assert r.json() == {"password": ["The password is too similar to the username."]}
    # Several at once, in the order of Django's default validators.
    digits = str(uuid.uuid4().int)[:7]
    r = client.post("/api/auth/register/", json={"username": digits, "email": "p@example.com",
                                                 "password": digits})
    assert r.json() == {"password": ["The password is too similar to the username.",
                                     "This password is too short. It must contain at least 8 characters.",
                                     "This password is entirely numeric."]}
    # Digits as Python's str.isdigit() sees them: of any script, superscripts too.
    for digits in ("١٢٣٤٥٦٧٨", "²²²²²²²²"):
        r = attempt(digits)
        assert r.json() == {"password": ["This password is entirely numeric."]}, digits
    # Eight characters, counted as characters rather than bytes.
    assert attempt("пароль12").status_code == 201


def test_passwords_are_trimmed_as_drf_and_simplejwt_trim_them(client, server):
    """DRF's and SimpleJWT's password fields are CharFields: what is stored, and what a login
    or a current password is checked with, is the text without its outer whitespace."""
    name = unique_name()
    r = client.post("/api/auth/register/",
                    json={"username": name, "email": "t@example.com", "password": "  Secret pw 1\n"})
    assert r.status_code == 201, r.text
    for typed in ("Secret pw 1", " Secret pw 1 ", "\tSecret pw 1\r\n"):
        client.login(name, typed)
    client.login(name, "Secretpw1", expect=401)
    # Blank once trimmed, as SimpleJWT's field says.
    r = client.post("/api/auth/login/", json={"username": name, "password": "   "})
    assert (r.status_code, r.json()) == (400, {"password": ["This field may not be blank."]})
    # Longer than any password that can be set: simply not the password (no length error).
    r = client.post("/api/auth/login/", json={"username": name, "password": "x" * 5000})
    assert r.status_code == 401, r.text
    # The current password of a change is read the same way; the new one is trimmed too.
    tokens = client.login(name, "Secret pw 1")
    r = client.patch("/api/users/me/", token=tokens["access"],
                     json={"password": " New secret 2 ", "current_password": " Secret pw 1 "})
    assert r.status_code == 200, r.text
    client.login(name, "New secret 2")


def test_a_password_set_with_outer_spaces_still_logs_in_as_typed(client, server):
    """createsuperuser keeps a password as typed (as Django's does), and passwords set
    before chatd trimmed them may have outer spaces: typed exactly, they still match."""
    name = unique_name("staff")
    create_superuser(server, name, " spaced secret ")
    tokens = client.login(name, " spaced secret ")
    client.login(name, "spaced secret", expect=401)
    r = client.patch("/api/users/me/", token=tokens["access"],
                     json={"email": "s@example.com", "current_password": " spaced secret "})
    assert r.status_code == 200, r.text


def test_register_reports_every_field(client):
    r = client.post("/api/auth/register/", json={})
    assert r.status_code == 400
    assert r.json() == {"username": ["This field is required."], "email": ["This field is required."],
                        "password": ["This field is required."]}
    r = client.post("/api/auth/register/", json={"username": "", "email": "bad", "password": "1"})
    assert r.status_code == 400
    body = r.json()
    assert body["username"] == ["This field may not be blank."]
    assert body["email"] == ["Enter a valid email address."]
    assert "This password is too short. It must contain at least 8 characters." in body["password"]
    # A taken name is one of the problems reported together (DRF's UniqueValidator is a
    # validator of the field), in any case of it.
    taken = client.register()["user"]["username"]
    r = client.post("/api/auth/register/", json={"username": taken.upper(), "email": "bad", "password": "1"})
    assert r.status_code == 400
    body = r.json()
    assert list(body) == ["username", "email", "password"], body
    assert body["username"] == ["A user with that username already exists."], body
    assert body["email"] == ["Enter a valid email address."], body


def test_concurrent_registrations_of_one_name_create_one_user(server):
    import concurrent.futures
    name = unique_name("race")

    def attempt(i):
        return Client(server).post("/api/auth/register/",
                                   json={"username": name if i % 2 else name.upper(),
                                         "email": "r@example.com", "password": "pa55word!"}).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(attempt, range(8)))
    assert statuses.count(201) == 1, statuses
    assert statuses.count(400) == 7, statuses


def test_login(client):
    user = client.register()
    body = client.login(user["user"]["username"], user["password"])
    assert set(body) == {"access", "refresh"}
    assert jwt_parts(body["access"])[1]["user_id"] == user["user"]["id"]
    # Usernames are case-insensitive at login too.
    assert client.login(user["user"]["username"].upper(), user["password"])["access"]


@pytest.mark.parametrize("payload", [
    {"username": "nobody-here", "password": "whatever1"},
    None,  # the right user with a wrong password, filled in below
])
def test_login_with_wrong_credentials(client, payload):
    user = client.register()
    payload = payload or {"username": user["user"]["username"], "password": "wrong-password"}
    r = client.post("/api/auth/login/", json=payload)
    assert r.status_code == 401
    assert r.json() == {"detail": "No active account found with the given credentials"}


def test_login_validation(client):
    r = client.post("/api/auth/login/", json={})
    assert r.status_code == 400
    assert r.json() == {"username": ["This field is required."], "password": ["This field is required."]}
    r = client.post("/api/auth/login/", json={"username": None, "password": ["x"]})
    assert r.json() == {"username": ["This field may not be null."], "password": ["Not a valid string."]}


def test_inactive_user_cannot_log_in_or_refresh(make_server):
    s = make_server()
    c = Client(s)
    user = c.register()
    s.db.execute("UPDATE users SET is_active = FALSE WHERE id = ?", user["user"]["id"])
    r = c.post("/api/auth/login/", json={"username": user["user"]["username"], "password": user["password"]})
    assert r.status_code == 401
    assert r.json() == {"detail": "No active account found with the given credentials"}
    r = c.post("/api/auth/refresh/", json={"refresh": user["refresh"]})
    assert r.status_code == 401
    r = c.get("/api/users/me/", token=user["access"])
    assert r.status_code == 401
    assert r.json() == {"detail": "User is inactive", "code": "user_inactive"}


def vm_size(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))


def test_no_memory_for_a_password_hash_is_a_503_and_no_failed_login(make_server):
    """Hashes of 256 MiB, then chatd's address space capped 64 MiB above what it uses:
    no hash can be computed or verified. Registration, login and a password change answer
    503 (the request may be sent again), never a 500, and never a 401 for the right
    password; those logins do not count toward the lockout (10 failures), so once memory
    is back the user logs in at once."""
    s = make_server(PASSWORD_HASH_MEMORY_KIB=262144, PASSWORD_HASH_OPS=1)
    c = Client(s)
    user = c.register()
    name = user["user"]["username"]
    pid = s.proc.pid
    before = resource.prlimit(pid, resource.RLIMIT_AS)
    resource.prlimit(pid, resource.RLIMIT_AS, (vm_size(pid) + 64 * 2 ** 20, before[1]))
    try:
        r = c.post("/api/auth/register/", json={"username": unique_name(), "password": "correct-horse-1",
                                                "email": "x@example.com"})
        assert r.status_code == 503 and r.json() == {"detail": "Service temporarily unavailable."}, r.text
        for password in [user["password"]] * 6 + ["wrong-horse-1"] * 6:
            r = c.post("/api/auth/login/", json={"username": name, "password": password})
            assert r.status_code == 503 and r.json() == {"detail": "Service temporarily unavailable."}, r.text
        change = {"password": "correct-horse-2", "current_password": user["password"]}
        r = c.patch("/api/users/me/", token=user["access"], json=change)
        assert r.status_code == 503 and r.json() == {"detail": "Service temporarily unavailable."}, r.text
        # What needs no hash goes on.
        assert c.get("/api/users/me/", token=user["access"]).status_code == 200
    finally:
        resource.prlimit(pid, resource.RLIMIT_AS, before)
    assert set(c.login(name, user["password"])) == {"access", "refresh"}
    c.register()
    assert c.patch("/api/users/me/", token=user["access"], json=change).status_code == 200
    assert set(c.login(name, "correct-horse-2")) == {"access", "refresh"}


def test_refresh_without_rotation(client):
    user = client.register()
    r = client.post("/api/auth/refresh/", json={"refresh": user["refresh"]})
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"access"}
    access = r.json()["access"]
    assert jwt_parts(access)[1]["token_type"] == "access"
    assert client.get("/api/users/me/", token=access).status_code == 200
    # Without rotation the same refresh token keeps working.
    assert client.post("/api/auth/refresh/", json={"refresh": user["refresh"]}).status_code == 200


def test_refresh_with_rotation_rejects_reuse(make_server):
    c = Client(make_server(ROTATE_REFRESH_TOKENS="1"))
    user = c.register()
    r = c.post("/api/auth/refresh/", json={"refresh": user["refresh"]})
    assert r.status_code == 200
    assert set(r.json()) == {"access", "refresh"}
    new_refresh = r.json()["refresh"]
    assert new_refresh != user["refresh"]
    reused = c.post("/api/auth/refresh/", json={"refresh": user["refresh"]})
    assert reused.status_code == 401
    assert reused.json() == {"detail": "Token is blacklisted", "code": "token_not_valid"}
    assert c.post("/api/auth/refresh/", json={"refresh": new_refresh}).status_code == 200


def test_refresh_rejects_access_tokens_and_the_reverse(client):
    user = client.register()
    r = client.post("/api/auth/refresh/", json={"refresh": user["access"]})
    assert r.status_code == 401
    assert r.json() == {"detail": "Token has wrong type", "code": "token_not_valid"}
    r = client.get("/api/users/me/", token=user["refresh"])
    assert r.status_code == 401
    assert r.json() == {"detail": "Given token not valid for any token type", "code": "token_not_valid",
                        "messages": [{"token_class": "AccessToken", "token_type": "access",
                                      "message": "Token has wrong type"}]}


def test_logout_revokes_the_refresh_token_across_restarts(make_server):
    s = make_server()
    c = Client(s)
    user = c.register()
    other = c.login(user["user"]["username"], user["password"])
    r = c.post("/api/auth/logout/", json={"refresh": user["refresh"]})
    assert r.status_code == 205
    assert r.content == b""
    blacklisted = {"detail": "Token is blacklisted", "code": "token_not_valid"}
    r = c.post("/api/auth/refresh/", json={"refresh": user["refresh"]})
    assert (r.status_code, r.json()) == (401, blacklisted)
    r = c.post("/api/auth/logout/", json={"refresh": user["refresh"]})
    assert (r.status_code, r.json()) == (401, blacklisted)
    s.restart()
    r = c.post("/api/auth/refresh/", json={"refresh": user["refresh"]})
    assert (r.status_code, r.json()) == (401, blacklisted)
    # Only that session ended: the other refresh token still works after the restart.
    assert c.post("/api/auth/refresh/", json={"refresh": other["refresh"]}).status_code == 200


def test_logout_and_refresh_validation(client):
    for path in ("/api/auth/logout/", "/api/auth/refresh/"):
        r = client.post(path, json={})
        assert (r.status_code, r.json()) == (400, {"refresh": ["This field is required."]})
        # SimpleJWT's `refresh` is a CharField: trimmed, and blank refused.
        r = client.post(path, json={"refresh": " \n "})
        assert (r.status_code, r.json()) == (400, {"refresh": ["This field may not be blank."]})
        r = client.post(path, json={"refresh": "not-a-token"})
        assert (r.status_code, r.json()) == (401, {"detail": "Token is invalid or expired",
                                                   "code": "token_not_valid"})


def test_a_refresh_token_is_trimmed_as_simplejwt_trims_it(client):
    """A token read from a file or the clipboard with a newline still refreshes and logs out."""
    user = client.register()
    r = client.post("/api/auth/refresh/", json={"refresh": f" {user['refresh']}\n"})
    assert r.status_code == 200 and set(r.json()) == {"access"}, r.text
    assert client.get("/api/users/me/", token=r.json()["access"]).status_code == 200
    r = client.post("/api/auth/logout/", json={"refresh": f"\t{user['refresh']} "})
    assert r.status_code == 205, r.text
    r = client.post("/api/auth/refresh/", json={"refresh": user["refresh"]})
    assert r.status_code == 401, r.text


def test_registration_lowercases_the_email_domain(client):
    """Django's create_user applies normalize_email: the domain lower-cased, the local part
    kept; a later change of e-mail is stored as given, as Django's serializers store it."""
    name = unique_name()
    r = client.post("/api/auth/register/",
                    json={"username": name, "email": "Foo.Bar@EXAMPLE.Com", "password": "pa55word!x"})
    assert r.status_code == 201 and r.json()["user"]["email"] == "Foo.Bar@example.com", r.text
    token = r.json()["access"]
    assert client.get("/api/users/me/", token=token).json()["email"] == "Foo.Bar@example.com"
    r = client.patch("/api/users/me/", token=token,
                     json={"email": "New@EXAMPLE.COM", "current_password": "pa55word!x"})
    assert r.status_code == 200 and r.json()["email"] == "New@EXAMPLE.COM", r.text


def forged_tokens(user_id):
    now = int(time.time())
    good = {"token_type": "access", "exp": now + 300, "iat": now, "jti": "a" * 32, "user_id": user_id}
    hs256 = {"alg": "HS256", "typ": "JWT"}
    unsigned = b64url(b'{"alg":"none","typ":"JWT"}') + "." + b64url(
        __import__("json").dumps(good).encode()) + "."
    valid = sign_jwt(hs256, good)
    head, payload, sig = valid.split(".")
    tampered_payload = b64url(__import__("json").dumps({**good, "user_id": user_id + 1}).encode())
    return {
        "alg_none": unsigned,
        "alg_none_with_signature": unsigned + sig,
        "wrong_key": sign_jwt(hs256, good, key="another-secret-key-" * 4),
        "hs512_swap": sign_jwt({"alg": "HS512", "typ": "JWT"}, good, alg="sha512"),
        "stripped_signature": head + "." + payload + ".",
        "tampered_payload": head + "." + tampered_payload + "." + sig,
        "expired": sign_jwt(hs256, {**good, "exp": now - 10, "iat": now - 400}),
        "missing_user_id": sign_jwt(hs256, {k: v for k, v in good.items() if k != "user_id"}),
        "not_a_jwt": "abc.def",
        "garbage": "\u00ff" * 10,
    }


def test_forged_tokens_are_refused(client):
    user = client.register()
    # The hand-made signing matches the server's: a well-formed token is accepted...
    now = int(time.time())
    genuine = sign_jwt({"alg": "HS256", "typ": "JWT"},
                       {"token_type": "access", "exp": now + 60, "iat": now, "jti": "b" * 32,
                        "user_id": user["user"]["id"]})
    assert client.get("/api/users/me/", token=genuine).status_code == 200
    # ...and every forgery is not.
    for name, token in forged_tokens(user["user"]["id"]).items():
        r = client.request("GET", "/api/users/me/",
                           headers={"Authorization": "Bearer " + token}) if name != "garbage" else \
            client.request("GET", "/api/users/me/",
                           headers={"Authorization": b"Bearer " + token.encode("latin-1")})
        assert r.status_code == 401, (name, r.text)
        assert r.json()["code"] == "token_not_valid", (name, r.text)


def test_authorization_header_forms(client):
    user = client.register()
    r = client.get("/api/users/me/", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert (r.status_code, r.json()) == (401, {"detail": "Authentication credentials were not provided."})
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    r = client.get("/api/users/me/", headers={"Authorization": "Bearer"})
    assert r.status_code == 401
    assert r.json()["code"] == "bad_authorization_header"
    r = client.get("/api/users/me/", headers={"Authorization": f"Bearer {user['access']} extra"})
    assert r.status_code == 401
    assert r.json()["code"] == "bad_authorization_header"
    # SimpleJWT splits the header on any run of whitespace (bytes.split()).
    for sep in ("  ", "\t", " \t "):
        r = client.get("/api/users/me/", headers={"Authorization": f"Bearer{sep}{user['access']}"})
        assert r.status_code == 200 and r.json()["id"] == user["user"]["id"], (repr(sep), r.text)
    r = client.get("/api/users/me/", headers={"Authorization": f"Bearer\t{user['access']}\textra"})
    assert r.status_code == 401 and r.json()["code"] == "bad_authorization_header", r.text
    # The scheme is matched as written: another spelling is another scheme.
    r = client.get("/api/users/me/", headers={"Authorization": f"bearer {user['access']}"})
    assert (r.status_code, r.json()) == (401, {"detail": "Authentication credentials were not provided."})


def test_a_repeated_authorization_header_is_one_malformed_value(server, client):
    """Django's ASGI handler joins a repeated header with "," and SimpleJWT then finds more
    than two parts: a request with two Authorization headers is refused, whichever comes
    first, on REST and on the socket handshake alike (not served as the first one's user,
    which a proxy reading the last one would disagree with)."""
    user = client.register()
    other = client.register()

    def status_with(path, *values):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            conn.putrequest("GET", path)
            for v in values:
                conn.putheader("Authorization", v)
            if path.startswith("/ws/"):
                conn.putheader("Connection", "Upgrade")
                conn.putheader("Upgrade", "websocket")
                conn.putheader("Sec-WebSocket-Version", "13")
                conn.putheader("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
            conn.endheaders()
            r = conn.getresponse()
            body = r.read()
            return r.status, (json.loads(body) if body else None)
        finally:
            conn.close()

    mine, theirs = f"Bearer {user['access']}", f"Bearer {other['access']}"
    assert status_with("/api/users/me/", mine)[0] == 200
    malformed = {"detail": "Authorization header must contain two space-delimited values",
                 "code": "bad_authorization_header"}
    # "Basic ...,Bearer ..." starts with another scheme: no credentials, as for Basic alone.
    absent = {"detail": "Authentication credentials were not provided."}
    for values, expected in (((mine, theirs), malformed), ((mine, "Basic dXNlcjpwYXNz"), malformed),
                             (("Basic dXNlcjpwYXNz", mine), absent)):
        for path in ("/api/users/me/", "/ws/"):
            assert status_with(path, *values) == (401, expected), (path, values)


def test_token_of_a_deleted_user(make_server):
    s = make_server()
    c = Client(s)
    user = c.register()
    s.db.execute("DELETE FROM users WHERE id = ?", user["user"]["id"])
    r = c.get("/api/users/me/", token=user["access"])
    assert (r.status_code, r.json()) == (401, {"detail": "User not found", "code": "user_not_found"})


def test_expired_access_token(make_server):
    c = Client(make_server(ACCESS_TOKEN_LIFETIME="1"))
    user = c.register()
    time.sleep(2.1)
    r = c.get("/api/users/me/", token=user["access"])
    assert r.status_code == 401
    assert r.json()["messages"][0]["message"] == "Token is invalid or expired"


def test_register_is_not_throttled_by_default(client):
    for _ in range(12):
        client.register()


def test_register_throttle_setting(make_server):
    c = Client(make_server(REGISTER_THROTTLE_RATE="2/hour"))
    c.register()
    c.register()
    r = c.post("/api/auth/register/",
               json={"username": unique_name(), "email": "t@example.com", "password": "pa55word!"})
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) > 0
    assert r.json()["detail"].startswith("Request was throttled. Expected available in ")
