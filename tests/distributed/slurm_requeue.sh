#!/usr/bin/env bash
# A real SLURM (issue 26): a single-node cluster of Debian's slurmctld + slurmd with munge, started here in a
# temporary folder on free ports, then:
#   1. `srun --ntasks 2` starts the GPT example directly (ProcessState reads the step's SLURM_* variables: rank,
#      tasks, tasks on this node, the master host) inside a job laid out otherwise: both tasks train to the end;
#      started in the batch script without srun, the program is refused at once;
#   2. docs/launch.md's batch script, run with sbatch (one node, two processes, no GPU: the only edits), trains;
#      `scancel --signal USR1` (what `--signal=USR1@120` sends before the time limit) makes every process save
#      and exit 75; the script requeues the job; the job comes back and resumes ("resumed from ...") to the end;
#      then `scontrol requeue` (the scheduler's SIGTERM) does the same once more;
#   3. the docs' srun-alone script, preempted the same way, requeues and resumes to the same end.
# Exits 77 (skipped) where SLURM cannot start: not root, or slurmctld/slurmd/munged not installed.
# Usage: slurm_requeue.sh BIN_DIR PYTHON DOCS_LAUNCH_MD
set -uo pipefail
bin="$1" python="$2" launch_md="$3"
skip() { echo "slurm_requeue: SKIPPED: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "starting slurmctld, slurmd and munged needs root"
for tool in slurmctld slurmd munged sbatch srun scontrol scancel squeue; do
  command -v "$tool" >/dev/null || skip "$tool is not installed (Debian: apt-get install slurmctld slurmd slurm-client munge)"
done
id munge >/dev/null 2>&1 || skip "no munge user (Debian's munge package creates it)"

dir="$(mktemp -d)"
chmod 755 "$dir"  # munged needs every folder above its socket to be searchable by all
export SLURM_CONF="$dir/slurm.conf"
cleanup() {
  scancel --quiet --full --signal=KILL --partition=test 2>/dev/null
  for pid in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munge/pid"; do
    [ -s "$pid" ] && kill "$(cat "$pid")" 2>/dev/null
  done
  sleep 0.5
  rm -rf "$dir"
}
trap cleanup EXIT
fail() {
  echo "slurm_requeue: FAILED: $*"
  for f in "$dir"/work/*.log "$dir/slurmctld.log" "$dir/slurmd.log"; do
    [ -f "$f" ] && { echo "--- $f"; head -n 30 "$f"; echo "..."; tail -n 30 "$f"; }
  done
  exit 1
}
# port_free PORT: nothing listens on 127.0.0.1:PORT.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 30000))
    port_free "$p" && port_free "$((p + 1))" && { echo "$p"; return; }
  done
  fail "no two free ports"
}

# munge: its own key and socket here, so that nothing of the machine's (or another test's) is used or changed.
mkdir -p "$dir/munge" "$dir/state" "$dir/spool" "$dir/work"
dd if=/dev/urandom of="$dir/munge/key" bs=1024 count=1 status=none
chown -R munge:munge "$dir/munge" && chmod 400 "$dir/munge/key"
runuser -u munge -- munged --socket="$dir/munge/sock" --key-file="$dir/munge/key" --pid-file="$dir/munge/pid" \
  --log-file="$dir/munge/log" --seed-file="$dir/munge/seed" || fail "munged did not start: $(cat "$dir/munge/log")"

port=$(free_port)
node=$(slurmd -C | head -n 1)  # NodeName=<host> CPUs=... as slurmd sees this machine
host=$(sed -n 's/^NodeName=\([^ ]*\).*/\1/p' <<<"$node")
getent hosts "$host" >/dev/null || skip "this machine's name $host does not resolve (the master address under srun)"
cat >"$SLURM_CONF" <<EOF
ClusterName=accelerate-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
# cred_expire is also how long a requeued job waits before it may start again (default 120 s).
AuthInfo=socket=$dir/munge/sock,cred_expire=5
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=1
MpiDefault=none
JobRequeue=1
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
slurmctld -i || fail "slurmctld did not start"
slurmd || fail "slurmd did not start"
for _ in $(seq 100); do
  [ "$(sinfo -h -o %t 2>/dev/null)" = idle ] && break
  sleep 0.2
done
[ "$(sinfo -h -o %t 2>/dev/null)" = idle ] || fail "the node is not idle after 20 s: $(sinfo 2>&1)"
echo "slurm_requeue: $(sinfo -V) is up on $host (ports $port, $((port + 1)))"

"$(dirname "$0")/gpt_data.sh" "$python" "$dir/data"
tiny=(--data_dir "$dir/data" --n_layer 1 --n_head 2 --n_embd 32 --block_size 32 --batch_size 4 --eval_interval 100
      --eval_batches 2 --log_interval 10 --lr 3e-3 --warmup_steps 5 --sample_tokens 0)
cd "$dir/work"

# 1. srun alone: one task per process; the library reads SLURM's variables (MASTER_PORT: a free port here, since
#    29500 may be taken by another test). In a job laid out for a launcher (one task of two CPUs), so that the step's
#    layout (two tasks of one CPU) differs from the job's. Uninterrupted: the reference for the requeued job below.
printf '#!/bin/bash\nsrun --ntasks 2 --cpus-per-task 1 --kill-on-bad-exit=1 --export ALL,MASTER_PORT=%s %s %s --max_steps 1000\n' \
  "$(free_port)" "$bin/gpt" "${tiny[*]}" >srun.sbatch
timeout 240 sbatch --wait --quiet --nodes 1 --ntasks-per-node 1 --cpus-per-task 2 --output "$dir/work/srun.log" \
  srun.sbatch
rc=$?
[ "$rc" = 0 ] || fail "srun --ntasks 2 gpt in a job of one task failed (rc $rc)"
for r in 0 1; do
  grep -q "memory: rank=$r " srun.log || fail "task $r did not train under srun"
done
reference=$(grep -o "val_loss=[0-9.]*" srun.log | tail -n 1)
[ -n "$reference" ] || fail "srun: no final val_loss"
echo "slurm_requeue: srun --ntasks 2 in a job of one task: both tasks trained to step 1000, $reference"

# The same program started in the batch script itself, without srun: refused at once with the fix, where it would
# have waited for a rank 1 that never starts.
job_state() { scontrol show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p'; }
batch=$(sbatch --parsable --ntasks 2 --output "$dir/work/batch.log" --wrap "$bin/gpt ${tiny[*]} --max_steps 5") ||
  fail "sbatch --wrap refused"
for _ in $(seq 300); do
  case "$(job_state "$batch")" in COMPLETED | FAILED) break ;; esac
  sleep 0.1
done
grep -q "SLURM's batch script itself" "$dir/work/batch.log" ||
  fail "a program in the batch script without srun was not refused within 30 s: $(job_state "$batch")"
echo "slurm_requeue: without srun in a 2-task job: refused at once"

# 2. docs/launch.md's batch script, verbatim but for what a one-node CPU cluster needs: no GPUs, two processes on
#    its two CPUs (sbatch's options win over the script's #SBATCH lines).
awk '/^## On a SLURM cluster/ {s = 1} s && /^```bash$/ {b = 1; next} b && /^```$/ {exit} b {print}' "$launch_md" \
  >docs.sbatch
grep -q '^#!/bin/bash' docs.sbatch || fail "no batch script under '## On a SLURM cluster' in $launch_md"
edit() {  # edit SED_EXPR PATTERN: apply to the script, which must have held PATTERN exactly once
  [ "$(grep -c -- "$2" docs.sbatch)" = 1 ] || fail "docs/launch.md's batch script changed: no single line with '$2'"
  sed -i "$1" docs.sbatch
}
edit '/^#SBATCH --gpus-per-node=/d' '^#SBATCH --gpus-per-node='
edit 's/^per_node=[0-9]*/per_node=2/' '^per_node='
mkdir -p build && ln -s "$bin" build/bin
export PATH="$bin:$PATH"  # accelerate-cpp, as an installed one would be
steps=1000
jid=$(sbatch --parsable --nodes 1 --cpus-per-task 2 docs.sbatch "${tiny[@]}" --max_steps $steps) || fail "sbatch refused the script"
log="$dir/work/gpt-$jid.log"
state() { job_state "$jid"; }
# wait_for WHAT COMMAND...: polls COMMAND for 60 s.
wait_for() {
  local what="$1"
  shift
  for _ in $(seq 600); do
    "$@" 2>/dev/null && return
    sleep 0.1
  done
  fail "$what did not happen in 60 s (job state $(state))"
}
# trained_since PATTERN N: at least N loss lines follow the last line matching PATTERN.
trained_since() { grep -q "$1" "$log" && [ "$(tac "$log" | sed "/$1/q" | grep -c ' loss=')" -ge "$2" ]; }
not_finished() { ! grep -q "step=$steps loss=" "$log" || fail "the job ended before the notice: give it more steps"; }
# requeued_to_the_end WHAT N: the job ($jid, $log) completes with exit code 0 after N requeues; each of its N
# preemption checkpoints ("CHECKPOINT STEP" lines in $saved) is where a run resumed; it ends at the reference.
requeued_to_the_end() {
  wait_for "the end of $1" eval '[ "$(state)" = COMPLETED ] || [ "$(state)" = FAILED ]'
  local info
  info=$(scontrol show job "$jid")
  grep -q "JobState=COMPLETED" <<<"$info" || fail "$1 did not complete: $(grep -o 'JobState=[^ ]*' <<<"$info")"
  grep -q "Restarts=$2 " <<<"$info" || fail "$1 was not requeued $2 time(s): $(grep -o 'Restarts=[^ ]*' <<<"$info")"
  grep -q "ExitCode=0:0" <<<"$info" || fail "$1's exit code is not 0: $(grep -o 'ExitCode=[^ ]*' <<<"$info")"
  saved=$(sed -n 's/.*preempted: saved \(.*checkpoint_[0-9]*\) at step \([0-9]*\);.*/\1 \2/p' "$log")
  [ "$(grep -c . <<<"$saved")" = "$2" ] || fail "not $2 preemption checkpoint(s) in $1: $saved"
  while read -r checkpoint step; do
    grep -q "resumed from $checkpoint at step $step\$" "$log" || fail "$1 did not resume from $checkpoint at step $step"
  done <<<"$saved"
  local resumed
  resumed=$(grep -o "val_loss=[0-9.]*" "$log" | tail -n 1)
  [ "$resumed" = "$reference" ] || fail "$1 ended with $resumed, the uninterrupted srun run with $reference"
}

# Notice 1: SIGUSR1 to every process of the job step, as `--signal=USR1@120` sends it before the time limit.
wait_for "training to step 50" grep -q "step=50 loss=" "$log"
not_finished
scancel --signal USR1 "$jid" || fail "scancel --signal USR1 failed"
# Notice 2, in the requeued run: the scheduler preempts the job (`scontrol requeue`: SIGTERM to all its processes).
wait_for "the first requeue's resumed training" trained_since "resumed from" 3
not_finished
scontrol requeue "$jid" || fail "scontrol requeue failed"
requeued_to_the_end "the launcher script's job" 2
for signal in SIGUSR1 SIGTERM; do
  grep -q "received $signal; 2 worker(s) saved and exited with code 75" "$log" || fail "no $signal preemption summary"
done
for r in 0 1; do
  [ "$(grep -c "memory: rank=$r " "$log")" = 1 ] || fail "rank $r did not train to the end of the requeued job"
done
echo "slurm_requeue: launcher script (job $jid): preempted by SIGUSR1 and by scontrol requeue, saved at steps" \
  $(cut -d' ' -f2 <<<"$saved")", requeued twice, resumed each time, completed with the uninterrupted run's $reference"

# 3. The docs' srun-alone script (the section's indented bash block), one node of two tasks of one CPU, with a
#    notice: every task saves and exits 75, srun returns 75, the script requeues, the job resumes to the end.
awk '/^## On a SLURM cluster/ {s = 1} s && /^  ```bash$/ {b = 1; next} b && /^  ```$/ {exit} b {sub(/^  /, ""); print}' \
  "$launch_md" >srun-alone.sbatch
grep -q '^#!/bin/bash' srun-alone.sbatch || fail "no srun-alone batch script under '## On a SLURM cluster'"
[ "$(grep -c -- ' --gpus-per-node=4' srun-alone.sbatch)" = 1 ] || fail "the srun-alone script changed: no --gpus-per-node"
sed -i 's/ --gpus-per-node=4//' srun-alone.sbatch
rm -rf runs
jid=$(sbatch --parsable --nodes 1 --ntasks-per-node 2 --cpus-per-task 1 srun-alone.sbatch "${tiny[@]}" \
  --max_steps $steps) || fail "sbatch refused the srun-alone script"
log="$dir/work/gpt-$jid.log"
wait_for "training to step 50 (srun alone)" grep -q "step=50 loss=" "$log"
not_finished
scancel --signal USR1 "$jid" || fail "scancel --signal USR1 failed"
requeued_to_the_end "the srun-alone job" 1
echo "slurm_requeue: srun-alone script: preempted, saved $(cut -d' ' -f1 <<<"$saved"), requeued, resumed, $reference"
echo "slurm_requeue: passed"
