#include "http/static_files.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace chat::http {
namespace {

namespace fs = std::filesystem;

std::string content_type_of(const fs::path& p) {
  const std::string ext = p.extension().string();
  if (ext == ".html") return "text/html; charset=utf-8";
  if (ext == ".js" || ext == ".mjs") return "text/javascript; charset=utf-8";
  if (ext == ".css") return "text/css; charset=utf-8";
  if (ext == ".json") return "application/json";
  if (ext == ".svg") return "image/svg+xml";
  if (ext == ".png") return "image/png";
  if (ext == ".ico") return "image/x-icon";
  if (ext == ".txt" || ext.empty()) return "text/plain; charset=utf-8";  // LICENSE, NOTICE
  return "application/octet-stream";
}

// FNV-1a of the content: a cheap validator for If-None-Match.
std::string etag_of(const std::string& body) {
  std::uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : body) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  std::ostringstream out;
  out << '"' << std::hex << h << '"';
  return out.str();
}

}  // namespace

void StaticFiles::mount(std::string prefix, const std::string& dir, const std::string& index,
                        const std::vector<std::string>& only) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    spdlog::warn("static files: {} not found; {} serves nothing", dir, prefix);
    return;
  }
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (!entry.is_regular_file()) continue;
    const auto name = entry.path().filename().string();
    // Source maps are not needed; a folder's own index.html only as the mount's index.
    if (name.ends_with(".map") || name.starts_with('.')) continue;
    if (name == "index.html" && index != name) continue;
    if (!only.empty() && std::find(only.begin(), only.end(), name) == only.end()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::ostringstream body;
    body << in.rdbuf();
    File f{body.str(), content_type_of(entry.path()), {}};
    f.etag = etag_of(f.body);
    if (name == index) {
      files_[prefix] = f;
      if (prefix.size() > 1 && prefix.back() == '/')
        files_[prefix.substr(0, prefix.size() - 1)] = f;
    }
    files_[prefix + name] = std::move(f);
  }
}

std::optional<Response> StaticFiles::serve(const Request& req) const {
  if (req.method != Method::get && req.method != Method::head) return std::nullopt;
  auto it = files_.find(req.path);
  if (it == files_.end()) return std::nullopt;
  const File& f = it->second;
  Response r;
  r.content_type = f.content_type;
  r.headers.emplace_back("ETag", f.etag);
  r.headers.emplace_back("Cache-Control", "no-cache");
  // Pages load only what this server serves; no inline script can run, no <base> can
  // move their relative URLs and no form can post elsewhere.
  r.headers.emplace_back("Content-Security-Policy",
                         "default-src 'self'; img-src 'self' data:; object-src 'none'; "
                         "base-uri 'none'; form-action 'self'; frame-ancestors 'none'");
  r.headers.emplace_back("Referrer-Policy", "no-referrer");
  if (req.header("if-none-match") == f.etag) {
    r.status = 304;
    return r;
  }
  // HEAD too: the writer drops the body but keeps its length (RFC 9110, 9.3.2).
  r.body = f.body;
  return r;
}

std::vector<std::string> StaticFiles::pages() const {
  std::vector<std::string> out;
  for (const auto& [path, file] : files_) {
    if (path.ends_with('/') && file.content_type.starts_with("text/html")) out.push_back(path);
  }
  return out;
}

void mount_web_pages(StaticFiles& files, const std::string& web_root) {
  // The chat client at the root: its files are named so that none is an API path.
  files.mount("/", web_root + "/app");
  files.mount("/admin/", web_root + "/admin");
  files.mount("/api/docs/", web_root + "/docs");
  // Of Swagger UI's package, only what web/docs/index.html loads and its licences (which
  // the bundles name): not its demo page (the Petstore), its OAuth2 redirect page or its
  // package metadata.
  files.mount("/api/docs/static/", web_root + "/../node_modules/swagger-ui-dist", "",
              {"swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js",
               "favicon-32x32.png", "favicon-16x16.png", "LICENSE", "NOTICE",
               "swagger-ui-bundle.js.LICENSE.txt", "swagger-ui-standalone-preset.js.LICENSE.txt"});
}

std::string first_existing_folder(const std::vector<std::string>& candidates) {
  std::error_code ec;
  for (const auto& c : candidates) {
    if (!c.empty() && fs::is_directory(c, ec)) return c;
  }
  return candidates.empty() ? std::string() : candidates.front();
}

}  // namespace chat::http
