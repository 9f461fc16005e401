#!/usr/bin/env bash
# Two machines without extra settings (issue 10, case 10): two network namespaces joined by a veth pair stand in
# for two hosts, and each runs `accelerate-cpp launch --num_machines 2` with no GLOO_SOCKET_IFNAME. Both must
# finish the collectives tests promptly, the library having picked the interface that routes to the main
# process's address (and said which). Exits 77 (skipped) where network namespaces cannot be made.
# Then, as a network failure: machine 1's link goes down mid-training; both sides must end within about the
# timeout plus the grace period, each blaming the rank on the other machine.
# Usage: multinode_netns.sh ACCELERATE_CPP COLLECTIVES_WORKER FAILURE_WORKER
set -uo pipefail
cli="$1" worker="$2" failure_worker="$3"
id=$$
ns0="acc-ns0-$id" ns1="acc-ns1-$id" a="acca$id" b="accb$id"
if ! command -v ip >/dev/null || ! ip netns add "$ns0" 2>/dev/null; then
  echo "multinode_netns: SKIPPED: network namespaces cannot be created here (needs root and the ip command)"
  exit 77
fi
logs="$(mktemp -d)"
cleanup() {
  ip netns del "$ns0" 2>/dev/null
  ip netns del "$ns1" 2>/dev/null
  rm -rf "$logs"
}
trap cleanup EXIT
set -e
ip netns add "$ns1"
ip link add "$a" type veth peer name "$b"
ip link set "$a" netns "$ns0"
ip link set "$b" netns "$ns1"
ip -n "$ns0" addr add 10.231.7.1/24 dev "$a"
ip -n "$ns1" addr add 10.231.7.2/24 dev "$b"
for ns in "$ns0" "$ns1"; do ip -n "$ns" link set lo up; done
ip -n "$ns0" link set "$a" up
ip -n "$ns1" link set "$b" up
set +e

machine() {  # machine RANK: one launcher, one process, inside its namespace; 60 s at most
  ip netns exec "$1" timeout -k 5 60 env -u GLOO_SOCKET_IFNAME "$cli" launch --cpu --num_processes 2 \
    --num_machines 2 --machine_rank "$2" --main_process_ip 10.231.7.1 --main_process_port 29631 --timeout 20 \
    "$worker" >"$logs/machine$2.log" 2>&1
}
start=$SECONDS
machine "$ns0" 0 & p0=$!
machine "$ns1" 1 & p1=$!
wait $p0; rc0=$?
wait $p1; rc1=$?
elapsed=$((SECONDS - start))
for m in 0 1; do echo "--- machine $m"; cat "$logs/machine$m.log"; done
echo "multinode_netns: machine 0 exited $rc0, machine 1 exited $rc1, after $elapsed s"
[ "$rc0" = 0 ] && [ "$rc1" = 0 ] || { echo "multinode_netns: FAILED"; exit 1; }
grep -q "Gloo uses network interface $a (10.231.7.1)" "$logs/machine0.log" || { echo "machine 0 did not name its interface"; exit 1; }
grep -q "Gloo uses network interface $b (10.231.7.2)" "$logs/machine1.log" || { echo "machine 1 did not name its interface"; exit 1; }

trainer() {  # trainer NAMESPACE RANK: failure_worker train, 4 s collective timeout, 2 s grace period
  ip netns exec "$1" timeout -k 5 60 env -u GLOO_SOCKET_IFNAME "$cli" launch --cpu --num_processes 2 \
    --num_machines 2 --machine_rank "$2" --main_process_ip 10.231.7.1 --main_process_port 29632 --timeout 4 \
    --grace_period 2 "$failure_worker" train >"$logs/train$2.log" 2>&1
}
trainer "$ns0" 0 & t0=$!
trainer "$ns1" 1 & t1=$!
for _ in $(seq 300); do
  grep -q training "$logs/train0.log" 2>/dev/null && grep -q training "$logs/train1.log" 2>/dev/null && break
  sleep 0.1
done
sleep 1
ip -n "$ns1" link set "$b" down
start=$SECONDS
wait $t0; rc0=$?
wait $t1; rc1=$?
elapsed=$((SECONDS - start))
for m in 0 1; do echo "--- trainer on machine $m"; cat "$logs/train$m.log"; done
echo "multinode_netns: after the link went down, machine 0 exited $rc0, machine 1 exited $rc1, after $elapsed s"
[ "$rc0" != 0 ] && [ "$rc1" != 0 ] && [ "$rc0" != 124 ] && [ "$rc1" != 124 ] && [ "$elapsed" -lt 30 ] \
  || { echo "multinode_netns: FAILED: both sides must end on their own, promptly"; exit 1; }
grep -q "root cause: rank 1 (on another machine) stopped answering" "$logs/train0.log" \
  || { echo "multinode_netns: machine 0 did not blame rank 1"; exit 1; }
grep -q "root cause: rank 0 (on another machine) stopped answering" "$logs/train1.log" \
  || { echo "multinode_netns: machine 1 did not blame rank 0"; exit 1; }
echo "multinode_netns: passed"
