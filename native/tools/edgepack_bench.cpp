// edgepack-bench: loads an .epk artifact, runs it, and prints one JSON object of measurements on
// stdout. It is what the profiler runs on a board or under qemu-user, so it needs nothing but the
// runtime: no Python, and it links statically for cross targets.
//
//   edgepack-bench model.epk --runs 50 --threads 4 --per-op
//
// Exit status: 0 success; 1 the artifact could not be loaded or run; 2 bad command line or file I/O.
#include <sys/resource.h>
#include <sys/utsname.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#if defined(__aarch64__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

#include "edgepack/format.h"
#include "edgepack/runtime.h"
#include "kernels/ref/gemm.h"

namespace {

using edgepack::DType;
using Clock = std::chrono::steady_clock;

constexpr int kExitRunFailed = 1;
constexpr int kExitUsage = 2;

constexpr const char* kUsage = R"(usage: edgepack-bench MODEL.epk [options]

Loads an edgepack artifact, runs it and prints one JSON object of measurements on stdout.

options:
  --runs N          measured runs (default 10; 1 when only --min-seconds is given)
  --min-seconds S   keep measuring until the measured runs add up to S seconds (default 0)
  --warmup N        unmeasured runs before the measured ones (default 2)
  --threads N       runtime threads; 0 = one per hardware thread (default 0)
  --per-op          time every op through RunStats (adds a clock read per op; default off)
  --seed N          seed of the random inputs (default 0)
  --int-high N      random integer inputs are drawn from [0, N) (default 100)
  --inputs FILE     read the inputs from FILE instead: the raw little-endian bytes of every input,
                    concatenated in model input order
  --outputs FILE    write the raw bytes of every output of the last run, concatenated in order
  --help            print this help

Random float inputs are uniform in [0, 1); the same seed gives the same inputs on every build and
architecture, so the outputs of a host build and a cross build can be compared.

exit status: 0 success; 1 the artifact could not be loaded or run; 2 bad command line or file I/O.
)";

[[noreturn]] void die(int exit_code, const std::string& message) {
  std::fprintf(stderr, "edgepack-bench: error: %s\n", message.c_str());
  if (exit_code == kExitUsage) std::fprintf(stderr, "(run edgepack-bench --help for usage)\n");
  std::exit(exit_code);
}

// ---- command line ---------------------------------------------------------------------------------
struct Options {
  std::string artifact;
  std::string inputs_path;
  std::string outputs_path;
  int64_t runs = 10;
  bool runs_given = false;
  double min_seconds = 0;
  int64_t warmup = 2;
  int64_t threads = 0;
  bool per_op = false;
  uint64_t seed = 0;
  int64_t int_high = 100;
};

int64_t parse_int(const std::string& flag, const std::string& text, int64_t min, int64_t max) {
  errno = 0;
  char* end = nullptr;
  const long long value = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE || value < min || value > max)
    die(kExitUsage, flag + " takes an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "], got '" +
                        text + "'");
  return value;
}

double parse_seconds(const std::string& flag, const std::string& text) {
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !std::isfinite(value) || value < 0)
    die(kExitUsage, flag + " takes a non-negative number of seconds, got '" + text + "'");
  return value;
}

