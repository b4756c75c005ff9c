// SPDX-License-Identifier: Apache-2.0
#include "hnas/pretrain/checkpoint.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "hnas/core/check.hpp"
#include "hnas/core/error.hpp"
#include "hnas/core/hash.hpp"
#include "hnas/core/log.hpp"
#include "hnas/io/h5.hpp"
#include "hnas/io/results_table.hpp"

namespace hnas::pretrain {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kFormat = 1;

std::string checkpoint_name(int64_t step) { return log::format("step_%09ld.h5", static_cast<long>(step)); }

// The HDF5 type of a tensor's elements, and its name in the dtype attribute.
struct ElementType {
  hid_t h5;
  const char* name;
};

ElementType element_type(at::ScalarType type) {
  switch (type) {
    case at::kFloat:
      return {H5T_NATIVE_FLOAT, "float32"};
    case at::kDouble:
      return {H5T_NATIVE_DOUBLE, "float64"};
    case at::kBFloat16:
      return {H5T_NATIVE_UINT16, "bfloat16"};  // the bit pattern: HDF5 has no bfloat16
    case at::kHalf:
      return {H5T_NATIVE_UINT16, "float16"};
    case at::kLong:
      return {H5T_NATIVE_INT64, "int64"};
    case at::kInt:
      return {H5T_NATIVE_INT32, "int32"};
    default:
      break;
  }
  throw InternalError(std::string("checkpoint: unsupported tensor dtype ") + c10::toString(type));
}

at::ScalarType scalar_type_named(const std::string& name, const std::string& where) {
  for (auto type : {at::kFloat, at::kDouble, at::kBFloat16, at::kHalf, at::kLong, at::kInt})
    if (name == element_type(type).name) return type;
  throw InputError(where + ": unknown dtype \"" + name + "\"");
}

std::string shape_text(const at::Tensor& t) {
  std::string out;
  for (int64_t d = 0; d < t.dim(); ++d) out += (d ? "," : "") + std::to_string(t.size(d));
  return out;
}

// Creates `path` and its missing parents.
io::H5Group make_group(hid_t file, const std::string& path) {
  io::H5Plist links(HNAS_CHECK_H5(H5Pcreate(H5P_LINK_CREATE)));
  HNAS_CHECK_H5(H5Pset_create_intermediate_group(links.get(), 1));
  return io::H5Group(HNAS_CHECK_H5(H5Gcreate2(file, path.c_str(), links.get(), H5P_DEFAULT, H5P_DEFAULT)));
}

// Writes every tensor as a dataset of `path`. The checksums are computed on a second
// thread while HDF5 writes (only this thread calls HDF5): the pass over the bytes then
// costs no time of its own.
void write_tensors(hid_t file, const std::string& path, const std::vector<NamedTensor>& tensors) {
  const auto group = make_group(file, path);
  std::vector<at::Tensor> host;
  for (const auto& named : tensors) host.push_back(named.tensor.detach().to(at::kCPU).contiguous());
  std::vector<std::string> checksums(host.size());
  std::thread summing([&] {
    for (size_t i = 0; i < host.size(); ++i) checksums[i] = tensor_checksum(host[i]);
  });
  struct Joiner {
    std::thread& thread;
    ~Joiner() {
      if (thread.joinable()) thread.join();
    }
  } joiner{summing};
  std::vector<io::H5Dataset> datasets;
  for (size_t i = 0; i < host.size(); ++i) {
    const at::Tensor& t = host[i];
    const auto type = element_type(t.scalar_type());
    std::vector<hsize_t> dims;
    for (int64_t d = 0; d < t.dim(); ++d) dims.push_back(static_cast<hsize_t>(t.size(d)));
    io::H5Space space(HNAS_CHECK_H5(
        t.dim() == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr)));
    datasets.emplace_back(HNAS_CHECK_H5(
        H5Dcreate2(group.get(), tensors[i].name.c_str(), type.h5, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)));
    const hid_t dataset = datasets.back().get();
    if (t.numel() > 0) HNAS_CHECK_H5(H5Dwrite(dataset, type.h5, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data_ptr()));
    io::write_string_attribute(dataset, "dtype", type.name);
    io::write_string_attribute(dataset, "shape", shape_text(t));
    io::write_int_attribute(dataset, "steps", tensors[i].steps);
  }
  summing.join();
  for (size_t i = 0; i < datasets.size(); ++i) io::write_string_attribute(datasets[i].get(), "fnv1a64", checksums[i]);
}

