// lib/http/header_value.cc — see header_value.h.
#include "lib/http/header_value.h"

namespace dotgate::http {

std::string header_value(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return out;
}

std::string path_header_value(std::string_view address) {
  // appended, not `"<" + std::string&&`: GCC 12 at -O3 warns falsely there (-Wrestrict, PR 105651)
  std::string out;
  out.reserve(address.size() + 2);
  out += '<';
  out += header_value(address);
  out += '>';
  return out;
}

}  // namespace dotgate::http
