// One serving chatd per SQLite file. Without REDIS_HOST a node fans events out in its own
// process only, so a second `chatd serve` on the same file would store into the same
// database while neither told the other's sockets anything (no live messages across them,
// presence and socket limits counted twice). The second one refuses to start instead.
#pragma once

#include <string>

namespace chat::app {

class ServeLock {
 public:
  // Takes the lock on `sqlite_path` (creating the file when missing, which SQLite reads as
  // an empty database); throws std::runtime_error naming the file when another process
  // holds it. Held until destroyed.
  explicit ServeLock(const std::string& sqlite_path);
  ~ServeLock();
  ServeLock(const ServeLock&) = delete;
  ServeLock& operator=(const ServeLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace chat::app
