// The API's descriptions: the OpenAPI document of the REST endpoints and the AsyncAPI
// document of the WebSocket protocol, as compiled in from api/.
#include "http/documents.hpp"
#include "http/handlers/routes.hpp"
#include "http/router.hpp"

namespace chat::http {
namespace {

boost::asio::awaitable<Response> document(std::string_view text) {
  Response r = Response::json(200, std::string(text));
  r.headers.emplace_back("Cache-Control", "no-cache");
  co_return r;
}

}  // namespace

void add_doc_routes(Router& r, Services& /*s*/) {
  r.add(Method::get, "/api/schema/",
        [](Request&, const RouteParams&) { return document(embedded::openapi_document()); });
  r.add(Method::get, "/api/asyncapi/",
        [](Request&, const RouteParams&) { return document(embedded::asyncapi_document()); });
}

}  // namespace chat::http
