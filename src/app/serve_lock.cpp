#include "app/serve_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace chat::app {

// flock(2), not fcntl(2): on Linux the two do not interact, so this lock neither takes nor
// waits for any of the byte-range locks SQLite keeps on the same file.
ServeLock::ServeLock(const std::string& sqlite_path) {
  fd_ = ::open(sqlite_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) return;  // SQLite reports the file's problem itself, in its own words
  if (::flock(fd_, LOCK_EX | LOCK_NB) == 0) return;
  const int error = errno;
  ::close(fd_);
  fd_ = -1;
  if (error == EWOULDBLOCK) {
    throw std::runtime_error("another chatd is serving " + sqlite_path +
                             "; several nodes need PostgreSQL and Redis (DB_HOST, REDIS_HOST)");
  }
  throw std::runtime_error("cannot lock " + sqlite_path + ": " + std::strerror(error));
}

ServeLock::~ServeLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace chat::app
