"""pgjax bench: env steps per second against N, phase by phase, beside the machine's ceiling.

The benchmark harness, public so the scripts in ``benchmarks/`` build on it (``pgjax bench
--help``, or :mod:`pgjax.bench.cli`, for the command):

  machine        machine_info, load_average, header, write_section (the results file),
                 busy_core (one core kept busy while measuring)
  phases         bench_phases: (a) env only, (b) rollout, (c) learn, (d) train, timed alternately
  flops          model_flops per env step, matmul_flops (the machine's achievable FLOP/s)
  compile_cache  first against cached compile of the training program
  solve          time_to_solve: wall seconds to a greedy-evaluation target
  report         results_table, reference_table, plot
  reference      make_reference: a plain-JAX A2C/PPO of the same mathematics, to time against
  cli            the command: add_arguments, make_parser, run, main
  algorithms     what the harness asks of an algorithm (its one reader of the name)
"""

from pgjax.bench.algorithms import algorithm_names, epochs_per_update, is_episodic, schedule_text
from pgjax.bench.cli import (DEFAULT_NUM_ENVS, QUICK_NUM_ENVS, add_arguments, command_line, main,
                             make_parser, resolve_config, run)
from pgjax.bench.compile_cache import compile_cache_times, compile_training_program
from pgjax.bench.flops import ModelFlops, layer_macs, make_matmul, matmul_flops, model_flops
from pgjax.bench.machine import (busy_core, format_rate, header, load_average, machine_info,
                                 write_section)
from pgjax.bench.phases import (PHASE_TITLES, PHASES, STEPS_PER_CALL, bench_config, bench_phases,
                                calls_of, make_env_only, make_learn)
from pgjax.bench.reference import make_reference
from pgjax.bench.report import REFERENCE_TARGET, plot, reference_table, results_table
from pgjax.bench.solve import time_to_solve

__all__ = [
    # the command
    "DEFAULT_NUM_ENVS", "QUICK_NUM_ENVS", "add_arguments", "command_line", "main", "make_parser",
    "resolve_config", "run",
    # the machine and the results file
    "busy_core", "format_rate", "header", "load_average", "machine_info", "write_section",
    # phases and FLOPs
    "PHASES", "PHASE_TITLES", "STEPS_PER_CALL", "bench_config", "bench_phases", "calls_of",
    "make_env_only", "make_learn", "ModelFlops", "layer_macs", "make_matmul", "matmul_flops",
    "model_flops",
    # compile time, time to solve, output
    "compile_cache_times", "compile_training_program", "time_to_solve", "plot", "results_table",
    # the plain-JAX reference (pgjax bench --reference)
    "make_reference", "reference_table", "REFERENCE_TARGET",
    # what the harness asks of an algorithm (pgjax.algos after issue 13)
    "algorithm_names", "epochs_per_update", "is_episodic", "schedule_text",
]