// Whether every link of the absolute `path` exists (H5Lexists fails on a missing parent).
bool link_exists(hid_t file, const std::string& path) {
  for (size_t slash = path.find('/', 1);; slash = path.find('/', slash + 1)) {
    if (H5Lexists(file, path.substr(0, slash).c_str(), H5P_DEFAULT) <= 0) return false;
    if (slash == std::string::npos) return true;
  }
}

std::vector<NamedTensor> read_tensors(hid_t file, const std::string& path, const std::string& where) {
  HNAS_CHECK(link_exists(file, path), InputError, where << " has no " << path << " (damaged or truncated)");
  const io::H5Group group(HNAS_CHECK_H5(H5Gopen2(file, path.c_str(), H5P_DEFAULT)));
  std::vector<NamedTensor> out;
  for (const auto& name : io::link_names(group.get())) {
    const std::string what = where + ":" + path + "/" + name;
    const auto dataset = io::open_dataset(group.get(), name);
    const auto type = scalar_type_named(io::read_string_attribute(dataset.get(), "dtype"), what);
    std::vector<int64_t> sizes;
    for (auto d : io::dataset_shape(dataset.get())) sizes.push_back(static_cast<int64_t>(d));
    at::Tensor t = torch::empty(sizes, torch::TensorOptions().dtype(type));
    if (t.numel() > 0)
      HNAS_CHECK(H5Dread(dataset.get(), element_type(type).h5, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data_ptr()) >= 0,
                 InputError, what << " cannot be read (truncated?)");
    HNAS_CHECK(tensor_checksum(t) == io::read_string_attribute(dataset.get(), "fnv1a64"), InputError,
               what << " fails its checksum (the file is damaged)");
    out.push_back({name, t, io::read_int_attribute(dataset.get(), "steps")});
  }
  return out;
}

}  // namespace

io::Table train_series_table(const std::vector<TrainPoint>& points) {
  io::Table t;
  t.columns = {{"step", io::ColumnType::Int64, 0, "optimizer steps done"},
               {"tokens", io::ColumnType::Int64, 0, "training tokens seen"},
               {"loss", io::ColumnType::Float64, 0, "training loss of the step (nats/token)"},
               {"lr", io::ColumnType::Float64, 0, "learning rate of the step"},
               {"grad_norm", io::ColumnType::Float64, 0, "global gradient norm before clipping"},
               {"tokens_per_second", io::ColumnType::Float64, 0, "training throughput, all ranks (tokens/s)"},
               {"mfu", io::ColumnType::Float64, 0, "model FLOPs utilisation (fraction of the peak)"},
               {"seconds", io::ColumnType::Float64, 0, "training wall time so far (s)"}};
  for (const auto& p : points)
    t.rows.push_back({p.step, p.tokens, p.loss, p.lr, p.grad_norm, p.tokens_per_second, p.mfu, p.seconds});
  return t;
}

io::Table validation_series_table(const std::vector<ValidationPoint>& points) {
  io::Table t;
  t.columns = {{"step", io::ColumnType::Int64, 0, "optimizer steps done"},
               {"tokens", io::ColumnType::Int64, 0, "training tokens seen"},
               {"loss", io::ColumnType::Float64, 0, "validation loss on the fixed windows (nats/token)"}};
  for (const auto& p : points) t.rows.push_back({p.step, p.tokens, p.loss});
  return t;
}

namespace {

// Checkpoints in DIR, newest first.
std::vector<std::string> checkpoints_in(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code error;
  for (fs::directory_iterator it(dir, error), end; !error && it != end; it.increment(error)) {
    const std::string name = it->path().filename().string();
    if (name.rfind("step_", 0) == 0 && name.size() > 3 && name.compare(name.size() - 3, 3, ".h5") == 0)
      names.push_back(name);
  }
  std::sort(names.rbegin(), names.rend());  // zero-padded: lexical order is step order
  return names;
}

void write_text_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = io::temporary_name(path);
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    out.flush();
    HNAS_CHECK(out.good(), IoError, "cannot write " << tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw IoError("cannot rename " + tmp + " to " + path + ": " + std::strerror(errno));
  }
}

}  // namespace

