"""Pages chatd serves itself, offline: Swagger UI at /api/docs/ (the npm package
swagger-ui-dist, no CDN) over /api/schema/, and the admin panel's files at /admin/."""
import re

from conftest import ROOT


def test_swagger_ui_is_served_without_a_cdn(server, client):
    r = client.get("/api/docs/")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    page = r.text
    assert "/api/docs/static/swagger-ui-bundle.js" in page
    # Every script and stylesheet comes from this server.
    for ref in re.findall(r'(?:src|href)="([^"]+)"', page):
        assert ref.startswith("/"), ref
    for asset, kind in (("swagger-ui-bundle.js", "text/javascript"), ("swagger-ui.css", "text/css"),
                        ("swagger-ui-standalone-preset.js", "text/javascript")):
        a = client.get("/api/docs/static/" + asset)
        assert a.status_code == 200 and a.headers["Content-Type"].startswith(kind), asset
        assert len(a.content) > 10_000, asset
    init = client.get("/api/docs/init.js")
    assert init.status_code == 200 and "/api/schema/" in init.text
    # The package's licences are served beside the bundles that name them.
    for name in ("LICENSE", "swagger-ui-bundle.js.LICENSE.txt"):
        lic = client.get("/api/docs/static/" + name)
        assert lic.status_code == 200 and lic.headers["Content-Type"].startswith("text/plain"), name
    # A token pasted into Authorize is not kept in localStorage after the tab closes.
    assert "persistAuthorization: false" in init.text
    # Only what the page loads: not the package's demo page (the Petstore), its OAuth2
    # redirect page, its metadata or source maps.
    for name in ("index.html", "oauth2-redirect.html", "oauth2-redirect.js", "package.json",
                 "swagger-initializer.js", "index.js", "swagger-ui-bundle.js.map"):
        assert client.get("/api/docs/static/" + name).status_code == 404, name


def test_admin_panel_files_are_served_with_a_strict_policy(client):
    for path in ("/admin/", "/admin"):
        r = client.get(path)
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html"), path
        policy = r.headers["Content-Security-Policy"]
        for rule in ("default-src 'self'", "object-src 'none'", "base-uri 'none'",
                     "form-action 'self'", "frame-ancestors 'none'"):
            assert rule in policy, (rule, policy)
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Referrer-Policy"] == "no-referrer"
    js = client.get("/admin/admin.js")
    assert js.status_code == 200 and js.headers["Content-Type"].startswith("text/javascript")
    with open(f"{ROOT}/web/admin/admin.js", encoding="utf-8") as f:
        assert js.text == f.read()
    # A client that has the file gets 304.
    again = client.get("/admin/admin.js", headers={"If-None-Match": js.headers["ETag"]})
    assert again.status_code == 304 and again.content == b""


def test_api_answers_are_never_sniffed(client):
    for path in ("/api/users/me/", "/healthz", "/api/schema/", "/api/nothing-here/"):
        r = client.get(path)
        assert r.headers["X-Content-Type-Options"] == "nosniff", (path, r.status_code)


def test_nothing_outside_the_web_folders_is_served(client):
    for path in ("/admin/../README.md", "/admin/%2e%2e/README.md", "/admin/missing.js",
                 "/api/docs/static/../../package.json", "/web/admin/index.html"):
        r = client.get(path)
        assert r.status_code == 404, (path, r.status_code)
        assert r.headers["Content-Type"].startswith("application/json"), path


# ---- the chat client at / (web/app) ------------------------------------------------------

APP_FILES = {"app.js": "text/javascript", "api.js": "text/javascript", "socket.js": "text/javascript",
             "dom.js": "text/javascript", "app.css": "text/css", "favicon.svg": "image/svg+xml"}


def test_the_chat_client_is_served_at_the_root(client):
    for method in ("GET", "HEAD"):
        r = client.request(method, "/")
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html"), method
        assert "default-src 'self'" in r.headers["Content-Security-Policy"]
        assert r.headers["X-Content-Type-Options"] == "nosniff"
    page = client.get("/").text
    assert '<script type="module" src="/app.js">' in page
    # Everything it loads comes from this server, and no script is inline.
    refs = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert refs and all(ref.startswith("/") and not ref.startswith("//") for ref in refs), refs
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page), "inline script"
    assert " style=" not in page and "<style" not in page, "inline style (blocked by the policy)"
    for name, kind in APP_FILES.items():
        r = client.get("/" + name)
        assert r.status_code == 200 and r.headers["Content-Type"].startswith(kind), name
        with open(f"{ROOT}/web/app/{name}", "rb") as f:
            assert r.content == f.read(), name
    # Every module the client imports is served (a missing one would break the page).
    for name in ("app.js", "api.js", "socket.js", "dom.js"):
        for imported in re.findall(r"from '\./([\w.-]+)'", client.get("/" + name).text):
            assert client.get("/" + imported).status_code == 200, (name, imported)


def test_the_client_shadows_no_api_path(client):
    # The API, the probes, the other pages and the sockets answer as before.
    r = client.get("/api/users/")
    assert r.status_code == 401 and r.headers["Content-Type"].startswith("application/json")
    assert client.get("/healthz").status_code == 200
    assert client.get("/api/schema/").headers["Content-Type"].startswith("application/json")
    admin = client.get("/admin/")
    assert admin.status_code == 200 and "/admin/admin.js" in admin.text
    assert "/api/docs/static/" in client.get("/api/docs/").text
    r = client.get("/ws/", headers={"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                                    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert r.status_code == 401, r.status_code
    # Only GET and HEAD reach the files; anything else at / is the API's 404 or 405.
    assert client.post("/", json={}).status_code in (404, 405)
    for path in ("/missing.js", "/app/app.js", "/web/app/index.html", "/../README.md"):
        r = client.get(path)
        assert r.status_code == 404 and r.headers["Content-Type"].startswith("application/json"), path