Options parse_args(int argc, char** argv) {
  Options opt;
  // Options that take a value, as "--name value" or "--name=value".
  const std::map<std::string, std::function<void(const std::string&)>> setters = {
      {"--runs", [&](const std::string& v) { opt.runs = parse_int("--runs", v, 1, 100000000); opt.runs_given = true; }},
      {"--min-seconds", [&](const std::string& v) { opt.min_seconds = parse_seconds("--min-seconds", v); }},
      {"--warmup", [&](const std::string& v) { opt.warmup = parse_int("--warmup", v, 0, 100000000); }},
      {"--threads", [&](const std::string& v) { opt.threads = parse_int("--threads", v, 0, 256); }},
      {"--seed", [&](const std::string& v) { opt.seed = static_cast<uint64_t>(parse_int("--seed", v, 0, INT64_MAX)); }},
      {"--int-high", [&](const std::string& v) { opt.int_high = parse_int("--int-high", v, 1, INT64_MAX); }},
      {"--inputs", [&](const std::string& v) { opt.inputs_path = v; }},
      {"--outputs", [&](const std::string& v) { opt.outputs_path = v; }},
  };
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (arg == "--per-op") {
      opt.per_op = true;
    } else if (arg.empty() || arg[0] != '-') {
      if (!opt.artifact.empty())
        die(kExitUsage, "more than one artifact given: '" + opt.artifact + "' and '" + arg + "'");
      opt.artifact = arg;
    } else {
      const size_t eq = arg.find('=');
      const std::string name = arg.substr(0, eq);
      const auto setter = setters.find(name);
      if (setter == setters.end()) die(kExitUsage, "unknown option '" + name + "'");
      if (eq != std::string::npos) {
        setter->second(arg.substr(eq + 1));
      } else if (i + 1 < argc) {
        setter->second(argv[++i]);
      } else {
        die(kExitUsage, name + " needs a value");
      }
    }
  }
  if (opt.artifact.empty()) die(kExitUsage, "no artifact given");
  if (!opt.runs_given && opt.min_seconds > 0) opt.runs = 1;
  return opt;
}

// ---- inputs -------------------------------------------------------------------------------------------
int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

template <class T>
void put(uint8_t* out, int64_t index, T value) {
  std::memcpy(out + index * static_cast<int64_t>(sizeof(T)), &value, sizeof(T));
}

// k / 2048 for k in [0, 2048) as IEEE half bits. Every such value has at most 11 significant bits and
// is a normal half (or zero), so moving the float's exponent and top mantissa bits is exact.
uint16_t half_from_grid(uint32_t k) {
  if (k == 0) return 0;
  const float value = static_cast<float>(k) / 2048.0f;
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  const uint32_t exponent = ((bits >> 23) & 0xFF) - 127 + 15;
  return static_cast<uint16_t>(exponent << 10 | ((bits >> 13) & 0x3FF));
}

// The inputs must be identical on every build (host and cross outputs are compared on the same seed),
// so values come straight from mt19937_64, whose output sequence the C++ standard fixes, and not from
// std::uniform_*_distribution, whose algorithms differ between standard libraries.
void fill_random(const edgepack::TensorInfo& info, std::mt19937_64& rng, int64_t int_high, uint8_t* out) {
  const int64_t n = numel(info.shape);
  const auto below = [&](int64_t bound) { return static_cast<int64_t>(rng() % static_cast<uint64_t>(bound)); };
  switch (info.dtype) {
    case DType::kFloat32:
      for (int64_t i = 0; i < n; ++i) put(out, i, static_cast<float>(rng() >> 40) * 0x1p-24f);
      break;
    case DType::kFloat16:
      for (int64_t i = 0; i < n; ++i) put(out, i, half_from_grid(static_cast<uint32_t>(rng() >> 53)));
      break;
    case DType::kInt64:
      for (int64_t i = 0; i < n; ++i) put(out, i, below(int_high));
      break;
    case DType::kInt32:
      for (int64_t i = 0; i < n; ++i) put(out, i, static_cast<int32_t>(below(std::min<int64_t>(int_high, INT32_MAX))));
      break;
    case DType::kInt8:
      for (int64_t i = 0; i < n; ++i) put(out, i, static_cast<int8_t>(below(std::min<int64_t>(int_high, 128))));
      break;
    case DType::kUInt8:
      for (int64_t i = 0; i < n; ++i) put(out, i, static_cast<uint8_t>(below(std::min<int64_t>(int_high, 256))));
      break;
    case DType::kBool:
      for (int64_t i = 0; i < n; ++i) put(out, i, static_cast<uint8_t>(rng() >> 63));
      break;
    case DType::kInt4:  // two per byte, low nibble first; non-negative values below 8
      std::memset(out, 0, info.nbytes);
      for (int64_t i = 0; i < n; ++i)
        out[i / 2] |= static_cast<uint8_t>(below(std::min<int64_t>(int_high, 8)) << (4 * (i % 2)));
      break;
  }
}