std::string tensor_checksum(const at::Tensor& tensor) {
  const at::Tensor t = tensor.contiguous();
  const auto* bytes = static_cast<const unsigned char*>(t.data_ptr());
  const size_t count = static_cast<size_t>(t.numel()) * t.element_size();
  // FNV-1a over 8-byte words: about 8x the byte-wise speed, as sensitive to a flipped bit.
  uint64_t hash = kFnvOffsetBasis;
  size_t i = 0;
  for (; i + 8 <= count; i += 8) {
    uint64_t word;
    std::memcpy(&word, bytes + i, 8);
    hash = (hash ^ word) * 1099511628211ull;
  }
  hash = fnv1a(hash, bytes + i, count - i);
  return log::format("%016llx", static_cast<unsigned long long>(hash));
}

void write_checkpoint(const std::string& dir, const Checkpoint& c, int64_t keep) {
  std::error_code error;
  fs::create_directories(dir, error);
  HNAS_CHECK(!error, IoError, "cannot create checkpoint directory " << dir << ": " << error.message());
  const std::string name = checkpoint_name(c.step);
  io::write_large_file_atomically(dir + "/" + name, [&](hid_t file) {
    write_tensors(file, "/weights", c.weights);
    write_tensors(file, "/optimizer/exp_avg", c.exp_avg);
    write_tensors(file, "/optimizer/exp_avg_sq", c.exp_avg_sq);
    io::write_table(file, "/series/train", train_series_table(c.train), "training loss and throughput at every step");
    io::write_table(file, "/series/validation", validation_series_table(c.validation), "validation loss");
    const auto model = make_group(file, "/model");
    io::write_string_attribute(model.get(), "arch", c.arch);
    io::write_int_attribute(model.get(), "d_model", c.shape.d_model);
    io::write_int_attribute(model.get(), "heads", c.shape.num_heads);
    io::write_int_attribute(model.get(), "kv_heads", c.shape.num_kv_heads);
    io::write_int_attribute(model.get(), "head_dim", c.shape.head_dim);
    io::write_int_attribute(model.get(), "mlp_hidden", c.shape.mlp_hidden);
    io::write_int_attribute(model.get(), "vocab_size", c.shape.vocab_size);
    io::write_double_attribute(model.get(), "rope_theta", c.shape.rope_theta);
    io::write_double_attribute(model.get(), "norm_eps", c.shape.norm_eps);
    io::write_int_attribute(model.get(), "tie_embeddings", c.shape.tie_embeddings);
    const auto state = make_group(file, "/state");
    io::write_int_attribute(state.get(), "format", kFormat);
    io::write_int_attribute(state.get(), "step", c.step);
    io::write_int_attribute(state.get(), "tokens", c.tokens);
    io::write_int_attribute(state.get(), "cursor", c.cursor);
    io::write_int_attribute(state.get(), "world_size", c.world_size);
    io::write_double_attribute(state.get(), "wall_seconds", c.wall_seconds);
    for (const auto& [key, value] : c.identity) io::write_string_attribute(state.get(), "identity." + key, value);
  });
  write_text_atomically(dir + "/latest", name + "\n");
  const auto all = checkpoints_in(dir);
  for (size_t i = static_cast<size_t>(std::max<int64_t>(keep, 1)); i < all.size(); ++i)
    fs::remove(dir + "/" + all[i], error);
}

