// SPDX-License-Identifier: Apache-2.0
#include <filesystem>

#include "hnas/core/check.hpp"
#include "hnas/core/deadline.hpp"
#include "hnas/core/error.hpp"
#include "hnas/core/log.hpp"
#include "hnas/core/signals.hpp"
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
  SearchStage(search::SearchOptions options, JobOptions own) : options_(std::move(options)), own_(std::move(own)) {}
  const char* name() const override { return "search"; }
  bool needs_run_dir() const override { return true; }

  bool complete(const RunContext& context) const override { return search::search_complete(options_, job(context)); }

  int run(RunContext& context) override { return search::run_search(options_, job(context)); }

 private:
  search::SearchJob job(const RunContext& context) const {
    search::SearchJob job;
    set_placement(job, context);
    set_run_directory(job, context);
    job.cuda = context.options().cuda;
    job.plan_ranks = context.plan_ranks();
    job.provenance = context.provenance();
    job.provenance.config = own_.effective_ini;  // the search's keys only: what a resume compares
    job.keys_free_on_resume = own_.keys_free_on_resume;
    job.key_defaults = own_.key_defaults;
    return job;
  }

  search::SearchOptions options_;
  JobOptions own_;
};

class AggregateStage final : public Stage {
 public:
  AggregateStage(aggregate::AggregateOptions options, JobOptions own)
      : options_(std::move(options)), own_(std::move(own)) {}
  const char* name() const override { return "aggregate"; }
  bool needs_run_dir() const override { return true; }
  bool complete(const RunContext& context) const override {
    return aggregate::aggregate_complete(options_, job(context));
  }
  int run(RunContext& context) override { return aggregate::run_aggregate(options_, job(context)); }

 private:
  aggregate::AggregateJob job(const RunContext& context) const {
    aggregate::AggregateJob job;
    set_placement(job, context);
    set_run_directory(job, context);
    job.config = own_.effective_ini;
    return job;
  }
  aggregate::AggregateOptions options_;
  JobOptions own_;
};

class ExtrapolateStage final : public Stage {
 public:
  ExtrapolateStage(extrapolate::ExtrapolateOptions options, JobOptions own)
      : options_(std::move(options)), own_(std::move(own)) {}
  const char* name() const override { return "extrapolate"; }
  bool needs_run_dir() const override { return false; }  // without one it prints only
  bool complete(const RunContext& context) const override {
    return extrapolate::extrapolate_complete(options_, job(context));
  }
  int run(RunContext& context) override { return extrapolate::run_extrapolate(options_, job(context)); }

 private:
  extrapolate::ExtrapolateJob job(const RunContext& context) const {
    extrapolate::ExtrapolateJob job;
    set_run_directory(job, context);
    job.config = own_.effective_ini;
    return job;
  }
  extrapolate::ExtrapolateOptions options_;
  JobOptions own_;
};

class PretrainStage final : public Stage {
 public:
  PretrainStage(pretrain::PretrainOptions options, JobOptions own)
      : options_(std::move(options)), own_(std::move(own)) {}
  const char* name() const override { return "pretrain"; }
  bool needs_run_dir() const override { return true; }
  bool complete(const RunContext& context) const override {
    return pretrain::pretrain_complete(options_, job(context));
  }
  int run(RunContext& context) override { return pretrain::run_pretrain(options_, job(context)); }

 private:
  pretrain::PretrainJob job(const RunContext& context) const {
    pretrain::PretrainJob job;
    set_placement(job, context);
    set_run_directory(job, context);
    job.cuda = context.options().cuda;
    job.plan_ranks = context.plan_ranks();
    job.config = own_.effective_ini;
    return job;
  }
  pretrain::PretrainOptions options_;
  JobOptions own_;
};

class GenerateStage final : public Stage {
 public:
  // `pipeline`: the inference stage of hnas run, skipped while /inference is current.
  GenerateStage(generate::GenerateOptions options, bool pipeline) : options_(std::move(options)), pipeline_(pipeline) {}
  const char* name() const override { return pipeline_ ? "inference" : "generate"; }
  bool needs_run_dir() const override { return pipeline_; }
  bool complete(const RunContext& context) const override {
    if (!pipeline_) return false;  // hnas generate times again whenever it is asked to
    int64_t complete = 0;
    dist::agree_on_errors(context.world(), [&] {
      if (context.world().rank() == 0) complete = generate::inference_complete(context.run_dir());
    });
    context.world().broadcast(&complete, sizeof complete, 0);
    return complete != 0;
  }
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
  bool pipeline_ = false;
};

}  // namespace

std::unique_ptr<Stage> make_generate_stage(generate::GenerateOptions options) {
  return std::make_unique<GenerateStage>(std::move(options), false);
}

std::unique_ptr<Stage> make_inference_stage(generate::GenerateOptions options) {
  return std::make_unique<GenerateStage>(std::move(options), true);
}

std::unique_ptr<Stage> make_pretrain_stage(pretrain::PretrainOptions options, JobOptions own) {
  return std::make_unique<PretrainStage>(std::move(options), std::move(own));
}

std::unique_ptr<Stage> make_aggregate_stage(aggregate::AggregateOptions options, JobOptions own) {
  return std::make_unique<AggregateStage>(std::move(options), std::move(own));
}

std::unique_ptr<Stage> make_extrapolate_stage(extrapolate::ExtrapolateOptions options, JobOptions own) {
  return std::make_unique<ExtrapolateStage>(std::move(options), std::move(own));
}

std::unique_ptr<Stage> make_search_stage(search::SearchOptions options, JobOptions own) {
  return std::make_unique<SearchStage>(std::move(options), std::move(own));
}

int run_stages(RunContext& context, const std::vector<std::unique_ptr<Stage>>& stages) {
  int code = kExitOk;
  for (size_t i = 0; i < stages.size(); ++i) {
    const auto& stage = stages[i];
    // cli requires --run-dir for every command whose stages keep output there.
    HNAS_ASSERT(!stage->needs_run_dir() || !context.run_dir().empty(),
                "stage " << stage->name() << " needs a run directory and the job has none");
    // A stop signal that came between two stages (or to one rank only), or the deadline,
    // ends the job here: every stage before is durable, and the rerun starts with this one.
    if (i > 0 && context.world().all_reduce_max(stop_requested() ? 1 : 0) != 0) {
      log::info(std::string("stopped by ") + (deadline_passed() ? "the deadline" : "a signal") + " before stage " +
                stage->name() + "; rerun the same command to continue (exit code 75)");
      return kExitResumable;
    }
    if (stage->complete(context)) {
      log::info(std::string(stage->name()) + ": complete in " + context.run_dir() + "; skipped");
      continue;
    }
    if (stages.size() > 1) log::info(std::string("stage ") + stage->name() + ": starting");
    code = stage->run(context);
    if (code != kExitOk) break;
  }
  return code;
}

}  // namespace hnas::pipeline
