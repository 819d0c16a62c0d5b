// The API's own descriptions, compiled into the binary from api/*.json (CMakeLists.txt).
#pragma once

#include <string_view>

namespace chat::embedded {

std::string_view openapi_document();   // OpenAPI 3.1: every REST endpoint
std::string_view asyncapi_document();  // AsyncAPI: the WebSocket protocol

}  // namespace chat::embedded
