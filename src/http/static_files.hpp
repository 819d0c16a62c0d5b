// Files served as they are: the chat client (web/app), the admin panel (web/admin) and
// Swagger UI (web/docs and the npm package swagger-ui-dist). Read into memory at start-up,
// so a request never waits on the disk and a file cannot change under a running server.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "http/message.hpp"

namespace chat::http {

class StaticFiles {
 public:
  // Serves the files of `dir` (not its subfolders) under `prefix` ("/admin/"); `index` is
  // what the prefix itself serves. With `only`, just those of its files. A missing folder
  // serves nothing (logged).
  void mount(std::string prefix, const std::string& dir, const std::string& index = "index.html",
             const std::vector<std::string>& only = {});

  // The file for this GET or HEAD, or nullopt when no mount has it.
  [[nodiscard]] std::optional<Response> serve(const Request& req) const;

  [[nodiscard]] std::size_t file_count() const { return files_.size(); }
  // The prefixes that serve a page (an index file), for checking the schema against them.
  [[nodiscard]] std::vector<std::string> pages() const;

 private:
  struct File {
    std::string body;
    std::string content_type;
    std::string etag;
  };
  std::map<std::string, File, std::less<>> files_;  // by URL path
};

// The web pages chatd serves from `web_root`: / (web/app, the chat client), /admin/
// (web/admin), /api/docs/ (web/docs) and Swagger UI's files (node_modules/swagger-ui-dist
// beside web/) under /api/docs/static/.
void mount_web_pages(StaticFiles& files, const std::string& web_root);

// The first folder of `candidates` that exists, or the first one.
std::string first_existing_folder(const std::vector<std::string>& candidates);

}  // namespace chat::http
