// The limit of the transport: a bare WebSocket relay that echoes every text frame it gets
// to every socket connected to it, so the fan-out scenario can run against it and show
// what one core can deliver when a server does nothing but relay. No authentication, no
// storage, no JSON: the only work per message is splicing a sequence number in front of
// the client's payload (so the delivery check can verify order).
//
// It is written the way a fast server writes: each frame is framed once and its bytes are
// shared by every recipient; a socket's queued frames go out in one non-blocking writev;
// sockets made dirty by every read that completed in one turn of the event loop are
// flushed together afterwards, so frames arriving in a burst share a send.
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/beast/websocket/stream.hpp>

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <deque>
#include <iostream>
#include <memory>
#include <vector>

#include "frames.hpp"
#include "net.hpp"
#include "relay.hpp"

namespace chatbench {
namespace {

namespace beast = boost::beast;
using error_code = boost::system::error_code;
using SharedFrame = std::shared_ptr<const std::string>;

constexpr std::size_t kMaxFrame = 64 * 1024;
constexpr std::size_t kMaxIov = 256;

class Relay;

class Peer : public std::enable_shared_from_this<Peer> {
 public:
  Peer(tcp::socket socket, Relay& relay) : socket_(std::move(socket)), relay_(relay) {}
  void start();
  // Queues a framed message; true when the peer was clean and now needs a flush.
  bool queue(const SharedFrame& frame) {
    if (!open_) return false;
    queue_.push_back(frame);
    const bool was_clean = !dirty_;
    dirty_ = true;
    return was_clean;
  }
  // Writes what is queued without blocking; waits for room when the kernel's buffer is full.
  void flush();

 private:
  void read_more();
  void on_read(error_code ec, std::size_t n);
  void wait_writable();
  void end();

  tcp::socket socket_;
  Relay& relay_;
  std::string in_ = std::string(16 * 1024, '\0');
  std::size_t used_ = 0;
  std::deque<SharedFrame> queue_;
  std::size_t sent_of_first_ = 0;  // bytes of queue_.front() already written
  bool dirty_ = false;             // in the relay's flush list
  bool waiting_ = false;           // for the socket to become writable
  bool open_ = true;
};

class Relay {
 public:
  Relay(asio::io_context& io, const tcp::endpoint& at) : io_(io), acceptor_(io, at) {}
  void start() { accept(); }
  void stop() {
    error_code ignored;
    acceptor_.close(ignored);
  }
  [[nodiscard]] unsigned short port() const { return acceptor_.local_endpoint().port(); }

  void join(const std::shared_ptr<Peer>& p) { peers_.push_back(p); }
  void leave(const Peer* p) {
    std::erase_if(peers_, [p](const auto& q) { return q.get() == p; });
  }

  // One frame for everyone: `{"message_id":N,` + the payload after its `{`.
  void broadcast(std::string_view payload) {
    if (payload.empty() || payload.front() != '{') return;
    std::string body = "{\"message_id\":" + std::to_string(++seq_) + ",";
    body.append(payload.substr(1));
    const SharedFrame frame = std::make_shared<const std::string>(server_frame(Opcode::text, body));
    for (const auto& p : peers_) {
      if (p->queue(frame)) dirty_.push_back(p);
    }
    if (!flush_posted_ && !dirty_.empty()) {
      flush_posted_ = true;
      // After the reads that completed in this turn: their frames share the sends.
      asio::post(io_, [this] { flush_dirty(); });
    }
  }

 private:
  void accept() {
    acceptor_.async_accept([this](error_code ec, tcp::socket socket) {
      if (ec) return;  // closed
      socket.set_option(tcp::no_delay(true));
      auto peer = std::make_shared<Peer>(std::move(socket), *this);
      peer->start();
      accept();
    });
  }

  void flush_dirty() {
    flush_posted_ = false;
    auto batch = std::exchange(dirty_, {});
    for (const auto& p : batch) p->flush();
  }

  asio::io_context& io_;
  tcp::acceptor acceptor_;
  std::vector<std::shared_ptr<Peer>> peers_;
  std::vector<std::shared_ptr<Peer>> dirty_;
  bool flush_posted_ = false;
  std::uint64_t seq_ = 0;
};

void Peer::start() {
  // Beast answers the upgrade; the socket is framed here afterwards.
  auto ws = std::make_shared<beast::websocket::stream<tcp::socket&>>(socket_);
  ws->async_accept([self = shared_from_this(), ws](error_code ec) {
    if (ec) return;
    self->relay_.join(self);
    self->read_more();
  });
}

void Peer::read_more() {
  if (used_ == in_.size()) in_.resize(in_.size() * 2);
  socket_.async_read_some(
      asio::buffer(in_.data() + used_, in_.size() - used_),
      [self = shared_from_this()](error_code ec, std::size_t n) { self->on_read(ec, n); });
}

void Peer::on_read(error_code ec, std::size_t n) {
  if (ec) {
    end();
    return;
  }
  used_ += n;
  std::size_t pos = 0;
  try {
    while (auto f = next_frame(in_.data() + pos, used_ - pos, kMaxFrame)) {
      pos += f->size;
      if (f->opcode == Opcode::text) {
        relay_.broadcast(f->payload);
      } else if (f->opcode == Opcode::close) {
        end();
        return;
      }
    }
  } catch (const std::exception&) {
    end();
    return;
  }
  std::memmove(in_.data(), in_.data() + pos, used_ - pos);
  used_ -= pos;
  read_more();
}

void Peer::flush() {
  dirty_ = false;
  while (open_ && !waiting_ && !queue_.empty()) {
    std::array<iovec, kMaxIov> iov{};
    std::size_t count = 0;
    for (auto it = queue_.begin(); it != queue_.end() && count < kMaxIov; ++it, ++count) {
      const std::size_t skip = count == 0 ? sent_of_first_ : 0;
      iov[count].iov_base = const_cast<char*>((*it)->data() + skip);
      iov[count].iov_len = (*it)->size() - skip;
    }
    msghdr msg{};
    msg.msg_iov = iov.data();
    msg.msg_iovlen = count;
    const ssize_t written = ::sendmsg(socket_.native_handle(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (written < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        wait_writable();
      } else {
        end();
      }
      return;
    }
    auto left = static_cast<std::size_t>(written);
    while (left > 0) {
      const std::size_t rest = queue_.front()->size() - sent_of_first_;
      if (left < rest) {
        sent_of_first_ += left;
        break;
      }
      left -= rest;
      sent_of_first_ = 0;
      queue_.pop_front();
    }
  }
}

void Peer::wait_writable() {
  waiting_ = true;
  socket_.async_wait(tcp::socket::wait_write, [self = shared_from_this()](error_code ec) {
    self->waiting_ = false;
    if (ec) {
      self->end();
      return;
    }
    self->flush();
  });
}

void Peer::end() {
  if (!open_) return;
  open_ = false;
  queue_.clear();
  relay_.leave(this);
  error_code ignored;
  socket_.close(ignored);
}

}  // namespace

int run_relay(const std::string& host, unsigned short port) {
  asio::io_context io(1);
  Relay relay(io, tcp::endpoint(asio::ip::make_address(host), port));
  relay.start();
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](error_code, int) {
    relay.stop();
    io.stop();
  });
  std::cout << "relay listening on " << host << ":" << relay.port() << std::endl;
  io.run();
  return 0;
}

}  // namespace chatbench
