// Umbrella header: `#include <accelerate/accelerate.hpp>` and write the loop as in Python Accelerate.
#pragma once

#include <accelerate/accelerator.hpp>
#include <accelerate/activation_checkpointing.hpp>
#include <accelerate/collectives.hpp>
#include <accelerate/data_loader.hpp>
#include <accelerate/environment.hpp>
#include <accelerate/mixed_precision.hpp>
#include <accelerate/model_io.hpp>
#include <accelerate/safetensors.hpp>
#include <accelerate/error.hpp>
#include <accelerate/exit_code.hpp>
#include <accelerate/find_batch_size.hpp>
#include <accelerate/logging.hpp>
#include <accelerate/memory.hpp>
#include <accelerate/platform.hpp>
#include <accelerate/preemption.hpp>
#include <accelerate/progress.hpp>
#include <accelerate/process_state.hpp>
#include <accelerate/random.hpp>
#include <accelerate/scheduler.hpp>
#include <accelerate/settings.hpp>
#include <accelerate/sharding_unit.hpp>
#include <accelerate/system_info.hpp>
#include <accelerate/throughput.hpp>
#include <accelerate/tracking.hpp>
#include <accelerate/version.hpp>
