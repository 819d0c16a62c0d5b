# Writes OUTPUT, a C++ file that defines `std::string_view NAME()` returning the text of INPUT,
# so documents served by chatd are part of the binary and cannot drift from it at run time.
# Usage: cmake -DINPUT=file -DOUTPUT=file.cpp -DNAME=symbol -P embed_text.cmake
file(READ "${INPUT}" content)
string(FIND "${content}" ")chatd_embedded\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${INPUT} contains the raw-string delimiter")
endif()
file(WRITE "${OUTPUT}.tmp" "// Generated from ${INPUT} by cmake/embed_text.cmake; do not edit.\n"
  "#include <string_view>\n"
  "namespace chat::embedded {\n"
  "std::string_view ${NAME}() {\n"
  "  static constexpr std::string_view text = R\"chatd_embedded(${content})chatd_embedded\";\n"
  "  return text;\n"
  "}\n"
  "}  // namespace chat::embedded\n")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUTPUT}.tmp")