std::string read_file(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) die(kExitUsage, "cannot read inputs file '" + path + "': " + std::strerror(errno));
  return std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

std::string describe_inputs(const std::vector<edgepack::TensorInfo>& inputs) {
  std::string text;
  for (const auto& info : inputs) {
    if (!text.empty()) text += ", ";
    text += "'" + info.name + "' " + edgepack::dtype_name(info.dtype) + " " + std::to_string(info.nbytes) + " B";
  }
  return text;
}

// One buffer per input, from the raw file or random.
std::vector<std::vector<uint8_t>> make_inputs(const Options& opt, const edgepack::Session& session) {
  const auto& infos = session.inputs();
  std::vector<std::vector<uint8_t>> buffers;
  if (!opt.inputs_path.empty()) {
    const std::string raw = read_file(opt.inputs_path);
    uint64_t expected = 0;
    for (const auto& info : infos) expected += info.nbytes;
    if (raw.size() != expected)
      die(kExitUsage, "inputs file '" + opt.inputs_path + "' has " + std::to_string(raw.size()) + " bytes, expected " +
                          std::to_string(expected) + " (" + describe_inputs(infos) + ")");
    size_t offset = 0;
    for (const auto& info : infos) {
      buffers.emplace_back(raw.begin() + offset, raw.begin() + offset + info.nbytes);
      offset += info.nbytes;
    }
    return buffers;
  }
  std::mt19937_64 rng(opt.seed);
  for (const auto& info : infos) {
    buffers.emplace_back(info.nbytes);
    fill_random(info, rng, opt.int_high, buffers.back().data());
  }
  return buffers;
}

// ---- machine facts ------------------------------------------------------------------------------------
using Features = std::vector<std::pair<const char*, bool>>;

// What the CPU running this binary offers.
Features cpu_features() {
#if defined(__x86_64__)
  // __builtin_cpu_supports reads cpuid and also checks that the OS saves the AVX/AVX-512 registers.
  __builtin_cpu_init();
  return {{"avx2", __builtin_cpu_supports("avx2")},
          {"fma", __builtin_cpu_supports("fma")},
          {"avx512f", __builtin_cpu_supports("avx512f")},
          {"avx512vnni", __builtin_cpu_supports("avx512vnni")}};
#elif defined(__aarch64__)
  const unsigned long hwcap = getauxval(AT_HWCAP), hwcap2 = getauxval(AT_HWCAP2);
  return {{"asimd", (hwcap & HWCAP_ASIMD) != 0},
          {"asimddp", (hwcap & HWCAP_ASIMDDP) != 0},
          {"i8mm", (hwcap2 & HWCAP2_I8MM) != 0}};
#else
  return {};
#endif
}

// What this binary was compiled to use (a CPU lacking one of them cannot run it).
Features build_features() {
#if defined(__x86_64__)
  Features f = {{"avx2", false}, {"fma", false}, {"avx512f", false}, {"avx512vnni", false}};
#if defined(__AVX2__)
  f[0].second = true;
#endif
#if defined(__FMA__)
  f[1].second = true;
#endif
#if defined(__AVX512F__)
  f[2].second = true;
#endif
#if defined(__AVX512VNNI__)
  f[3].second = true;
#endif
#elif defined(__aarch64__)
  Features f = {{"asimd", false}, {"asimddp", false}, {"i8mm", false}};
#if defined(__ARM_NEON)
  f[0].second = true;
#endif
#if defined(__ARM_FEATURE_DOTPROD)
  f[1].second = true;
#endif
#if defined(__ARM_FEATURE_MATMUL_INT8)
  f[2].second = true;
#endif
#else
  Features f;
#endif
  return f;
}

std::string architecture() {
#if defined(__x86_64__)
  return "x86_64";
#elif defined(__aarch64__)
  return "aarch64";
#else
  struct utsname name;
  return uname(&name) == 0 ? name.machine : "unknown";
#endif
}

