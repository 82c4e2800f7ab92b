#include "report.h"

#include <cmath>
#include <cstdio>

namespace edgekit {
namespace {

// A minimal JSON writer: the caller keeps the structure; this handles commas and escaping.
class JsonWriter {
 public:
  JsonWriter& open(char bracket) {
    separate();
    text_ += bracket;
    first_ = true;
    return *this;
  }
  JsonWriter& close(char bracket) {
    text_ += bracket;
    first_ = false;
    return *this;
  }
  JsonWriter& key(const std::string& name) {
    separate();
    quoted(name);
    text_ += ':';
    first_ = true;  // the value follows without a comma
    return *this;
  }
  JsonWriter& string(const std::string& value) {
    separate();
    quoted(value);
    return *this;
  }
  JsonWriter& integer(int64_t value) {
    separate();
    text_ += std::to_string(value);
    return *this;
  }
  JsonWriter& number(double value, int decimals) {
    separate();
    if (!std::isfinite(value)) {
      text_ += "null";
      return *this;
    }
    char buffer[64];
    std::snprintf(buffer, sizeof(buffer), "%.*f", decimals, value);
    text_ += buffer;
    return *this;
  }
  const std::string& text() const { return text_; }

 private:
  void separate() {
    if (!first_) text_ += ',';
    first_ = false;
  }
  void quoted(const std::string& value) {
    text_ += '"';
    for (unsigned char c : value) {
      if (c == '"' || c == '\\') {
        text_ += '\\';
        text_ += static_cast<char>(c);
      } else if (c < 0x20) {
        char buffer[8];
        std::snprintf(buffer, sizeof(buffer), "\\u%04x", c);
        text_ += buffer;
      } else {
        text_ += static_cast<char>(c);
      }
    }
    text_ += '"';
  }

  std::string text_;
  bool first_ = true;
};

void write_outputs(JsonWriter& json, const std::vector<TensorSpec>& outputs) {
  json.key("outputs").open('[');
  for (const TensorSpec& spec : outputs) {
    json.open('{').key("name").string(spec.name).key("shape").open('[');
    for (int64_t dim : spec.shape) json.integer(dim);
    json.close(']').key("dtype").string(spec.dtype).close('}');
  }
  json.close(']');
}

}  // namespace

std::string report_json(const Report& report) {
  JsonWriter json;
  json.open('{').key("model").string(report.model);
  json.key("iters").integer(report.iters).key("warmup").integer(report.warmup).key("threads").integer(report.threads);
  json.key("cpus").open('[');
  for (int cpu : report.cpus) json.integer(cpu);
  json.close(']');
  const LatencySummary& l = report.latency;
  json.key("latency_ms").open('{');
  json.key("p50").number(l.p50, 4).key("p90").number(l.p90, 4).key("p99").number(l.p99, 4);
  json.key("max").number(l.max, 4).key("mean").number(l.mean, 4).close('}');
  json.key("cpu_ms_per_inference").number(report.cpu_ms_per_inference, 4);
  json.key("max_rss_mb").number(report.max_rss_mb, 2);
  if (report.rate_mode) {
    json.key("rate_hz").number(report.rate_hz, 3);
    json.key("cpu_seconds_per_wall_second").number(report.cpu_seconds_per_wall_second, 4);
    json.key("missed_deadlines").integer(report.missed_deadlines);
  }
  write_outputs(json, report.outputs);
  json.close('}');
  return json.text();
}

}  // namespace edgekit
