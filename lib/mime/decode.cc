// lib/mime/decode.cc — see decode.h. GMime does the MIME work (structure, boundaries, transfer
// encodings, RFC 2047, charset conversion through iconv); we walk what it built and collect text.
// Every GMime object made here is unreferenced before return, on every path (RAII below).
#include "lib/mime/decode.h"

#include <gmime/gmime.h>

#include <mutex>

#include "lib/mime/html.h"
#include "lib/mime/utf8.h"

namespace dotgate::mime {

namespace {

// GMime keeps process-wide tables (charsets, the iconv cache, its types): set up once, from
// whichever thread decodes first, before any parsing. Never torn down: threads may still be
// decoding at exit.
void init_gmime() {
  static std::once_flag once;
  std::call_once(once, [] { g_mime_init(); });
}

// Owns one GObject reference.
template <typename T>
class Ref {
 public:
  explicit Ref(T* p) : p_(p) {}
  ~Ref() {
    if (p_) g_object_unref(p_);
  }
  Ref(const Ref&) = delete;
  Ref& operator=(const Ref&) = delete;
  T* get() const { return p_; }
  explicit operator bool() const { return p_ != nullptr; }

 private:
  T* p_;
};

// No conversion needed: UTF-8 as it is, and ASCII is a subset (8-bit bytes in a part that claims
// ASCII are repaired like any other bad text).
bool utf8_compatible(const char* charset) {
  return g_ascii_strcasecmp(charset, "utf-8") == 0 || g_ascii_strcasecmp(charset, "utf8") == 0 ||
         g_ascii_strcasecmp(charset, "us-ascii") == 0 || g_ascii_strcasecmp(charset, "ascii") == 0;
}

class Walker {
 public:
  Walker(const DecodeLimits& limits, std::vector<Segment>& out) : limits_(limits), out_(out) {}

  void headers(GMimeObject* object) {
    GMimeHeaderList* list = g_mime_object_get_header_list(object);
    if (list == nullptr) return;
    int count = g_mime_header_list_get_count(list);
    for (int i = 0; i < count; ++i) {
      GMimeHeader* h = g_mime_header_list_get_header_at(list, i);
      if (h == nullptr) continue;
      const char* name = g_mime_header_get_name(h);
      const char* value = g_mime_header_get_value(h);  // unfolded, RFC 2047 decoded, UTF-8
      if (name == nullptr || value == nullptr) continue;
      out_.push_back({SegmentKind::Header, name, repair_utf8(value)});
    }
  }

  void walk(GMimeObject* object, std::size_t depth) {
    if (object == nullptr || depth > limits_.max_depth || parts_ >= limits_.max_parts) return;
    if (GMIME_IS_MESSAGE_PART(object)) {
      GMimeMessage* inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(object));
      if (inner == nullptr) return;
      headers(GMIME_OBJECT(inner));
      walk(g_mime_message_get_mime_part(inner), depth + 1);
    } else if (GMIME_IS_MULTIPART(object)) {
      GMimeMultipart* multipart = GMIME_MULTIPART(object);
      int count = g_mime_multipart_get_count(multipart);
      for (int i = 0; i < count && parts_ < limits_.max_parts; ++i)
        walk(g_mime_multipart_get_part(multipart, i), depth + 1);
    } else if (GMIME_IS_PART(object)) {
      ++parts_;
      GMimeContentType* type = g_mime_object_get_content_type(object);
      if (type == nullptr || !g_mime_content_type_is_type(type, "text", "*")) return;
      text_part(GMIME_PART(object), type);
    }
  }

 private:
  void text_part(GMimePart* part, GMimeContentType* type) {
    GMimeDataWrapper* content = g_mime_part_get_content(part);
    if (content == nullptr) return;
    // Sized for the encoded content (decoding never grows it, bar a charset conversion): the
    // output array is not reallocated and copied over and over while a large part decodes.
    GMimeStream* encoded = g_mime_data_wrapper_get_stream(content);
    gint64 length = encoded ? g_mime_stream_length(encoded) : -1;
    guint reserve = length > 0 && length < (gint64{1} << 30) ? static_cast<guint>(length) : 0;
    GByteArray* array = g_byte_array_sized_new(reserve);
    Ref<GMimeStream> memory(g_mime_stream_mem_new_with_byte_array(array));  // owns the array
    {
      Ref<GMimeStream> filtered(g_mime_stream_filter_new(memory.get()));
      const char* charset = g_mime_content_type_get_parameter(type, "charset");
      if (charset != nullptr && !utf8_compatible(charset)) {
        // NULL when iconv knows no such charset: the bytes are then kept and repaired.
        Ref<GMimeFilter> convert(g_mime_filter_charset_new(charset, "UTF-8"));
        if (convert) g_mime_stream_filter_add(GMIME_STREAM_FILTER(filtered.get()), convert.get());
      }
      // Decodes the transfer encoding (base64 and quoted-printable, soft line breaks included).
      g_mime_data_wrapper_write_to_stream(content, filtered.get());
      g_mime_stream_flush(filtered.get());
    }
    GByteArray* bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(memory.get()));
    std::string_view raw = bytes ? std::string_view(reinterpret_cast<const char*>(bytes->data), bytes->len)
                                 : std::string_view();
    // Valid text is used where it lies; only bad text is copied to be repaired.
    std::string repaired;
    if (valid_utf8_prefix(raw) != raw.size()) raw = repaired = repair_utf8(raw);
    const char* subtype = g_mime_content_type_get_media_subtype(type);
    bool html = subtype != nullptr && g_ascii_strcasecmp(subtype, "html") == 0;
    std::string text = html ? html_to_text(raw) : std::string(raw);
    gchar* label = g_mime_content_type_get_mime_type(type);
    out_.push_back({SegmentKind::Text, label ? label : "text/plain", std::move(text)});
    g_free(label);
  }

  const DecodeLimits& limits_;
  std::vector<Segment>& out_;
  std::size_t parts_ = 0;
};

}  // namespace

std::vector<Segment> decode_message(std::string_view message, const DecodeLimits& limits) {
  init_gmime();
  std::vector<Segment> out;
  Ref<GMimeStream> stream(g_mime_stream_mem_new_with_buffer(message.data(), message.size()));
  Ref<GMimeParser> parser(g_mime_parser_new_with_stream(stream.get()));
  Ref<GMimeMessage> parsed(g_mime_parser_construct_message(parser.get(), nullptr));
  if (!parsed) {
    // Not even a header block GMime recognises: the bytes are all there is to read.
    out.push_back({SegmentKind::Text, "text/plain", repair_utf8(message)});
    return out;
  }
  Walker walker(limits, out);
  walker.headers(GMIME_OBJECT(parsed.get()));
  walker.walk(g_mime_message_get_mime_part(parsed.get()), 0);
  return out;
}

}  // namespace dotgate::mime