// VmHWM is the kernel's own peak resident set; getrusage's ru_maxrss (KiB on Linux) is the fallback
// where /proc is not mounted. Under qemu-user both describe the emulator process, not only the model.
uint64_t peak_rss_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    unsigned long long kib = 0;
    if (std::sscanf(line.c_str(), "VmHWM: %llu kB", &kib) == 1) return kib * 1024;
  }
  struct rusage usage;
  return getrusage(RUSAGE_SELF, &usage) == 0 ? static_cast<uint64_t>(usage.ru_maxrss) * 1024 : 0;
}

// ---- JSON -----------------------------------------------------------------------------------------------
std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
      out += escaped;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string json_number(double v, int digits = 9) {
  if (!std::isfinite(v)) return "null";  // JSON has no NaN or infinity
  char text[40];
  std::snprintf(text, sizeof text, "%.*g", digits, v);
  return text;
}

std::string json_int(uint64_t v) { return std::to_string(v); }

template <class T, class F>
std::string json_list(const std::vector<T>& items, F to_json) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + to_json(items[i]);
  return out + "]";
}

// Keys in insertion order; `multiline` puts one key per line (for the top level).
class JsonObject {
 public:
  JsonObject& add(const std::string& key, std::string json_value) {
    fields_.emplace_back(key, std::move(json_value));
    return *this;
  }
  std::string str(bool multiline = false) const {
    std::string out = "{";
    for (size_t i = 0; i < fields_.size(); ++i) {
      out += i ? "," : "";
      out += multiline ? "\n  " : (i ? " " : "");
      out += json_string(fields_[i].first) + ": " + fields_[i].second;
    }
    return out + (multiline ? "\n}" : "}");
  }

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
};

std::string json_features(const Features& features) {
  JsonObject out;
  for (const auto& [name, present] : features) out.add(name, present ? "true" : "false");
  return out.str();
}

std::string json_tensor(const edgepack::TensorInfo& info) {
  return JsonObject()
      .add("name", json_string(info.name))
      .add("dtype", json_string(edgepack::dtype_name(info.dtype)))
      .add("shape", json_list(info.shape, [](int64_t d) { return std::to_string(d); }))
      .add("bytes", json_int(info.nbytes))
      .str();
}

std::string json_manifest(const std::map<std::string, edgepack::ManifestValue>& manifest) {
  JsonObject out;
  for (const auto& [key, value] : manifest) {
    switch (value.type) {
      case edgepack::ManifestType::kI64: out.add(key, std::to_string(value.i)); break;
      case edgepack::ManifestType::kF64: out.add(key, json_number(value.f, 17)); break;
      case edgepack::ManifestType::kStr: out.add(key, json_string(value.s)); break;
    }
  }
  return out.str();
}

}  // namespace

