#include "http/response_writer.hpp"

#include <sys/socket.h>
#include <sys/uio.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_suffix.hpp>

#include <array>
#include <cerrno>

namespace chat::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using Parts = std::array<asio::const_buffer, 2>;

// What one non-blocking send took of `parts` (0 when the send buffer is full); `ec` is set
// when the connection failed.
std::size_t send_now(int fd, const Parts& parts, beast::error_code& ec) {
  std::array<iovec, 2> iov{};
  for (std::size_t i = 0; i < parts.size(); ++i) {
    iov[i].iov_base = const_cast<void*>(parts[i].data());  // NOLINT: sendmsg reads only
    iov[i].iov_len = parts[i].size();
  }
  msghdr msg{};
  msg.msg_iov = iov.data();
  msg.msg_iovlen = iov.size();
  for (;;) {
    const ssize_t n = ::sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      ec.assign(errno, boost::system::system_category());
    }
    return 0;
  }
}

}  // namespace

std::string response_head_text(const beast::http::response_header<>& head) {
  std::string out;
  out.reserve(256);
  const unsigned version = head.version();
  out += "HTTP/";
  out.push_back(static_cast<char>('0' + version / 10));
  out.push_back('.');
  out.push_back(static_cast<char>('0' + version % 10));
  out.push_back(' ');
  out += std::to_string(head.result_int());
  out.push_back(' ');
  out += head.reason();
  out += "\r\n";
  for (const auto& field : head) {
    out += field.name_string();
    out += ": ";
    out += field.value();
    out += "\r\n";
  }
  out += "\r\n";
  return out;
}

asio::awaitable<beast::error_code> write_response(
    beast::tcp_stream& stream, const beast::http::response<beast::http::string_body>& res) {
  const std::string head = response_head_text(res.base());
  const Parts parts{asio::buffer(head), asio::buffer(res.body())};
  beast::error_code ec;
  const std::size_t sent = send_now(stream.socket().native_handle(), parts, ec);
  if (ec) co_return ec;
  beast::buffers_suffix<Parts> rest(parts);
  rest.consume(sent);
  if (beast::buffer_bytes(rest) == 0) co_return ec;
  auto [wec, n] = co_await asio::async_write(stream, rest, asio::as_tuple(asio::use_awaitable));
  co_return wec;
}

}  // namespace chat::http
