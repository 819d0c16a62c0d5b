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
    # The package's own demo page (the Petstore) and source maps are not served.
    assert client.get("/api/docs/static/index.html").status_code == 404


def test_admin_panel_files_are_served_with_a_strict_policy(client):
    for path in ("/admin/", "/admin"):
        r = client.get(path)
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html"), path
        assert "default-src 'self'" in r.headers["Content-Security-Policy"]
        assert r.headers["X-Content-Type-Options"] == "nosniff"
    js = client.get("/admin/admin.js")
    assert js.status_code == 200 and js.headers["Content-Type"].startswith("text/javascript")
    with open(f"{ROOT}/web/admin/admin.js", encoding="utf-8") as f:
        assert js.text == f.read()
    # A client that has the file gets 304.
    again = client.get("/admin/admin.js", headers={"If-None-Match": js.headers["ETag"]})
    assert again.status_code == 304 and again.content == b""


def test_nothing_outside_the_web_folders_is_served(client):
    for path in ("/admin/../README.md", "/admin/%2e%2e/README.md", "/admin/missing.js",
                 "/api/docs/static/../../package.json", "/web/admin/index.html"):
        r = client.get(path)
        assert r.status_code == 404, (path, r.status_code)
        assert r.headers["Content-Type"].startswith("application/json"), path