Checkpoint read_checkpoint(const std::string& path) {
  const io::H5File file = io::open_file_read_only(path);
  Checkpoint c;
  HNAS_CHECK(H5Lexists(file.get(), "state", H5P_DEFAULT) > 0, InputError, path << " is not an hnas checkpoint");
  const io::H5Group state(HNAS_CHECK_H5(H5Gopen2(file.get(), "/state", H5P_DEFAULT)));
  HNAS_CHECK(io::read_int_attribute(state.get(), "format") == kFormat, InputError,
             path << " has checkpoint format " << io::read_int_attribute(state.get(), "format") << ", this hnas reads "
                  << kFormat);
  {
    HNAS_CHECK(H5Lexists(file.get(), "model", H5P_DEFAULT) > 0, InputError, path << " has no /model (damaged?)");
    const io::H5Group model(HNAS_CHECK_H5(H5Gopen2(file.get(), "/model", H5P_DEFAULT)));
    c.arch = io::read_string_attribute(model.get(), "arch");
    c.shape.d_model = io::read_int_attribute(model.get(), "d_model");
    c.shape.num_heads = io::read_int_attribute(model.get(), "heads");
    c.shape.num_kv_heads = io::read_int_attribute(model.get(), "kv_heads");
    c.shape.head_dim = io::read_int_attribute(model.get(), "head_dim");
    c.shape.mlp_hidden = io::read_int_attribute(model.get(), "mlp_hidden");
    c.shape.vocab_size = io::read_int_attribute(model.get(), "vocab_size");
    c.shape.rope_theta = io::read_double_attribute(model.get(), "rope_theta");
    c.shape.norm_eps = io::read_double_attribute(model.get(), "norm_eps");
    c.shape.tie_embeddings = io::read_int_attribute(model.get(), "tie_embeddings") != 0;
    c.shape.attention_bias = c.shape.head_bias = false;
    c.shape.backbone = arch::Backbone::LanguageModel;
  }
  c.step = io::read_int_attribute(state.get(), "step");
  c.tokens = io::read_int_attribute(state.get(), "tokens");
  c.cursor = io::read_int_attribute(state.get(), "cursor");
  c.world_size = io::read_int_attribute(state.get(), "world_size");
  c.wall_seconds = io::read_double_attribute(state.get(), "wall_seconds");
  H5O_info_t info{};
  HNAS_CHECK_H5(H5Oget_info(state.get(), &info));
  for (hsize_t i = 0; i < info.num_attrs; ++i) {
    const ssize_t length =
        HNAS_CHECK_H5(H5Aget_name_by_idx(state.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT));
    std::string name(static_cast<size_t>(length), '\0');
    HNAS_CHECK_H5(
        H5Aget_name_by_idx(state.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size() + 1, H5P_DEFAULT));
    if (name.rfind("identity.", 0) == 0) c.identity[name.substr(9)] = io::read_string_attribute(state.get(), name);
  }
  c.weights = read_tensors(file.get(), "/weights", path);
  c.exp_avg = read_tensors(file.get(), "/optimizer/exp_avg", path);
  c.exp_avg_sq = read_tensors(file.get(), "/optimizer/exp_avg_sq", path);
  const auto train = io::read_table(file.get(), "/series/train");
  for (const auto& row : train.rows)
    c.train.push_back({std::get<int64_t>(row[0]), std::get<int64_t>(row[1]), std::get<double>(row[2]),
                       std::get<double>(row[3]), std::get<double>(row[4]), std::get<double>(row[5]),
                       std::get<double>(row[6]), std::get<double>(row[7])});
  const auto validation = io::read_table(file.get(), "/series/validation");
  for (const auto& row : validation.rows)
    c.validation.push_back({std::get<int64_t>(row[0]), std::get<int64_t>(row[1]), std::get<double>(row[2])});
  return c;
}

std::optional<Checkpoint> load_latest_checkpoint(const std::string& dir) {
  std::error_code error;
  if (!fs::is_directory(dir, error)) return std::nullopt;
  std::vector<std::string> order;
  std::ifstream pointer(dir + "/latest");
  std::string latest;
  if (pointer >> latest) order.push_back(latest);
  for (const auto& name : checkpoints_in(dir))
    if (name != latest) order.push_back(name);
  std::string defects;
  for (const auto& name : order) {
    try {
      auto c = read_checkpoint(dir + "/" + name);
      if (name != order.front())
        log::warn("checkpoint: resuming from " + dir + "/" + name + ", the newest valid checkpoint");
      return c;
    } catch (const Error& e) {
      std::string first_line = e.what();
      first_line = first_line.substr(0, first_line.find('\n'));
      log::warn("checkpoint: " + dir + "/" + name + " is unusable (" + first_line + "); trying the one before it");
      if (defects.empty()) defects = first_line;
    }
  }
  // Checkpoints exist but none can be read: starting over would overwrite them.
  HNAS_CHECK(order.empty(), InputError,
             "no valid checkpoint in " << dir << " (" << order.size() << " damaged; the newest: " << defects
                                       << "); move them away to start this model over");
  return std::nullopt;
}

}  // namespace hnas::pretrain
