#include "http/response_writer.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/beast/http/write.hpp>

#include <algorithm>
#include <sstream>
#include <thread>

#include "http/beast_response.hpp"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using chat::http::Response;

Response answer(int status, std::string body) {
  Response r;
  r.status = status;
  r.content_type = "application/json";
  r.body = std::move(body);
  r.headers.emplace_back("Allow", "GET, POST, HEAD, OPTIONS");
  return r;
}

// What Beast's own serializer writes for the same message.
std::string beast_text(const beast::http::response<beast::http::string_body>& res) {
  std::ostringstream out;
  out << res;
  return out.str();
}

}  // namespace

TEST(ResponseWriter, WritesTheHeadAsBeastsSerializerDoes) {
  struct Case {
    int status;
    unsigned version;
    bool keep_alive;
    bool head;
  };
  for (const Case c :
       {Case{200, 11, true, false}, Case{404, 11, false, false}, Case{201, 10, true, false},
        Case{429, 10, false, false}, Case{200, 11, true, true}, Case{599, 11, true, false}}) {
    auto res = chat::http::to_beast(answer(c.status, R"({"detail":"x"})"), c.version, c.keep_alive,
                                    c.head, "0a-1");
    const std::string ours = chat::http::response_head_text(res.base()) + res.body();
    EXPECT_EQ(ours, beast_text(res)) << c.status << " HTTP/" << c.version;
  }
}

// An answer far larger than a socket's send buffer: the first send takes what fits, and
// the rest follows asynchronously while the peer reads.
TEST(ResponseWriter, SendsWhatFitsAtOnceAndTheRestAsThePeerReads) {
  for (const std::size_t size : {std::size_t{100}, std::size_t{8} << 20}) {
    asio::io_context io;
    asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
    asio::ip::tcp::socket client(io);
    client.connect(acceptor.local_endpoint());
    beast::tcp_stream server(acceptor.accept());

    std::string body(size, 'x');
    for (std::size_t i = 0; i < size; i += 4096) body[i] = static_cast<char>('a' + (i / 4096) % 26);
    auto res = chat::http::to_beast(answer(200, body), 11, true, false, "0a-2");
    const std::string expected = beast_text(res);

    auto written = asio::co_spawn(io, chat::http::write_response(server, res), asio::use_future);
    std::thread runner([&io] { io.run(); });
    std::string received(expected.size(), '\0');
    boost::system::error_code ec;
    asio::read(client, asio::buffer(received), ec);
    runner.join();
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_FALSE(written.get()) << size;
    // Not EXPECT_EQ: a failure would print 8 MiB twice.
    const auto diff = std::mismatch(received.begin(), received.end(), expected.begin());
    EXPECT_EQ(diff.first, received.end())
        << size << " bytes: differs at " << (diff.first - received.begin());
  }
}

TEST(ResponseWriter, AClosedPeerIsAnErrorNotACrash) {
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  asio::ip::tcp::socket client(io);
  client.connect(acceptor.local_endpoint());
  beast::tcp_stream server(acceptor.accept());
  // A reset, not a FIN: linger 0 makes the close abortive.
  client.set_option(asio::socket_base::linger(true, 0));
  client.close();
  auto res = chat::http::to_beast(answer(200, std::string(1 << 20, 'y')), 11, true, false, "0a-3");
  beast::error_code ec;
  for (int i = 0; i < 3 && !ec; ++i) {
    auto written = asio::co_spawn(io, chat::http::write_response(server, res), asio::use_future);
    io.restart();
    io.run();
    ec = written.get();
  }
  EXPECT_TRUE(ec);
}
