#include "net.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <charconv>
#include <cstring>
#include <stdexcept>

#include "frames.hpp"

namespace chatbench {
namespace {

constexpr std::size_t kReadChunk = 64 * 1024;
constexpr std::size_t kMaxFrame = 16 * 1024 * 1024;

std::size_t header_end(const std::string& buffer) {
  const auto at = buffer.find("\r\n\r\n");
  return at == std::string::npos ? std::string::npos : at + 4;
}

int status_of(std::string_view head) {
  // "HTTP/1.1 200 OK"
  int status = 0;
  if (head.size() > 12) std::from_chars(head.data() + 9, head.data() + 12, status);
  return status;
}

std::size_t content_length(std::string_view head) {
  for (std::string_view key : {"\r\nContent-Length:", "\r\ncontent-length:"}) {
    const auto at = head.find(key);
    if (at == std::string_view::npos) continue;
    auto p = head.data() + at + key.size();
    while (*p == ' ') ++p;
    std::size_t n = 0;
    std::from_chars(p, head.data() + head.size(), n);
    return n;
  }
  return 0;
}

}  // namespace

asio::awaitable<tcp::socket> connect(const Target& target, std::uint64_t n) {
  auto executor = co_await asio::this_coro::executor;
  tcp::socket socket(executor);
  const tcp::endpoint remote(asio::ip::make_address(target.host), target.port);
  socket.open(tcp::v4());
  if (target.sources > 1) {
    const auto last = static_cast<unsigned>(1 + n % static_cast<std::uint64_t>(target.sources));
    socket.bind(tcp::endpoint(asio::ip::make_address_v4("127.0.0." + std::to_string(last)), 0));
  }
  socket.set_option(tcp::no_delay(true));
  co_await socket.async_connect(remote, asio::use_awaitable);
  co_return socket;
}

asio::awaitable<HttpResponse> HttpConnection::request(std::string_view method,
                                                      std::string_view target,
                                                      std::string_view token,
                                                      std::string_view body) {
  std::string req;
  req.reserve(256 + body.size());
  req.append(method).append(" ").append(target).append(" HTTP/1.1\r\nHost: ").append(host_);
  req.append("\r\nConnection: keep-alive\r\n");
  if (!token.empty()) req.append("Authorization: Bearer ").append(token).append("\r\n");
  if (!body.empty()) {
    req.append("Content-Type: application/json\r\nContent-Length: ");
    req.append(std::to_string(body.size())).append("\r\n");
  }
  req.append("\r\n").append(body);
  co_await asio::async_write(socket_, asio::buffer(req), asio::use_awaitable);
  std::size_t end = header_end(buffer_);
  char chunk[16 * 1024];
  while (end == std::string::npos) {
    const std::size_t n =
        co_await socket_.async_read_some(asio::buffer(chunk), asio::use_awaitable);
    buffer_.append(chunk, n);
    end = header_end(buffer_);
  }
  const std::string_view head(buffer_.data(), end);
  HttpResponse out;
  out.status = status_of(head);
  const std::size_t length = content_length(head);
  while (buffer_.size() < end + length) {
    const std::size_t n =
        co_await socket_.async_read_some(asio::buffer(chunk), asio::use_awaitable);
    buffer_.append(chunk, n);
  }
  out.body = buffer_.substr(end, length);
  buffer_.erase(0, end + length);
  co_return out;
}

asio::awaitable<int> WsClient::handshake(const std::string& path, const std::string& host) {
  std::string req =
      "GET " + path + " HTTP/1.1\r\nHost: " + host +
      "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  co_await asio::async_write(socket_, asio::buffer(req), asio::use_awaitable);
  in_.resize(kReadChunk);
  std::size_t end = std::string::npos;
  while (end == std::string::npos) {
    const std::size_t n = co_await socket_.async_read_some(
        asio::buffer(in_.data() + in_used_, in_.size() - in_used_), asio::use_awaitable);
    in_used_ += n;
    const std::string_view seen(in_.data(), in_used_);
    const auto at = seen.find("\r\n\r\n");
    if (at != std::string_view::npos) end = at + 4;
    if (in_used_ == in_.size()) throw std::runtime_error("handshake answer too long");
  }
  const int status = status_of(std::string_view(in_.data(), end));
  // Whatever followed the answer is the first frames.
  in_.erase(0, end);
  in_used_ -= end;
  in_.resize(kReadChunk);
  co_return status;
}

void WsClient::send_text(std::string_view payload) {
  queued_ += client_frame(Opcode::text, payload);
  if (!write_in_flight_) write_more();
}

void WsClient::write_more() {
  if (queued_.empty() || !socket_.is_open()) {
    write_in_flight_ = false;
    return;
  }
  write_in_flight_ = true;
  writing_.swap(queued_);
  queued_.clear();
  asio::async_write(socket_, asio::buffer(writing_),
                    [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                      if (ec) {
                        self->write_in_flight_ = false;
                        return;
                      }
                      self->write_more();
                    });
}

asio::awaitable<int> WsClient::read(OnText on_text) {
  for (;;) {
    // Every complete frame in the buffer, then read more.
    std::size_t used = 0;
    while (auto frame = next_frame(in_.data() + used, in_used_ - used, kMaxFrame)) {
      used += frame->size;
      switch (frame->opcode) {
        case Opcode::text:
          on_text(frame->payload, Clock::now());
          break;
        case Opcode::ping:
          queued_ += client_frame(Opcode::pong, frame->payload);
          if (!write_in_flight_) write_more();
          break;
        case Opcode::close: {
          int code = 1005;
          if (frame->payload.size() >= 2) {
            code = (static_cast<std::uint8_t>(frame->payload[0]) << 8) |
                   static_cast<std::uint8_t>(frame->payload[1]);
          }
          close();
          // The server closes its side after its close frame; so does this client.
          boost::system::error_code ignored;
          socket_.close(ignored);
          co_return code;
        }
        default:
          break;
      }
    }
    if (used > 0) {
      std::memmove(in_.data(), in_.data() + used, in_used_ - used);
      in_used_ -= used;
    }
    if (in_used_ == in_.size()) in_.resize(in_.size() * 2);
    boost::system::error_code ec;
    const std::size_t n =
        co_await socket_.async_read_some(asio::buffer(in_.data() + in_used_, in_.size() - in_used_),
                                         asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return 1006;
    in_used_ += n;
  }
}

void WsClient::close() {
  if (!socket_.is_open()) return;
  queued_ += client_frame(Opcode::close, std::string_view("\x03\xe8", 2));
  if (!write_in_flight_) write_more();
  boost::system::error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_receive, ignored);
}

}  // namespace chatbench
