// SPDX-License-Identifier: Apache-2.0
#include <filesystem>

#include "hnas/core/check.hpp"
#include "hnas/core/error.hpp"
#include "hnas/core/log.hpp"
#include "hnas/pipeline/stage.hpp"

namespace hnas::pipeline {
namespace {

// The fields every stage's job struct takes from the context: where it runs...
template <class Job>
void set_placement(Job& job, const RunContext& context) {
  job.world = &context.world();
  job.gpu = context.gpu();
  job.ranks_on_node = context.ranks_on_node();
  job.nccl_timeout = context.options().nccl_timeout;
  job.stall_timeout = context.options().stall_timeout;
}

// ...and its run directory.
template <class Job>
void set_run_directory(Job& job, const RunContext& context) {
  job.world = &context.world();
  job.run_dir = context.run_dir();
  job.dry_run = context.dry_run();
  job.hold_run_directory = [&context] { context.hold_run_directory(); };
}

class SearchStage final : public Stage {
 public:
  explicit SearchStage(search::SearchOptions options) : options_(std::move(options)) {}
  const char* name() const override { return "search"; }
  bool needs_run_dir() const override { return true; }

  bool complete(const RunContext& context) const override { return search::search_complete(options_, job(context)); }

  int run(RunContext& context) override { return search::run_search(options_, job(context)); }

 private:
  static search::SearchJob job(const RunContext& context) {
    search::SearchJob job;
    set_placement(job, context);
    set_run_directory(job, context);
    job.provenance = context.provenance();
    job.keys_free_on_resume = context.options().keys_free_on_resume;
    job.key_defaults = context.options().key_defaults;
    return job;
  }

  search::SearchOptions options_;
};

class AggregateStage final : public Stage {
 public:
  explicit AggregateStage(aggregate::AggregateOptions options) : options_(std::move(options)) {}
  const char* name() const override { return "aggregate"; }
  bool needs_run_dir() const override { return true; }
  bool complete(const RunContext& context) const override {
    return aggregate::aggregate_complete(options_, job(context));
  }
  int run(RunContext& context) override { return aggregate::run_aggregate(options_, job(context)); }

 private:
  static aggregate::AggregateJob job(const RunContext& context) {
    aggregate::AggregateJob job;
    set_placement(job, context);
    set_run_directory(job, context);
    job.config = context.options().effective_ini;
    return job;
  }
  aggregate::AggregateOptions options_;
};

class ExtrapolateStage final : public Stage {
 public:
  explicit ExtrapolateStage(extrapolate::ExtrapolateOptions options) : options_(std::move(options)) {}
  const char* name() const override { return "extrapolate"; }
  bool needs_run_dir() const override { return false; }  // without one it prints only
  bool complete(const RunContext& context) const override {
    return extrapolate::extrapolate_complete(options_, job(context));
  }
  int run(RunContext& context) override { return extrapolate::run_extrapolate(options_, job(context)); }

 private:
  static extrapolate::ExtrapolateJob job(const RunContext& context) {
    extrapolate::ExtrapolateJob job;
    set_run_directory(job, context);
    job.config = context.options().effective_ini;
    return job;
  }
  extrapolate::ExtrapolateOptions options_;
};

class PretrainStage final : public Stage {
 public:
  explicit PretrainStage(pretrain::PretrainOptions options) : options_(std::move(options)) {}
  const char* name() const override { return "pretrain"; }
  bool needs_run_dir() const override { return true; }
  bool complete(const RunContext& context) const override {
    return pretrain::pretrain_complete(options_, job(context));
  }
  int run(RunContext& context) override { return pretrain::run_pretrain(options_, job(context)); }

 private:
  static pretrain::PretrainJob job(const RunContext& context) {
    pretrain::PretrainJob job;
    set_placement(job, context);
    set_run_directory(job, context);
    job.config = context.options().effective_ini;
    return job;
  }
  pretrain::PretrainOptions options_;
};

class GenerateStage final : public Stage {
 public:
  explicit GenerateStage(generate::GenerateOptions options) : options_(std::move(options)) {}
  const char* name() const override { return "generate"; }
  bool needs_run_dir() const override { return false; }
  bool complete(const RunContext&) const override { return false; }
  int run(RunContext& context) override {
    int code = kExitOk;
    dist::agree_on_errors(context.world(), [&] {
      std::error_code missing;  // /inference is written: hold the directory, if it has checkpoints at all
      if (!options_.run_dir.empty() && context.world().rank() == 0 &&
          std::filesystem::is_directory(options_.run_dir + "/checkpoints", missing))
        context.hold_run_directory();
      code = generate::run_generate(options_, context.gpu(), context.world().rank() == 0);
    });
    return code;
  }

 private:
  generate::GenerateOptions options_;
};

}  // namespace

std::unique_ptr<Stage> make_generate_stage(generate::GenerateOptions options) {
  return std::make_unique<GenerateStage>(std::move(options));
}

std::unique_ptr<Stage> make_pretrain_stage(pretrain::PretrainOptions options) {
  return std::make_unique<PretrainStage>(std::move(options));
}

std::unique_ptr<Stage> make_aggregate_stage(aggregate::AggregateOptions options) {
  return std::make_unique<AggregateStage>(std::move(options));
}

std::unique_ptr<Stage> make_extrapolate_stage(extrapolate::ExtrapolateOptions options) {
  return std::make_unique<ExtrapolateStage>(std::move(options));
}

std::unique_ptr<Stage> make_search_stage(search::SearchOptions options) {
  return std::make_unique<SearchStage>(std::move(options));
}

int run_stages(RunContext& context, const std::vector<std::unique_ptr<Stage>>& stages) {
  int code = kExitOk;
  for (const auto& stage : stages) {
    // cli requires --run-dir for every command whose stages keep output there.
    HNAS_ASSERT(!stage->needs_run_dir() || !context.run_dir().empty(),
                "stage " << stage->name() << " needs a run directory and the job has none");
    if (stage->complete(context)) {
      log::info(std::string(stage->name()) + ": complete in " + context.run_dir() + "; skipped");
      continue;
    }
    code = stage->run(context);
    if (code != kExitOk) break;
  }
  return code;
}

}  // namespace hnas::pipeline