int main(int argc, char** argv) {
  const Options opt = parse_args(argc, argv);

  // Open the outputs file first, so a bad path fails before a long benchmark rather than after it.
  std::ofstream outputs_file;
  if (!opt.outputs_path.empty()) {
    outputs_file.open(opt.outputs_path, std::ios::binary | std::ios::trunc);
    if (!outputs_file) die(kExitUsage, "cannot write outputs file '" + opt.outputs_path + "': " + std::strerror(errno));
  }

  edgepack::SessionOptions session_options;
  session_options.num_threads = static_cast<int>(opt.threads);
  std::unique_ptr<edgepack::Session> session;
  const auto load_start = Clock::now();
  const edgepack::Status loaded = edgepack::Session::open(opt.artifact, session_options, &session);
  const double load_seconds = std::chrono::duration<double>(Clock::now() - load_start).count();
  if (!loaded.ok()) die(kExitRunFailed, "load failed: " + loaded.message());  // the message names the file

  const std::vector<std::vector<uint8_t>> inputs = make_inputs(opt, *session);
  std::vector<const void*> input_ptrs;
  for (const auto& buffer : inputs) input_ptrs.push_back(buffer.data());
  std::vector<std::vector<uint8_t>> outputs;
  std::vector<void*> output_ptrs;
  for (const auto& info : session->outputs()) {
    outputs.emplace_back(info.nbytes);
    output_ptrs.push_back(outputs.back().data());
  }

  const auto run_once = [&](edgepack::RunStats* stats) {
    const auto start = Clock::now();
    const edgepack::Status status = session->run(input_ptrs.data(), output_ptrs.data(), stats);
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (!status.ok()) die(kExitRunFailed, "run failed: " + status.message());
    return seconds;
  };

  // The first run after load pays for page faults on the mmap'd weights and cold caches; it is the
  // first warm-up run, or the first measured run when there is no warm-up.
  double first_run_seconds = 0;
  for (int64_t i = 0; i < opt.warmup; ++i) {
    const double seconds = run_once(nullptr);
    if (i == 0) first_run_seconds = seconds;
  }
  std::vector<double> latencies;
  const size_t num_ops = session->ops().size();
  std::vector<double> op_total_seconds(num_ops, 0.0);
  edgepack::RunStats stats;
  double measured_seconds = 0;
  while (static_cast<int64_t>(latencies.size()) < opt.runs || measured_seconds < opt.min_seconds) {
    const double seconds = run_once(opt.per_op ? &stats : nullptr);
    if (opt.warmup == 0 && latencies.empty()) first_run_seconds = seconds;
    latencies.push_back(seconds);
    measured_seconds += seconds;
    if (opt.per_op)
      for (size_t i = 0; i < num_ops; ++i) op_total_seconds[i] += stats.op_seconds[i];
  }

  if (outputs_file.is_open()) {
    for (const auto& buffer : outputs)
      outputs_file.write(reinterpret_cast<const char*>(buffer.data()), static_cast<std::streamsize>(buffer.size()));
    outputs_file.close();
    if (!outputs_file) die(kExitUsage, "cannot write outputs file '" + opt.outputs_path + "'");
  }

  JsonObject report;
  report.add("artifact", json_string(opt.artifact))
      .add("format_version", std::to_string(edgepack::kFormatVersion))
      .add("arch", json_string(architecture()))
      .add("cpu_features", json_features(cpu_features()))
      .add("build_features", json_features(build_features()))
      .add("gemm_ukernel", json_string(edgepack::gemm::ukernel_name()))
      .add("threads", std::to_string(session->num_threads()))
      .add("input_source", json_string(opt.inputs_path.empty() ? "random" : "file"))
      .add("seed", std::to_string(opt.seed))
      .add("load_seconds", json_number(load_seconds))
      .add("first_run_seconds", json_number(first_run_seconds))
      .add("warmup_runs", std::to_string(opt.warmup))
      .add("latencies_seconds", json_list(latencies, [](double s) { return json_number(s); }));
  if (opt.per_op) {
    const auto& ops = session->ops();
    std::vector<size_t> indices(num_ops);
    for (size_t i = 0; i < num_ops; ++i) indices[i] = i;
    report.add("per_op", json_list(indices, [&](size_t i) {
      return JsonObject()
          .add("name", json_string(ops[i].name))
          .add("op", json_string(edgepack::op_name(ops[i].code)))
          .add("mean_seconds", json_number(op_total_seconds[i] / static_cast<double>(latencies.size())))
          .add("total_seconds", json_number(op_total_seconds[i]))
          .str();
    }));
  }
  report.add("arena_bytes", json_int(session->arena_bytes()))
      .add("scratch_bytes", json_int(session->scratch_bytes()))
      .add("weights_bytes", json_int(session->weights_bytes()))
      .add("file_bytes", json_int(session->file_bytes()))
      .add("peak_rss_bytes", json_int(peak_rss_bytes()))
      .add("inputs", json_list(session->inputs(), json_tensor))
      .add("outputs", json_list(session->outputs(), json_tensor))
      .add("manifest", json_manifest(session->manifest()));
  std::printf("%s\n", report.str(true).c_str());
  return std::fflush(stdout) == 0 ? 0 : kExitUsage;
}
