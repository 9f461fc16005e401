// TensorBoard event files without TensorFlow: the TFRecord framing (length, masked CRC32C of the length, data,
// masked CRC32C of the data) around protobuf-encoded Event messages. Only the handful of fields TensorBoard reads
// are written, encoded by the wire-format helpers below (field numbers from tensorflow/core/util/event.proto,
// summary.proto and tensorboard/plugins/hparams/plugin_data.proto).
#include <accelerate/tracking.hpp>

#include <accelerate/error.hpp>

#include <boost/crc.hpp>
#include <cmath>
#include <cstring>
#include <memory>

#include <unistd.h>

#include "detail/tracking_io.hpp"

namespace accelerate {
namespace {

/// Protobuf wire format: varints, fixed 32/64-bit numbers and length-delimited fields.
class Message {
 public:
  Message& varint(int field, uint64_t v) {
    key(field, 0);
    raw_varint(v);
    return *this;
  }
  Message& fixed64(int field, double v) {
    key(field, 1);
    char b[8];
    std::memcpy(b, &v, 8);  // little-endian hosts only (x86-64, aarch64)
    bytes_.append(b, 8);
    return *this;
  }
  Message& fixed32(int field, float v) {
    key(field, 5);
    char b[4];
    std::memcpy(b, &v, 4);
    bytes_.append(b, 4);
    return *this;
  }
  Message& bytes(int field, const std::string& v) {
    key(field, 2);
    raw_varint(v.size());
    bytes_ += v;
    return *this;
  }
  Message& message(int field, const Message& m) { return bytes(field, m.bytes_); }
  const std::string& str() const { return bytes_; }

 private:
  void key(int field, int wire_type) {
    raw_varint(static_cast<uint64_t>(field) << 3 | static_cast<uint64_t>(wire_type));
  }
  void raw_varint(uint64_t v) {
    while (v >= 0x80) {
      bytes_ += static_cast<char>((v & 0x7f) | 0x80);
      v >>= 7;
    }
    bytes_ += static_cast<char>(v);
  }
  std::string bytes_;
};

uint32_t masked_crc32c(const void* data, size_t size) {
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc;  // CRC-32C (Castagnoli)
  crc.process_bytes(data, size);
  const uint32_t c = crc.checksum();
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

// Summary.Value with plugin metadata (SummaryMetadata.plugin_data = {plugin_name, content}).
Message plugin_metadata(const std::string& plugin, const std::string& content = "") {
  Message data;
  data.bytes(1, plugin);
  if (!content.empty()) data.bytes(2, content);
  return Message().message(1, data);
}

// google.protobuf.Value: number_value = 2, string_value = 3.
Message proto_value(const LogValue& v) {
  return std::visit(
      [](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::string>)
          return Message().bytes(3, x);
        else
          return Message().fixed64(2, static_cast<double>(x));
      },
      v);
}

class TensorBoardTracker final : public Tracker {
 public:
  explicit TensorBoardTracker(const std::string& dir) : file_(nullptr, std::fclose) {
    detail::make_run_dir(dir);
    char host[256] = "localhost";
    ::gethostname(host, sizeof host - 1);
    const auto now = detail::wall_time();
    path_ = detail::concat(dir, "/events.out.tfevents.", static_cast<int64_t>(now), ".", host, ".", ::getpid(), ".0");
    file_.reset(detail::open_for_append(path_));
    write_event(Message().fixed64(1, now).bytes(3, "brain.Event:2"));
  }
  std::string name() const override { return "tensorboard"; }

  void store_init_configuration(const LogValues& config) override {
    // HParams plugin: an experiment listing the names, then a session start holding the values.
    Message experiment;
    for (const auto& [k, v] : config) experiment.message(4, Message().bytes(1, k));  // Experiment.hparam_infos
    Message session;
    for (const auto& [k, v] : config)
      session.message(1, Message().bytes(1, k).message(2, proto_value(v)));   // map entry
    session.fixed64(5, detail::wall_time());                                  // start_time_secs
    write_hparams("_hparams_/experiment", Message().message(2, experiment));  // HParamsPluginData.experiment
    write_hparams("_hparams_/session_start_info", Message().message(3, session));
  }

  void log(const LogValues& values, int64_t step) override {
    Message summary;
    for (const auto& [tag, v] : values) {
      if (const auto* text = std::get_if<std::string>(&v)) {
        // Text plugin: a string tensor (DT_STRING = 7, scalar shape).
        Message tensor;
        tensor.varint(1, 7).message(2, Message()).bytes(8, *text);
        summary.message(1, Message().bytes(1, tag).message(9, plugin_metadata("text")).message(8, tensor));
      } else {
        const double x =
            std::holds_alternative<double>(v) ? std::get<double>(v) : static_cast<double>(std::get<int64_t>(v));
        summary.message(1, Message().bytes(1, tag).fixed32(2, static_cast<float>(x)));  // simple_value
      }
    }
    write_event(Message().fixed64(1, detail::wall_time()).varint(2, static_cast<uint64_t>(step)).message(5, summary));
  }

  void finish() override {
    if (!file_) return;
    write_hparams("_hparams_/session_end_info", Message().message(4, Message().varint(1, 1)));  // STATUS_SUCCESS
    file_.reset();
  }

 private:
  void write_hparams(const std::string& tag, const Message& plugin_data) {
    Message value;
    value.bytes(1, tag).message(9, plugin_metadata("hparams", Message().varint(1, 0).str() + plugin_data.str()));
    write_event(Message().fixed64(1, detail::wall_time()).message(5, Message().message(1, value)));
  }
  void write_event(const Message& event) {
    if (!file_) return;
    const auto& data = event.str();
    const uint64_t length = data.size();
    char header[12];
    std::memcpy(header, &length, 8);
    const uint32_t length_crc = masked_crc32c(header, 8);
    std::memcpy(header + 8, &length_crc, 4);
    const uint32_t data_crc = masked_crc32c(data.data(), data.size());
    std::fwrite(header, 1, 12, file_.get());
    std::fwrite(data.data(), 1, data.size(), file_.get());
    std::fwrite(&data_crc, 1, 4, file_.get());
    ACCELERATE_CHECK(std::fflush(file_.get()) == 0, ConfigError, "tensorboard: cannot write ", path_, " (disk full?).");
  }
  std::string path_;
  std::unique_ptr<FILE, int (*)(FILE*)> file_;
};

}  // namespace

std::unique_ptr<Tracker> make_tensorboard_tracker(const std::string& run_dir) {
  return std::make_unique<TensorBoardTracker>(run_dir);
}

}  // namespace accelerate
